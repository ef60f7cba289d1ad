"""After the levels are trained: backtest the reconciliations of the aggregate levels on their champions' own
backtest windows, log the scores in one MLflow run and name the best.

    result = run({level: forecaster_result, ...})   # what `salespulse train all` calls
    print(result.describe())

Each window's daily forecasts of the total, the regions, the categories and the category x region series
(every level's champion, as it was backtested) are reconciled by each method of
:mod:`salespulse.modeling.hierarchy`; a method's score is the mean over the levels of the reconciled WAPE
(the unreconciled forecasts, ``none``, are scored too). The service reconciles with the configured method
(``SALESPULSE_FORECAST_RECONCILIATION``); the run says whether that is the one that backtested best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import mlflow
import numpy as np
import pandas as pd

from salespulse.config import get_settings
from salespulse.modeling.hierarchy import AGGREGATE_LEVELS, BOTTOM_LEVEL, RECONCILIATIONS, Hierarchy
from training.tracking import configure_mlflow


class HasWindows(Protocol):
    champion_windows: pd.DataFrame | None


@dataclass(frozen=True)
class HierarchyResult:
    table: pd.DataFrame = field(repr=False)  # method, level, wape, bias
    best: str
    configured: str
    run_id: str | None

    def describe(self) -> str:
        if self.table.empty:
            return "Forecast reconciliation: not backtested (a level's backtest lacks a series of it)."
        wide = self.table.pivot(index="method", columns="level", values="wape")[list(AGGREGATE_LEVELS)]
        wide["mean"] = wide.mean(axis=1)
        lines = [
            "Forecast reconciliation, backtest WAPE per level (the levels' champions, reconciled):",
            "  " + f"{'method':<17}" + "".join(f"{c:>17}" for c in wide.columns),
        ]
        for method, row in wide.sort_values("mean").iterrows():
            mark = " *" if method == self.best else ""
            lines.append("  " + f"{method + mark:<17}" + "".join(f"{v:>17.4f}" for v in row))
        verdict = "the best" if self.configured == self.best else f"not the best ({self.best} is)"
        lines.append(f"  (* backtests best) The service reconciles with {self.configured}: {verdict}.")
        return "\n".join(lines)


def backtest_table(windows: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """WAPE and bias per reconciliation method and level over every backtest window (empty when a level's
    backtest lacks a series of the hierarchy, e.g. a category x region too young to be scored)."""
    hierarchy = Hierarchy.from_bottom(sorted(windows[BOTTOM_LEVEL]["unique_id"].unique()))
    # Levels of few series are backtested on more windows: score the windows every level has.
    common = set.intersection(*(set(windows[level]["cutoff"]) for level in AGGREGATE_LEVELS))
    actual: dict[str, np.ndarray] = {}
    base: dict[str, np.ndarray] = {}
    for level in AGGREGATE_LEVELS:
        frame = windows[level][windows[level]["cutoff"].isin(common)]
        ids = list(hierarchy.ids[level])
        if set(ids) - set(frame["unique_id"]):
            return pd.DataFrame(columns=["method", "level", "wape", "bias"])
        index = pd.MultiIndex.from_product([ids, sorted(frame["ds"].unique())], names=["unique_id", "ds"])
        aligned = frame.set_index(["unique_id", "ds"]).reindex(index)
        actual[level] = aligned["y"].to_numpy().reshape(len(ids), -1)
        base[level] = aligned["f"].to_numpy().reshape(len(ids), -1)
    rows = []
    for method in RECONCILIATIONS:
        reconciled = hierarchy.reconcile(base, method)
        for level in AGGREGATE_LEVELS:
            y, f = actual[level], reconciled[level]
            rows.append(
                {
                    "method": method,
                    "level": level,
                    "wape": float(np.abs(y - f).sum() / y.sum()),
                    "bias": float(f.sum() / y.sum() - 1),
                }
            )
    return pd.DataFrame(rows)


def best_method(table: pd.DataFrame) -> str:
    """The method with the lowest mean WAPE over the levels (a tie: the first in RECONCILIATIONS)."""
    means = table.groupby("method")["wape"].mean()
    return min((m for m in RECONCILIATIONS if m in means.index), key=lambda m: means[m])


def run(results: Mapping[str, HasWindows]) -> HierarchyResult:
    """Backtest the reconciliations over ``results`` (a forecaster result per aggregate level); log them."""
    configured = get_settings().forecast_reconciliation
    windows = {level: results[level].champion_windows for level in AGGREGATE_LEVELS if level in results}
    if len(windows) < len(AGGREGATE_LEVELS) or any(w is None for w in windows.values()):
        return HierarchyResult(pd.DataFrame(), configured, configured, None)
    table = backtest_table(windows)  # type: ignore[arg-type]
    if table.empty:
        return HierarchyResult(table, configured, configured, None)
    best = best_method(table)
    configure_mlflow()
    with mlflow.start_run(run_name="forecast-hierarchy") as active:
        mlflow.set_tag("model", "forecast-hierarchy")
        mlflow.log_params({"best_reconciliation": best, "configured_reconciliation": configured})
        mlflow.log_metrics(
            {f"wape_{r.level}_{r.method}": r.wape for r in table.itertuples()}
            | {f"bias_{r.level}_{r.method}": r.bias for r in table.itertuples()}
        )
        mlflow.log_text(table.to_csv(index=False, float_format="%.6f"), "backtest/reconciliation.csv")
    return HierarchyResult(table, best, configured, active.info.run_id)
