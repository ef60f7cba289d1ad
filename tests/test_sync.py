"""`salespulse data sync`: order lines pulled from a real PostgreSQL table, incrementally, exactly once.

The source is a real PostgreSQL server (tests/postgres_support.py) holding the shipped sample export
(data/examples/superstore_sample.csv) as an operational table would: every column as the export writes it
(US dates, numbers as text, some amounts as currency strings, customers shipping to several addresses),
a primary key and an ``updated_at`` watermark that many rows share. Expected figures are computed with SQL
on the source, never by the import code under test.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from salespulse.config import get_settings
from salespulse.dataset.importing import ImportFailed
from salespulse.dataset.mapping import load_mapping
from salespulse.dataset.sync import SyncFailed, SyncRejected, sync
from salespulse.warehouse import owner

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FILE = REPO_ROOT / "data" / "examples" / "superstore_sample.csv"
MAPPING_FILE = REPO_ROOT / "data" / "mappings" / "superstore.yaml"
TABLE_MAPPING_FILE = REPO_ROOT / "data" / "mappings" / "orders_table.yaml"
BASE_TIME = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
TIE_GROUP = 25  # rows written by one source transaction share their updated_at
SECOND_ADDRESS = {"City": "Seattle", "State": "Washington", "Postal Code": "98105", "Region": "West"}
# What the source says a row's revenue is, read with SQL (currency symbol and thousands separators dropped).
SOURCE_REVENUE = """replace(replace("Sales", '$', ''), ',', '')::numeric"""


# --- the source table ---


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE_FILE.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def messy(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every 7th amount as a currency string; half the lines of the busiest customer shipped elsewhere."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["Customer ID"]] = counts.get(row["Customer ID"], 0) + 1
    busiest = max(counts, key=counts.__getitem__)
    seen = 0
    for number, row in enumerate(rows):
        if number % 7 == 3:
            row["Sales"] = f"${float(row['Sales']):,.2f}"
        if row["Customer ID"] == busiest:
            seen += 1
            if seen % 2:
                row.update(SECOND_ADDRESS)
    return rows


def create_source(url: str, rows: list[dict[str, str]], *, start: datetime = BASE_TIME) -> list[str]:
    """The table ``orders``: the export's columns as text, "Row ID" the primary key, and updated_at shared
    by each group of TIE_GROUP rows. Returns the export's column names."""
    columns = list(rows[0])
    ddl = ", ".join(
        f'"{name}" integer PRIMARY KEY' if name == "Row ID" else f'"{name}" text' for name in columns
    )
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE TABLE orders ({ddl}, updated_at timestamptz NOT NULL)")
        con.execute('CREATE INDEX ON orders (updated_at, "Row ID")')
    insert(url, rows, [start + timedelta(minutes=n // TIE_GROUP) for n in range(len(rows))])
    return columns


def insert(url: str, rows: list[dict[str, str]], stamps: list[datetime]) -> None:
    columns = ", ".join(f'"{name}"' for name in rows[0])
    with (
        psycopg.connect(url) as con,
        con.cursor() as cur,
        cur.copy(f"COPY orders ({columns}, updated_at) FROM STDIN") as copy,
    ):
        for row, stamp in zip(rows, stamps, strict=True):
            copy.write_row([*row.values(), stamp])


def source_totals(url: str) -> tuple[int, float, int]:
    with psycopg.connect(url) as con:
        count, revenue, quantity = con.execute(
            f'SELECT count(*), sum({SOURCE_REVENUE}), sum("Quantity"::integer) FROM orders'
        ).fetchone()
    return count, float(revenue), quantity


def source_lines(url: str) -> dict[tuple[str, int], str]:
    """(order id, row id) -> ship-to city of every source row."""
    with psycopg.connect(url) as con:
        rows = con.execute('SELECT "Order ID", "Row ID", "City" FROM orders').fetchall()
    return {(order, row_id): city for order, row_id, city in rows}


# --- the warehouse ---


def warehouse_totals(path: Path) -> tuple[int, float, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        count, revenue, quantity = con.execute(
            "SELECT count(*), coalesce(sum(revenue), 0), coalesce(sum(quantity), 0) FROM order_lines"
        ).fetchone()
    return count, revenue, quantity


def warehouse_lines(path: Path) -> dict[tuple[str, int], str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("SELECT order_id, line, ship_city FROM order_lines").fetchall()
    return {(order, line): city for order, line, city in rows}


def saved_rows(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT coalesce(sum(rows_synced), 0) FROM sync_state").fetchone()[0]


def assert_same_totals(warehouse: tuple[int, float, int], source: tuple[int, float, int]) -> None:
    assert warehouse[0] == source[0]
    assert warehouse[1] == pytest.approx(source[1], rel=1e-9)
    assert warehouse[2] == source[2]


def sync_orders(url: str, path: Path, **options: object) -> object:
    return sync(
        url, load_mapping(MAPPING_FILE), table="orders", watermark_column="updated_at", path=path, **options
    )


# --- syncing ---


@pytest.mark.slow
def test_sync_imports_every_row_then_only_the_new_ones(postgres_url: str, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    rows = messy(sample_rows())
    create_source(postgres_url, rows)

    first = sync_orders(postgres_url, warehouse, batch_rows=40)  # chunk ends fall inside tie groups

    assert (first.rows_read, first.inserted, first.rejected) == (300, 300, 0)
    assert_same_totals(warehouse_totals(warehouse), source_totals(postgres_url))
    # Every row once, each line where the source says it was shipped (the busiest customer: two cities).
    assert warehouse_lines(warehouse) == source_lines(postgres_url)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (most_cities,) = con.execute(
            "SELECT max(n) FROM (SELECT count(DISTINCT ship_city) AS n FROM order_lines GROUP BY customer_id)"
        ).fetchone()
    assert most_cities == 2  # the busiest customer's lines keep their two ship-to cities

    # New rows: some stamped with the last synced watermark itself (after its key), some later.
    last_stamp = BASE_TIME + timedelta(minutes=(len(rows) - 1) // TIE_GROUP)
    extra = [dict(row) for row in sample_rows()[:30]]
    for number, row in enumerate(extra, start=1):
        row["Row ID"] = str(1000 + number)
        row["Order ID"] = f"NEW-{number // 3}"
    insert(postgres_url, extra, [last_stamp] * 12 + [last_stamp + timedelta(hours=1)] * 18)

    second = sync_orders(postgres_url, warehouse, batch_rows=40)

    assert (second.rows_read, second.inserted, second.updated) == (30, 30, 0)
    assert second.rows_synced == 330 == saved_rows(warehouse)
    assert_same_totals(warehouse_totals(warehouse), source_totals(postgres_url))
    assert warehouse_lines(warehouse) == source_lines(postgres_url)
    assert sync_orders(postgres_url, warehouse).rows_read == 0


@pytest.mark.slow
def test_a_changed_row_replaces_its_line(postgres_url: str, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    create_source(postgres_url, sample_rows()[:60])
    sync_orders(postgres_url, warehouse)
    with psycopg.connect(postgres_url) as con:
        con.execute(
            """UPDATE orders SET "Quantity" = '7', "Sales" = '$1,000.00', updated_at = now()
               WHERE "Row ID" = 5"""
        )

    again = sync_orders(postgres_url, warehouse)

    assert (again.rows_read, again.inserted, again.updated) == (1, 0, 1)
    assert_same_totals(warehouse_totals(warehouse), source_totals(postgres_url))


@pytest.mark.slow
def test_killed_sync_resumes_and_imports_every_row_exactly_once(
    postgres_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    warehouse = tmp_path / "w.duckdb"
    create_source(postgres_url, messy(sample_rows()))
    command = [
        "salespulse", "data", "sync", "--from", postgres_url, "--mapping", str(MAPPING_FILE),
        "--table", "orders", "--watermark-column", "updated_at", "--batch-rows", "20",
        "--warehouse", str(warehouse),
    ]  # fmt: skip

    kill_after_60_rows(command, cli_env)

    committed, _, _ = warehouse_totals(warehouse)
    assert 60 <= committed < 300, "killed midway: some chunks, not all"
    assert committed % 20 == 0 and saved_rows(warehouse) == committed  # whole chunks, each with its position

    rerun = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    remaining = 300 - committed
    assert f"Synced {remaining} of {remaining} rows" in " ".join(rerun.stderr.split())  # nothing read twice
    assert_same_totals(warehouse_totals(warehouse), source_totals(postgres_url))
    assert warehouse_lines(warehouse) == source_lines(postgres_url)
    assert saved_rows(warehouse) == 300


@pytest.mark.slow
def test_an_invalid_row_stops_the_sync_at_its_chunk(postgres_url: str, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    rows = sample_rows()
    rows[56]["Order Date"] = "13/45/2016"  # Row ID 57: in the second chunk of 40
    rows[57]["Quantity"] = "two"
    create_source(postgres_url, rows)

    with pytest.raises(SyncRejected) as stopped:
        sync_orders(postgres_url, warehouse, batch_rows=40)

    problems = stopped.value.describe()
    assert "2 invalid rows in a chunk of 40" in stopped.value.summary()
    assert any(p.startswith("Row ID 57, column 'Order Date': '13/45/2016' is not a date") for p in problems)
    assert any(p.startswith("Row ID 58, column 'Quantity': 'two' is not a whole number") for p in problems)
    lines = warehouse_lines(warehouse)
    assert {line for _, line in lines} == set(range(1, 41)), "the first chunk only: nothing of the second"
    assert saved_rows(warehouse) == 40

    # With --skip-invalid the run resumes at that chunk; the two rows go to a reject file, by key.
    skipped = sync_orders(postgres_url, warehouse, batch_rows=40, skip_invalid=True)

    assert (skipped.rows_read, skipped.inserted, skipped.rejected) == (260, 258, 2)
    assert {line for _, line in warehouse_lines(warehouse)} == set(range(1, 301)) - {57, 58}
    (reject_file,) = skipped.reject_files
    rejected = list(csv.DictReader(reject_file.open()))
    assert [row["Row ID"] for row in rejected] == ["57", "58"]
    assert "Order Date" in rejected[0]["reason"] and "Quantity" in rejected[1]["reason"]


@pytest.mark.slow
def test_dates_are_read_one_way_for_the_whole_sync(postgres_url: str, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    rows = sample_rows()[:6]
    dates = ["1/2/2024", "3/4/2024", "5/6/2024", "7/8/2024", "2/9/2024", "1/31/2024"]
    for row, text in zip(rows, dates, strict=True):
        row["Order Date"] = text
    create_source(postgres_url, rows)

    # Chunks of 2: the first ones alone read both ways; 1/31/2024 settles it for all, as in a file.
    sync_orders(postgres_url, warehouse, batch_rows=2)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = con.execute(
            "SELECT strftime(ordered_at, '%Y-%m-%d') FROM order_lines ORDER BY line"
        ).fetchall()
        (order,) = con.execute("SELECT date_order FROM sync_state").fetchone()
    assert [day for (day,) in stored] == [
        "2024-01-02", "2024-03-04", "2024-05-06", "2024-07-08", "2024-02-09", "2024-01-31",
    ]  # fmt: skip
    assert order == "month first"

    # Later rows that read both ways are read as the sync settled, not refused as ambiguous.
    later = [dict(rows[0], **{"Row ID": "100", "Order ID": "LATER-1", "Order Date": "4/5/2024"})]
    insert(postgres_url, later, [BASE_TIME + timedelta(days=1)])
    assert sync_orders(postgres_url, warehouse).inserted == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT ordered_at FROM order_lines WHERE line = 100").fetchone()[0] == datetime(
            2024, 4, 5
        )


@pytest.mark.slow
def test_a_typed_table_syncs_with_the_example_mapping(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data/mappings/orders_table.yaml against the table its comment describes (timestamps and numbers
    typed), read by its source section; and the same rows read through a query."""
    monkeypatch.setenv("SALESPULSE_WAREHOUSE_TIMEZONE", "UTC")
    get_settings.cache_clear()
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("CREATE SCHEMA sales")
        con.execute(
            """
            CREATE TABLE sales.order_lines (
                id bigserial PRIMARY KEY, order_no text NOT NULL, line_no integer NOT NULL,
                ordered_at timestamptz NOT NULL, customer_id text NOT NULL, customer text,
                ship_city text, ship_state text, ship_zip text, ship_country text,
                sku text NOT NULL, description text, category text, subcategory text, rep_id text,
                quantity integer NOT NULL, unit_price numeric(12, 2) NOT NULL,
                discount numeric(4, 3) NOT NULL DEFAULT 0, line_cost numeric(12, 2),
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        con.execute(
            """
            INSERT INTO sales.order_lines (order_no, line_no, ordered_at, customer_id, customer, ship_city,
                ship_state, ship_zip, ship_country, sku, description, category, subcategory, rep_id,
                quantity, unit_price, discount, line_cost, updated_at)
            SELECT 'SO-' || (n / 4), n % 4 + 1, TIMESTAMPTZ '2024-05-01 10:30+02' + n * INTERVAL '7 hours',
                'C' || (n % 13), 'Customer ' || (n % 13), 'Austin', 'TX', '78701', 'USA',
                'SKU-' || (n % 17), 'Product ' || (n % 17), 'Office Supplies', 'Paper', 'R' || (n % 3),
                1 + n % 5, 9.99 + n, (n % 3) * 0.05, 5 + n,
                TIMESTAMPTZ '2024-06-01' + (n / 10) * INTERVAL '1 s'
            FROM generate_series(0, 99) AS n
            """
        )
        expected = con.execute(
            "SELECT count(*), sum(quantity * unit_price * (1 - discount)), sum(quantity) "
            "FROM sales.order_lines"
        ).fetchone()
    mapping = load_mapping(TABLE_MAPPING_FILE)

    result = sync(postgres_url, mapping, batch_rows=30, path=tmp_path / "table.duckdb")

    assert (result.rows_read, result.inserted) == (100, 100)
    assert_same_totals(
        warehouse_totals(tmp_path / "table.duckdb"), (expected[0], float(expected[1]), expected[2])
    )
    with duckdb.connect(str(tmp_path / "table.duckdb"), read_only=True) as con:
        first = con.execute(
            "SELECT ordered_at, ship_state, cost FROM order_lines WHERE order_id = 'SO-0' AND line = 1"
        )
        assert first.fetchone() == (datetime(2024, 5, 1, 8, 30), "TX", 5.0)  # 10:30+02 in UTC

    by_query = sync(
        postgres_url, mapping, query="SELECT * FROM sales.order_lines WHERE quantity > 0", key=["id"],
        batch_rows=30, path=tmp_path / "query.duckdb",
    )  # fmt: skip
    assert by_query.rows_read == 100
    # (float sums: DuckDB adds in parallel, in no fixed order)
    by_table = warehouse_totals(tmp_path / "table.duckdb")
    assert_same_totals(warehouse_totals(tmp_path / "query.duckdb"), by_table)


def test_what_cannot_sync_says_so_in_one_line(postgres_url: str, tmp_path: Path) -> None:
    create_source(postgres_url, sample_rows()[:5])
    warehouse = tmp_path / "w.duckdb"
    mapping = load_mapping(MAPPING_FILE)
    closed_port = postgres_url.rsplit(":", 1)[0] + ":1/nothing"
    cases = {
        "cannot reach the source database 127.0.0.1:1/nothing": {
            "source_url": closed_port,
            "table": "orders",
        },
        "has no table 'missing'": {"table": "missing"},
        "has no column 'changed_at' (the watermark)": {"table": "orders", "watermark_column": "changed_at"},
        "map line_id (or line)": {"table": "orders", "key": ["Order ID", "Product ID"]},
    }
    for message, options in cases.items():
        source_url = str(options.pop("source_url", postgres_url))
        settings = {"watermark_column": "updated_at"} | options
        with pytest.raises(SyncFailed, match=re.escape(message)):
            sync(source_url, mapping, path=warehouse, **settings)
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute('ALTER TABLE orders RENAME COLUMN "Order Date" TO "Ordered"')
    with pytest.raises(SyncFailed, match=r"no column 'Order Date' \(for ordered_at\)"):
        sync(postgres_url, mapping, table="orders", watermark_column="updated_at", path=warehouse)
    assert not warehouse.exists(), "a sync that could not start leaves no warehouse behind"


def test_ambiguous_dates_ask_for_a_date_format(postgres_url: str, tmp_path: Path) -> None:
    rows = sample_rows()[:2]
    rows[0]["Order Date"], rows[1]["Order Date"] = "1/2/2024", "3/4/2024"
    create_source(postgres_url, rows)
    with pytest.raises(ImportFailed, match="date_format"):
        sync_orders(postgres_url, tmp_path / "w.duckdb")


# --- command line ---


def run_sync(cli_env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["salespulse", "data", "sync", *map(str, args)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    done.stderr = " ".join(done.stderr.split())  # rich wraps to the terminal width
    return done


@pytest.mark.slow
def test_cli_sync_errors_are_one_line_and_exit_2(
    postgres_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    create_source(postgres_url, sample_rows()[:5])
    warehouse = tmp_path / "w.duckdb"
    common = ("--mapping", MAPPING_FILE, "--watermark-column", "updated_at", "--warehouse", warehouse)
    closed_port = postgres_url.rsplit(":", 1)[0] + ":1/nothing"

    unreachable = run_sync(cli_env, "--from", closed_port, "--table", "orders", *common)
    missing = run_sync(cli_env, "--from", postgres_url, "--table", "nowhere", *common)

    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("error: cannot reach the source database 127.0.0.1:1/nothing")
    assert "Traceback" not in unreachable.stderr
    assert missing.returncode == 2 and "has no table 'nowhere'" in missing.stderr

    done = run_sync(cli_env, "--from", postgres_url, "--table", "orders", *common)
    assert done.returncode == 0, done.stderr
    assert "Synced 5 of 5 rows" in done.stderr and ": 5 new, 0 replaced (up to updated_at" in done.stderr

    # While the service owns the warehouse, the sync says what to do instead of failing on DuckDB's lock.
    owner.claim(warehouse, url="http://127.0.0.1:9", instance="test")
    try:
        owned = run_sync(cli_env, "--from", postgres_url, "--table", "orders", *common)
    finally:
        owner.release(warehouse)
    assert owned.returncode == 2 and "owns" in owned.stderr and "stop it" in owned.stderr


@pytest.mark.slow
def test_cli_follow_picks_up_new_rows(postgres_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    create_source(postgres_url, sample_rows()[:10])
    warehouse = tmp_path / "w.duckdb"
    following = subprocess.Popen(
        ["salespulse", "data", "sync", "--from", postgres_url, "-m", str(MAPPING_FILE), "--table", "orders",
         "--watermark-column", "updated_at", "--follow", "0.2", "--warehouse", str(warehouse)],
        env=cli_env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert following.stderr is not None
    try:
        assert "Synced 10 of 10 rows" in _line_starting(following, "Synced 10 of 10 rows from")
        extra = [dict(sample_rows()[0], **{"Row ID": "500", "Order ID": "LATE-1"})]
        insert(postgres_url, extra, [BASE_TIME + timedelta(days=2)])
        assert "1 new" in _line_starting(following, "Synced 1 of 1 rows from")
    finally:
        following.send_signal(signal.SIGINT)
        following.wait(timeout=30)
    assert following.returncode == 0
    assert warehouse_totals(warehouse)[0] == 11


def _line_starting(process: subprocess.Popen[str], prefix: str, timeout: float = 60) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if line.startswith(prefix):
            return line
        assert time.monotonic() < deadline, f"no line starting {prefix!r}"
    raise AssertionError(f"the process ended without a line starting {prefix!r}")


# --- into the system of record (SALESPULSE_DATABASE_URL) ---


def use_record(postgres_server: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """A second, empty database of the server as the system of record (the source is another one)."""
    url = postgres_server.new_database("record")  # type: ignore[attr-defined]
    monkeypatch.setenv("SALESPULSE_DATABASE_URL", url)
    get_settings.cache_clear()
    return url


def record_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def record_revenue_by_key(url: str) -> dict[tuple[str, int], float]:
    return {
        (o, line): r for o, line, r in record_rows(url, "SELECT order_id, line, revenue FROM order_lines")
    }


def source_revenue_by_key(url: str) -> dict[tuple[str, int], float]:
    """(order id, row id) -> revenue as the source writes it, read with SQL."""
    with psycopg.connect(url) as con:
        rows = con.execute(f'SELECT "Order ID", "Row ID", {SOURCE_REVENUE} FROM orders').fetchall()
    return {(order, row_id): float(revenue) for order, row_id, revenue in rows}


def record_position(url: str) -> tuple[int, str]:
    ((rows_synced, last_key),) = record_rows(url, "SELECT rows_synced, last_key[1] FROM sync_state")
    return rows_synced, last_key


@pytest.mark.slow
def test_sync_into_the_record_reaches_its_replicas(
    postgres_server: object,
    postgres_url: str,
    isolated_settings: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from salespulse.analytics.engine import AnalyticsEngine
    from salespulse.analytics.replica import Replica
    from salespulse.warehouse.record import SystemOfRecord
    from salespulse.warehouse.store import connect

    create_source(postgres_url, messy(sample_rows()))
    record_url = use_record(postgres_server, monkeypatch)
    record = SystemOfRecord(record_url)
    copy = Replica(
        AnalyticsEngine(connect(tmp_path / "copy.duckdb")), SystemOfRecord(record_url), poll_seconds=0.5
    )
    copy.start()
    try:
        assert copy.caught_up.wait(60), copy.last_error

        result = sync(
            postgres_url,
            load_mapping(MAPPING_FILE),
            table="orders",
            watermark_column="updated_at",
            batch_rows=40,
        )

        assert (result.rows_read, result.inserted, result.rejected, result.chunks) == (300, 300, 0, 8)
        count, revenue, _ = source_totals(postgres_url)
        assert record.sales_totals() == (count, pytest.approx(revenue, rel=1e-9))
        assert record_revenue_by_key(record_url) == pytest.approx(source_revenue_by_key(postgres_url))
        # Lines without geography took their customer's address in the record: each where the source says.
        lines = record_rows(record_url, "SELECT order_id, line, ship_city FROM order_lines")
        assert {(order, line): city for order, line, city in lines} == source_lines(postgres_url)
        assert record_position(record_url) == (300, "300")
        assert not isolated_settings.exists(), "no warehouse file: the record is where the sync writes"
        # The replica shows the synced lines like any write to the record (it was told by NOTIFY).
        assert copy.wait_for(record.head(), timeout=30)
        with copy.engine.cursor() as con:
            shown = con.execute("SELECT count(*), sum(revenue) FROM order_lines").fetchone()
        assert shown == (count, pytest.approx(revenue, rel=1e-9))
        assert sync_orders(postgres_url, tmp_path / "unused.duckdb").rows_read == 0
    finally:
        copy.stop()
        record.close()


@pytest.mark.slow
def test_two_syncs_of_one_source_cannot_both_advance_it(
    postgres_server: object, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_source(postgres_url, sample_rows()[:60])
    record_url = use_record(postgres_server, monkeypatch)
    nested: list[object] = []

    def meanwhile(progress: object) -> None:
        if not nested:  # after the first chunk, another sync of the same source runs to the end
            nested.append(sync_orders(postgres_url, tmp_path / "unused.duckdb", batch_rows=20))

    with pytest.raises(SyncFailed, match=r"another sync of .* moved its saved position"):
        sync_orders(postgres_url, tmp_path / "unused.duckdb", batch_rows=20, progress=meanwhile)

    assert nested[0].rows_read == 40  # type: ignore[attr-defined]
    assert record_rows(record_url, "SELECT count(*) FROM order_lines") == [(60,)]
    assert record_position(record_url) == (60, "60"), "each row counted once"


@pytest.mark.slow
def test_killed_cli_sync_into_the_record_resumes_exactly_once(
    postgres_server: object,
    postgres_url: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_source(postgres_url, messy(sample_rows()))
    record_url = use_record(postgres_server, monkeypatch)
    env = {**cli_env, "SALESPULSE_DATABASE_URL": record_url}
    warehouse = tmp_path / "replica.duckdb"
    command = [
        "salespulse", "data", "sync", "--from", postgres_url, "--mapping", str(MAPPING_FILE),
        "--table", "orders", "--watermark-column", "updated_at", "--batch-rows", "20",
        "--warehouse", str(warehouse),
    ]  # fmt: skip

    kill_after_60_rows(command, env)

    ((committed,),) = record_rows(record_url, "SELECT count(*) FROM order_lines")
    assert 60 <= committed < 300, "killed midway: some chunks, not all"
    assert committed % 20 == 0 and record_position(record_url)[0] == committed  # each chunk with its position

    # A replica serving over the record does not stop the sync: it owns its copy, not the record.
    owner.claim(warehouse, url="http://127.0.0.1:9", instance="test")
    try:
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        owner.release(warehouse)

    assert rerun.returncode == 0, rerun.stderr
    remaining = 300 - committed
    assert f"Synced {remaining} of {remaining} rows" in " ".join(rerun.stderr.split())  # nothing read twice
    assert record_rows(record_url, "SELECT count(*), count(DISTINCT (order_id, line)) FROM order_lines") == [
        (300, 300)
    ]
    assert record_revenue_by_key(record_url) == pytest.approx(source_revenue_by_key(postgres_url))
    assert record_position(record_url) == (300, "300")
    assert not warehouse.exists()


def kill_after_60_rows(command: list[str], env: dict[str, str]) -> None:
    """Run the CLI sync and kill -9 it once it says (a line per committed chunk, not being a terminal)
    that 60 rows are in; it must still have been running then."""
    syncing = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert syncing.stderr is not None
    seen = []
    for line in syncing.stderr:
        seen.append(line)
        if line.startswith("Synced 60 of 300 rows"):
            assert syncing.poll() is None, "the sync ended before it could be killed"
            os.kill(syncing.pid, signal.SIGKILL)
            break
    syncing.wait(timeout=60)
    assert syncing.returncode == -signal.SIGKILL, "".join(seen)
