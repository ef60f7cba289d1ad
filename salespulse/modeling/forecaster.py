"""The sales forecaster as it is served: a fitted global LightGBM model of revenue series, with intervals.

:class:`Forecaster` is the fitted model and everything a forecast needs: what it forecasts (level, frequency,
default horizon), the feature pipeline (:class:`~salespulse.features.series.SeriesFeatures`, with the static
feature vocabulary), two LightGBM boosters, the interval calibration and the static features (category,
region) of the series it was trained on, for callers that send a history without them.

- The *mean* booster (Tweedie objective) estimates expected revenue. Its predictions are fed back as the
  history of the next step (a recursive forecast), and they are what adds up: the sum of the ``mean``
  column over products, days or regions is the expected total.
- The *point* booster (L1 objective) estimates the median, the ``forecast`` column. At product x region x
  day most periods sell nothing, and the value that minimises absolute error (WAPE, MASE) is far below the
  mean; the median is the honest single guess for one series and period, the mean the figure to sum.
- Intervals are split-conformal: the backtest's errors of the point forecast, divided by each series'
  recent average revenue (so one set of errors fits big and small series), give quantiles per step ahead;
  an interval is the point forecast plus those quantiles times the series' own recent average, cut at 0.

The serving path, :meth:`Forecaster.forecast`, takes the recent history of some series (``unique_id, ds,
y``; :meth:`Forecaster.load_history` reads it from the warehouse with the shared
:func:`~salespulse.features.series.load_series`) and returns, per series and future period, ``forecast``,
``mean`` and ``lo-<level>`` / ``hi-<level>`` for each interval level. It is NumPy and two boosters called
on one row per series and step, with no pandas per step, so one series over 28 days takes a few
milliseconds; history ingested a minute ago moves the forecast without retraining.

:class:`SalesForecaster` is the MLflow pyfunc face: logged as "models from code" with the folder
:meth:`Forecaster.save` writes (JSON and LightGBM text files, no pickled objects), so loading it needs
``salespulse`` and LightGBM, never the ``training`` package. A service gets the fast path with::

    forecaster = mlflow.pyfunc.load_model(uri).unwrap_python_model().forecaster
    forecaster.forecast_series(con, ["P-00012|West"], h=28, levels=(80, 95))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from salespulse.config import get_settings
from salespulse.features.series import (
    DEFAULT_FREQ,
    DEFAULT_LEVEL,
    Panel,
    SeriesFeatures,
    check_freq,
    last_period,
    load_series,
    pandas_freq,
    series_level,
    step,
)
from salespulse.warehouse.store import connect

# The name under which the logged model keeps the folder written by Forecaster.save.
FORECASTER_ARTIFACT = "forecaster"
POINT = "forecast"
MEAN = "mean"
DEFAULT_INTERVALS: tuple[float, ...] = (80.0, 95.0)
SCALE_FLOOR = 1.0  # currency units: keeps the scale of a series that has sold nothing lately positive

_SPEC_FILE = "forecaster.json"
_MEAN_FILE = "mean_booster.txt"
_POINT_FILE = "point_booster.txt"
_STATICS_FILE = "series_statics.csv"


def registered_model_name(level: str = DEFAULT_LEVEL, freq: str = DEFAULT_FREQ) -> str:
    """``sales-forecaster`` for product x region daily (the default), else e.g. ``sales-forecaster-region-w``.

    Each level and frequency has its own registry entry, so its champion is only ever challenged on its own
    backtest and the service's default model is never replaced by a model of another level.
    """
    base = get_settings().forecaster_model_name
    if (level, freq) == (DEFAULT_LEVEL, DEFAULT_FREQ):
        return base
    return f"{base}-{series_level(level).name}-{check_freq(freq)}".lower()


def default_horizon(freq: str) -> int:
    settings = get_settings()
    return settings.forecast_horizon_weeks if check_freq(freq) == "W" else settings.forecast_horizon_days


def error_scale(panel: Panel, window: int) -> np.ndarray:
    """Each series' recent average revenue per period (the last ``window`` periods, at least SCALE_FLOOR):
    the unit in which interval widths are calibrated."""
    recent = panel.y[:, -window:]
    observed = ~np.isnan(recent)
    average = np.where(observed, recent, 0.0).sum(axis=1) / np.maximum(observed.sum(axis=1), 1)
    return np.maximum(average, SCALE_FLOOR)


MIN_ERRORS_PER_STEP = 200  # fewer errors per step ahead (few series): one set of quantiles for all steps


@dataclass(frozen=True)
class IntervalCalibration:
    """Quantiles of scaled point-forecast errors ``(y - forecast) / scale`` from a backtest.

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
            table = [np.quantile(scaled_errors[steps == s], probabilities) for s in range(1, horizon + 1)]
        else:
            table = [np.quantile(scaled_errors, probabilities)] * horizon
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
        """``lo-<level>`` and ``hi-<level>`` arrays shaped like ``point`` (series x steps)."""
        h = point.shape[1]
        if h > len(self._table):
            raise ValueError(f"Intervals are calibrated for {len(self._table)} steps ahead, not {h}.")
        out = {}
        for level in sorted(levels):
            if not 0 < level < 100:
                raise ValueError(f"Interval levels are percentages between 0 and 100, not {level}.")
            tail = (100 - level) / 200
            # The point forecast is inside every interval, and wider levels nest around narrower ones.
            low = np.minimum(self._quantile(tail)[:h], 0.0)
            high = np.maximum(self._quantile(1 - tail)[:h], 0.0)
            out[f"lo-{_label(level)}"] = np.maximum(point + low * scale[:, None], 0.0)
            out[f"hi-{_label(level)}"] = point + high * scale[:, None]
        return out

    def _quantile(self, probability: float) -> np.ndarray:
        """The ``probability`` quantile of every step's errors, interpolated on the stored grid."""
        grid = np.asarray(self.probabilities)
        upper = int(np.clip(np.searchsorted(grid, probability), 1, len(grid) - 1))
        weight = np.clip((probability - grid[upper - 1]) / (grid[upper] - grid[upper - 1]), 0.0, 1.0)
        return self._table[:, upper - 1] * (1 - weight) + self._table[:, upper] * weight


