"""The sample-data generator: invariants, integrity, and the structure it promises to contain."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import holidays
import pandas as pd
import pytest
import zipcodes

from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.dataset.geography import REGION_OF_STATE, REGIONS

END = date(2026, 6, 30)
CONFIG = GeneratorConfig(seed=7, customers=6_000, rows=400_000, days=1096, end_date=END)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = tmp_path_factory.mktemp("generated") / "warehouse.duckdb"
    generate_warehouse(CONFIG, path)
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.execute(sql).df()


def scalar(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


def test_size_and_span(warehouse):
    lines = scalar(warehouse, "SELECT count(*) FROM order_lines")
    assert 0.9 * CONFIG.rows <= lines <= 1.1 * CONFIG.rows
    first, last = warehouse.execute(
        "SELECT min(ordered_at)::DATE, max(ordered_at)::DATE FROM order_lines"
    ).fetchone()
    assert first == CONFIG.start_date
    assert last == END


def test_revenue_cost_and_profit_arithmetic(warehouse):
    worst = warehouse.execute(
        """SELECT max(abs(revenue - quantity * unit_price * (1 - discount))),
                  max(abs(profit - (revenue - cost))),
                  min(quantity), min(discount), max(discount), min(unit_price)
           FROM order_lines"""
    ).fetchone()
    assert worst[0] < 1e-6
    assert worst[1] < 1e-6
    assert worst[2] >= 1
    assert worst[3] >= 0 and worst[4] < 1
    assert worst[5] > 0


def test_keys_are_unique_and_every_reference_resolves(warehouse):
    assert scalar(warehouse, "SELECT count(*) - count(DISTINCT (order_id, line)) FROM order_lines") == 0
    orphans = {
        "customer": "SELECT count(*) FROM order_lines o ANTI JOIN customers c USING (customer_id)",
        "product": "SELECT count(*) FROM order_lines o ANTI JOIN products p USING (product_id)",
        "salesman": "SELECT count(*) FROM order_lines o ANTI JOIN salesmen s USING (salesman_id)",
        "distributor": """SELECT count(*) FROM order_lines o ANTI JOIN distributors d USING (distributor_id)
                          WHERE o.distributor_id IS NOT NULL""",
        "salesman goal": "SELECT count(*) FROM salesman_goals g ANTI JOIN salesmen s USING (salesman_id)",
    }
    assert {name: scalar(warehouse, sql) for name, sql in orphans.items()} == dict.fromkeys(orphans, 0)
    # Trade lines carry a distributor, direct lines do not.
    assert (
        scalar(
            warehouse,
            """SELECT count(*) FROM order_lines
           WHERE (channel = 'trade') <> (distributor_id IS NOT NULL)""",
        )
        == 0
    )
    assert set(frame(warehouse, "SELECT DISTINCT region FROM customers")["region"]) == set(REGIONS)


def test_lines_of_an_order_share_customer_time_and_number_from_one(warehouse):
    orders = frame(
        warehouse,
        """SELECT count(DISTINCT customer_id) AS customers, count(DISTINCT ordered_at) AS times,
                  min(line) AS first, max(line) AS last, count(*) AS lines
           FROM order_lines GROUP BY order_id""",
    )
    assert (orders["customers"] == 1).all()
    assert (orders["times"] == 1).all()
    assert (orders["first"] == 1).all()
    assert (orders["last"] == orders["lines"]).all()


def test_geography_is_real(warehouse):
    customers = frame(warehouse, "SELECT zip, city, state, latitude FROM customers USING SAMPLE 200 ROWS")
    for row in customers.itertuples():
        match = zipcodes.matching(row.zip)
        assert match, f"{row.zip} is not a real zip code"
        assert match[0]["state"] == row.state
        assert abs(float(match[0]["lat"]) - row.latitude) < 1e-6


def test_every_line_ships_to_a_real_us_address(warehouse):
    missing = scalar(
        warehouse,
        """SELECT count(*) FROM order_lines
           WHERE ship_city IS NULL OR ship_state IS NULL OR ship_zip IS NULL OR ship_region IS NULL
              OR ship_latitude IS NULL OR ship_longitude IS NULL
              OR ship_country IS DISTINCT FROM 'United States'""",
    )
    assert missing == 0
    lines = frame(
        warehouse, "SELECT ship_zip, ship_state, ship_region FROM order_lines USING SAMPLE 200 ROWS"
    )
    for row in lines.itertuples():
        assert zipcodes.matching(row.ship_zip)[0]["state"] == row.ship_state
        assert REGION_OF_STATE[row.ship_state] == row.ship_region


def test_some_customers_ship_to_a_second_address_in_another_state(warehouse):
    shipping = frame(
        warehouse,
        """SELECT count(DISTINCT o.ship_state) AS states,
                  avg(CAST(o.ship_zip = c.zip AS INTEGER)) AS own_address_share
           FROM order_lines o JOIN customers c USING (customer_id) GROUP BY customer_id""",
    )
    several = (shipping["states"] > 1).mean()
    assert 0.05 < several < 0.25  # the generator gives 15% of customers a second ship-to
    assert (shipping["states"] <= 2).all()
    assert 0.45 < shipping.loc[shipping["states"] > 1, "own_address_share"].mean() < 0.75  # 60% of orders


def daily_revenue(con: duckdb.DuckDBPyConnection) -> pd.Series:
    daily = frame(con, "SELECT ordered_at::DATE AS day, sum(revenue) AS revenue FROM order_lines GROUP BY 1")
    return daily.set_index(pd.to_datetime(daily["day"]))["revenue"].sort_index()


def test_weekly_seasonality(warehouse):
    daily = daily_revenue(warehouse)
    by_weekday = daily.groupby(daily.index.dayofweek).mean()
    assert by_weekday[6] < 0.7 * by_weekday[1], "Sundays should sell far less than Tuesdays"
    assert by_weekday[5] < 0.8 * by_weekday[1]


def test_yearly_seasonality_and_holiday_peaks(warehouse):
    daily = daily_revenue(warehouse)
    # Growth is removed by comparing each day with the centred mean of the year around it.
    relative = (daily / daily.rolling(365, center=True).mean()).dropna()
    by_month = relative.groupby(relative.index.month).mean()
    assert by_month[12] > by_month[6] * 1.15
    for year in (2024, 2025):
        black_friday = pd.Timestamp({2024: "2024-11-29", 2025: "2025-11-28"}[year])
        neighbours = daily[black_friday - timedelta(days=14) : black_friday - timedelta(days=2)]
        assert daily[black_friday] > 1.6 * neighbours.median()
        assert pd.Timestamp(f"{year}-12-25") not in daily.index, "closed on Christmas"


def test_closed_on_every_us_federal_holiday_as_the_readme_says(warehouse):
    days_with_sales = set(daily_revenue(warehouse).index.date)
    span = pd.date_range(CONFIG.start_date, END).date
    closed = [day for day in span if day in holidays.country_holidays("US", years=range(2023, 2027))]
    assert len(closed) > 30  # about eleven a year, observed days included
    assert days_with_sales.isdisjoint(closed)
    assert len(days_with_sales) == len(span) - len(closed), "open every other day"


def test_category_and_region_trends_differ(warehouse):
    growth = frame(
        warehouse,
        """SELECT p.category, c.region,
                  sum(revenue) FILTER (WHERE ordered_at >= DATE '2025-07-01') /
                  sum(revenue) FILTER (WHERE ordered_at >= DATE '2024-07-01'
                                         AND ordered_at < DATE '2025-07-01')
                  AS yoy
           FROM order_lines JOIN products p USING (product_id) JOIN customers c USING (customer_id)
           GROUP BY GROUPING SETS ((p.category), (c.region))""",
    )
    by_category = growth.dropna(subset=["category"]).set_index("category")["yoy"]
    by_region = growth.dropna(subset=["region"]).set_index("region")["yoy"]
    assert by_category["Technology"] > by_category["Furniture"] + 0.15
    assert by_region["West"] > by_region["Central"] + 0.1


def test_promotions_lift_sales_by_price_elasticity(warehouse):
    # Units of a product on its promotion days against its other days. Only products that sell nearly
    # every day are compared, so that a day without sales does not hide whether it was a promotion day.
    lift = frame(
        warehouse,
        """WITH daily AS (
               SELECT product_id, ordered_at::DATE AS day, sum(quantity) AS units,
                      max(discount) FILTER (WHERE channel = 'direct' AND quantity < 10) > 0 AS promo
               FROM order_lines GROUP BY ALL),
           busy AS (SELECT product_id FROM daily GROUP BY 1
                    HAVING count(*) > 0.6 * (SELECT count(DISTINCT day) FROM daily))
           SELECT product_id, avg(units) FILTER (WHERE promo) / avg(units) FILTER (WHERE NOT promo) AS lift,
                  count(*) FILTER (WHERE promo) AS promo_days
           FROM daily SEMI JOIN busy USING (product_id) GROUP BY product_id HAVING promo_days >= 5""",
    )
    assert len(lift) > 20
    assert lift["lift"].median() > 1.25


def test_customers_are_acquired_repeat_and_churn(warehouse):
    customers = frame(
        warehouse,
        """SELECT customer_id, min(ordered_at) AS first, max(ordered_at) AS last,
                  count(DISTINCT order_id) AS orders
           FROM order_lines GROUP BY 1""",
    )
    first_quarter = customers["first"].dt.to_period("Q").value_counts()
    assert first_quarter.sort_index().iloc[-4:].min() > 50, "new customers keep arriving"
    assert (customers["orders"] >= 5).mean() > 0.3, "many customers buy again"
    gone = (customers["orders"] >= 3) & (customers["last"] < pd.Timestamp(END) - timedelta(days=180))
    assert gone.mean() > 0.05, "some regular customers stop buying"
    stored_first = frame(
        warehouse, "SELECT customer_id, first_purchase FROM customers WHERE first_purchase IS NOT NULL"
    )
    merged = stored_first.merge(customers, on="customer_id")
    assert (merged["first_purchase"] == merged["first"]).all()


def test_discontinued_products_stop_selling_and_new_ones_start(warehouse):
    late = scalar(
        warehouse,
        """SELECT count(*) FROM order_lines JOIN products USING (product_id)
           WHERE ordered_at::DATE >= discontinued_on OR ordered_at::DATE < launched_on""",
    )
    assert late == 0
    assert scalar(warehouse, "SELECT count(*) FROM products WHERE discontinued_on <= DATE '2026-01-01'") > 10
    assert (
        scalar(warehouse, f"SELECT count(*) FROM products WHERE launched_on > DATE '{CONFIG.start_date}'")
        > 10
    )


def test_salesmen_differ_in_consistency(warehouse):
    spread = frame(
        warehouse,
        """WITH daily AS (SELECT salesman_id, ordered_at::DATE AS day, sum(revenue) AS revenue
                          FROM order_lines GROUP BY ALL)
           SELECT salesman_id, stddev(revenue) / avg(revenue) AS cv
           FROM daily GROUP BY 1 HAVING count(*) > 200""",
    )
    assert spread["cv"].max() > 1.5 * spread["cv"].min()


def test_goal_plan_is_near_but_not_equal_to_actuals(warehouse):
    ratio = frame(
        warehouse,
        """SELECT g.revenue_target / a.revenue AS ratio
           FROM region_goals g JOIN (
               SELECT date_trunc('month', ordered_at)::DATE AS month, ship_region AS region,
                      sum(revenue) AS revenue
               FROM order_lines GROUP BY ALL) a USING (month, region)
           WHERE month < DATE '2026-06-01'""",
    )["ratio"]
    assert ratio.between(0.75, 1.35).all()
    assert 0.98 < ratio.mean() < 1.08
    assert (ratio.round(4) != 1).all()
    assert scalar(warehouse, "SELECT count(DISTINCT salesman_id) FROM salesman_goals") == scalar(
        warehouse, "SELECT count(DISTINCT salesman_id) FROM order_lines"
    )


def test_a_fresh_warehouse_has_no_line_after_the_moment_it_was_generated(tmp_path: Path):
    path = tmp_path / "now.duckdb"
    generate_warehouse(GeneratorConfig(seed=5, customers=300, rows=20_000, days=60), path)
    generated_by = datetime.now()  # the machine's zone is the warehouse zone unless configured
    with duckdb.connect(str(path), read_only=True) as con:
        (last,) = con.execute("SELECT max(ordered_at) FROM order_lines").fetchone()
    assert last <= generated_by


def test_the_day_of_the_cutoff_sells_only_the_hours_before_it(tmp_path: Path):
    cutoff = datetime(2026, 7, 8, 11, 30, 15)  # a Wednesday
    path = tmp_path / "cutoff.duckdb"
    summary = generate_warehouse(
        GeneratorConfig(seed=5, customers=300, rows=30_000, days=60, end_date=date(2026, 7, 10), now=cutoff),
        path,
    )
    with duckdb.connect(str(path), read_only=True) as con:
        last, today, day_before = con.execute(
            """SELECT max(ordered_at), count(*) FILTER (ordered_at::DATE = DATE '2026-07-08'),
                      count(*) FILTER (ordered_at::DATE = DATE '2026-07-07') FROM order_lines"""
        ).fetchone()
    assert summary.last_day == cutoff.date()
    assert last <= cutoff
    # Orders until 11:30 are about a third of a day's (HOUR_WEIGHTS), not none and not all.
    assert 0.15 * day_before < today < 0.6 * day_before


def test_same_seed_gives_same_data(tmp_path: Path):
    small = GeneratorConfig(seed=3, customers=300, rows=5_000, days=90, end_date=END)
    totals = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.duckdb"
        generate_warehouse(small, path)
        with duckdb.connect(str(path), read_only=True) as con:
            totals.append(
                con.execute("SELECT count(*), sum(revenue), sum(quantity) FROM order_lines").fetchone()
            )
    assert totals[0] == totals[1]


@pytest.mark.slow
def test_killed_generation_leaves_the_old_warehouse(tmp_path: Path, cli_env: dict[str, str]):
    path = tmp_path / "warehouse.duckdb"
    generate_warehouse(GeneratorConfig(customers=200, rows=2_000, days=60, end_date=END), path)
    with duckdb.connect(str(path), read_only=True) as con:
        before = con.execute("SELECT count(*), sum(revenue) FROM order_lines").fetchone()
    process = subprocess.Popen(
        ["salespulse", "data", "generate", "--rows", "3000000", "--replace", "--warehouse", str(path)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    scratch = path.with_name(path.name + ".building")
    deadline = time.monotonic() + 60
    while not scratch.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scratch.exists(), "the new warehouse is built beside the old one"
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*), sum(revenue) FROM order_lines").fetchone() == before


def test_cli_generate_prints_where_the_warehouse_is(tmp_path: Path, cli_env: dict[str, str]):
    path = tmp_path / "cli.duckdb"
    result = subprocess.run(
        ["salespulse", "data", "generate", "--customers", "300", "--rows", "5000", "--days", "60",
         "--end-date", "2026-01-31", "--warehouse", str(path)],
        env=cli_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(path.resolve()) in result.stderr.replace("\n", "")
    with duckdb.connect(str(path), read_only=True) as con:
        last = con.execute("SELECT max(ordered_at)::DATE FROM order_lines").fetchone()[0]
    assert last == date(2026, 1, 31)


def test_cli_help_explains_itself(cli_env: dict[str, str]):
    for command in (["data", "generate", "--help"], ["data", "import", "--help"]):
        result = subprocess.run(
            ["salespulse", *command], env=cli_env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0
        assert "--warehouse" in result.stdout
    generate_help = subprocess.run(
        ["salespulse", "data", "generate", "--help"], env=cli_env, capture_output=True, text=True, check=False
    ).stdout
    for option in ("--seed", "--scale", "--customers", "--days", "--end-date", "seasonality"):
        assert option in generate_help
