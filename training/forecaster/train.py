"""Stage 2: fit the forecaster's two LightGBM boosters on the rows of a panel's recent history.

Every row is one series in one period, with the features of that period computed from the history before
it (the same :meth:`SeriesFeatures.matrix` a forecast uses). Only recent periods become rows: a year of
days (two of weeks), stretched to all the history when there are few series (``min_train_rows``). Older
rows add fitting time more than accuracy when there are many series: the features carry each series' level
and the calendar repeats. ``min_data_in_leaf`` shrinks with the rows, so a level of a handful of series
(total, region) still gets trees that split.

Daily models first learn the lift of each retail event (:class:`~salespulse.features.calendar.EventEffects`)
from the panel and fit the boosters on the history with those lifts divided out; the forecast multiplies
them back in.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Protocol

import lightgbm as lgb
import numpy as np

from salespulse.features.calendar import EventEffects, RetailCalendar
from salespulse.features.series import Panel, SeriesFeatures, series_level, step
from salespulse.modeling.forecaster import Forecaster

# The mean booster's objective: revenue is zero on most days and heavy-tailed otherwise, which a Tweedie
# distribution describes. The point booster minimises absolute error, so it estimates the median.
MEAN_OBJECTIVE = "tweedie"
POINT_OBJECTIVE = "l1"


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. ``features`` None means the default pipeline of the frequency."""

    num_boost_round: int = 100
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_data_in_leaf: int = 100  # at most 1% of the rows
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    train_periods: dict[str, int] = field(default_factory=lambda: {"D": 365, "W": 104})
    min_train_rows: int = 200_000
    features: SeriesFeatures | None = None
    threads: int = 2  # boosters fitted at once, and statsforecast worker processes
    seed: int = 42

    def periods(self, panel: Panel) -> int:
        return max(self.train_periods[panel.freq], math.ceil(self.min_train_rows / max(len(panel.ids), 1)))

    def booster_params(self, objective: str, rows: int) -> dict[str, object]:
        return {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": max(5, min(self.min_data_in_leaf, rows // 100)),
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "num_threads": 1,  # see fit()
            "seed": self.seed,
            "deterministic": True,
            "verbose": -1,
        }

    def as_params(self) -> dict[str, object]:
        """Flat parameters for the MLflow run."""
        features = self.features
        return {
            "num_boost_round": self.num_boost_round,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "train_periods": self.train_periods,
            "min_train_rows": self.min_train_rows,
            "features": "default" if features is None else f"lags={features.lags} windows={features.windows}",
            "seed": self.seed,
        }


def fit(
    panel: Panel,
    level: str,
    horizon: int,
    config: TrainConfig,
    calendar: RetailCalendar | None = None,
    product_categories: dict[str, str] | None = None,
    boosters: BoosterTrainer | None = None,
) -> Forecaster:
    """Fit a forecaster on ``panel`` (the history up to its last period). ``boosters`` fits the two
    boosters on the prepared panel (default :func:`train_boosters`, in this process; see
    :mod:`training.forecaster.distributed` for a Dask cluster)."""
    features = (config.features or SeriesFeatures.default(panel.freq, panel.statics.columns)).fitted(panel)
    events = None
    if panel.freq == "D":
        events = EventEffects.estimate(panel.y, panel.dates, calendar or RetailCalendar())
        panel = replace(panel, y=Forecaster.adjusted(panel.y, events.multiplier(panel.dates)))
    fitted = (boosters or train_boosters)(panel, features, config)
    return Forecaster(
        level=level,
        freq=panel.freq,
        horizon=horizon,
        features=features,
        mean_booster=fitted[MEAN_OBJECTIVE],
        point_booster=fitted[POINT_OBJECTIVE],
        events=events,
        series_statics=panel.statics.astype(str) if len(panel.statics.columns) else None,
        product_categories=dict(product_categories or {}),
        typical_discount=typical_discount(panel, level),
        trained_until=_last_day(panel),
    )


class BoosterTrainer(Protocol):
    """Fits the booster of each of OBJECTIVES on a prepared panel (event lifts divided out, features
    fitted) somewhere else than this process, and says where for the MLflow run."""

    def __call__(
        self, panel: Panel, features: SeriesFeatures, config: TrainConfig
    ) -> dict[str, lgb.Booster]: ...

    def run_params(self) -> dict[str, object]: ...

    def run_tags(self) -> dict[str, str]: ...


OBJECTIVES = (MEAN_OBJECTIVE, POINT_OBJECTIVE)


def train_boosters(panel: Panel, features: SeriesFeatures, config: TrainConfig) -> dict[str, lgb.Booster]:
    """The boosters of OBJECTIVES, fitted in this process on the panel's :func:`training_rows`."""
    x, y, weight = training_rows(panel, features, config.periods(panel))
    # The two boosters train side by side, one thread each: ctypes releases the GIL while LightGBM works.
    # On two cores this beats two threads per booster one after the other, because LightGBM's OpenMP
    # threads meet at a barrier many times per tree and, when another process holds a core, the waiting
    # thread spins (measured on the sample data: 5 s single-threaded against 14 s with two threads).
    with ThreadPoolExecutor(max_workers=max(1, min(config.threads, len(OBJECTIVES)))) as pool:
        futures = {o: pool.submit(_train_booster, x, y, weight, features, config, o) for o in OBJECTIVES}
        return {o: future.result() for o, future in futures.items()}


TYPICAL_DISCOUNT_PERIODS = {"D": 91, "W": 13}


def typical_discount(panel: Panel, level: str) -> dict[str, float]:
    """Each aggregate series' average promotion depth over the last quarter (the days it existed).

    A product's own history mixes promotions with trade and volume discounts of single orders, and a product
    is on promotion only now and then: product series assume regular prices unless a promotion is planned
    (measured: assuming the quarter's average made the product-level backtest 15 points more biased)."""
    if "product_id" in series_level(level).keys:
        return {}
    recent = panel.tail(TYPICAL_DISCOUNT_PERIODS[panel.freq])
    alive = ~np.isnan(recent.y)
    depth = np.where(alive, recent.discount, 0.0).sum(axis=1) / np.maximum(alive.sum(axis=1), 1)
    return {str(i): round(float(d), 5) for i, d in zip(panel.ids, depth, strict=True)}


def training_rows(
    panel: Panel, features: SeriesFeatures, periods: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, targets and weights of the last ``periods`` periods of every series that had started
    before them. With level normalisation the target is revenue in units of the row's scale, weighted by
    the scale: the loss still counts a dollar of error alike in a big series and a small one (as WAPE
    does)."""
    positions = np.arange(max(len(panel.dates) - periods, 1), len(panel.dates))
    x, scale = features.matrix_and_scale(panel, positions)
    y = panel.y[:, positions].reshape(-1)
    # A row needs a target and at least one period of history before it.
    has_history = positions[None, :] > panel.first_positions()[:, None]
    keep = has_history.reshape(-1) & ~np.isnan(y)
    return x[keep], y[keep] / scale[keep], scale[keep]


def _train_booster(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    features: SeriesFeatures,
    config: TrainConfig,
    objective: str,
) -> lgb.Booster:
    # Each booster bins its own dataset: boosters training at once must not share a LightGBM dataset.
    dataset = lgb.Dataset(
        x, y, weight=weight, feature_name=features.names, categorical_feature=features.categorical
    )
    params = config.booster_params(objective, len(y))
    return lgb.train(params, dataset, num_boost_round=config.num_boost_round)


def _last_day(panel: Panel) -> date:
    """The last day of the panel's last period."""
    return (panel.last_date + step(panel.freq) - timedelta(days=1)).date()
