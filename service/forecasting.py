"""Coherent forecasts for /forecast: the aggregate levels (total, region, category, category x region)
reconciled so that they add up (salespulse.modeling.hierarchy), with each level's own intervals around them.

A reconciled forecast needs every aggregate level's base forecast of every series (20 on the sample: one
total, four regions, three categories, twelve category x region series). They depend only on the history and
the request's shape, so they are kept per warehouse version: the first request after new sales computes them
(tens of milliseconds), the next ones slice them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from threading import Event, Lock

import duckdb
import numpy as np
import pandas as pd

from salespulse.features.series import Panel, RecentHistory
from salespulse.modeling.forecaster import Forecaster, PlannedPromotion
from salespulse.modeling.hierarchy import AGGREGATE_LEVELS, BOTTOM_LEVEL, Hierarchy

CACHED_REQUESTS = 64

Reconciled = dict[str, tuple[np.ndarray, np.ndarray]]  # level -> median, mean (series in hierarchy order)


class CoherentForecasts:
    def __init__(self, history: RecentHistory, method: str) -> None:
        self.history = history
        self.method = method
        self._cache: OrderedDict[tuple[object, ...], tuple[Hierarchy, Reconciled]] = OrderedDict()
        self._lock = Lock()

    def applies_to(self, level: str) -> bool:
        return self.method != "none" and level in AGGREGATE_LEVELS

    def forecast(
        self,
        con: duckdb.DuckDBPyConnection,
        forecaster_of: Callable[[str], Forecaster],
        level: str,
        series: Sequence[str],
        horizon: int,
        intervals: Sequence[float],
        freq: str,
        promotions: Sequence[PlannedPromotion],
    ) -> pd.DataFrame:
        """The level's forecast of ``series`` (as Forecaster.forecast_panel), reconciled with the others.

        KeyError names series without sales; a hierarchy the histories don't share (a level read with
        another set of series) falls back to the level's own model."""
        panel = self.history.panel(con, level, series)
        own = forecaster_of(level)
        days = own.periods_needed(panel, freq, horizon)
        try:
            hierarchy, reconciled = self._reconciled(con, forecaster_of, days, promotions)
        except KeyError:
            return own.forecast_panel(panel, horizon, tuple(intervals), freq=freq, promotions=promotions)
        rows = pd.Index(hierarchy.ids[level]).get_indexer(panel.ids)
        median, mean = reconciled[level]
        return own.forecast_panel(
            panel,
            horizon,
            tuple(intervals),
            freq=freq,
            promotions=promotions,
            reconciled=(median[rows], mean[rows]),
        )

    def _reconciled(
        self,
        con: duckdb.DuckDBPyConnection,
        forecaster_of: Callable[[str], Forecaster],
        days: int,
        promotions: Sequence[PlannedPromotion],
    ) -> tuple[Hierarchy, Reconciled]:
        models = {level: forecaster_of(level) for level in AGGREGATE_LEVELS}
        key = (
            self.history.version(con),
            days,
            tuple(promotions),
            tuple(id(models[level]) for level in AGGREGATE_LEVELS),  # a hot swap is another model
        )
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        hierarchy = Hierarchy.from_bottom(self.history.series_ids(con, BOTTOM_LEVEL))
        base = {}
        for level, model in models.items():
            panel = self.history.panel(con, level, hierarchy.ids[level])
            base[level] = model.model_forecast(panel, days, promotions=promotions)
        means = hierarchy.reconcile({level: mean for level, (_, mean) in base.items()}, self.method)
        reconciled = {
            # The median moves with the mean (its own model's ratio): it stays the median's share of it.
            level: (_scaled(median, own_mean, means[level]), means[level])
            for level, (median, own_mean) in base.items()
        }
        with self._lock:
            self._cache[key] = (hierarchy, reconciled)
            while len(self._cache) > CACHED_REQUESTS:
                self._cache.popitem(last=False)
        return hierarchy, reconciled


def _scaled(median: np.ndarray, own_mean: np.ndarray, mean: np.ndarray) -> np.ndarray:
    ratio = np.divide(mean, own_mean, out=np.ones_like(mean), where=own_mean > 0)
    return median * ratio


