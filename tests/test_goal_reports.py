"""The goal plan at every level (region, salesman, category, product) in the query layer and the reports:
hand-computed on a tiny warehouse, and a plan imported with `import_goals` checked against pandas."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analytics_support import (
    Sale,
    assert_rows,
    build_tiny_warehouse,
    load_tables,
    open_engine,
)
from pydantic import ValidationError

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.errors import QueryError
from salespulse.analytics.reports import run_report
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.dataset.goals import import_goals

APRIL, MAY = date(2025, 4, 1), date(2025, 5, 1)


def _selling_days(first: date, last: date) -> list[date]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [day for day in days if day.weekday() != 6]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnalyticsEngine]:
    """Closed on Sundays, data up to Wednesday May 14th 2025. A day sells P-1 for 500 in April and 600 in
    May, and P-2 for 300. April has 26 selling days (30 less 4 Sundays): P-1 13,000, P-2 7,800. May has 27
    (31 less 4), 12 of them up to the 14th: P-1 7,200, P-2 3,600. So May's goals count 12/27 to date."""
    sales = [
        Sale(day, amount, product=product)
        for day in _selling_days(APRIL, date(2025, 5, 14))
        for product, amount in (("P-1", 600.0 if day.month == 5 else 500.0), ("P-2", 300.0))
    ]
    goals = [
        ("product", APRIL, "P-1", 13_000.0),  # 100%
        ("product", APRIL, "P-2", 10_400.0),  # 75%
        ("product", MAY, "P-1", 18_000.0),  # to date 8,000: 90%
        ("product", MAY, "P-2", 12_150.0),  # to date 5,400: 66.7%
        ("product", MAY, "P-OLD", 2_700.0),  # to date 1,200, nothing sold: 0%
        ("category", APRIL, "Office Supplies", 28_000.0),  # 20,800: 74.3%
        ("category", MAY, "Office Supplies", 27_000.0),  # to date 12,000, 10,800 sold: 90%
    ]
    engine = open_engine(
        build_tiny_warehouse(tmp_path_factory.mktemp("shop") / "w.duckdb", sales, goals=goals)
    )
    yield engine
    engine._con.close()


def _by(rows: list[dict], *keys: str) -> dict[tuple, dict]:
    return {tuple(row[k] for k in keys): row for row in rows}


def test_goal_attainment_by_product_pro_rates_the_running_month(shop: AnalyticsEngine) -> None:
    result = run_report(shop, "goal-attainment-by-product", {})
    rows = _by(result["rows"], "period", "product")
    april, may = rows[("2025-04-01", "P-2")], rows[("2025-05-01", "P-1")]
    assert (april["revenue"], april["goal"], april["goal_to_date"]) == (7_800.0, 10_400.0, 10_400.0)
    assert april["goal_attainment_pct"] == pytest.approx(75.0) and april["goal_basis"] == "whole month"
    assert (may["revenue"], may["goal"]) == (7_200.0, 18_000.0)
    assert may["goal_to_date"] == pytest.approx(8_000.0) and may["goal_attainment_pct"] == pytest.approx(90.0)
    assert may["goal_basis"] == "pro-rated: 12 of 27 selling days"
    old = rows[("2025-05-01", "P-OLD")]  # a goal without sales is listed, at 0%
    assert (old["revenue"], old["goal_to_date"], old["goal_attainment_pct"]) == (
        0.0,
        pytest.approx(1_200.0),
        0.0,
    )
    assert old["product_name"] == "Widget P-OLD"
    assert any("Selling days" in note for note in result["notes"])


def test_goal_attainment_by_category(shop: AnalyticsEngine) -> None:
    rows = {r["period"]: r for r in run_report(shop, "goal-attainment-by-category", {})["rows"]}
    assert rows["2025-04-01"]["goal_attainment_pct"] == pytest.approx(100 * 20_800 / 28_000)
    assert rows["2025-05-01"]["goal_to_date"] == pytest.approx(12_000.0)
    assert rows["2025-05-01"]["goal_attainment_pct"] == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (
            "product",
            [("2025-04-01", "P-2", 75.0, 2_600.0), ("2025-05-01", "P-2", 100 * 3_600 / 5_400, 1_800.0)],
        ),
        ("category", [("2025-04-01", "Office Supplies", 100 * 20_800 / 28_000, 7_200.0)]),
    ],
)
def test_sales_opportunities_by_product_and_category(
    shop: AnalyticsEngine, level: str, expected: list[tuple[str, str, float, float]]
) -> None:
    rows = run_report(shop, "sales-opportunities", {"level": level})["rows"]
    assert [(r["period"], r[level]) for r in rows] == [(period, member) for period, member, _, _ in expected]
    for row, (_, _, attainment, gap) in zip(rows, expected, strict=True):
        assert row["goal_attainment_pct"] == pytest.approx(attainment)
        assert row["gap_to_goal"] == pytest.approx(gap)


