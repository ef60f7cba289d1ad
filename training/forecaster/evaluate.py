"""Stage 3: rolling-origin backtest of the forecaster and two baselines on the same windows and series.

Windows: the last ``n_windows`` (3) blocks of ``horizon`` periods; each is forecast from the history up to
its cutoff (the period before it). The model is fitted once, on the history up to the first cutoff, and
forecasts every window from the history up to that window's cutoff; the baselines are fitted the same way
(statsforecast ``cross_validation(refit=False)``: parameters estimated at the first cutoff, state updated
with the history after it). Nothing after a cutoff is used to forecast its window. Refitting at every
cutoff would cost two more fits of each model for windows only four to eight weeks apart.

Series: those with at least MIN_HISTORY periods (8 weeks daily; a year and a week weekly, so that last
year's value exists) before the first cutoff; younger series are left out of every method alike.

Baselines: seasonal naive (the value one season back: 7 days, 52 weeks) and AutoETS (statsforecast, season
7 daily; statsforecast fits no seasonal ETS beyond 24 periods, so weekly AutoETS is non-seasonal), fitted on
the last ETS_HISTORY periods before the first cutoff (half a year of days, two years of weeks):
AutoETS fits one model per series, by far the slowest step, and its level and season come from the recent
past anyway. Their intervals are their own (normal errors). Should AutoETS fail on a series, statsforecast
falls back to seasonal naive for it.

Metrics, per method and window and overall:

- WAPE = sum |y - forecast| / sum y;
- MASE = mean over series and windows of (mean |y - forecast| in the window) / (mean |y_t - y_{t-season}|
  over the series' history up to the cutoff), season 7 daily and 52 weekly; series whose history never
  changed (scale 0) are left out;
- bias = sum forecast / sum y - 1 (negative: under-forecast);
- coverage_80 / coverage_95 = share of actuals inside the interval.

The model's intervals here are cross-conformal: each window's intervals are calibrated on the errors of
the other windows, so no window is covered by its own errors. The registered model is calibrated on all
windows' errors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, SeasonalNaive

from salespulse.features.series import Panel, pandas_freq
from salespulse.modeling.forecaster import MEAN, POINT, Forecaster, IntervalCalibration, error_scale

LEVELS: tuple[int, ...] = (80, 95)
SEASON = {"D": 7, "W": 52}
MIN_HISTORY = {"D": 56, "W": 53}
ETS_HISTORY = {"D": 182, "W": 104}
SCALE_WINDOW = {"D": 28, "W": 8}

MODEL = "model"
MODEL_MEAN = "model_mean"
SEASONAL_NAIVE = "seasonal_naive"
AUTOETS = "autoets"
METHODS = (MODEL, MODEL_MEAN, SEASONAL_NAIVE, AUTOETS)


@dataclass(frozen=True)
class Backtest:
    """Where the backtest forecasts: the cutoffs and the series every method is scored on."""

    cutoffs: tuple[pd.Timestamp, ...]
    horizon: int
    series: np.ndarray

    @property
    def first_cutoff(self) -> pd.Timestamp:
        return self.cutoffs[0]


def plan_backtest(panel: Panel, horizon: int, n_windows: int = 3) -> Backtest:
    """The last ``n_windows`` windows of ``horizon`` periods and the series old enough at the first cutoff."""
    last = len(panel.dates) - 1
    positions = [last - horizon * k for k in range(n_windows, 0, -1)]
    if positions[0] < MIN_HISTORY[panel.freq]:
        raise ValueError(
            f"{len(panel.dates)} periods are too few for {n_windows} windows of {horizon} after "
            f"{MIN_HISTORY[panel.freq]} periods of history."
        )
    cutoffs = tuple(panel.dates[p] for p in positions)
    old_enough = panel.first_positions() <= positions[0] - MIN_HISTORY[panel.freq]
    return Backtest(cutoffs=cutoffs, horizon=horizon, series=panel.ids[old_enough])


def forecast_windows(forecaster: Forecaster, panel: Panel, backtest: Backtest) -> pd.DataFrame:
    """The forecaster's point and mean forecasts of every window: unique_id, cutoff, ds, step, y, forecast,
    mean, scale (the series' recent average at the cutoff, the unit of the interval calibration)."""
    scored = panel.select(backtest.series)
    h = backtest.horizon
    frames = []
    for cutoff in backtest.cutoffs:
        history = scored.until(cutoff)
        point, mean = forecaster.predict_panel(history.tail(forecaster.history_periods), h)
        start = len(history.dates)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": np.repeat(scored.ids, h),
                    "cutoff": cutoff,
                    "ds": np.tile(scored.dates[start : start + h], len(scored.ids)),
                    "step": np.tile(np.arange(1, h + 1), len(scored.ids)),
                    "y": scored.y[:, start : start + h].reshape(-1),
                    POINT: point.reshape(-1),
                    MEAN: mean.reshape(-1),
                    "scale": np.repeat(error_scale(history, SCALE_WINDOW[panel.freq]), h),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def calibrate(windows: pd.DataFrame, horizon: int, freq: str) -> IntervalCalibration:
    """Interval calibration from backtest forecasts (all of ``windows``)."""
    errors = (windows["y"] - windows[POINT]) / windows["scale"]
    return IntervalCalibration.from_errors(
        windows["step"].to_numpy(), errors.to_numpy(), horizon, SCALE_WINDOW[freq]
    )


def with_cross_conformal_intervals(windows: pd.DataFrame, horizon: int, freq: str) -> pd.DataFrame:
    """``windows`` with lo-/hi- columns, each window's intervals calibrated on the other windows' errors."""
    parts = []
    for cutoff, window in windows.groupby("cutoff", sort=True):
        calibration = calibrate(windows[windows["cutoff"] != cutoff], horizon, freq)
        point = window[POINT].to_numpy().reshape(-1, horizon)
        scale = window["scale"].to_numpy().reshape(-1, horizon)[:, 0]
        bounds = calibration.bounds(point, scale, LEVELS)
        parts.append(window.assign(**{name: values.reshape(-1) for name, values in bounds.items()}))
    return pd.concat(parts, ignore_index=True)


def baseline_windows(panel: Panel, backtest: Backtest, n_jobs: int = 2) -> pd.DataFrame:
    """Seasonal naive and AutoETS forecasts (with 80/95% intervals) of the backtest windows."""
    season = SEASON[panel.freq]
    periods = len(panel.dates) - panel.dates.get_loc(backtest.first_cutoff) - 1 + ETS_HISTORY[panel.freq]
    trimmed = panel.select(backtest.series).tail(periods)
    frame = trimmed.to_frame()[["unique_id", "ds", "y"]]
    engine = StatsForecast(
        models=[
            SeasonalNaive(season_length=season, alias=SEASONAL_NAIVE),
            AutoETS(season_length=season, alias=AUTOETS),
        ],
        freq=pandas_freq(panel.freq),
        n_jobs=n_jobs,
        fallback_model=SeasonalNaive(season_length=season),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsforecast warns per series about ETS seasons over 24
        result = engine.cross_validation(
            df=frame,
            h=backtest.horizon,
            n_windows=len(backtest.cutoffs),
            step_size=backtest.horizon,
            refit=False,
            level=list(LEVELS),
        )
    return result.reset_index(drop=True)


def mase_scales(panel: Panel, backtest: Backtest) -> pd.DataFrame:
    """Per series and cutoff, the mean absolute seasonal difference of the history up to the cutoff."""
    season = SEASON[panel.freq]
    scored = panel.select(backtest.series)
    change = np.abs(scored.y[:, season:] - scored.y[:, :-season])
    observed = ~np.isnan(change)
    sums = np.cumsum(np.where(observed, change, 0.0), axis=1)
    counts = np.cumsum(observed, axis=1)
    frames = []
    for cutoff in backtest.cutoffs:
        last = scored.dates.get_loc(cutoff) - season  # the change into the cutoff period
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(counts[:, last] > 0, sums[:, last] / counts[:, last], np.nan)
        frames.append(pd.DataFrame({"unique_id": scored.ids, "cutoff": cutoff, "mase_scale": scale}))
    return pd.concat(frames, ignore_index=True)


def metrics_table(model: pd.DataFrame, baselines: pd.DataFrame, mase_scale: pd.DataFrame) -> pd.DataFrame:
    """The backtest table: one row per method and window (cutoff) plus an ``all`` row per method, with
    wape, mase, bias, coverage_80, coverage_95."""
    rows = []
    for method, frame in _as_methods(model, baselines).items():
        frame = frame.merge(mase_scale, on=["unique_id", "cutoff"], how="left")
        for cutoff, window in [*frame.groupby("cutoff", sort=True), ("all", frame)]:
            rows.append({"method": method, "window": _window_label(cutoff)} | _scores(window))
    return pd.DataFrame(rows)


def _as_methods(model: pd.DataFrame, baselines: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each method's forecasts as unique_id, cutoff, ds, y, f[, lo-80, hi-80, lo-95, hi-95]."""
    keys = ["unique_id", "cutoff", "ds", "y"]
    bounds = [f"{side}-{level}" for level in LEVELS for side in ("lo", "hi")]
    out = {
        MODEL: model[[*keys, POINT, *bounds]].rename(columns={POINT: "f"}),
        MODEL_MEAN: model[[*keys, MEAN]].rename(columns={MEAN: "f"}),
    }
    for method in (SEASONAL_NAIVE, AUTOETS):
        columns = {method: "f"} | {f"{method}-{b}": b for b in bounds}
        out[method] = baselines[keys + list(columns)].rename(columns=columns)
    return out


def _window_label(cutoff: object) -> str:
    return cutoff if isinstance(cutoff, str) else f"{pd.Timestamp(cutoff):%Y-%m-%d}"


def _scores(frame: pd.DataFrame) -> dict[str, float]:
    y, f = frame["y"].to_numpy(), frame["f"].to_numpy()
    error = np.abs(y - f)
    per_series = (
        frame.assign(error=error)
        .groupby(["unique_id", "cutoff"])
        .agg(mae=("error", "mean"), scale=("mase_scale", "first"))
    )
    finite = per_series["scale"] > 0
    scores = {
        "wape": float(error.sum() / y.sum()),
        "mase": float((per_series["mae"][finite] / per_series["scale"][finite]).mean()),
        "bias": float(f.sum() / y.sum() - 1),
    }
    for level in LEVELS:
        lo, hi = f"lo-{level}", f"hi-{level}"
        covered = ((y >= frame[lo]) & (y <= frame[hi])).mean() if lo in frame else np.nan
        scores[f"coverage_{level}"] = float(covered)
    return scores


def headline(table: pd.DataFrame) -> dict[str, float]:
    """The overall figures as flat MLflow metrics: wape_model, mase_autoets, coverage_80 (the model's), ...
    and the model's relative WAPE margin over each baseline (positive: the model is better)."""
    overall = table[table["window"] == "all"].set_index("method")
    metrics = {}
    for method in METHODS:
        for name in ("wape", "mase", "bias"):
            metrics[f"{name}_{method}"] = overall.loc[method, name]
        for level in LEVELS:
            if method != MODEL_MEAN:
                metrics[f"coverage_{level}_{method}"] = overall.loc[method, f"coverage_{level}"]
    for level in LEVELS:
        metrics[f"coverage_{level}"] = overall.loc[MODEL, f"coverage_{level}"]
    for baseline in (SEASONAL_NAIVE, AUTOETS):
        metrics[f"wape_margin_vs_{baseline}"] = 1 - metrics[f"wape_{MODEL}"] / metrics[f"wape_{baseline}"]
    return {k: float(v) for k, v in metrics.items()}


def wape(windows: pd.DataFrame) -> float:
    """WAPE of the point forecasts of :func:`forecast_windows`."""
    return float(np.abs(windows["y"] - windows[POINT]).sum() / windows["y"].sum())


def sample_series(windows: pd.DataFrame, count: int = 4) -> Sequence[str]:
    """Series to plot: the biggest by backtest revenue, then ones at the 90th, 75th and 50th percentile."""
    revenue = windows.groupby("unique_id")["y"].sum().sort_values(ascending=False)
    picks = [0, *(int(len(revenue) * q) for q in (0.1, 0.25, 0.5))][:count]
    return list(dict.fromkeys(revenue.index[min(p, len(revenue) - 1)] for p in picks))
