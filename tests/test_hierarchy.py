"""Reconciliation of the aggregate planning levels: the reconciled forecasts add up, and the training stage
backtests each method on the levels' own windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from salespulse.modeling.hierarchy import AGGREGATE_LEVELS, RECONCILIATIONS, Hierarchy
from training.forecaster.hierarchy import backtest_table, best_method

CATEGORIES = ("Furniture", "Office Supplies", "Technology")
REGIONS = ("Central", "East", "South", "West")
BOTTOM = [f"{c}|{r}" for c in CATEGORIES for r in REGIONS]


def test_the_summing_matrix_says_which_bottom_series_each_series_holds():
    hierarchy = Hierarchy.from_bottom(BOTTOM)

    assert hierarchy.ids["total"] == ("total",)
    assert hierarchy.ids["region"] == REGIONS and hierarchy.ids["category"] == CATEGORIES
    rows = hierarchy.slices
    west = hierarchy.summing[rows["region"]][REGIONS.index("West")]
    assert [b for b, held in zip(hierarchy.ids["category_region"], west, strict=True) if held] == [
        f"{c}|West" for c in CATEGORIES
    ]
    assert hierarchy.summing[rows["total"]].sum() == len(BOTTOM)


def random_base(seed: int = 0, periods: int = 28) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "total": rng.uniform(900, 1100, (1, periods)),
        "region": rng.uniform(200, 300, (4, periods)),
        "category": rng.uniform(300, 350, (3, periods)),
        "category_region": rng.uniform(70, 90, (12, periods)),
    }


@pytest.mark.parametrize("method", [m for m in RECONCILIATIONS if m != "none"])
def test_reconciled_levels_add_up_every_period(method: str):
    hierarchy = Hierarchy.from_bottom(BOTTOM)
    base = random_base()
    # The base forecasts disagree: categories and regions don't sum to the total.
    assert not np.allclose(base["category"].sum(axis=0), base["total"][0])

    reconciled = hierarchy.reconcile(base, method)

    total = reconciled["total"][0]
    np.testing.assert_allclose(reconciled["category"].sum(axis=0), total, rtol=1e-9)
    np.testing.assert_allclose(reconciled["region"].sum(axis=0), total, rtol=1e-9)
    np.testing.assert_allclose(reconciled["category_region"].sum(axis=0), total, rtol=1e-9)
    if method == "bottom_up":
        np.testing.assert_allclose(total, base["category_region"].sum(axis=0))
    else:  # MinTrace weighs every level's forecast, not the bottom's alone
        assert not np.allclose(total, base["category_region"].sum(axis=0))


def windows_of(actual: dict[str, np.ndarray], forecast: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """Backtest windows as the pipeline keeps them (unique_id, cutoff, ds, y, f): two cutoffs of 14 days."""
    hierarchy = Hierarchy.from_bottom(BOTTOM)
    days = pd.date_range("2026-01-01", periods=actual["total"].shape[1])
    cutoffs = np.where(np.arange(len(days)) < len(days) // 2, days[0], days[len(days) // 2])
    frames = {}
    for level in AGGREGATE_LEVELS:
        ids = hierarchy.ids[level]
        frames[level] = pd.DataFrame(
            {
                "unique_id": np.repeat(ids, len(days)),
                "cutoff": np.tile(cutoffs, len(ids)),
                "ds": np.tile(days, len(ids)),
                "y": actual[level].reshape(-1),
                "f": forecast[level].reshape(-1),
            }
        )
    return frames


def test_the_backtest_prefers_bottom_up_when_only_the_bottom_forecasts_are_right():
    rng = np.random.default_rng(3)
    bottom = rng.uniform(50, 100, (12, 28))
    hierarchy = Hierarchy.from_bottom(BOTTOM)
    actual = hierarchy.unstack(hierarchy.summing @ bottom)
    noisy = {
        level: values * rng.uniform(0.6, 1.4, values.shape) if level != "category_region" else values
        for level, values in actual.items()
    }

    table = backtest_table(windows_of(actual, noisy))

    assert set(table["method"]) == set(RECONCILIATIONS) and set(table["level"]) == set(AGGREGATE_LEVELS)
    assert best_method(table) == "bottom_up"
    bottom_up = table[table["method"] == "bottom_up"].set_index("level")["wape"]
    assert bottom_up.max() < 1e-9  # the bottom sums are the actual figures
    unreconciled = table[table["method"] == "none"].set_index("level")["wape"]
    assert unreconciled["total"] > 0.05