def test_a_product_plan_answers_by_category_and_subcategory_when_filtered_by_product(
    shop: AnalyticsEngine,
) -> None:
    """The category plan cannot be split by product: categories filtered by product read the product plan."""
    (row,) = run_report(shop, "goal-attainment-by-category", {"product": ["P-1"], "start": "2025-05-01"})[
        "rows"
    ]
    assert (row["revenue"], row["goal"]) == (7_200.0, 18_000.0)
    answer = shop.run_query(
        {
            "measures": ["goal", "goal_to_date"],
            "dimensions": ["subcategory"],
            "time_dimension": {"grain": "month"},
        }
    )
    goals = {r["period"]: (r["goal"], r["goal_to_date"]) for r in answer["rows"]}
    assert goals["2025-05-01"] == (32_850.0, pytest.approx(32_850.0 * 12 / 27))
    assert "Goals from the goal plan by product (product_goals)." in answer["notes"]


def test_the_query_layer_measures_the_running_month_against_its_goal_to_date(shop: AnalyticsEngine) -> None:
    """April to May 14th by category, no grain: goal 28,000 + 27,000; to date 28,000 + 12,000 = 40,000."""
    answer = shop.run_query(
        {
            "measures": ["revenue", "goal", "goal_to_date", "goal_attainment_pct"],
            "dimensions": ["category"],
            "time_dimension": {"date_range": ["2025-04-01", "2025-05-14"]},
        }
    )
    (row,) = answer["rows"]
    assert (row["revenue"], row["goal"], row["goal_to_date"]) == (31_600.0, 55_000.0, pytest.approx(40_000.0))
    assert row["goal_attainment_pct"] == pytest.approx(79.0)  # not 57.5% of the whole months' goals
    (basis,) = [n for n in answer["notes"] if n.startswith("goal_to_date")]
    assert "2025-05 (pro-rated: 12 of 27 selling days)" in basis and "2025-05-14" in basis
    # Cut by the start too: May 5th to 14th is 9 selling days of May's 27 (the 11th is a Sunday).
    (row,) = shop.run_query(
        {
            "measures": ["revenue", "goal_to_date", "goal_attainment_pct"],
            "dimensions": ["product"],
            "time_dimension": {"date_range": ["2025-05-05", "2025-05-31"]},
            "filters": [{"member": "product", "operator": "equals", "values": ["P-1"]}],
        }
    )["rows"]
    assert row["revenue"] == 5_400.0 and row["goal_to_date"] == pytest.approx(18_000 * 9 / 27)
    assert row["goal_attainment_pct"] == pytest.approx(90.0)


def test_a_month_after_the_data_counts_no_goal_to_date(tmp_path: Path) -> None:
    """March 2025 has 26 selling days (31 less 5 Sundays) of 100 each; the plan runs into April."""
    sales = [Sale(day, 100.0) for day in _selling_days(date(2025, 3, 1), date(2025, 3, 31))]
    goals = [("product", date(2025, 3, 1), "P-1", 2_600.0), ("product", APRIL, "P-1", 5_000.0)]
    engine = open_engine(build_tiny_warehouse(tmp_path / "w.duckdb", sales, goals=goals))
    p1 = {"member": "product", "operator": "equals", "values": ["P-1"]}
    answer = engine.run_query(
        {"measures": ["revenue", "goal", "goal_to_date", "goal_attainment_pct"], "filters": [p1]}
    )
    (row,) = answer["rows"]
    assert (row["revenue"], row["goal"], row["goal_to_date"]) == (2_600.0, 7_600.0, 2_600.0)
    assert row["goal_attainment_pct"] == pytest.approx(100.0)
    assert any("none of a later month's" in note for note in answer["notes"])
    rows = {r["period"]: r for r in run_report(engine, "goal-attainment-by-product", {})["rows"]}
    assert rows["2025-04-01"]["goal_to_date"] == 0.0 and rows["2025-04-01"]["goal_attainment_pct"] is None
    assert rows["2025-04-01"]["goal_basis"] == "pro-rated: 0 of 26 selling days"
    engine._con.close()


def test_a_goal_plan_that_cannot_answer_is_refused(shop: AnalyticsEngine) -> None:
    # A goal report declares only the filters its plans answer: the product plan has no region.
    with pytest.raises(ValidationError, match="region\n  Extra inputs are not permitted"):
        run_report(shop, "goal-attainment-by-product", {"region": ["Central"]})
    with pytest.raises(QueryError, match="goal plan by product has no 'region'"):
        shop.run_query(
            {
                "measures": ["goal"],
                "dimensions": ["product"],
                "filters": [{"member": "region", "operator": "in", "values": ["Central"]}],
            }
        )
    with pytest.raises(QueryError, match="'channel' cannot be combined"):
        shop.run_query({"measures": ["goal"], "dimensions": ["product", "channel"]})


# --- unknown filter values in the query layer ---


