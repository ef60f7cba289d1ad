"""A warehouse made by an older salespulse opens with the current code: migrated on open, in one transaction
(a read-only open migrates through a short writable one first; when another process holds the file, it says
how to migrate)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from salespulse.warehouse import migrations
from salespulse.warehouse.migrations import WarehouseOutdated, WarehouseTooNew, stored_version
from salespulse.warehouse.schema import ALL_TABLES, LINE_GEOGRAPHY_COLUMNS, ORDER_LINES, SCHEMA_VERSION
from salespulse.warehouse.store import connect, table_counts

# The schema before versions were kept (schema version 0), as at the commit before line geography: each
# order line's region, state, city and zip were its customer's. Frozen here on purpose: it is history.
VERSION_0_DDL = """
CREATE TABLE products (
    product_id VARCHAR NOT NULL, product_name VARCHAR NOT NULL, category VARCHAR NOT NULL,
    subcategory VARCHAR NOT NULL, list_price DOUBLE, unit_cost DOUBLE, launched_on DATE,
    discontinued_on DATE, PRIMARY KEY (product_id)
);
CREATE TABLE customers (
    customer_id VARCHAR NOT NULL, customer_name VARCHAR, city VARCHAR, state VARCHAR, zip VARCHAR,
    region VARCHAR, latitude DOUBLE, longitude DOUBLE, first_purchase TIMESTAMP, PRIMARY KEY (customer_id)
);
CREATE TABLE salesmen (
    salesman_id VARCHAR NOT NULL, salesman_name VARCHAR, region VARCHAR, hire_date DATE,
    PRIMARY KEY (salesman_id)
);
CREATE TABLE distributors (
    distributor_id VARCHAR NOT NULL, distributor_name VARCHAR, city VARCHAR, state VARCHAR, zip VARCHAR,
    latitude DOUBLE, longitude DOUBLE, PRIMARY KEY (distributor_id)
);
CREATE TABLE order_lines (
    order_id VARCHAR NOT NULL, line INTEGER NOT NULL, ordered_at TIMESTAMP NOT NULL,
    customer_id VARCHAR NOT NULL, product_id VARCHAR NOT NULL, salesman_id VARCHAR, distributor_id VARCHAR,
    channel VARCHAR NOT NULL, quantity INTEGER NOT NULL, unit_price DOUBLE NOT NULL,
    discount DOUBLE NOT NULL, revenue DOUBLE NOT NULL, cost DOUBLE, profit DOUBLE,
    PRIMARY KEY (order_id, line),
    CHECK (channel IN ('direct', 'trade')), CHECK (quantity > 0), CHECK (discount >= 0 AND discount < 1)
);
CREATE TABLE region_goals (
    month DATE NOT NULL, region VARCHAR NOT NULL, revenue_target DOUBLE NOT NULL, PRIMARY KEY (month, region)
);
CREATE TABLE salesman_goals (
    month DATE NOT NULL, salesman_id VARCHAR NOT NULL, revenue_target DOUBLE NOT NULL,
    PRIMARY KEY (month, salesman_id)
);
"""

VERSION_0_ROWS = """
INSERT INTO products VALUES ('P-1', 'Chair', 'Furniture', 'Chairs', 100, 60, NULL, NULL);
INSERT INTO customers VALUES
    ('C-1', 'Ann', 'Austin', 'TX', '73301', 'Central', 30.27, -97.74, '2024-01-05 10:00'),
    ('C-2', 'Bob', NULL, NULL, NULL, NULL, NULL, NULL, '2024-02-01 09:00');  -- an invoice-log customer
INSERT INTO order_lines VALUES
    ('O-1', 1, '2024-01-05 10:00', 'C-1', 'P-1', NULL, NULL, 'direct', 2, 100, 0, 200, 120, 80),
    ('O-1', 2, '2024-01-05 10:00', 'C-1', 'P-1', NULL, NULL, 'direct', 1, 100, 0.1, 90, 60, 30),
    ('O-2', 1, '2024-02-01 09:00', 'C-2', 'P-1', NULL, NULL, 'direct', 1, 100, 0, 100, 60, 40);
