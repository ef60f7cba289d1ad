"""Benchmark: `data import` speed and peak memory, and the 1,000-line upserts of the real-time write path.

Stages, each in a fresh child process so that its peak resident memory is its own:

1. import a superstore-style CSV of --rows lines into a new warehouse (rows/s, peak memory);
2. import the same file again: every line is replaced, no figure changes (rows/s, peak memory);
3. into a warehouse of --big-rows order lines, upsert --batches batches of 1,000 new lines each, then the
   same batches again (replacing lines), through ``upsert_sales`` as the sales endpoint will (lines/s).

    .venv/bin/python bench/bench_import.py [--rows 1000000] [--big-rows 10000000] [--batches 30]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the superstore file generator lives with the tests

from superstore_files import write_superstore_csv  # noqa: E402

from salespulse.dataset.importing import import_file  # noqa: E402
from salespulse.warehouse.load import upsert_sales  # noqa: E402
from salespulse.warehouse.store import connect  # noqa: E402

MAPPING = REPO_ROOT / "data" / "mappings" / "superstore.yaml"
BATCH_LINES = 1_000
BIG_CUSTOMERS = 200_000
BIG_PRODUCTS = 5_000


def in_child(function: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run function(*args) in a new process; returns its result, seconds and peak resident MB."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measured, (function, *args))


def _measured(function: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    started = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - started
    return result, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_once(file: Path, warehouse: Path) -> tuple[int, int]:
    result = import_file(file, MAPPING, path=warehouse)
    return result.inserted, result.updated


def build_big_warehouse(warehouse: Path, lines: int) -> None:
    """A warehouse of `lines` order lines (4 per order) with its customers and products, made in SQL."""
    with connect(warehouse) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            f"INSERT INTO customers (customer_id, first_purchase) "
            f"SELECT 'C' || i, TIMESTAMP '2020-01-01' FROM range({BIG_CUSTOMERS}) t(i)"
        )
        con.execute(
            f"INSERT INTO products (product_id, product_name, category, subcategory, list_price, unit_cost) "
            f"SELECT 'P' || i, 'Product ' || i, 'Office Supplies', 'Paper', 10.0, 6.0 "
            f"FROM range({BIG_PRODUCTS}) t(i)"
        )
        con.execute(
            f"""
            INSERT INTO order_lines
            SELECT 'O' || (i // 4), i % 4 + 1, TIMESTAMP '2020-01-01' + to_minutes(i // 4),
                   'C' || (i % {BIG_CUSTOMERS}), 'P' || (i % {BIG_PRODUCTS}), 'S' || (i % 60), NULL, 'direct',
                   1 + i % 5, 10.0, 0.0, (1 + i % 5) * 10.0, (1 + i % 5) * 6.0, (1 + i % 5) * 4.0
            FROM range({lines}) t(i)
            """
        )


def sales_batch(number: int) -> pd.DataFrame:
    """1,000 new lines (250 orders of 4) of known customers and products, as the sales endpoint gets them."""
    i = pd.RangeIndex(BATCH_LINES)
    quantity = 1 + i % 5
    return pd.DataFrame(
        {
            "order_id": f"NEW-{number}-" + (i // 4).astype(str),
            "line": i % 4 + 1,
            "ordered_at": pd.Timestamp("2026-01-01") + pd.to_timedelta(number, unit="min"),
            "customer_id": "C" + ((i * 7919 + number) % BIG_CUSTOMERS).astype(str),
            "product_id": "P" + ((i * 31 + number) % BIG_PRODUCTS).astype(str),
            "salesman_id": "S" + (i % 60).astype(str),
            "channel": "direct",
            "quantity": quantity,
            "unit_price": 12.5,
            "discount": 0.0,
            "revenue": quantity * 12.5,
            "cost": quantity * 7.0,
            "profit": quantity * 5.5,
        }
    )


def upsert_batches(warehouse: Path, batches: int) -> dict[str, list[float]]:
    """Seconds per upsert_sales call: first with new lines, then with the same lines again (replacing)."""
    frames = [sales_batch(n) for n in range(batches)]
    seconds: dict[str, list[float]] = {"new lines": [], "replaced lines": []}
    with connect(warehouse) as con:
        for kind in seconds:
            for frame in frames:
                started = time.perf_counter()
                upsert_sales(con, frame)
                seconds[kind].append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="lines in the imported file")
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="lines in the warehouse for upserts")
    parser.add_argument("--batches", type=int, default=30, help="1,000-line batches to upsert")
    args = parser.parse_args()
    console = Console(stderr=True)

    table = Table(title="salespulse data import / upsert_sales")
    table.add_column("stage")
    for column in ("rows", "seconds", "rows/s", "peak memory MB"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "superstore.csv"
        _, seconds, _ = in_child(write_superstore_csv, file, args.rows)
        console.print(f"wrote {args.rows:,} lines ({file.stat().st_size / 2**20:,.0f} MB) in {seconds:.1f} s")

        warehouse = Path(tmp) / "import.duckdb"
        for stage in ("import, new warehouse", "import again, same file"):
            (inserted, updated), seconds, peak = in_child(import_once, file, warehouse)
            console.print(f"{stage}: {inserted:,} new, {updated:,} replaced")
            table.add_row(
                stage, f"{args.rows:,}", f"{seconds:.1f}", f"{args.rows / seconds:,.0f}", f"{peak:,.0f}"
            )

        big = Path(tmp) / "big.duckdb"
        _, seconds, _ = in_child(build_big_warehouse, big, args.big_rows)
        console.print(f"built a warehouse of {args.big_rows:,} order lines in {seconds:.1f} s")
        timings, _, peak = in_child(upsert_batches, big, args.batches)
        for kind, per_batch in timings.items():
            median, worst = statistics.median(per_batch), max(per_batch)
            table.add_row(
                f"upsert {BATCH_LINES:,} {kind} into {args.big_rows:,}",
                f"{BATCH_LINES * len(per_batch):,}",
                f"{median * 1000:.0f} ms median, {worst * 1000:.0f} ms worst batch",
                f"{BATCH_LINES / median:,.0f}",
                f"{peak:,.0f}",
            )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
