"""Shared by the analytics tests: one small generated warehouse, its raw tables as pandas, and comparisons.

The reference numbers in the tests are computed with pandas from the raw tables, never with the code under
test.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.warehouse.schema import GOAL_TABLES
from salespulse.warehouse.store import connect

END = date(2025, 6, 30)
CONFIG = GeneratorConfig(customers=2_000, rows=100_000, days=800, end_date=END)
REL = 1e-9  # sums differ from pandas only by floating-point summation order


def build_warehouse(directory: Path) -> Path:
    path = directory / "warehouse.duckdb"
    generate_warehouse(CONFIG, path)
    return path


def copy_warehouse(source: Path, directory: Path) -> Path:
    target = directory / "copy.duckdb"
    shutil.copy(source, target)
    return target


@dataclass(frozen=True)
class Sale:
    """One order of one line in a hand-made warehouse."""

    day: date
    revenue: float
    customer: str = "C-1"
    product: str = "P-1"


TINY_CUSTOMERS = {
    # Two namesake cities in different states, both in the Central region.
    "C-1": ("Springfield", "IL", "62701"),
    "C-2": ("Springfield", "MO", "65801"),
}
TINY_PRODUCTS = {"P-1": None, "P-2": None, "P-OLD": date(2023, 1, 31)}
"""Product id -> the day it was discontinued."""
LINE_COLUMNS = (
    "order_id", "line", "ordered_at", "customer_id", "product_id", "salesman_id", "distributor_id", "channel",
    "quantity", "unit_price", "discount", "revenue", "cost", "profit",
)  # fmt: skip
"""The order line columns a tiny warehouse fills; each line then ships to its customer's address."""


def build_tiny_warehouse(
    path: Path,
    sales: Iterable[Sale],
    region_goals: dict[date, float] | None = None,
    goals: Iterable[tuple[str, date, str, float]] = (),
) -> Path:
    """A warehouse small enough that the tests' expectations are computed by hand: every sale is one order
    of one unit at 10:00, in the Central region, by salesman S-1; every product is Office Supplies / Paper.
    ``goals`` are targets of any level: (level, month, member, target)."""
    con = connect(path)
    for product, discontinued in TINY_PRODUCTS.items():
        con.execute(
            "INSERT INTO products (product_id, product_name, category, subcategory, discontinued_on) "
            "VALUES (?, ?, 'Office Supplies', 'Paper', ?)",
            [product, f"Widget {product}", discontinued],
        )
    for customer, (city, state, zip_code) in TINY_CUSTOMERS.items():
        con.execute(
            "INSERT INTO customers (customer_id, customer_name, city, state, zip, region) "
            "VALUES (?, ?, ?, ?, ?, 'Central')",
            [customer, f"Customer {customer}", city, state, zip_code],
        )
    con.execute("INSERT INTO salesmen VALUES ('S-1', 'Sam Seller', 'Central', DATE '2020-01-01')")
    rows = [
        (f"O-{i:05d}", 1, datetime.combine(s.day, time(10)), s.customer, s.product, "S-1", None, "direct",
         1, s.revenue, 0.0, s.revenue, s.revenue / 2, s.revenue / 2)
        for i, s in enumerate(sales)
    ]  # fmt: skip
    con.executemany(
        f"INSERT INTO order_lines ({', '.join(LINE_COLUMNS)}) VALUES ({', '.join('?' * 14)})", rows
    )
    con.execute(
        "UPDATE order_lines SET ship_city = c.city, ship_state = c.state, ship_zip = c.zip, "
        "ship_region = c.region, ship_country = 'United States' FROM customers c "
        "WHERE order_lines.customer_id = c.customer_id"
    )
    for month, target in (region_goals or {}).items():
        con.execute("INSERT INTO region_goals VALUES (?, 'Central', ?)", [month, target])
    for level, month, member, target in goals:
        con.execute(f"INSERT INTO {GOAL_TABLES[level].name} VALUES (?, ?, ?)", [month, member, target])
    con.execute(
        "UPDATE customers SET first_purchase = f.first FROM (SELECT customer_id, min(ordered_at) AS first "
        "FROM order_lines GROUP BY customer_id) f WHERE customers.customer_id = f.customer_id"
    )
    con.close()
    return path