# ------------------------------------------------------------------------------------ concurrent requests


@dataclass
class _Request:
    panel: Panel
    done: Event = field(default_factory=Event)
    lead: bool = False
    result: pd.DataFrame | None = None
    error: BaseException | None = None


class ForecastBatcher:
    """Concurrent /forecast requests of one model and shape are forecast together, as one panel.

    A forecast's cost is in its step-by-step recursion, nearly the same for one series or fifty (one product x
    region series x 28 days: ~12 ms; the boosters themselves need ~2 ms), and one worker's threads share one
    GIL. So requests that arrive while a forecast runs wait for it to end and then go together, like the
    ingest's group commit: a lone request never waits, and under load one recursion answers many.
    """

    def __init__(self, max_series: int = 500) -> None:
        self.max_series = max_series
        self._lock = Lock()
        self._pending: dict[tuple[object, ...], list[_Request]] = {}
        self._running: set[tuple[object, ...]] = set()

    def forecast_panel(
        self, model: Forecaster, panel: Panel, horizon: int, intervals: Sequence[float], freq: str
    ) -> pd.DataFrame:
        """``model.forecast_panel`` of ``panel`` at regular prices, batched with concurrent requests for the
        same model, horizon, intervals and frequency over the same history dates."""
        levels = tuple(intervals)
        key = (id(model), freq, horizon, levels, panel.dates[0], len(panel.dates))
        return self.forecast(key, panel, lambda p: model.forecast_panel(p, horizon, levels, freq=freq))

    def forecast(
        self, key: tuple[object, ...], panel: Panel, run: Callable[[Panel], pd.DataFrame]
    ) -> pd.DataFrame:
        """``run(panel)`` for this request, batched with the others of the same ``key`` (the model and every
        request parameter, and the history's dates: their panels must stack)."""
        request = _Request(panel)
        with self._lock:
            self._pending.setdefault(key, []).append(request)
            request.lead = key not in self._running
            if request.lead:
                self._running.add(key)
        if not request.lead:
            request.done.wait()
        if request.lead and request.result is None and request.error is None:
            self._run_batch(key, run)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _run_batch(self, key: tuple[object, ...], run: Callable[[Panel], pd.DataFrame]) -> None:
        with self._lock:
            waiting = self._pending.pop(key, [])
            batch, rest, series = [], [], 0
            for request in waiting:  # the first ones up to max_series; the others wait for the next
                if batch and series + len(request.panel.ids) > self.max_series:
                    rest.append(request)
                else:
                    batch.append(request)
                    series += len(request.panel.ids)
            if rest:
                self._pending[key] = rest
        try:
            frame = run(_stacked([r.panel for r in batch]))
            parts = dict(tuple(frame.groupby("unique_id", sort=False)))
            for request in batch:
                request.result = pd.concat([parts[i] for i in dict.fromkeys(request.panel.ids)])
        except Exception as error:  # every request of the batch gets the answer its own call would have
            for request in batch:
                request.error = error
        with self._lock:
            following = self._pending.get(key)
            if following:
                following[0].lead = True  # it runs the next batch when woken
                following[0].done.set()
            else:
                self._running.discard(key)
        for request in batch:
            request.done.set()


def _stacked(panels: list[Panel]) -> Panel:
    """One panel of the series of ``panels`` (the same dates), each series once."""
    if len(panels) == 1:
        return panels[0]
    seen: dict[str, tuple[int, int]] = {}
    for p, panel in enumerate(panels):
        for row, series in enumerate(panel.ids):
            seen.setdefault(series, (p, row))
    rows = list(seen.values())
    return replace(
        panels[0],
        ids=np.array([panels[p].ids[r] for p, r in rows], dtype=object),
        y=np.vstack([panels[p].y[r] for p, r in rows]),
        discount=np.vstack([panels[p].discount[r] for p, r in rows]),
        statics=pd.concat([panels[p].statics.iloc[[r]] for p, r in rows]),
    )
