"""The sales forecaster as it is served: the champion of a level's backtest, with calibrated intervals.

:class:`Forecaster` is the fitted model and everything a forecast needs. It takes data, never a connection:
the caller hands it the recent daily history of some series (a :class:`~salespulse.features.series.Panel`,
or a long frame ``unique_id, ds, y``) and gets, per series and period, the headline ``forecast`` (the
expected revenue: unbiased, the figure planners add up; ``mean`` is the same number under its old name),
the ``median`` (daily only) and ``lo-<level>`` / ``hi-<level>`` per interval level.

- **Method.** Training backtests several candidates on the same windows and keeps the winner
  (``method``): the global LightGBM model (``lightgbm``), statistical models refitted on each forecast's
  history (``seasonal_naive``, ``autoets``, and for intermittent series ``tsb`` and ``adida``, from
  statsforecast), or the average of LightGBM and AutoETS (``combination``).
- **LightGBM** has two boosters on the same features: *mean* (Tweedie objective, the headline) and *point*
  (L1, the median). The forecast is recursive: each step's features come from the history and the mean
  forecasts of the steps before it.
- **Retail events** (:mod:`salespulse.features.calendar`): the learnt lift of each special day (holidays,
  Black Friday and its neighbours, the Christmas run-up, company events) is divided out of the history the
  model sees and multiplied back into its forecast.
- **Frequencies.** The model is daily; weekly (Monday-Sunday) and monthly forecasts add up the daily
  forecasts of each period, plus the sales already made in a period under way. Their intervals have their
  own calibration (backtest errors of 7- and 28-day sums).
- **Intervals** are split-conformal: backtest errors of the headline divided by a scale (the series' recent
  average revenue times the day's event multiplier) give quantiles per step ahead; an interval is the
  forecast plus those quantiles times the scale, cut at 0. Steps beyond the backtested ones reuse the last.
- **Planned promotions** (:class:`PlannedPromotion`, by product or category and date range) are the
  ``discount`` covariate of the forecast days; other days are at regular prices.

:class:`SalesForecaster` is the MLflow pyfunc face: logged as "models from code" with the folder
:meth:`Forecaster.save` writes (JSON and LightGBM text files, no pickled objects), so loading it needs
``salespulse``, LightGBM and statsforecast, never the ``training`` package, DuckDB or the settings.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from salespulse.features.calendar import CLOSED_LIFT, EventEffects
from salespulse.features.series import (
    MAX_HORIZON,
    SERVING_FREQS,
    Panel,
    SeriesFeatures,
    parse_series_id,
    series_level,
)

# The name under which the logged model keeps the folder written by Forecaster.save.
FORECASTER_ARTIFACT = "forecaster"
HEADLINE = "forecast"  # the expected revenue
MEAN = "mean"  # the same figure, under the name it had when the headline was the median
MEDIAN = "median"
DEFAULT_INTERVALS: tuple[float, ...] = (80.0, 95.0)
SCALE_FLOOR = 1.0  # currency units: keeps the scale of a series that has sold nothing lately positive

PERIOD_LABEL = {"D": "day", "W": "week", "M": "month"}

LIGHTGBM = "lightgbm"
SEASONAL_NAIVE = "seasonal_naive"
AUTOETS = "autoets"
TSB = "tsb"
ADIDA = "adida"
COMBINATION = "combination"
STATISTICAL = (SEASONAL_NAIVE, AUTOETS, TSB, ADIDA)
# A statistical method "with the calendar" is fitted on the history with the event and yearly effects
# divided out, and its forecast multiplied by them (Black Friday is then forecast as Black Friday).
CALENDAR = "_cal"
AUTOETS_CAL = AUTOETS + CALENDAR
METHODS = (LIGHTGBM, COMBINATION, *(m + CALENDAR for m in STATISTICAL), *STATISTICAL)
SEASON = {"D": 7, "W": 52}
STAT_HISTORY = {"D": 182, "W": 104}  # periods a statistical model is fitted on (half a year of days)

_SPEC_FILE = "forecaster.json"
_MEAN_FILE = "mean_booster.txt"
_POINT_FILE = "point_booster.txt"
_STATICS_FILE = "series_statics.csv"


def error_scale(panel: Panel, window: int) -> np.ndarray:
    """Each series' recent average revenue per period (the last ``window`` periods, at least SCALE_FLOOR):
    the unit in which interval widths are calibrated."""
    recent = panel.y[:, -window:]
    observed = ~np.isnan(recent)
    average = np.where(observed, recent, 0.0).sum(axis=1) / np.maximum(observed.sum(axis=1), 1)
    return np.maximum(average, SCALE_FLOOR)


MIN_ERRORS_PER_STEP = 200  # fewer errors per step ahead (few series): one set of quantiles for all steps


def finite_sample_levels(probabilities: np.ndarray, n: int) -> np.ndarray:
    """The quantile levels to read from ``n`` errors so that a new error falls below the upper ``p`` bound
    (above the lower) with probability ``p`` at least: split-conformal's (n + 1) / n correction per tail.
    Plain quantiles of few errors under-cover: 11 monthly errors of one series gave 80% intervals that held
    9 of 12 months; the correction matters only when errors are few."""
    upper = np.minimum(probabilities * (n + 1) / n, 1.0)
    lower = np.maximum(1.0 - (1.0 - probabilities) * (n + 1) / n, 0.0)
    return np.where(probabilities > 0.5, upper, np.where(probabilities < 0.5, lower, probabilities))


@dataclass(frozen=True)
class IntervalCalibration:
    """Quantiles of scaled errors ``(y - forecast) / scale`` from a backtest.

    ``quantiles[s][j]`` is the ``probabilities[j]`` quantile of the errors ``s + 1`` steps ahead.
    """

    probabilities: tuple[float, ...]
    quantiles: tuple[tuple[float, ...], ...]
    scale_window: int
    errors: int

    @classmethod
    def from_errors(
        cls, steps: np.ndarray, scaled_errors: np.ndarray, horizon: int, scale_window: int
    ) -> IntervalCalibration:
        """Calibrate from backtest errors; ``steps`` are the 1-based steps ahead of the errors."""
        probabilities = np.round(np.arange(0.005, 1.0, 0.005), 3)
        finite = np.isfinite(scaled_errors)
        steps, scaled_errors = steps[finite], scaled_errors[finite]
        if len(scaled_errors) == 0:
            raise ValueError("No backtest errors to calibrate the intervals with.")
        per_step = np.bincount(steps, minlength=horizon + 1)[1 : horizon + 1]
        if per_step.min() >= MIN_ERRORS_PER_STEP:
            table = [
                np.quantile(errors, finite_sample_levels(probabilities, len(errors)))
                for errors in (scaled_errors[steps == s] for s in range(1, horizon + 1))
            ]
        else:
            levels = finite_sample_levels(probabilities, len(scaled_errors))
            table = [np.quantile(scaled_errors, levels)] * horizon
        return cls(
            probabilities=tuple(probabilities.tolist()),
            quantiles=tuple(tuple(row.tolist()) for row in table),
            scale_window=scale_window,
            errors=len(scaled_errors),
        )

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> IntervalCalibration:
        return cls(
            probabilities=tuple(fields["probabilities"]),
            quantiles=tuple(tuple(row) for row in fields["quantiles"]),
            scale_window=fields["scale_window"],
            errors=fields["errors"],
        )

    @cached_property
    def _table(self) -> np.ndarray:
        return np.asarray(self.quantiles)

    def bounds(self, point: np.ndarray, scale: np.ndarray, levels: Sequence[float]) -> dict[str, np.ndarray]:
        """``lo-<level>`` and ``hi-<level>`` arrays shaped like ``point`` and ``scale`` (series x steps)."""
        out = {}
        for level in sorted(levels):
            if not 0 < level < 100:
                raise ValueError(f"Interval levels are percentages between 0 and 100, not {level}.")
            tail = (100 - level) / 200
            # The forecast is inside every interval, and wider levels nest around narrower ones.
            low = np.minimum(self._per_step(tail, point.shape[1]), 0.0)
            high = np.maximum(self._per_step(1 - tail, point.shape[1]), 0.0)
            out[f"lo-{_label(level)}"] = np.maximum(point + low * scale, 0.0)
            out[f"hi-{_label(level)}"] = point + high * scale
        return out

    def _per_step(self, probability: float, h: int) -> np.ndarray:
        """The ``probability`` quantile for steps 1..h; steps beyond the calibrated ones reuse the last."""
        grid = np.asarray(self.probabilities)
        upper = int(np.clip(np.searchsorted(grid, probability), 1, len(grid) - 1))
        weight = np.clip((probability - grid[upper - 1]) / (grid[upper] - grid[upper - 1]), 0.0, 1.0)
        column = self._table[:, upper - 1] * (1 - weight) + self._table[:, upper] * weight
        return column[np.minimum(np.arange(h), len(column) - 1)]


def _label(level: float) -> str:
    return f"{level:g}"


@dataclass(frozen=True)
class PlannedPromotion:
    """A planned price cut of one product or of every product of a category, on the days start..end."""

    discount: float
    start: date
    end: date
    product_id: str | None = None
    category: str | None = None


def statistical_forecast(method: str, y: np.ndarray, h: int, freq: str) -> np.ndarray:
    """Forecasts (series x h) of a statistical method fitted on each series' history (NaN before its start).

    AutoETS, TSB and ADIDA come from statsforecast; a series too short for its method gets seasonal naive."""
    from statsforecast.models import ADIDA as Adida
    from statsforecast.models import TSB as Tsb
    from statsforecast.models import AutoETS as AutoEts

    season = SEASON[freq]
    out = np.zeros((len(y), h))
    for i, row in enumerate(y):
        history = row[~np.isnan(row)][-STAT_HISTORY[freq] :]
        if len(history) == 0:
            continue
        if method == SEASONAL_NAIVE or len(history) < 2 * season:
            out[i] = _seasonal_naive(history, h, season)
            continue
        model = {
            AUTOETS: lambda: AutoEts(season_length=season if season <= 24 else 1),
            TSB: lambda: Tsb(alpha_d=0.1, alpha_p=0.1),
            ADIDA: Adida,
        }[method]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[i] = model.forecast(y=history, h=h)["mean"]
            except Exception:  # statsforecast gives up on some degenerate series; so does the backtest
                out[i] = _seasonal_naive(history, h, season)
    return np.maximum(out, 0.0)


def _seasonal_naive(history: np.ndarray, h: int, season: int) -> np.ndarray:
    if len(history) < season:
        return np.full(h, history.mean())
    return np.resize(history[-season:], h)


@dataclass
class Forecaster:
    """A fitted forecaster; see the module docstring."""

    level: str
    freq: str
    horizon: int
    features: SeriesFeatures
    method: str = LIGHTGBM
    mean_booster: lgb.Booster | None = None
    point_booster: lgb.Booster | None = None
    calibrations: dict[str, IntervalCalibration] = field(default_factory=dict)  # by serving frequency
    events: EventEffects | None = None
    series_statics: pd.DataFrame | None = None  # static features of the trained series, by unique_id
    product_categories: dict[str, str] = field(default_factory=dict)  # to spread planned promotions
    # Each series' usual promotion depth (its average over the last quarter of training): the discount a
    # forecast assumes where no promotion is planned. Assuming none would forecast below the usual: an
    # aggregate series always has some products on promotion.
    typical_discount: dict[str, float] = field(default_factory=dict)
    trained_until: date | None = None  # the last day of the history it was fitted on
    threads: int = 1  # a forecast predicts small batches: one LightGBM thread, no thread start-up per call

    def __post_init__(self) -> None:
        self._multipliers: dict[tuple[pd.Timestamp, int], np.ndarray] = {}

    @property
    def uses_boosters(self) -> bool:
        return self.method in (LIGHTGBM, COMBINATION)

    @property
    def history_periods(self) -> int:
        """Periods of daily history a forecast reads: the features' lookback, the interval scale window,
        the statistical models' fitting window, and a month for a monthly period under way."""
        scale_window = max((c.scale_window for c in self.calibrations.values()), default=0)
        statistical = STAT_HISTORY[self.freq] if self.method != LIGHTGBM else 0
        return max(self.features.lookback, scale_window, statistical, 31 if self.freq == "D" else 0)

    @property
    def frequencies(self) -> tuple[str, ...]:
        """The frequencies it forecasts: daily models all three, a weekly model weeks only."""
        return SERVING_FREQS if self.freq == "D" else (self.freq,)

    # ------------------------------------------------------------------------------------------ serving

    def forecast(
        self,
        history: pd.DataFrame,
        h: int | None = None,
        levels: Sequence[float] = DEFAULT_INTERVALS,
        discounts: pd.DataFrame | None = None,
        freq: str | None = None,
        promotions: Sequence[PlannedPromotion] = (),
    ) -> pd.DataFrame:
        """Forecast after ``history`` (unique_id, ds, y, and the static features of unseen series; a series
        is zero from its first row to the last day of the frame). ``discounts`` (unique_id, ds, discount)
        and ``promotions`` are planned price cuts. See :meth:`forecast_panel`."""
        panel = Panel.from_frame(history, self.freq).tail(self.history_periods)
        return self.forecast_panel(panel, h, levels, discounts, freq, promotions)

    def forecast_panel(
        self,
        panel: Panel,
        h: int | None = None,
        levels: Sequence[float] = DEFAULT_INTERVALS,
        discounts: pd.DataFrame | None = None,
        freq: str | None = None,
        promotions: Sequence[PlannedPromotion] = (),
        reconciled: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> pd.DataFrame:
        """The serving interface: forecast the ``h`` periods of ``freq`` (default: the model's) after the
        last day of ``panel``. Returns unique_id, ds (period start), forecast, mean, [median,] lo-/hi-<level>,
        h rows per series in ds order. A weekly or monthly period under way counts the sales already made.

        ``reconciled``: the median and mean of the model's periods (series x :meth:`periods_needed`) made
        coherent with the other levels (see salespulse.modeling.hierarchy), used instead of this model's
        own; the intervals are this model's, around them."""
        freq = freq or self.freq
        h = self.horizon if h is None else h
        self._check_request(freq, h, levels)
        panel = self._with_known_statics(panel.tail(self.history_periods))
        days, period_of_day, starts = _forecast_days(panel.last_date, freq, h, self.freq)
        future = pd.date_range(panel.last_date, periods=days + 1, freq=_pandas_freq(self.freq))[1:]
        if reconciled is None:
            median, mean = self.model_forecast(panel, days, discounts, promotions)
        else:
            median, mean = reconciled
        scale = self.interval_scale(panel, future)
        if freq == self.freq:
            columns = {HEADLINE: mean, MEAN: mean, MEDIAN: median}
            period_scale = scale
        else:
            so_far = _sales_so_far(panel, starts[0])
            total = _sum_by_period(mean, period_of_day, h)
            total[:, 0] += so_far
            columns = {HEADLINE: total, MEAN: total}
            period_scale = _sum_by_period(scale, period_of_day, h)
        if levels:
            columns |= self.calibrations[freq].bounds(columns[HEADLINE], period_scale, levels)
        return pd.DataFrame(
            {"unique_id": np.repeat(panel.ids, h), "ds": np.tile(starts, len(panel.ids))}
            | {name: values.reshape(-1) for name, values in _ordered(columns).items()}
        )

    def periods_needed(self, panel: Panel, freq: str, h: int) -> int:
        """Model periods (days) a forecast of ``h`` periods of ``freq`` after ``panel`` covers."""
        return _forecast_days(panel.last_date, freq, h, self.freq)[0]

    def model_forecast(
        self,
        panel: Panel,
        days: int,
        discounts: pd.DataFrame | None = None,
        promotions: Sequence[PlannedPromotion] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Median and mean (series x ``days`` model periods) of this model alone, with planned prices."""
        panel = self._with_known_statics(panel.tail(self.history_periods))
        future = pd.date_range(panel.last_date, periods=days + 1, freq=_pandas_freq(self.freq))[1:]
        planned = self._planned(panel, future, discounts, promotions)
        median, mean = self.predict_panel(panel, days, planned)
        if promotions and self.method != LIGHTGBM:
            median, mean = self._with_promotion_lift(panel, future, planned, median, mean)
        return median, mean

    def _with_promotion_lift(
        self,
        panel: Panel,
        future: pd.DatetimeIndex,
        planned: np.ndarray,
        median: np.ndarray,
        mean: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A statistical (or combined) forecast knows nothing of prices: give it the lift the boosters, which
        learnt the price response, see between the planned and the usual discounts, day by day."""
        if self.mean_booster is None or self.point_booster is None:
            raise ValueError(
                f"This {self.method} forecaster was registered without its boosters, which price a planned "
                "promotion: retrain the level (salespulse train forecaster) to plan promotions with it."
            )
        usual = self._planned(panel, future, None, ())
        planned_median, planned_mean = self._predict_boosters(panel, len(future), planned)
        _, usual_mean = self._predict_boosters(panel, len(future), usual)
        lift = np.divide(planned_mean, usual_mean, out=np.ones_like(planned_mean), where=usual_mean > 0)
        if self.method != COMBINATION:
            return median * lift, mean * lift
        # The average's booster half already has the planned prices: lift its statistical half only.
        statistical_median, statistical_mean = 2 * median - planned_median, 2 * mean - planned_mean
        return (planned_median + statistical_median * lift) / 2, (planned_mean + statistical_mean * lift) / 2

    def _check_request(self, freq: str, h: int, levels: Sequence[float]) -> None:
        if freq not in self.frequencies:
            served = ", ".join(self.frequencies)
            raise ValueError(f"freq: this {self.freq} model forecasts at {served}, not {freq}.")
        if not 1 <= h <= MAX_HORIZON[freq]:
            raise ValueError(f"horizon: 1 to {MAX_HORIZON[freq]} {PERIOD_LABEL[freq]}s, not {h}.")
        if levels and freq not in self.calibrations:
            raise ValueError(
                f"intervals: the model in service has no {freq} interval calibration (trained before weekly "
                "and monthly intervals: retrain it with `salespulse train all`); ask with intervals=[]."
            )

    def interval_scale(self, panel: Panel, future: pd.DatetimeIndex) -> np.ndarray:
        """Series x future periods: the series' recent average revenue times each day's event multiplier."""
        window = self.calibrations[self.freq].scale_window if self.freq in self.calibrations else 28
        return error_scale(panel, window)[:, None] * self.multiplier(future)[None, :]

    def _with_known_statics(self, panel: Panel) -> Panel:
        """Static features the history leaves out, taken from the series the model was trained on."""
        wanted = list(self.features.statics)
        given = panel.statics.reindex(columns=wanted)
        if self.series_statics is None or not given.isna().to_numpy().any():
            return panel
        return replace(
            panel, statics=given.fillna(self.series_statics.reindex(index=panel.ids, columns=wanted))
        )

    # ---------------------------------------------------------------------------------------- the model

    def predict_panel(
        self, panel: Panel, h: int, discount: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Median and mean forecasts (series x h) of the periods after the panel, by the model's method."""
        if self.method == LIGHTGBM:
            return self._predict_boosters(panel, h, discount)
        statistical = self._predict_statistical(
            AUTOETS_CAL if self.method == COMBINATION else self.method, panel, h
        )
        if self.method != COMBINATION:
            return statistical, statistical
        median, mean = self._predict_boosters(panel, h, discount)
        return (median + statistical) / 2, (mean + statistical) / 2

    def _predict_statistical(self, method: str, panel: Panel, h: int) -> np.ndarray:
        if not method.endswith(CALENDAR):
            return statistical_forecast(method, panel.y, h, self.freq)
        future = pd.date_range(panel.last_date, periods=h + 1, freq=_pandas_freq(self.freq))[1:]
        history = self.calendar_adjusted(panel.y, panel.dates)
        return statistical_forecast(method.removesuffix(CALENDAR), history, h, self.freq) * self.multiplier(
            future
        )

    def calendar_adjusted(self, y: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
        """History with the event and yearly effects divided out and closed days filled with the same
        weekday a week before (statistical models take no gaps)."""
        adjusted = self.adjusted(y, self.multiplier(dates))
        started = np.arange(y.shape[1])[None, :] >= np.argmax(~np.isnan(y), axis=1)[:, None]
        season = SEASON.get(self.freq, 1)
        for t in range(adjusted.shape[1]):
            gap = started[:, t] & np.isnan(adjusted[:, t])
            if gap.any():
                adjusted[gap, t] = adjusted[gap, t - season] if t >= season else 0.0
        return np.where(started, np.nan_to_num(adjusted), np.nan)

    def _predict_boosters(
        self, panel: Panel, h: int, discount: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The recursion: each step's features come from the (event-adjusted) history and the mean forecasts
        of the steps before it (expected values, not medians, stand in for the unknown future: a median of
        zero would tell the next step that nothing sold)."""
        work = panel.extended(h, self.usual_discount(panel.ids, h) if discount is None else discount)
        start = len(panel.dates)
        factor = self.multiplier(work.dates)
        work.y[:, :start] = self.adjusted(work.y[:, :start], factor[:start])
        open_day = factor >= CLOSED_LIFT
        context = self.features.context(work)
        median = np.empty((len(panel.ids), h))
        mean = np.empty((len(panel.ids), h))
        for k in range(h):
            x, scale = self.features.matrix_and_scale(work, np.array([start + k]), context)
            mean[:, k] = np.maximum(self.mean_booster.predict(x, num_threads=self.threads), 0.0) * scale
            median[:, k] = np.maximum(self.point_booster.predict(x, num_threads=self.threads), 0.0) * scale
            work.y[:, start + k] = mean[:, k] if open_day[start + k] else np.nan
        return median * factor[start:], mean * factor[start:]

    def multiplier(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Each period's event multiplier (1 without learnt events); cached, as requests repeat calendars."""
        if self.events is None or self.freq != "D" or len(dates) == 0:
            return np.ones(len(dates))
        key = (dates[0], len(dates))
        cached = self._multipliers.get(key)
        if cached is None:
            if len(self._multipliers) > 256:
                self._multipliers.clear()
            cached = self._multipliers[key] = self.events.multiplier(dates)
        return cached

    def usual_discount(self, ids: np.ndarray, h: int) -> np.ndarray:
        """Series x h: each series' typical promotion depth (the level's average for unseen series)."""
        fallback = float(np.mean(list(self.typical_discount.values()))) if self.typical_discount else 0.0
        usual = np.array([self.typical_discount.get(i, fallback) for i in ids], dtype=np.float64)
        return np.repeat(usual[:, None], h, axis=1)

    @staticmethod
    def adjusted(y: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """History with the event effects divided out; closed days become missing (they tell nothing of the
        series' level)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(factor >= CLOSED_LIFT, y / np.maximum(factor, CLOSED_LIFT), np.nan)

    # ------------------------------------------------------------------------------------- promotions

    def _planned(
        self,
        panel: Panel,
        future: pd.DatetimeIndex,
        discounts: pd.DataFrame | None,
        promotions: Sequence[PlannedPromotion],
    ) -> np.ndarray | None:
        """Discounts of the forecast days (series x days): the usual depth, or a deeper planned one."""
        planned = self.usual_discount(panel.ids, len(future))
        given = _planned_frame(discounts, panel.ids, future)
        if given is not None:
            planned = np.maximum(planned, given)
        if promotions:
            planned = np.maximum(planned, self.promotion_depth(panel, future, promotions))
        return planned

    def promotion_depth(
        self, panel: Panel, future: pd.DatetimeIndex, promotions: Sequence[PlannedPromotion]
    ) -> np.ndarray:
        """The discount each series sees from ``promotions``: a product series its product's or category's
        cut; an aggregate series the average cut over its products (as the history's discount is)."""
        depth = np.zeros((len(panel.ids), len(future)))
        spec = series_level(self.level)
        categories = panel.statics.get("category")
        for promotion in promotions:
            days = (future >= pd.Timestamp(promotion.start)) & (future <= pd.Timestamp(promotion.end))
            for i, unique_id in enumerate(panel.ids):
                keys = parse_series_id(self.level, unique_id)
                category = categories.iloc[i] if categories is not None else None
                share = self._promoted_share(spec.promotion_group, keys, category, promotion)
                if "product_id" in keys:
                    depth[i, days] = np.maximum(depth[i, days], share * promotion.discount)
                else:
                    depth[i, days] += share * promotion.discount
        return np.clip(depth, 0.0, 0.95)

    def _promoted_share(
        self, group: str | None, keys: dict[str, str], category: str | None, promotion: PlannedPromotion
    ) -> float:
        """The share of a series' products that ``promotion`` cuts."""
        if group == "product_id":
            hit = promotion.product_id == keys["product_id"] or (
                promotion.category is not None and promotion.category == category
            )
            return float(hit)
        products = self.product_categories
        if group == "category":
            members = [p for p, c in products.items() if c == keys["category"]]
        else:
            members = list(products)
        if not members:
            return float(promotion.category is not None and promotion.category == keys.get("category"))
        promoted = sum(promotion.product_id == p or promotion.category == products[p] for p in members)
        return promoted / len(members)

    # ---------------------------------------------------------------------------------------- storage

    def save(self, folder: Path) -> None:
        """JSON for the settings, features, events and calibrations; LightGBM text for the boosters."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.mean_booster is not None and self.point_booster is not None:
            self.mean_booster.save_model(str(folder / _MEAN_FILE))
            self.point_booster.save_model(str(folder / _POINT_FILE))
        if self.series_statics is not None:
            self.series_statics.to_csv(folder / _STATICS_FILE, index_label="unique_id")
        spec = {
            "level": self.level,
            "freq": self.freq,
            "horizon": self.horizon,
            "method": self.method,
            "features": asdict(self.features),
            "calibrations": {freq: asdict(c) for freq, c in self.calibrations.items()},
            "events": self.events.to_dict() if self.events else None,
            "product_categories": self.product_categories,
            "typical_discount": self.typical_discount,
            "trained_until": self.trained_until.isoformat() if self.trained_until else None,
        }
        (folder / _SPEC_FILE).write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Forecaster:
        spec = json.loads((folder / _SPEC_FILE).read_text())
        calibrations = spec.get("calibrations") or (
            {spec["freq"]: spec["calibration"]} if spec.get("calibration") else {}
        )
        statics, trained_until = folder / _STATICS_FILE, spec["trained_until"]
        has_boosters = (folder / _MEAN_FILE).exists()
        return cls(
            level=spec["level"],
            freq=spec["freq"],
            horizon=spec["horizon"],
            features=SeriesFeatures.from_dict(spec["features"]),
            method=spec.get("method", LIGHTGBM),
            mean_booster=lgb.Booster(model_file=str(folder / _MEAN_FILE)) if has_boosters else None,
            point_booster=lgb.Booster(model_file=str(folder / _POINT_FILE)) if has_boosters else None,
            calibrations={f: IntervalCalibration.from_dict(c) for f, c in calibrations.items()},
            events=EventEffects.from_dict(spec["events"]) if spec.get("events") else None,
            series_statics=pd.read_csv(statics, index_col="unique_id", dtype=str)
            if statics.exists()
            else None,
            product_categories=spec.get("product_categories", {}),
            typical_discount=spec.get("typical_discount", {}),
            trained_until=date.fromisoformat(trained_until) if trained_until else None,
        )


def _pandas_freq(freq: str) -> str:
    return {"D": "D", "W": "W-MON", "M": "MS"}[freq]


def _forecast_days(
    last: pd.Timestamp, freq: str, h: int, model_freq: str
) -> tuple[int, np.ndarray, pd.DatetimeIndex]:
    """Model periods to forecast for ``h`` periods of ``freq``, the period index of each, and period starts.

    A weekly or monthly forecast starts with the period holding the first forecast day."""
    if freq == model_freq:
        starts = pd.date_range(last, periods=h + 1, freq=_pandas_freq(freq))[1:]
        return h, np.arange(h), starts
    first_day = last + pd.Timedelta(days=1)
    first = first_day - pd.Timedelta(days=first_day.dayofweek) if freq == "W" else first_day.replace(day=1)
    starts = pd.date_range(first, periods=h + 1, freq=_pandas_freq(freq))
    days = pd.date_range(first_day, starts[-1] - pd.Timedelta(days=1), freq="D")
    return len(days), starts[1:].searchsorted(days, side="right"), starts[:-1]


def _sales_so_far(panel: Panel, period_start: pd.Timestamp) -> np.ndarray:
    """Each series' sales in the history from ``period_start`` on (the part of a period already sold)."""
    recent = panel.y[:, panel.dates >= period_start]
    return np.nansum(recent, axis=1)


def _sum_by_period(values: np.ndarray, period_of_day: np.ndarray, periods: int) -> np.ndarray:
    out = np.zeros((len(values), periods))
    for p in range(periods):
        out[:, p] = values[:, period_of_day == p].sum(axis=1)
    return out


def _planned_frame(
    discounts: pd.DataFrame | None, ids: np.ndarray, future: pd.DatetimeIndex
) -> np.ndarray | None:
    """Planned discounts given per series and day, as a series x steps array (0 where nothing is planned)."""
    if discounts is None or discounts.empty:
        return None
    table = discounts.pivot_table(index="unique_id", columns="ds", values="discount", aggfunc="mean")
    table.columns = pd.DatetimeIndex(table.columns)
    return table.reindex(index=ids, columns=future).fillna(0.0).to_numpy(dtype=np.float64)


def _ordered(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """forecast, mean, median, then the lower bounds widest first and the upper bounds narrowest first."""
    lows = sorted((c for c in columns if c.startswith("lo-")), key=lambda c: -float(c[3:]))
    highs = sorted((c for c in columns if c.startswith("hi-")), key=lambda c: float(c[3:]))
    heads = [c for c in (HEADLINE, MEAN, MEDIAN) if c in columns]
    return {c: columns[c] for c in (*heads, *lows, *highs)}


# ------------------------------------------------------------------------------------------------ pyfunc


class SalesForecaster(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc model of a :class:`Forecaster`.

    ``model_input``: the daily history to forecast from, columns ``unique_id, ds, y`` (and optionally the
    static features ``category``, ``region``). ``params``: ``h`` (periods ahead, default the model's
    horizon), ``freq`` (D, W or M; default the model's) and ``levels`` (interval levels in %, default 80 and
    95). Output: unique_id, ds, forecast, mean, [median,] lo-<level>, hi-<level>.
    """

    def __init__(self, forecaster: Forecaster | None = None) -> None:
        self.forecaster = forecaster

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.forecaster = Forecaster.load(Path(context.artifacts[FORECASTER_ARTIFACT]))

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if self.forecaster is None:
            raise RuntimeError("SalesForecaster has no forecaster: load it through MLflow")
        params = params or {}
        h = int(params["h"]) if params.get("h") else None
        freq = str(params["freq"]) if params.get("freq") else None
        levels = tuple(float(v) for v in params.get("levels", DEFAULT_INTERVALS))
        if not {"unique_id", "ds", "y"} <= set(model_input.columns):
            raise ValueError("The forecaster takes the history to forecast from: columns unique_id, ds, y.")
        return self.forecaster.forecast(model_input, h, levels, freq=freq)


def model_signature(horizon: int, levels: Sequence[float] = DEFAULT_INTERVALS) -> ModelSignature:
    bounds = [f"lo-{_label(v)}" for v in sorted(levels, reverse=True)]
    bounds += [f"hi-{_label(v)}" for v in sorted(levels)]
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "unique_id"),
                ColSpec("datetime", "ds"),
                ColSpec("double", "y"),
                ColSpec("string", "category", required=False),
                ColSpec("string", "region", required=False),
            ]
        ),
        outputs=Schema(
            [ColSpec("string", "unique_id"), ColSpec("datetime", "ds"), ColSpec("double", HEADLINE)]
            + [ColSpec("double", MEAN), ColSpec("double", MEDIAN, required=False)]
            + [ColSpec("double", b) for b in bounds]
        ),
        params=ParamSchema(
            [
                ParamSpec("h", "long", horizon),
                ParamSpec("freq", "string", ""),
                ParamSpec("levels", "double", [float(v) for v in levels], shape=(-1,)),
            ]
        ),
    )
