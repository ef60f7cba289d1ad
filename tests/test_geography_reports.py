"""Issue 10, the analytics side: a superstore export whose customers ship to several states is sold where each
line went. Sales by region, country, state, city and zip, from queries (rollups and order lines) and from the
geographic reports, equal a pandas group-by of the file's own columns, to the cent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from superstore_files import write_superstore_csv

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.reports.context import run_report
from salespulse.dataset.geography import STATE_NAMES
from salespulse.dataset.importing import import_file
from salespulse.warehouse.store import connect

MAPPING_FILE = Path(__file__).resolve().parents[1] / "data" / "mappings" / "superstore.yaml"
LEVELS: dict[str, list[str]] = {
    "region": ["region"],
    "country": ["country"],
    "state": ["state"],
    "city": ["city"],  # the city dimension is "City, ST": namesakes in other states stay apart
    "zip": ["zip"],
}


def file_sales(frame: pd.DataFrame) -> pd.DataFrame:
    """The file's own columns as the semantic layer names them: state codes, five-digit zips."""
    state = frame["State"].map(STATE_NAMES)
    return pd.DataFrame(
        {
            "revenue": frame["Sales"].astype(float),
            "region": frame["Region"],
            "country": frame["Country"],
            "state": state,
            "city": frame["City"] + ", " + state,
            "zip": frame["Postal Code"].str.zfill(5),
        }
    )


def cents(rows: list[dict[str, Any]], key: str) -> pd.Series:
    return pd.Series({row[key]: row["revenue"] for row in rows}, dtype=float).sort_index().round(2)


def expected_cents(sales: pd.DataFrame, key: str) -> pd.Series:
    return sales.groupby(key)["revenue"].sum().sort_index().round(2)


@pytest.fixture(scope="module", params=["iso", "us"])
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp(f"geography_{request.param}")
    file = write_superstore_csv(
        directory / "orders.csv", 3_000, seed=5, dates=request.param, ship_elsewhere=0.3
    )
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)  # the file's own text
    assert frame.groupby("Customer ID")["State"].nunique().max() > 2  # the case the test is about
    warehouse = directory / "warehouse.duckdb"
    import_file(file, MAPPING_FILE, path=warehouse)  # the shipped mapping, unchanged
    with connect(warehouse) as con:
        yield AnalyticsEngine(con), file_sales(frame)


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("use_rollups", [True, False])
def test_sales_by_geography_equal_the_files_own_columns(imported: Any, level: str, use_rollups: bool) -> None:
    engine, sales = imported
    query = {"measures": ["revenue"], "dimensions": LEVELS[level], "limit": 50_000}

    answer = engine.run_query(query, use_rollups=use_rollups)

    if use_rollups:
        assert answer["source"] != "order_lines"  # the question is one a geographic rollup answers
    pd.testing.assert_series_equal(
        cents(answer["rows"], level), expected_cents(sales, level), check_names=False
    )


@pytest.mark.parametrize(
    ("report", "key"),
    [
        ("sales-by-region", "region"),
        ("sales-by-state", "state"),
        ("sales-by-zip", "zip"),
        ("sales-by-city", "city"),
    ],
)
def test_geographic_reports_equal_the_files_own_columns(imported: Any, report: str, key: str) -> None:
    engine, sales = imported

    rows = run_report(engine, report, {})["rows"]

    pd.testing.assert_series_equal(cents(rows, key), expected_cents(sales, key), check_names=False)


def test_region_contribution_is_by_ship_to_region(imported: Any) -> None:
    engine, sales = imported

    rows = run_report(engine, "kpi-region-contribution", {})["rows"]

    pd.testing.assert_series_equal(cents(rows, "region"), expected_cents(sales, "region"), check_names=False)
    shares = sales.groupby("region")["revenue"].sum() / sales["revenue"].sum() * 100
    assert {r["region"]: round(r["share_pct"], 6) for r in rows} == shares.round(6).to_dict()
