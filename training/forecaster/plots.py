"""Stage 4: figures for the MLflow run.

Figures are built as ``matplotlib.figure.Figure`` objects without pyplot: no global figure registry to
close, no interactive backend to pick; ``mlflow.log_figure`` renders them to PNG with Agg.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from salespulse.features.series import Panel
from salespulse.modeling.forecaster import Forecaster

HISTORY_SHOWN = {"D": 56, "W": 26}  # periods of history before the window


def forecast_vs_actual(windows: pd.DataFrame, panel: Panel, series: Sequence[str]) -> Figure:
    """The last backtest window of a few series: history, actuals, the champion's forecast (column ``f``) and
    its 80/95% bands."""
    last = windows[windows["cutoff"] == windows["cutoff"].max()]
    figure = Figure(figsize=(11, 2.8 * len(series)))
    axes = figure.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, unique_id in zip(axes, series, strict=True):
        window = last[last["unique_id"] == unique_id].sort_values("ds")
        row = int(np.flatnonzero(panel.ids == unique_id)[0])
        end = panel.dates.get_loc(window["cutoff"].iloc[0]) + 1
        begin = max(end - HISTORY_SHOWN[panel.freq], 0)
        ax.plot(panel.dates[begin:end], panel.y[row, begin:end], color="0.45", lw=1, label="history")
        ax.fill_between(
            window["ds"], window["lo-95"], window["hi-95"], color="tab:blue", alpha=0.15, label="95%"
        )
        ax.fill_between(
            window["ds"], window["lo-80"], window["hi-80"], color="tab:blue", alpha=0.3, label="80%"
        )
        ax.plot(window["ds"], window["y"], color="black", lw=1.2, label="actual")
        ax.plot(window["ds"], window["f"], color="tab:blue", lw=1.6, label="forecast (expected revenue)")
        ax.set_title(unique_id, fontsize=10)
        ax.set_ylabel("revenue")
    axes[0].legend(loc="upper left", fontsize=8, ncol=6)
    figure.tight_layout()
    return figure


def feature_importance(forecaster: Forecaster, top: int = 20) -> Figure:
    """Share of total split gain per feature, for the mean and the point booster (empty for a statistical
    champion, which has none)."""
    names = forecaster.features.names
    if forecaster.mean_booster is None or forecaster.point_booster is None:
        figure = Figure(figsize=(6, 1.5))
        figure.text(0.5, 0.5, f"{forecaster.method}: no boosters", ha="center")
        return figure
    boosters = {"mean (Tweedie)": forecaster.mean_booster, "forecast (L1)": forecaster.point_booster}
    figure = Figure(figsize=(12, 0.3 * min(top, len(names)) + 1.5))
    for ax, (title, booster) in zip(figure.subplots(1, 2), boosters.items(), strict=True):
        gain = pd.Series(booster.feature_importance("gain"), index=names).sort_values().tail(top)
        ax.barh(gain.index, gain.to_numpy() / gain.sum(), color="tab:blue")
        ax.set_title(f"{title}: share of split gain", fontsize=10)
    figure.tight_layout()
    return figure


def backtest_metrics(table: pd.DataFrame) -> Figure:
    """WAPE, MASE and bias of each method per backtest window, at the model's own frequency."""
    windows = table[(table["window"] != "all") & (table["freq"] == table["freq"].iloc[0])]
    figure = Figure(figsize=(14, 4))
    for ax, metric in zip(figure.subplots(1, 3), ("wape", "mase", "bias"), strict=True):
        windows.pivot(index="window", columns="method", values=metric).plot.bar(ax=ax, rot=0, width=0.8)
        ax.set_title(metric.upper(), fontsize=10)
        ax.set_xlabel("window (cutoff)")
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