INSERT INTO region_goals VALUES ('2024-01-01', 'Central', 1000);
"""


def make_version_0_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(VERSION_0_DDL)
        con.execute(VERSION_0_ROWS)


def line_geography(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], tuple]:
    rows = con.execute(
        f"SELECT order_id, line, {', '.join(LINE_GEOGRAPHY_COLUMNS)} FROM order_lines ORDER BY ALL"
    ).fetchall()
    return {(order_id, line): tuple(rest) for order_id, line, *rest in rows}


def test_a_version_0_warehouse_is_migrated_on_a_writable_open(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_version_0_warehouse(path)
    with connect(path) as con:
        assert stored_version(con) == SCHEMA_VERSION
        history = con.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
        assert [version for version, _ in history] == [m.version for m in migrations.MIGRATIONS]
        # every line took its customer's address, the only geography an old warehouse has
        austin = ("Austin", "TX", "73301", "Central", "United States", 30.27, -97.74)
        assert line_geography(con) == {
            ("O-1", 1): austin,
            ("O-1", 2): austin,
            ("O-2", 1): (None,) * len(LINE_GEOGRAPHY_COLUMNS),
        }
        assert con.execute("SELECT customer_id, country FROM customers ORDER BY 1").fetchall() == [
            ("C-1", "United States"),
            ("C-2", None),
        ]
        # nothing else moved, and the tables an older release did not have are there, empty
        assert con.execute("SELECT sum(revenue), sum(profit), count(*) FROM order_lines").fetchone() == (
            390,
            150,
            3,
        )
        counts = table_counts(con)
        assert (counts["region_goals"], counts["category_goals"], counts["product_goals"]) == (1, 0, 0)
        stored_columns = [row[0] for row in con.execute("DESCRIBE order_lines").fetchall()]
        assert stored_columns == ORDER_LINES.column_names  # same order as a new warehouse's


def test_a_migrated_warehouse_takes_new_lines_and_opens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_version_0_warehouse(path)
    with connect(path) as con:
        con.execute(
            "INSERT INTO order_lines (order_id, line, ordered_at, customer_id, product_id, channel, "
            "quantity, unit_price, discount, revenue, ship_city, ship_country) VALUES "
            "('O-3', 1, ?, 'C-1', 'P-1', 'direct', 1, 100, 0, 100, 'Lyon', 'France')",
            [datetime(2024, 3, 1)],
        )
    with connect(path) as con:  # a second open has nothing to do
        assert con.execute("SELECT count(*) FROM schema_version").fetchone() == (len(migrations.MIGRATIONS),)
    with connect(path, read_only=True) as con:
        assert line_geography(con)[("O-3", 1)][:5] == ("Lyon", None, None, None, "France")


def test_a_read_only_open_of_an_old_warehouse_migrates_it_first(tmp_path: Path) -> None:
    # What `salespulse data info` does on a checkout upgraded under an existing warehouse.
    path = tmp_path / "old.duckdb"
    make_version_0_warehouse(path)
    with connect(path, read_only=True) as con:
        assert stored_version(con) == SCHEMA_VERSION
        assert "ship_city" in [row[0] for row in con.execute("DESCRIBE order_lines").fetchall()]


def test_an_old_warehouse_held_by_another_process_says_how_to_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_version_0_warehouse(path)
    # A read-only connection can't migrate (another process holding the file forces one): it says how.
    outdated = pytest.raises(WarehouseOutdated, match="open it once writable to migrate")
    with duckdb.connect(str(path), read_only=True) as raw, outdated as raised:
        migrations.require_current(raw, path)
    assert raised.value.version == 0
    migrations.main([str(path)])
    with connect(path, read_only=True) as con:
        assert stored_version(con) == SCHEMA_VERSION


def test_a_failed_migration_leaves_the_warehouse_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    make_version_0_warehouse(path)

    def half_done(con: duckdb.DuckDBPyConnection) -> None:
        migrations._add_line_geography(con)
        raise RuntimeError("killed halfway")

    broken = migrations.Migration(1, "breaks", half_done)
    monkeypatch.setattr(migrations, "MIGRATIONS", (broken,))
    with pytest.raises(RuntimeError, match="killed halfway"):
        connect(path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert stored_version(con) == 0
        assert len(con.execute("DESCRIBE order_lines").fetchall()) == len(ORDER_LINES.columns) - len(
            LINE_GEOGRAPHY_COLUMNS
        )


def test_a_new_warehouse_starts_at_the_current_version(tmp_path: Path) -> None:
    with connect(tmp_path / "new.duckdb") as con:
        assert stored_version(con) == SCHEMA_VERSION
        assert set(table_counts(con)) == {t.name for t in ALL_TABLES}


def test_a_warehouse_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    with connect(path) as con:
        con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [SCHEMA_VERSION + 1])
    for read_only in (False, True):
        with pytest.raises(WarehouseTooNew, match="upgrade salespulse"):
            connect(path, read_only=read_only)
