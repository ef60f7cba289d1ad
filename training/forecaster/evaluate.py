"""Stage 3: rolling-origin backtest of every candidate method on the same windows and series.

Windows: the last ``n_windows`` (3) blocks of ``horizon`` periods; each is forecast from the history up to
its cutoff (the period before it). LightGBM is fitted once, on the history up to the first cutoff, and
forecasts every window from the history up to that window's cutoff; the statistical models are fitted the
same way (statsforecast ``cross_validation(refit=False)``: parameters estimated at the first cutoff, state
updated with the history after it). Nothing after a cutoff is used to forecast its window.

Series: those with at least MIN_HISTORY periods (8 weeks daily; a year and a week weekly) before the first
cutoff; younger series are left out of every method alike.

Candidates (:data:`CANDIDATES`): the global LightGBM model's mean (``lightgbm``), seasonal naive and AutoETS
(the baselines; statsforecast, season 7 daily; weekly AutoETS is non-seasonal, statsforecast fits no
seasonal ETS beyond 24 periods), TSB and ADIDA (intermittent demand, daily levels whose series are mostly
zero), and the average of LightGBM and AutoETS (``combination``). LightGBM's median (``lightgbm_median``)
is scored too, for information. The statistical models are fitted on the last ETS_HISTORY periods before
the first cutoff.

Every method gets the same intervals: cross-conformal, each window's intervals calibrated on the other
windows' errors of that method, so no window is covered by its own errors.

Metrics, per method, frequency and window and overall (frequency ``D`` is the model's periods; ``W`` and
``M`` are the sums over 7 and 28 days from the cutoff of a daily backtest, how weekly and monthly forecasts
are served):

- WAPE = sum |y - forecast| / sum y;
- MASE (model periods only) = mean over series and windows of (mean |y - forecast| in the window) / (mean
  |y_t - y_{t-season}| over the series' history up to the cutoff); series whose history never changed are
  left out;
- bias = sum forecast / sum y - 1 (negative: under-forecast);
- coverage_80 / coverage_95 = share of actuals inside the interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import ADIDA, TSB, AutoETS, SeasonalNaive

from salespulse.features.series import Panel, pandas_freq
from salespulse.modeling.forecaster import (
    ADIDA as ADIDA_METHOD,
)
from salespulse.modeling.forecaster import (
    AUTOETS,
    AUTOETS_CAL,
    CALENDAR,
    COMBINATION,
    LIGHTGBM,
    METHODS,
    SEASON,
    SEASONAL_NAIVE,
    STAT_HISTORY,
    Forecaster,
    IntervalCalibration,
)
from salespulse.modeling.forecaster import (
    TSB as TSB_METHOD,
)

LEVELS: tuple[int, ...] = (80, 95)
MIN_HISTORY = {"D": 56, "W": 53}
ETS_HISTORY = STAT_HISTORY
SCALE_WINDOW = {"D": 28, "W": 8}
INTERMITTENT_ZERO_SHARE = 0.3  # daily levels whose series are zero this often get TSB and ADIDA too

LIGHTGBM_MEDIAN = "lightgbm_median"
BASELINES = (SEASONAL_NAIVE, AUTOETS)
AGGREGATES = {"W": 7, "M": 28}  # served frequencies of a daily model: days summed per period


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
    """LightGBM's mean and median forecasts of every window: unique_id, cutoff, ds, step, y, lightgbm,
    lightgbm_median, scale (the interval unit: the series' recent average at the cutoff times the day's
    event multiplier)."""
    if not forecaster.uses_boosters:
        raise ValueError(f"A {forecaster.method} forecaster has no boosters to backtest.")
    boosters = replace(forecaster, method=LIGHTGBM)
    scored = panel.select(backtest.series)
    h = backtest.horizon
    frames = []
    for cutoff in backtest.cutoffs:
        history = scored.until(cutoff)
        median, mean = boosters.predict_panel(history.tail(boosters.history_periods), h)
        start = len(history.dates)
        future = scored.dates[start : start + h]
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": np.repeat(scored.ids, h),
                    "cutoff": cutoff,
                    "ds": np.tile(future, len(scored.ids)),
                    "step": np.tile(np.arange(1, h + 1), len(scored.ids)),
                    "y": scored.y[:, start : start + h].reshape(-1),
                    LIGHTGBM: mean.reshape(-1),
                    LIGHTGBM_MEDIAN: median.reshape(-1),
                    "scale": boosters.interval_scale(history, future).reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def is_intermittent(panel: Panel, backtest: Backtest) -> bool:
    """Whether the scored series are mostly zero before the first cutoff (daily product-level series)."""
    if panel.freq != "D":
        return False
    history = panel.select(backtest.series).until(backtest.first_cutoff).tail(STAT_HISTORY["D"]).y
    return bool(np.nanmean(history == 0) > INTERMITTENT_ZERO_SHARE)


def statistical_windows(
    panel: Panel, backtest: Backtest, forecaster: Forecaster, intermittent: bool, n_jobs: int = 2
) -> pd.DataFrame:
    """Forecasts of the statistical methods for the backtest windows: unique_id, cutoff, ds, <method>...

    The baselines (seasonal naive, AutoETS) see the plain history; their ``_cal`` twins (and TSB and ADIDA
    on intermittent series) see it with ``forecaster``'s calendar effects (learnt before the first cutoff)
    divided out, and their forecasts are multiplied by them."""
    season = SEASON[panel.freq]
    periods = len(panel.dates) - panel.dates.get_loc(backtest.first_cutoff) - 1 + ETS_HISTORY[panel.freq]
    scored = panel.select(backtest.series).tail(periods)
    keys = ["unique_id", "cutoff", "ds"]
    forward = [
        SeasonalNaive(season_length=season, alias=SEASONAL_NAIVE),
        AutoETS(season_length=season, alias=AUTOETS),
    ]
    result = _cross_validation(scored.to_frame(), forward, panel.freq, backtest, n_jobs, refit=False)
    if panel.freq == "D":
        adjusted = replace(scored, y=forecaster.calendar_adjusted(scored.y, scored.dates)).to_frame()
        with_calendar = [SeasonalNaive(season_length=season, alias=SEASONAL_NAIVE + CALENDAR)]
        if not intermittent:  # AutoETS is the slow one; intermittent series get TSB and ADIDA instead
            with_calendar.append(AutoETS(season_length=season, alias=AUTOETS_CAL))
        extra = _cross_validation(adjusted, with_calendar, panel.freq, backtest, n_jobs, refit=False)
        if intermittent:
            # TSB and ADIDA can't carry fitted parameters forward: refitted per window (they are cheap).
            refitted = [
                TSB(alpha_d=0.1, alpha_p=0.1, alias=TSB_METHOD + CALENDAR),
                ADIDA(alias=ADIDA_METHOD + CALENDAR),
            ]
            more = _cross_validation(adjusted, refitted, panel.freq, backtest, n_jobs, refit=True)
            extra = extra.merge(more.drop(columns="y"), on=keys, how="left")
        factor = pd.Series(forecaster.multiplier(panel.dates), index=panel.dates)
        calendar_methods = [c for c in extra.columns if c.endswith(CALENDAR)]
        extra[calendar_methods] = extra[calendar_methods].mul(factor.reindex(extra["ds"]).to_numpy(), axis=0)
        result = result.merge(extra.drop(columns="y"), on=keys, how="left")
    methods = [c for c in result.columns if c not in (*keys, "y")]
    result[methods] = result[methods].clip(lower=0.0)  # revenue is never negative
    return result.reset_index(drop=True)[[*keys, *methods]]


def _cross_validation(
    frame: pd.DataFrame, models: list, freq: str, backtest: Backtest, n_jobs: int, refit: bool
) -> pd.DataFrame:
    frame = frame[["unique_id", "ds", "y"]]
    engine = StatsForecast(
        models=models,
        freq=pandas_freq(freq),
        n_jobs=n_jobs,
        fallback_model=SeasonalNaive(season_length=SEASON[freq]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsforecast warns per series about ETS seasons over 24
        result = engine.cross_validation(
            df=frame, h=backtest.horizon, n_windows=len(backtest.cutoffs), step_size=backtest.horizon,
            refit=refit,
        )  # fmt: skip
    return result.reset_index(drop=True)


def candidate_windows(model: pd.DataFrame, statistical: pd.DataFrame) -> pd.DataFrame:
    """One frame with every method's forecast per window row, and the LightGBM + AutoETS combination."""
    windows = model.merge(statistical, on=["unique_id", "cutoff", "ds"], how="left", validate="1:1")
    partner = AUTOETS_CAL if AUTOETS_CAL in windows else AUTOETS
    windows[COMBINATION] = (windows[LIGHTGBM] + windows[partner]) / 2
    return windows