def test_an_unknown_filter_value_matches_nothing_and_a_note_names_it(shop: AnalyticsEngine) -> None:
    answer = shop.run_query(
        {
            "measures": ["revenue"],
            "filters": [
                {"member": "channel", "operator": "in", "values": ["direct"]},
                {"member": "region", "operator": "in", "values": ["Central", "Atlantis"]},
                {"member": "month_of_year", "operator": "equals", "values": [13]},
                {"member": "product", "operator": "equals", "values": ["P-NOPE"]},
            ],
        }
    )
    assert answer["rows"] == [{"revenue": 0.0}]  # no month 13, no product P-NOPE: nothing sold
    problems = dict(note.split(": ", 1) for note in answer["notes"])
    assert set(problems) == {"filters[1].values", "filters[2].values", "filters[3].values"}
    assert problems["filters[1].values"] == "no region 'Atlantis' in the data; the region values are: Central"
    assert "no month_of_year 13" in problems["filters[2].values"]
    assert "no product 'P-NOPE'" in problems["filters[3].values"]
    # Known members without sales (a product never sold, December) are no error, nor is excluding a value.
    for spec, revenue in (
        ({"member": "product", "operator": "equals", "values": ["P-OLD"]}, 0.0),
        ({"member": "month_of_year", "operator": "in", "values": [12]}, 0.0),
        ({"member": "region", "operator": "not_in", "values": ["Atlantis"]}, 31_600.0),
    ):
        assert shop.run_query({"measures": ["revenue"], "filters": [spec]})["rows"] == [{"revenue": revenue}]


# --- a plan imported by product, against pandas ---


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AnalyticsEngine, pd.DataFrame]]:
    """A small generated warehouse with a product plan for 2025 imported from a CSV: each product's monthly
    revenue times a random 0.9 to 1.9 (so attainments spread from about 50% to 110%), and a June goal for
    every product that sold nothing in June."""
    directory = tmp_path_factory.mktemp("imported")
    path = directory / "w.duckdb"
    generate_warehouse(GeneratorConfig(customers=300, rows=8_000, days=400, end_date=date(2025, 6, 30)), path)
    engine = open_engine(path)
    tables = load_tables(engine)
    engine._con.close()
    lines = tables.lines[tables.lines["day"] >= "2025-01-01"]
    monthly = lines.groupby([lines["day"].dt.to_period("M").dt.start_time.rename("month"), "product_id"])
    sold = monthly["revenue"].sum().rename("revenue").reset_index()
    sold["target"] = (sold["revenue"] * np.random.default_rng(7).uniform(0.9, 1.9, len(sold))).round(2)
    june = pd.Timestamp("2025-06-01")
    idle = sorted(set(tables.products["product_id"]) - set(sold.loc[sold["month"] == june, "product_id"]))
    assert idle
    unsold = pd.DataFrame({"month": june, "product_id": idle, "revenue": 0.0, "target": 500.0})
    plan = pd.concat([sold, unsold], ignore_index=True)
    csv = directory / "plan.csv"
    file = pd.DataFrame(
        {
            "month": plan["month"].dt.strftime("%Y-%m"),
            "product": plan["product_id"],
            "target": plan["target"].map(lambda t: f"${t:,.2f}"),
        }
    )
    file.to_csv(csv, index=False)
    assert import_goals(csv, level="product", path=path).targets_by_level["product"] == len(plan)
    engine = open_engine(path)
    yield engine, plan
    engine._con.close()


def test_sales_opportunities_lists_the_products_at_60_to_80_pct_of_their_goal(
    imported: tuple[AnalyticsEngine, pd.DataFrame],
) -> None:
    engine, plan = imported
    plan = plan.assign(goal_attainment_pct=100 * plan["revenue"] / plan["target"])
    expected = plan[plan["goal_attainment_pct"].between(60, 80)].rename(
        columns={"month": "period", "product_id": "product"}
    )
    expected = expected.assign(goal=expected["target"], gap_to_goal=expected["target"] - expected["revenue"])
    assert len(expected) >= 5  # the band has members
    rows = run_report(engine, "sales-opportunities", {"level": "product"})["rows"]
    assert_rows(
        rows,
        expected,
        keys=["period", "product"],
        columns=["revenue", "goal", "goal_attainment_pct", "gap_to_goal"],
    )
    assert {r["goal_basis"] for r in rows} == {"whole month"}  # the data ends on June 30th
    attainment = [r["goal_attainment_pct"] for r in rows]
    assert attainment == sorted(attainment, reverse=True)
    # The attainment report lists every product-month of the plan, those that sold nothing at 0%.
    listed = run_report(engine, "goal-attainment-by-product", {"start": "2025-06-01"})["rows"]
    unsold = [r for r in listed if r["revenue"] == 0]
    assert len(unsold) == int((plan["revenue"] == 0).sum()) and {
        r["goal_attainment_pct"] for r in unsold
    } == {0.0}


def test_meta_lists_each_goal_plan_with_its_dimensions(shop: AnalyticsEngine) -> None:
    from salespulse.analytics.meta import describe

    plans = {plan["level"]: plan for plan in describe(shop.state)["goal_plans"]}
    assert list(plans) == ["region", "salesman", "category", "product"]
    assert plans["product"] == {
        "level": "product",
        "table": "product_goals",
        "dimensions": ["category", "subcategory", "product"],
    }
    assert plans["salesman"]["dimensions"] == ["region", "salesman"]  # his home region