def _label(level: float) -> str:
    return f"{level:g}"


@dataclass
class Forecaster:
    """A fitted forecaster; see the module docstring."""

    level: str
    freq: str
    horizon: int
    features: SeriesFeatures
    mean_booster: lgb.Booster
    point_booster: lgb.Booster
    calibration: IntervalCalibration | None = None
    series_statics: pd.DataFrame | None = None  # static features of the trained series, by unique_id
    trained_until: date | None = None  # the last day of the history it was fitted on
    threads: int = 1  # a forecast predicts small batches: one LightGBM thread, no thread start-up per call

    @property
    def history_periods(self) -> int:
        """Periods of history a forecast reads: the features' lookback and the interval scale window."""
        scale_window = self.calibration.scale_window if self.calibration else 0
        return max(self.features.lookback, scale_window)

    def load_history(
        self, con: duckdb.DuckDBPyConnection, series_ids: Sequence[str], end: date | None = None
    ) -> pd.DataFrame:
        """The last :attr:`history_periods` periods of ``series_ids`` in the warehouse (up to ``end``)."""
        freq = check_freq(self.freq)
        last = last_period(con, freq, end)
        if last is None:  # an empty warehouse
            return load_series(con, self.level, freq, series_ids=series_ids, with_discount=False)
        start = last - step(freq) * (self.history_periods - 1)
        last_day = last + step(freq) - timedelta(days=1)
        return load_series(
            con, self.level, freq, start=start, end=last_day, series_ids=series_ids, with_discount=False
        )

    def forecast_series(
        self,
        con: duckdb.DuckDBPyConnection,
        series_ids: Sequence[str],
        h: int | None = None,
        levels: Sequence[float] = DEFAULT_INTERVALS,
        end: date | None = None,
    ) -> pd.DataFrame:
        """Forecast ``series_ids`` from their latest history in the warehouse (up to ``end``).

        Raises KeyError naming the ids that have no sales in the warehouse."""
        history = self.load_history(con, series_ids, end)
        unknown = sorted(set(series_ids) - set(history["unique_id"]))
        if unknown:
            raise KeyError(f"No sales in the warehouse for series {unknown[:10]}")
        return self.forecast(history, h, levels)

    def forecast(
        self,
        history: pd.DataFrame,
        h: int | None = None,
        levels: Sequence[float] = DEFAULT_INTERVALS,
        discounts: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Forecast the ``h`` periods (default: the model's horizon) after the history.

        ``history``: unique_id, ds (period starts), y, plus the static features (category, region) of
        series the model has not seen; a series is zero from its first row to the last period of the
        frame, and only the last :attr:`history_periods` periods matter. ``discounts`` (unique_id, ds,
        discount) are planned promotions; other periods are forecast at regular prices. Returns unique_id,
        ds, forecast, mean and ``lo-<level>`` / ``hi-<level>`` per level, h rows per series in ds order.
        """
        h = self.horizon if h is None else h
        if h < 1:
            raise ValueError(f"The horizon must be at least one period, not {h}.")
        if levels and self.calibration is None:
            raise ValueError("This forecaster has no interval calibration; ask for levels=().")
        panel = self._with_known_statics(Panel.from_frame(history, self.freq).tail(self.history_periods))
        future = pd.date_range(panel.last_date, periods=h + 1, freq=pandas_freq(panel.freq))[1:]
        point, mean = self.predict_panel(panel, h, _planned(discounts, panel.ids, future))
        columns = {POINT: point, MEAN: mean}
        if levels:
            scale = error_scale(panel, self.calibration.scale_window)
            columns |= self.calibration.bounds(point, scale, levels)
        return pd.DataFrame(
            {"unique_id": np.repeat(panel.ids, h), "ds": np.tile(future, len(panel.ids))}
            | {name: values.reshape(-1) for name, values in _ordered(columns).items()}
        )

    def _with_known_statics(self, panel: Panel) -> Panel:
        """Static features the history leaves out, taken from the series the model was trained on."""
        wanted = list(self.features.statics)
        given = panel.statics.reindex(columns=wanted)
        if self.series_statics is None or not given.isna().to_numpy().any():
            return panel
        return replace(
            panel, statics=given.fillna(self.series_statics.reindex(index=panel.ids, columns=wanted))
        )

    def predict_panel(
        self, panel: Panel, h: int, discount: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point (median) and mean forecasts, series x steps, by recursion: each step's features come from
        the history and the mean forecasts of the steps before it (expected values, not medians, stand in
        for the unknown future: a median of zero would tell the next step that nothing sold)."""
        work = panel.extended(h, discount)
        start = len(panel.dates)
        context = self.features.context(work)
        point = np.empty((len(panel.ids), h))
        mean = np.empty((len(panel.ids), h))
        for k in range(h):
            x = self.features.matrix(work, np.array([start + k]), context)
            mean[:, k] = np.maximum(self.mean_booster.predict(x, num_threads=self.threads), 0.0)
            point[:, k] = np.maximum(self.point_booster.predict(x, num_threads=self.threads), 0.0)
            work.y[:, start + k] = mean[:, k]
        return point, mean

    def save(self, folder: Path) -> None:
        """JSON for the settings, the feature pipeline and the calibration; LightGBM text for the boosters."""
        folder.mkdir(parents=True, exist_ok=True)
        self.mean_booster.save_model(str(folder / _MEAN_FILE))
        self.point_booster.save_model(str(folder / _POINT_FILE))
        if self.series_statics is not None:
            self.series_statics.to_csv(folder / _STATICS_FILE, index_label="unique_id")
        spec = {
            "level": self.level,
            "freq": self.freq,
            "horizon": self.horizon,
            "features": asdict(self.features),
            "calibration": asdict(self.calibration) if self.calibration else None,
            "trained_until": self.trained_until.isoformat() if self.trained_until else None,
        }
        (folder / _SPEC_FILE).write_text(json.dumps(spec, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Forecaster:
        spec = json.loads((folder / _SPEC_FILE).read_text())
        calibration, trained_until = spec["calibration"], spec["trained_until"]
        statics = folder / _STATICS_FILE
        return cls(
            level=spec["level"],
            freq=spec["freq"],
            horizon=spec["horizon"],
            features=SeriesFeatures.from_dict(spec["features"]),
            mean_booster=lgb.Booster(model_file=str(folder / _MEAN_FILE)),
            point_booster=lgb.Booster(model_file=str(folder / _POINT_FILE)),
            calibration=IntervalCalibration.from_dict(calibration) if calibration else None,
            series_statics=pd.read_csv(statics, index_col="unique_id", dtype=str)
            if statics.exists()
            else None,
            trained_until=date.fromisoformat(trained_until) if trained_until else None,
        )


def _planned(discounts: pd.DataFrame | None, ids: np.ndarray, future: pd.DatetimeIndex) -> np.ndarray | None:
    """Planned discounts as a series x steps array (0 where nothing is planned)."""
    if discounts is None or discounts.empty:
        return None
    table = discounts.pivot_table(index="unique_id", columns="ds", values="discount", aggfunc="mean")
    table.columns = pd.DatetimeIndex(table.columns)
    return table.reindex(index=ids, columns=future).fillna(0.0).to_numpy(dtype=np.float64)


def _ordered(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """forecast, mean, then the lower bounds widest first and the upper bounds narrowest first."""
    lows = sorted((c for c in columns if c.startswith("lo-")), key=lambda c: -float(c[3:]))
    highs = sorted((c for c in columns if c.startswith("hi-")), key=lambda c: float(c[3:]))
    return {c: columns[c] for c in (POINT, MEAN, *lows, *highs)}


# ------------------------------------------------------------------------------------------------ pyfunc


class SalesForecaster(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc model of a :class:`Forecaster`.

    ``model_input`` is a DataFrame in one of two forms:

    - series ids, column ``unique_id`` only: their history is read from the configured warehouse
      (``SALESPULSE_WAREHOUSE_PATH``), so the forecast starts after the latest sales;
    - history, columns ``unique_id, ds, y`` (and optionally the static features): forecast after it.

    ``params``: ``h`` (periods ahead, default the model's horizon) and ``levels`` (interval levels in %,
    default 80 and 95). Output: unique_id, ds, forecast, mean, lo-<level>, hi-<level>.
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
        levels = tuple(float(v) for v in params.get("levels", DEFAULT_INTERVALS))
        if {"ds", "y"} <= set(model_input.columns) and model_input["y"].notna().any():
            return self.forecaster.forecast(model_input, h, levels)
        series_ids = list(dict.fromkeys(model_input["unique_id"].astype(str)))
        with connect(read_only=True) as con:
            return self.forecaster.forecast_series(con, series_ids, h, levels)


def model_signature(horizon: int, levels: Sequence[float] = DEFAULT_INTERVALS) -> ModelSignature:
    """Declared rather than inferred: history columns are optional (ids alone read the warehouse)."""
    bounds = [f"lo-{_label(v)}" for v in sorted(levels, reverse=True)]
    bounds += [f"hi-{_label(v)}" for v in sorted(levels)]
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "unique_id"),
                ColSpec("datetime", "ds", required=False),
                ColSpec("double", "y", required=False),
                ColSpec("string", "category", required=False),
                ColSpec("string", "region", required=False),
            ]
        ),
        outputs=Schema(
            [ColSpec("string", "unique_id"), ColSpec("datetime", "ds"), ColSpec("double", POINT)]
            + [ColSpec("double", MEAN)]
            + [ColSpec("double", b) for b in bounds]
        ),
        params=ParamSchema(
            [
                ParamSpec("h", "long", horizon),
                ParamSpec("levels", "double", [float(v) for v in levels], shape=(-1,)),
            ]
        ),
    )