def candidates(windows: pd.DataFrame) -> list[str]:
    """The methods that compete for champion, in the order ties are broken (the first wins a tie)."""
    return [m for m in METHODS if m in windows.columns]


def scored_methods(windows: pd.DataFrame) -> list[str]:
    return [*candidates(windows), LIGHTGBM_MEDIAN]


def aggregate(windows: pd.DataFrame, method: str, days: int) -> pd.DataFrame:
    """A method's daily window forecasts summed over blocks of ``days`` from the cutoff (complete blocks)."""
    frame = windows[["unique_id", "cutoff", "step", "y", method, "scale"]].assign(
        step=(windows["step"] - 1) // days + 1
    )
    summed = frame.groupby(["unique_id", "cutoff", "step"], sort=True).agg(
        y=("y", "sum"), f=(method, "sum"), scale=("scale", "sum"), days=("y", "size")
    )
    return summed[summed["days"] == days].drop(columns="days").reset_index()


def method_frame(windows: pd.DataFrame, method: str, freq: str) -> pd.DataFrame:
    """A method's forecasts at ``freq`` as unique_id, cutoff, step, y, f, scale."""
    if freq in AGGREGATES:
        return aggregate(windows, method, AGGREGATES[freq])
    return windows[["unique_id", "cutoff", "step", "y", method, "scale"]].rename(columns={method: "f"})