def open_engine(path: Path, **options: Any) -> AnalyticsEngine:
    return AnalyticsEngine(connect(path), **options)


@dataclass
class Tables:
    lines: pd.DataFrame
    """Order lines with their ship-to as region, country, state, city, zip, latitude and longitude, their
    customer's and product's fields, and day, the date of ordered_at."""
    customers: pd.DataFrame
    products: pd.DataFrame
    salesmen: pd.DataFrame
    region_goals: pd.DataFrame
    salesman_goals: pd.DataFrame


SHIP_TO_PARTS = ("region", "country", "state", "city", "zip", "latitude", "longitude")


def load_tables(engine: AnalyticsEngine) -> Tables:
    """The raw tables, read on the engine's connection (DuckDB allows one configuration per open file)."""
    with engine.cursor() as con:
        frames = {
            name: con.execute(f"SELECT * FROM {name}").df()
            for name in ("order_lines", "customers", "products", "salesmen", "region_goals", "salesman_goals")
        }
    customers, products = frames["customers"], frames["products"]
    # The geography of a sale is the line's own ship-to, whatever the customer's address.
    lines = (
        frames["order_lines"]
        .rename(columns={f"ship_{part}": part for part in SHIP_TO_PARTS})
        .merge(customers[["customer_id", "customer_name", "first_purchase"]], on="customer_id", how="left")
        .merge(
            products[["product_id", "product_name", "category", "subcategory"]], on="product_id", how="left"
        )
    )
    lines["day"] = lines["ordered_at"].dt.normalize()
    for goals in (frames["region_goals"], frames["salesman_goals"]):
        goals["month"] = pd.to_datetime(goals["month"])
    return Tables(
        lines, customers, products, frames["salesmen"], frames["region_goals"], frames["salesman_goals"]
    )


def period_start(times: pd.Series, grain: str) -> pd.Series:
    """The first day of each value's day, ISO week (Monday), month, quarter or year."""
    if grain == "day":
        return times.dt.normalize()
    code = {"week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}[grain]
    return times.dt.to_period(code).dt.start_time


def iso(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | date):
        return value.strftime("%Y-%m-%d")
    return value


def close(actual: Any, expected: Any, rel: float = REL) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None
    if isinstance(expected, float) or isinstance(actual, float):
        return actual is not None and math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-6)
    return actual == expected


def assert_rows(
    rows: list[dict[str, Any]],
    expected: pd.DataFrame,
    *,
    keys: list[str],
    columns: list[str],
    rel: float = REL,
    ordered: bool = False,
) -> None:
    """Each expected row (by keys) is once in ``rows`` with the same values (ints exact, floats to rel)."""
    assert len(rows) == len(expected), f"{len(rows)} rows, expected {len(expected)}"
    if ordered:
        for position, (row, (_, want)) in enumerate(zip(rows, expected.iterrows(), strict=True)):
            for column in [*keys, *columns]:
                assert close(row[column], _plain(want[column]), rel), (position, column, row, dict(want))
        return
    by_key = {tuple(row[k] for k in keys): row for row in rows}
    assert len(by_key) == len(rows), "duplicate keys in the result"
    for _, want in expected.iterrows():
        key = tuple(iso(_plain(want[k])) for k in keys)
        assert key in by_key, f"missing {key}"
        row = by_key[key]
        for column in columns:
            assert close(row[column], _plain(want[column]), rel), (key, column, row[column], want[column])


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def sale(order: str, line: int, **changes: Any) -> dict[str, Any]:
    """An order line for POST /sales: 2 x 50.0 less 10% (90.0 of revenue), a known customer and product."""
    return {
        "order_id": order,
        "line": line,
        "ordered_at": "2025-06-30T16:30:00",
        "customer_id": "C-0000007",
        "product_id": "P-00010",
        "salesman_id": "S-0001",
        "quantity": 2,
        "unit_price": 50.0,
        "discount": 0.1,
        "cost": 60.0,
        **changes,
    }
