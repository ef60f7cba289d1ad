"""Coherent forecasts across the aggregate planning levels: total -> region and category -> category x region.

Each level has its own champion, the method that backtests best at that level, so their forecasts do not
add up on their own (once: 28-day totals of $24.71M summed over categories, $24.11M over regions and
$22.53M for the total), and planners who add categories up get another figure than the total. Reconciliation
(Nixtla's hierarchicalforecast) maps every level's base forecast onto numbers that add up:

- ``mint_wls_struct``: MinTrace with structural weights, the projection that moves each base forecast least,
  weighting each series by how many bottom series it sums (no residuals needed, so it runs per request);
- ``mint_ols``: MinTrace with equal weights;
- ``bottom_up``: the category x region forecasts, summed.

``salespulse train all`` backtests the three on the levels' own backtest windows (see
training/forecaster/hierarchy.py) and logs which wins; the service reconciles with the configured one
(``SALESPULSE_FORECAST_RECONCILIATION``). Product levels are left out: a product's series is not a part of a
category x region series in these models' data (product x region is, but thousands of sparse series would
dominate the projection), so they keep their own forecasts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from hierarchicalforecast.methods import BottomUp, MinTrace

from salespulse.features.series import ID_SEPARATOR, TOTAL_ID

Reconciliation = Literal["mint_wls_struct", "mint_ols", "bottom_up", "none"]
RECONCILIATIONS: tuple[str, ...] = get_args(Reconciliation)
AGGREGATE_LEVELS: tuple[str, ...] = ("total", "region", "category", "category_region")
BOTTOM_LEVEL = "category_region"


@dataclass(frozen=True)
class Hierarchy:
    """The aggregate levels' series and how they sum: ``summing[i, j]`` is 1 when bottom series ``j``
    (category x region) is part of series ``i`` (rows: the total, the regions, the categories, the bottom)."""

    ids: dict[str, tuple[str, ...]]
    summing: np.ndarray

    @classmethod
    def from_bottom(cls, bottom_ids: Sequence[str]) -> Hierarchy:
        """The hierarchy of the category x region series ``bottom_ids`` ('Technology|West', ...)."""
        bottom = tuple(sorted(bottom_ids))
        parts = [b.split(ID_SEPARATOR, 1) for b in bottom]
        categories = tuple(sorted({c for c, _ in parts}))
        regions = tuple(sorted({r for _, r in parts}))
        rows = [np.ones(len(bottom))]
        rows += [np.array([r == region for _, r in parts], dtype=float) for region in regions]
        rows += [np.array([c == category for c, _ in parts], dtype=float) for category in categories]
        rows += list(np.eye(len(bottom)))
        ids = {"total": (TOTAL_ID,), "region": regions, "category": categories, BOTTOM_LEVEL: bottom}
        return cls(ids=ids, summing=np.vstack(rows))

    @property
    def slices(self) -> dict[str, slice]:
        """Each level's rows in the summing matrix."""
        out, start = {}, 0
        for level in AGGREGATE_LEVELS:
            out[level] = slice(start, start + len(self.ids[level]))
            start += len(self.ids[level])
        return out

    def stack(self, by_level: Mapping[str, np.ndarray]) -> np.ndarray:
        """The levels' (series x periods) arrays, in the summing matrix's row order."""
        return np.vstack([by_level[level] for level in AGGREGATE_LEVELS])

    def unstack(self, stacked: np.ndarray) -> dict[str, np.ndarray]:
        return {level: stacked[rows] for level, rows in self.slices.items()}

    def reconcile(self, base: Mapping[str, np.ndarray], method: str) -> dict[str, np.ndarray]:
        """Every level's forecasts (series in ``ids`` order x periods), made to add up by ``method``."""
        if method not in RECONCILIATIONS:
            raise ValueError(f"Unknown reconciliation {method!r}; one of {', '.join(RECONCILIATIONS)}.")
        if method == "none":
            return {level: np.asarray(base[level], dtype=float) for level in AGGREGATE_LEVELS}
        stacked = self.stack(base)
        reconciled = reconcile_stacked(self.summing, stacked, method)
        return self.unstack(reconciled)


def reconcile_stacked(summing: np.ndarray, stacked: np.ndarray, method: str) -> np.ndarray:
    """hierarchicalforecast's reconciliation of base forecasts (rows of ``summing``'s order x periods)."""
    bottom_rows = np.arange(summing.shape[0] - summing.shape[1], summing.shape[0])
    if method == "bottom_up":
        result = BottomUp().fit_predict(S=summing, y_hat=stacked)
    else:
        reconciler = MinTrace(method=method.removeprefix("mint_"))
        result = reconciler.fit_predict(S=summing, y_hat=stacked)
    reconciled = np.asarray(result["mean"], dtype=float)
    if (reconciled < 0).any():
        # A projection can push a small series below zero; revenue never is. The bottom series clipped
        # and summed again stay coherent.
        bottom = np.maximum(reconciled[bottom_rows], 0.0)
        reconciled = summing @ bottom
    return reconciled