def calibrate(frame: pd.DataFrame, scale_window: int) -> IntervalCalibration:
    """Interval calibration from a method frame (unique_id, cutoff, step, y, f, scale)."""
    errors = (frame["y"] - frame["f"]) / frame["scale"]
    horizon = int(frame["step"].max())
    return IntervalCalibration.from_errors(frame["step"].to_numpy(), errors.to_numpy(), horizon, scale_window)


def with_cross_conformal_intervals(frame: pd.DataFrame, scale_window: int) -> pd.DataFrame:
    """``frame`` with lo-/hi- columns, each window's intervals calibrated on the other windows' errors."""
    parts = []
    for cutoff, window in frame.groupby("cutoff", sort=True):
        calibration = calibrate(frame[frame["cutoff"] != cutoff], scale_window)
        window = window.sort_values(["unique_id", "step"])
        steps = int(window["step"].max())
        point = window["f"].to_numpy().reshape(-1, steps)
        scale = window["scale"].to_numpy().reshape(-1, steps)
        bounds = calibration.bounds(point, scale, LEVELS)
        parts.append(window.assign(**{name: values.reshape(-1) for name, values in bounds.items()}))
    return pd.concat(parts, ignore_index=True)


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


def frequencies(freq: str, horizon: int) -> list[str]:
    """The frequencies scored: the model's, and for a daily model the weeks and months its windows hold."""
    if freq != "D":
        return [freq]
    return ["D", *(f for f, days in AGGREGATES.items() if horizon >= days)]


def metrics_table(windows: pd.DataFrame, mase_scale: pd.DataFrame, freq: str) -> pd.DataFrame:
    """The backtest table: one row per method, frequency and window (cutoff) plus an ``all`` row, with
    wape, mase, bias, coverage_80, coverage_95."""
    horizon = int(windows["step"].max())
    rows = []
    for method in scored_methods(windows):
        for served in frequencies(freq, horizon):
            frame = with_cross_conformal_intervals(method_frame(windows, method, served), SCALE_WINDOW[freq])
            if served == freq:
                frame = frame.merge(mase_scale, on=["unique_id", "cutoff"], how="left")
            for cutoff, window in [*frame.groupby("cutoff", sort=True), ("all", frame)]:
                label = {"method": method, "freq": served, "window": _window_label(cutoff)}
                rows.append(label | _scores(window))
    return pd.DataFrame(rows)


def _window_label(cutoff: object) -> str:
    return cutoff if isinstance(cutoff, str) else f"{pd.Timestamp(cutoff):%Y-%m-%d}"


def _scores(frame: pd.DataFrame) -> dict[str, float]:
    y, f = frame["y"].to_numpy(), frame["f"].to_numpy()
    error = np.abs(y - f)
    scores = {"wape": float(error.sum() / y.sum()), "mase": np.nan, "bias": float(f.sum() / y.sum() - 1)}
    if "mase_scale" in frame:
        per_series = (
            frame.assign(error=error)
            .groupby(["unique_id", "cutoff"])
            .agg(mae=("error", "mean"), scale=("mase_scale", "first"))
        )
        finite = per_series["scale"] > 0
        scores["mase"] = float((per_series["mae"][finite] / per_series["scale"][finite]).mean())
    for level in LEVELS:
        covered = (y >= frame[f"lo-{level}"]) & (y <= frame[f"hi-{level}"])
        scores[f"coverage_{level}"] = float(covered.mean())
    return scores


