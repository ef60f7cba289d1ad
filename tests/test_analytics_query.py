"""The query layer: validation, safe SQL, answers against pandas, comparisons, goals, and rollups = base."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analytics_support import (
    Sale,
    Tables,
    assert_rows,
    build_tiny_warehouse,
    build_warehouse,
    copy_warehouse,
    load_tables,
    open_engine,
    period_start,
)
from pydantic import ValidationError

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.errors import DataUnavailable, QueryError
from salespulse.analytics.query import Query
from salespulse.analytics.reports import run_report


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("query"))


@pytest.fixture(scope="module")
def engine(warehouse: Path) -> Iterator[AnalyticsEngine]:
    engine = open_engine(warehouse)
    yield engine
    engine._con.close()


@pytest.fixture(scope="module")
def tables(engine: AnalyticsEngine) -> Tables:
    return load_tables(engine)


def run(engine: AnalyticsEngine, **spec: object) -> list[dict]:
    return engine.run_query(Query.model_validate({"limit": 50_000, **spec}))["rows"]


# --- validation ---


def test_unknown_names_are_refused_with_the_valid_ones_listed() -> None:
    with pytest.raises(ValidationError) as refused:
        Query.model_validate({"measures": ["revenue", "turnover"], "dimensions": ["planet"]})
    errors = {tuple(e["loc"]): e["msg"] for e in refused.value.errors()}
    assert "unknown measure 'turnover'" in errors[("measures", 1)]
    assert "average_order_value" in errors[("measures", 1)] and "margin_pct" in errors[("measures", 1)]
    assert "unknown dimension 'planet'" in errors[("dimensions", 0)] and "zip" in errors[("dimensions", 0)]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"time_dimension": {"grain": "fortnight"}}, ("time_dimension", "grain"), "'day', 'week'"),
        (
            {"time_dimension": {"date_range": ["2025-03-01", "2025-01-31"]}},
            ("time_dimension", "date_range"),
            "inverted",
        ),
        (
            {"filters": [{"member": "region", "operator": "like", "values": ["W%"]}]},
            ("filters", 0, "operator"),
            "'equals'",
        ),
        (
            {"filters": [{"member": "region", "operator": "equals", "values": ["a", "b"]}]},
            ("filters", 0),
            "exactly 1",
        ),
        (
            {"filters": [{"member": "revenue", "operator": "range", "values": ["a", None]}]},
            ("filters", 0),
            "is a number",
        ),
        ({"order": [{"member": "units"}]}, (), "cannot order by 'units'"),
        ({"compare": "previous_period"}, (), "compare needs"),
        ({"limit": 10**9}, ("limit",), "less than or equal"),
    ],
)
def test_bad_queries_name_the_field(spec: dict, field: tuple, words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Query.model_validate({"measures": ["revenue"], **spec})
    error = refused.value.errors()[0]
    assert tuple(error["loc"]) == field
    assert words in error["msg"]


def test_filter_values_only_reach_sql_as_parameters(engine: AnalyticsEngine) -> None:
    hostile = "West'; DROP TABLE order_lines; --"
    query = Query.model_validate(
        {
            "measures": ["revenue"],
            "dimensions": ["region"],
            "filters": [{"member": "region", "operator": "in", "values": [hostile, "East"]}],
        }
    )
    for use_rollups in (True, False):
        compiled = engine.compile(query, use_rollups=use_rollups)
        assert hostile not in compiled.sql and "DROP" not in compiled.sql
        assert hostile in compiled.params
    before = engine.fetch("SELECT count(*) AS n, sum(revenue) AS r FROM order_lines")
    answer = engine.run_query(query)  # the hostile value is a region the data lacks: a note names it
    assert answer["notes"][0].startswith(f"filters[0].values: no region {hostile!r} in the data")
    assert engine.fetch("SELECT count(*) AS n, sum(revenue) AS r FROM order_lines") == before


# --- answers ---


def test_measures_by_category_and_month(engine: AnalyticsEngine, tables: Tables) -> None:
    lines = tables.lines.assign(period=period_start(tables.lines["ordered_at"], "month"))
    expected = (
        lines.groupby(["period", "category"])
        .agg(
            revenue=("revenue", "sum"),
            units=("quantity", "sum"),
            orders=("order_id", "nunique"),
            customers=("customer_id", "nunique"),
            profit=("profit", "sum"),
            revenue_sum=("revenue", "sum"),
        )
        .reset_index()
    )
    expected["average_order_value"] = expected["revenue"] / expected["orders"]
    expected["margin_pct"] = 100 * expected["profit"] / expected["revenue_sum"]
    measures = ["revenue", "units", "orders", "customers", "profit", "average_order_value", "margin_pct"]
    rows = run(engine, measures=measures, dimensions=["category"], time_dimension={"grain": "month"})
    assert_rows(rows, expected, keys=["period", "category"], columns=measures)


@pytest.mark.parametrize("grain", ["day", "week", "quarter", "year"])
def test_time_grains(engine: AnalyticsEngine, tables: Tables, grain: str) -> None:
    lines = tables.lines.assign(period=period_start(tables.lines["ordered_at"], grain))
    expected = lines.groupby("period").agg(revenue=("revenue", "sum"), lines=("line", "size")).reset_index()
    rows = run(engine, measures=["revenue", "lines"], time_dimension={"grain": grain})
    assert_rows(rows, expected, keys=["period"], columns=["revenue", "lines"])


def test_date_range_is_inclusive(engine: AnalyticsEngine, tables: Tables) -> None:
    lines = tables.lines
    inside = lines[(lines["day"] >= "2024-02-10") & (lines["day"] <= "2024-03-05")]
    expected = inside.groupby("state").agg(revenue=("revenue", "sum"), orders=("order_id", "nunique"))
    rows = run(
        engine,
        measures=["revenue", "orders"],
        dimensions=["state"],
        time_dimension={"date_range": ["2024-02-10", "2024-03-05"]},
    )
    assert_rows(rows, expected.reset_index(), keys=["state"], columns=["revenue", "orders"])


def test_filter_operators(engine: AnalyticsEngine, tables: Tables) -> None:
    lines = tables.lines
    cases = [
        ({"member": "region", "operator": "equals", "values": ["West"]}, lines["region"] == "West"),
        (
            {"member": "category", "operator": "in", "values": ["Furniture", "Technology"]},
            lines["category"].isin(["Furniture", "Technology"]),
        ),
        (
            {"member": "state", "operator": "not_in", "values": ["CA", "TX"]},
            ~lines["state"].isin(["CA", "TX"]),
        ),
        (
            {"member": "zip", "operator": "range", "values": ["30000", "59999"]},
            (lines["zip"] >= "30000") & (lines["zip"] <= "59999"),
        ),
        ({"member": "distributor", "operator": "set"}, lines["distributor_id"].notna()),
        ({"member": "distributor", "operator": "not_set"}, lines["distributor_id"].isna()),
        (
            {"member": "day_of_week", "operator": "in", "values": [6, 7]},
            lines["ordered_at"].dt.dayofweek >= 5,
        ),
    ]
    for spec, mask in cases:
        rows = run(engine, measures=["revenue", "lines"], filters=[spec])
        assert rows[0]["lines"] == int(mask.sum()), spec
        assert rows[0]["revenue"] == pytest.approx(lines.loc[mask, "revenue"].sum(), rel=1e-9), spec


def test_measure_filter_and_order_and_paging(engine: AnalyticsEngine, tables: Tables) -> None:
    totals = tables.lines.groupby("state")["revenue"].sum()
    wanted = totals[(totals >= 200_000) & (totals <= 2_000_000)].sort_values(ascending=False)
    spec = {
        "measures": ["revenue"],
        "dimensions": ["state"],
        "order": [{"member": "revenue", "direction": "desc"}],
        "filters": [{"member": "revenue", "operator": "range", "values": [200_000, 2_000_000]}],
    }
    rows = run(engine, **spec)
    assert [r["state"] for r in rows] == list(wanted.index)
    page = engine.run_query(Query.model_validate({**spec, "limit": 3, "offset": 2}))["rows"]
    assert [r["state"] for r in page] == list(wanted.index[2:5])


def test_time_parts(engine: AnalyticsEngine, tables: Tables) -> None:
    lines = tables.lines
    for dimension, values in (
        ("month_of_year", lines["ordered_at"].dt.month),
        ("day_of_week", lines["ordered_at"].dt.dayofweek + 1),
        ("hour_of_day", lines["ordered_at"].dt.hour),
    ):
        expected = lines.assign(**{dimension: values}).groupby(dimension)["revenue"].sum().reset_index()
        assert_rows(
            run(engine, measures=["revenue"], dimensions=[dimension]),
            expected,
            keys=[dimension],
            columns=["revenue"],
        )


def test_new_customers_and_repeat_rate(engine: AnalyticsEngine, tables: Tables) -> None:
    lines = tables.lines.assign(period=period_start(tables.lines["ordered_at"], "quarter"))
    lines["new"] = lines["first_purchase"] >= lines["period"]
    grouped = lines.groupby("period")
    expected = (
        pd.DataFrame(
            {
                "customers": grouped["customer_id"].nunique(),
                "new_customers": lines[lines["new"]].groupby("period")["customer_id"].nunique(),
            }
        )
        .fillna(0)
        .reset_index()
    )
    expected["repeat_customer_rate_pct"] = (
        100 * (expected["customers"] - expected["new_customers"]) / expected["customers"]
    )
    measures = ["customers", "new_customers", "repeat_customer_rate_pct"]
    rows = run(engine, measures=measures, time_dimension={"grain": "quarter"})
    assert_rows(rows, expected.astype({"new_customers": int}), keys=["period"], columns=measures)
    # Over a date range without a grain, "new" means a first purchase inside the range.
    inside = tables.lines[(tables.lines["day"] >= "2025-01-01") & (tables.lines["day"] <= "2025-03-31")]
    (row,) = run(
        engine, measures=["new_customers"], time_dimension={"date_range": ["2025-01-01", "2025-03-31"]}
    )
    assert (
        row["new_customers"] == inside.loc[inside["first_purchase"] >= "2025-01-01", "customer_id"].nunique()
    )


# --- comparison periods ---


def _revenue_between(tables: Tables, start: str, end: str, by: str) -> pd.Series:
    lines = tables.lines
    return lines[(lines["day"] >= start) & (lines["day"] <= end)].groupby(by)["revenue"].sum()


@pytest.mark.parametrize(
    ("compare", "current", "previous"),
    [
        ("same_period_last_year", ("2025-01-01", "2025-03-31"), ("2024-01-01", "2024-03-31")),
        ("previous_period", ("2025-01-01", "2025-03-31"), ("2024-10-01", "2024-12-31")),  # whole months
        ("previous_period", ("2025-03-10", "2025-04-08"), ("2025-02-08", "2025-03-09")),  # 30 days
    ],
)
def test_comparison_periods(
    engine: AnalyticsEngine, tables: Tables, compare: str, current: tuple, previous: tuple
) -> None:
    now = _revenue_between(tables, *current, "region")
    before = _revenue_between(tables, *previous, "region")
    rows = run(
        engine,
        measures=["revenue"],
        dimensions=["region"],
        time_dimension={"date_range": list(current)},
        compare=compare,
    )
    expected = pd.DataFrame({"revenue": now, "revenue_previous": before}).fillna(0).reset_index()
    expected["revenue_change"] = expected["revenue"] - expected["revenue_previous"]
    expected["revenue_change_pct"] = 100 * expected["revenue_change"] / expected["revenue_previous"].abs()
    assert_rows(
        rows,
        expected,
        keys=["region"],
        columns=["revenue", "revenue_previous", "revenue_change", "revenue_change_pct"],
    )


def test_comparison_with_a_grain_lines_up_the_buckets(engine: AnalyticsEngine, tables: Tables) -> None:
    rows = run(
        engine,
        measures=["revenue", "orders"],
        time_dimension={"grain": "month", "date_range": ["2025-01-01", "2025-06-30"]},
        compare="same_period_last_year",
    )
    lines = tables.lines.assign(period=period_start(tables.lines["ordered_at"], "month"))
    monthly = lines.groupby("period").agg(revenue=("revenue", "sum"), orders=("order_id", "nunique"))
    for row in rows:
        month = pd.Timestamp(row["period"])
        assert row["revenue"] == pytest.approx(monthly.loc[month, "revenue"], rel=1e-9)
        assert row["orders_previous"] == monthly.loc[month - pd.DateOffset(years=1), "orders"]
    assert len(rows) == 6


def test_explicit_comparison_range(engine: AnalyticsEngine, tables: Tables) -> None:
    (row,) = run(
        engine,
        measures=["revenue"],
        time_dimension={"date_range": ["2025-05-01", "2025-05-31"]},
        compare_date_range=["2024-11-15", "2024-12-20"],
    )
    lines = tables.lines
    assert row["revenue_previous"] == pytest.approx(
        lines.loc[(lines["day"] >= "2024-11-15") & (lines["day"] <= "2024-12-20"), "revenue"].sum(), rel=1e-9
    )


# --- goals ---


def test_goal_attainment_by_region_and_quarter(engine: AnalyticsEngine, tables: Tables) -> None:
    lines = tables.lines.assign(period=period_start(tables.lines["ordered_at"], "quarter"))
    revenue = lines.groupby(["period", "region"])["revenue"].sum()
    goals = tables.region_goals.assign(period=period_start(tables.region_goals["month"], "quarter"))
    goal = goals.groupby(["period", "region"])["revenue_target"].sum()
    expected = pd.DataFrame({"revenue": revenue, "goal": goal}).reset_index()
    expected["revenue"] = expected["revenue"].fillna(0)
    expected["goal_attainment_pct"] = 100 * expected["revenue"] / expected["goal"]
    rows = run(
        engine,
        measures=["revenue", "goal", "goal_attainment_pct"],
        dimensions=["region"],
        time_dimension={"grain": "quarter"},
    )
    assert_rows(rows, expected, keys=["period", "region"], columns=["revenue", "goal", "goal_attainment_pct"])


def test_goals_cannot_be_split_by_what_no_plan_has(engine: AnalyticsEngine) -> None:
    with pytest.raises(QueryError, match="goal plan") as refused:
        run(engine, measures=["goal"], dimensions=["channel"])
    assert refused.value.problems[0].field == "dimensions"
    # A category plan and a region plan exist, but no plan is by both.
    with pytest.raises(QueryError, match="goals by region can be split by 'region' only"):
        run(engine, measures=["goal"], dimensions=["region", "category"])
    with pytest.raises(QueryError, match="goal plan by product has no 'region'"):
        run(
            engine,
            measures=["goal"],
            dimensions=["product"],
            filters=[{"member": "region", "operator": "equals", "values": ["West"]}],
        )
    with pytest.raises(QueryError, match="monthly"):
        run(engine, measures=["goal_attainment_pct"], time_dimension={"grain": "week"})


# --- the rollups answer exactly what the order lines answer ---

ROLLUP_QUERIES = [
    {"measures": ["revenue", "orders", "first_sale", "last_sale"], "dimensions": ["product"]},
    {"measures": ["revenue", "orders"], "dimensions": ["zip", "city"]},
    {
        "measures": ["revenue", "units", "profit", "margin_pct"],
        "dimensions": ["category"],
        "time_dimension": {"grain": "week"},
    },
    {"measures": ["revenue", "orders", "average_order_value"], "dimensions": ["state"]},
    {"measures": ["revenue", "orders"], "dimensions": ["zip"], "time_dimension": {"grain": "quarter"}},
    {
        "measures": ["revenue", "orders", "customers", "purchase_days", "first_sale", "last_sale"],
        "dimensions": ["customer"],
    },
    {
        "measures": ["revenue", "orders"],
        "dimensions": ["salesman", "channel"],
        "time_dimension": {"grain": "month", "date_range": ["2024-01-01", "2024-12-31"]},
    },
    {
        "measures": ["revenue", "units"],
        "dimensions": ["distributor", "product"],
        "filters": [{"member": "distributor", "operator": "set"}],
    },
    {
        "measures": ["revenue"],
        "dimensions": ["region"],
        "time_dimension": {"date_range": ["2024-03-01", "2024-08-31"]},
        "compare": "previous_period",
    },
    {
        "measures": ["revenue", "last_sale"],
        "dimensions": ["product"],
        "time_dimension": {"date_range": ["2023-01-01", "2025-05-17"]},
    },
    {"measures": ["revenue", "orders"], "dimensions": ["customer_segment"]},
    {
        "measures": ["revenue"],
        "dimensions": ["month_of_year"],
        "filters": [{"member": "region", "operator": "in", "values": ["West", "South"]}],
    },
    {
        "measures": ["revenue", "orders"],
        "filters": [{"member": "category", "operator": "equals", "values": ["Technology"]}],
    },
    {
        "measures": ["revenue", "goal", "goal_attainment_pct"],
        "dimensions": ["salesman"],
        "time_dimension": {"grain": "year"},
    },
]


@pytest.mark.parametrize("spec", ROLLUP_QUERIES, ids=range(len(ROLLUP_QUERIES)))
def test_rollups_answer_like_the_order_lines(engine: AnalyticsEngine, spec: dict) -> None:
    query = Query.model_validate({"limit": 50_000, **spec})
    fast, base = engine.run_query(query), engine.run_query(query, use_rollups=False)
    assert base["source"] == "order_lines"
    keys = (["period"] if query.grain else []) + list(query.dimensions)
    frame = pd.DataFrame(base["rows"])
    assert_rows(fast["rows"], frame, keys=keys, columns=[c for c in frame.columns if c not in keys])


def test_the_router_uses_rollups_for_the_common_questions(engine: AnalyticsEngine) -> None:
    sources = {
        engine.run_query(
            {"measures": ["revenue"], "dimensions": ["category"], "time_dimension": {"grain": "day"}}
        )["source"],
        engine.run_query({"measures": ["revenue", "orders"], "dimensions": ["state"]})["source"],
        engine.run_query(
            {
                "measures": ["revenue", "orders"],
                "dimensions": ["salesman"],
                "time_dimension": {"grain": "week"},
            }
        )["source"],
    }
    assert "order_lines" not in sources
    # Distinct orders per category cannot be added up over products: that one reads the order lines.
    assert engine.run_query({"measures": ["orders"], "dimensions": ["category"]})["source"] == "order_lines"


def test_namesake_cities_in_different_states_stay_apart(tmp_path: Path) -> None:
    sales = [Sale(date(2025, 1, 2), 100.0, "C-1"), Sale(date(2025, 1, 3), 50.0, "C-2")]
    engine = open_engine(build_tiny_warehouse(tmp_path / "w.duckdb", sales))
    for use_rollups in (True, False):
        rows = engine.run_query({"measures": ["revenue"], "dimensions": ["city"]}, use_rollups=use_rollups)
        assert {r["city"]: r["revenue"] for r in rows["rows"]} == {
            "Springfield, IL": 100.0,
            "Springfield, MO": 50.0,
        }
    only = {"member": "city", "operator": "equals", "values": ["Springfield, MO"]}
    assert run(engine, measures=["revenue"], filters=[only]) == [{"revenue": 50.0}]
    engine._con.close()


def test_customer_segment_matches_the_rfm_report(engine: AnalyticsEngine) -> None:
    by_dimension = run(engine, measures=["customers", "revenue"], dimensions=["customer_segment"])
    report = {r["segment"]: r for r in run_report(engine, "rfm-segments")["rows"]}
    for row in by_dimension:
        assert report[row["customer_segment"]]["customers"] == row["customers"]
        assert report[row["customer_segment"]]["revenue"] == pytest.approx(row["revenue"], rel=1e-9)


def test_a_member_the_data_lacks_is_named(warehouse: Path, tmp_path: Path) -> None:
    engine = open_engine(copy_warehouse(warehouse, tmp_path))
    engine._con.execute("UPDATE order_lines SET salesman_id = NULL, cost = NULL, profit = NULL")
    engine.refresh()
    with pytest.raises(DataUnavailable) as missing:
        run(engine, measures=["revenue", "margin_pct"], dimensions=["salesman"])
    messages = " ".join(p.message for p in missing.value.problems)
    assert "no order line has a salesman" in messages and "no order line has a cost" in messages
    assert run(engine, measures=["revenue"], dimensions=["region"])
    engine._con.close()


def test_empty_result_and_single_row_totals(engine: AnalyticsEngine) -> None:
    rows = run(
        engine,
        measures=["revenue", "orders", "average_order_value"],
        time_dimension={"date_range": ["1999-01-01", "1999-12-31"]},
    )
    assert rows == [{"revenue": 0.0, "orders": 0, "average_order_value": None}]
    assert (
        run(
            engine,
            measures=["revenue"],
            dimensions=["region"],
            time_dimension={"date_range": ["1999-01-01", "1999-12-31"]},
        )
        == []
    )


def test_today_is_no_special_case(engine: AnalyticsEngine, tables: Tables) -> None:
    last = tables.lines["day"].max()
    assert engine.last_day() == last.date() == date(2025, 6, 30)
    assert np.isclose(
        run(engine, measures=["revenue"], time_dimension={"date_range": [last.date(), last.date()]})[0][
            "revenue"
        ],
        tables.lines.loc[tables.lines["day"] == last, "revenue"].sum(),
    )