def overall(table: pd.DataFrame) -> pd.DataFrame:
    """The ``all`` rows, indexed by (freq, method)."""
    return table[table["window"] == "all"].set_index(["freq", "method"])


MAX_BIAS = 0.05  # planners add the headline forecasts up: a champion may be at most this far off in sum


def choose(table: pd.DataFrame, freq: str, max_bias: float = MAX_BIAS) -> str:
    """The champion method: the lowest overall WAPE at the model's frequency among the candidates that
    planners can use as they are: no worse than either baseline at any served frequency (days, weeks,
    months) and |bias| at most ``max_bias``. Without such a candidate, the lowest WAPE among those that beat
    the baselines at the model's frequency, else the lowest WAPE (the gate then refuses to promote it).
    A tie goes to the method listed first in METHODS (the calendar-aware before the plain).

    Why bias counts: on the sample's product x region series the LightGBM + AutoETS average had the lowest
    WAPE (0.870 against LightGBM's 0.874) but summed 13% under the actual revenue, LightGBM 3%."""
    scores = overall(table)
    at_freq = scores.loc[freq]
    ranked = [m for m in METHODS if m in at_freq.index and np.isfinite(at_freq.loc[m, "wape"])]
    served = list(scores.index.get_level_values("freq").unique())

    def beats_baselines(method: str, frequencies: list[str]) -> bool:
        return all(
            scores.loc[(f, method), "wape"] <= min(scores.loc[(f, b), "wape"] for b in BASELINES)
            for f in frequencies
            if (f, method) in scores.index
        )

    usable = [m for m in ranked if beats_baselines(m, served) and abs(at_freq.loc[m, "bias"]) <= max_bias]
    fallback = [m for m in ranked if beats_baselines(m, [freq])] or ranked
    return min(usable or fallback, key=lambda m: at_freq.loc[m, "wape"])


def headline(table: pd.DataFrame, champion: str, freq: str) -> dict[str, float]:
    """Flat MLflow metrics: ``<metric>_<freq>_<method>`` for every method, ``<metric>_<freq>`` for the
    champion, the champion's WAPE margin over each baseline, and at the model's frequency the old names
    (``wape_model`` ... of the champion, ``coverage_80``, ``coverage_95``)."""
    rows = overall(table)
    metrics: dict[str, float] = {}
    for (served, method), row in rows.iterrows():
        for name in ("wape", "mase", "bias", "coverage_80", "coverage_95"):
            if np.isfinite(row[name]):
                metrics[f"{name}_{served}_{method}"] = row[name]
                if method == champion:
                    metrics[f"{name}_{served}"] = row[name]
    for served in rows.index.get_level_values("freq").unique():
        for baseline in BASELINES:
            margin = 1 - rows.loc[(served, champion), "wape"] / rows.loc[(served, baseline), "wape"]
            metrics[f"wape_margin_{served}_vs_{baseline}"] = margin
    own = rows.loc[freq]
    metrics |= {
        "wape_model": own.loc[champion, "wape"],
        "bias_model": own.loc[champion, "bias"],
        "coverage_80": own.loc[champion, "coverage_80"],
        "coverage_95": own.loc[champion, "coverage_95"],
    }
    return {k: float(v) for k, v in metrics.items()}


def calibrations(windows: pd.DataFrame, method: str, freq: str) -> dict[str, IntervalCalibration]:
    """The served model's interval calibration per frequency, from all windows' errors of its method."""
    horizon = int(windows["step"].max())
    return {
        served: calibrate(method_frame(windows, method, served), SCALE_WINDOW[freq])
        for served in frequencies(freq, horizon)
    }


def wape_of(windows: pd.DataFrame, column: str) -> float:
    return float(np.abs(windows["y"] - windows[column]).sum() / windows["y"].sum())


def sample_series(windows: pd.DataFrame, count: int = 4) -> Sequence[str]:
    """Series to plot: the biggest by backtest revenue, then ones at the 90th, 75th and 50th percentile."""
    revenue = windows.groupby("unique_id")["y"].sum().sort_values(ascending=False)
    picks = [0, *(int(len(revenue) * q) for q in (0.1, 0.25, 0.5))][:count]
    return list(dict.fromkeys(revenue.index[min(p, len(revenue) - 1)] for p in picks))
