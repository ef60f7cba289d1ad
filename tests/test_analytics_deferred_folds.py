"""Deferred folds (issue 14): a batch of new orders leaves the rollups to be folded a moment later, several
batches at once, and reads answer from each rollup with the unfolded lines' delta. Every read here is checked
against the same question asked of the order lines themselves, right after ingests of every kind (new orders,
late lines, replaced lines, lines moved to another customer, resent lines, new customers), so a fold that
lags, doubles or drops a write cannot pass for exact."""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from analytics_support import build_warehouse, close, copy_warehouse, open_engine, sale

from salespulse.analytics import rollups
from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.ingest import SalesBatch
from salespulse.analytics.query import Query
from salespulse.analytics.reports import run_report

QUERIES: list[dict[str, Any]] = [
    {"measures": ["revenue", "lines"], "dimensions": ["category", "region"]},
    {"measures": ["revenue", "units"], "dimensions": ["product"], "time_dimension": {"grain": "day"}},
    {"measures": ["customers", "new_customers", "revenue"], "time_dimension": {"grain": "month"}},
    {"measures": ["revenue", "orders"], "dimensions": ["state", "city", "zip"]},
    {
        "measures": ["revenue", "orders"],
        "dimensions": ["salesman", "channel"],
        "time_dimension": {"grain": "week"},
    },
    {"measures": ["revenue", "orders", "first_sale", "last_sale"], "dimensions": ["customer"]},
    {"measures": ["revenue", "orders"], "dimensions": ["customer_segment"]},
    {
        "measures": ["revenue", "orders", "units"],
        "dimensions": ["product", "channel"],
        "time_dimension": {"grain": "month"},
    },
    {
        "measures": ["revenue", "orders"],
        "dimensions": ["region", "state"],
        "time_dimension": {"grain": "quarter"},
    },
    {"measures": ["customers", "orders"], "dimensions": ["region"], "time_dimension": {"grain": "month"}},
    {
        "measures": ["revenue", "profit"],
        "dimensions": ["category", "subcategory"],
        "time_dimension": {"grain": "week"},
    },
]
"""Questions the rollups answer: each rollup answers one of them (the product pairs answer a report)."""
ROLLUP_NAMES = re.compile(r"\b(?:" + "|".join(rollups.ALL_TABLES) + r")\b")
REPORTS = ["new-vs-repeat-customers", "rfm-segments", "product-affinity", "top-customers", "sales-by-state"]


@pytest.fixture(scope="module")
def source_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_warehouse(tmp_path_factory.mktemp("deferred"))
    open_engine(path)._con.close()  # the copies start with their rollups built
    return path


@pytest.fixture
def engine(source_warehouse: Path, tmp_path: Path) -> Iterator[AnalyticsEngine]:
    """Lines are folded only when a batch that cannot wait comes (no folder thread, no line threshold);
    delta rows are compacted often."""
    engine = open_engine(
        copy_warehouse(source_warehouse, tmp_path), compact_after_rows=40, fold_after_lines=10**9
    )
    yield engine
    engine._con.close()


def ingest(engine: AnalyticsEngine, lines: list[dict[str, Any]], **extra: Any) -> None:
    engine.ingest(SalesBatch.model_validate({"lines": lines, **extra}))


def assert_same_rows(fast: list[dict[str, Any]], base: list[dict[str, Any]], what: str) -> None:
    """The same rows (in any order), floats to 1e-9."""

    def key(row: dict[str, Any]) -> str:
        return repr(sorted((k, v) for k, v in row.items() if not isinstance(v, float)))

    assert len(fast) == len(base), f"{what}: {len(fast)} rows from the rollups, {len(base)} from the lines"
    for mine, theirs in zip(sorted(fast, key=key), sorted(base, key=key), strict=True):
        assert mine.keys() == theirs.keys(), what
        for name, value in theirs.items():
            assert close(mine[name], value), (what, name, mine, theirs)


def assert_reads_exact(engine: AnalyticsEngine, rng: random.Random) -> None:
    """Two questions and a report, picked at random, answered from the rollups as from the order lines."""
    for spec in rng.sample(QUERIES, 2):
        query = {"limit": 50_000, **spec}
        assert ROLLUP_NAMES.search(engine.compile(Query.model_validate(query)).sql), spec  # a rollup answers
        fast = engine.run_query(query)
        assert_same_rows(fast["rows"], engine.run_query(query, use_rollups=False)["rows"], repr(spec))
    name = rng.choice(REPORTS)
    fast_rows = run_report(engine, name)["rows"]
    engine.use_rollups = False
    try:
        base_rows = run_report(engine, name)["rows"]
    finally:
        engine.use_rollups = True
    assert_same_rows(fast_rows, base_rows, name)


SALE_FIELDS = (
    "order_id", "line", "customer_id", "product_id", "salesman_id", "distributor_id", "channel", "quantity",
    "unit_price", "discount", "cost", "ship_city", "ship_state", "ship_zip", "ship_region", "ship_country",
    "ship_latitude", "ship_longitude",
)  # fmt: skip


def stored_orders(engine: AnalyticsEngine) -> list[list[dict[str, Any]]]:
    """The recent stored orders, each as the sale lines that would write it again."""
    rows = engine.fetch(
        f"SELECT {', '.join(SALE_FIELDS)}, strftime(ordered_at, '%Y-%m-%dT%H:%M:%S') AS ordered_at "
        "FROM order_lines WHERE ordered_at >= TIMESTAMP '2025-06-20' ORDER BY order_id, line"
    )
    orders: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        orders.setdefault(row["order_id"], []).append({k: v for k, v in row.items() if v is not None})
    return list(orders.values())


def test_every_read_between_ingests_answers_like_the_order_lines(engine: AnalyticsEngine) -> None:
    """A seeded stream of every kind of batch; after most, reads of random questions and reports. Lines of
    writes not folded yet are replaced, and their orders given to another customer, too. Orders stay whole
    (one customer, day, channel and ship-to), so the rollups keep answering."""
    rng = random.Random(20261126)
    customers = [r["customer_id"] for r in engine.fetch("SELECT customer_id FROM customers ORDER BY 1")]
    products = [r["product_id"] for r in engine.fetch("SELECT product_id FROM products ORDER BY 1")]
    stored = stored_orders(engine)
    written: dict[str, list[dict[str, Any]]] = {}  # the orders this test made, as last written
    kinds = [
        "new",
        "silent",
        "customer",
        "late",
        "replace",
        "move",
        "resend",
        "backdate",
        "rewrite",
        "regive",
    ]
    for batch in range(40):
        kind = kinds[batch] if batch < len(kinds) else rng.choice(kinds)
        day = f"2025-07-{rng.randint(1, 3):02d}T{rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}:00"
        lines = []
        for order in range(rng.randint(1, 3)):  # new orders of a few customers, often on the same days
            customer = rng.choice(customers[:40])
            lines += [
                sale(f"DF-{batch}-{order}", n, customer_id=customer, ordered_at=day,
                     product_id=rng.choice(products), quantity=rng.randint(1, 5))
                for n in range(1, rng.randint(2, 4))
            ]  # fmt: skip
        extra: dict[str, Any] = {}
        old = rng.choice(stored)
        # an order this test wrote whole (perhaps not folded yet), and a customer to give an order to
        pending = rng.choice(list(written.values())) if written else None
        other = rng.choice(customers)
        if kind == "silent":  # no ship-to: the lines take their customer's stored address
            lines = [{k: v for k, v in line.items() if not k.startswith("ship_")} for line in lines]
        elif kind == "customer":  # a new customer, with his address, on a new order
            customer = f"C-DF-{batch}"
            lines.append(sale(f"DF-{batch}-new", 1, customer_id=customer, ordered_at=day))
            extra["customers"] = [
                {"customer_id": customer, "state": "OR", "zip": "97201", "city": "Portland"}
            ]
        elif kind == "late":  # another line on an order stored long ago, as it was sold then
            lines.append({**old[0], "line": 60 + batch, "product_id": rng.choice(products)})
        elif kind == "replace":  # a stored line given another product and quantity
            lines.append({**rng.choice(old), "product_id": rng.choice(products), "quantity": 9})
        elif kind == "move":  # a stored order given to another customer: both first purchases may move
            lines += [{**line, "customer_id": other} for line in old]
        elif kind == "resend" and pending:  # an order sent before, unchanged
            lines += pending
        elif kind == "backdate":  # a sale from the past, earlier than the customer's first purchase
            lines.append(
                sale(f"DF-OLD-{batch}", 1, customer_id=rng.choice(customers), ordered_at="2023-03-01T09:00")
            )
        elif kind == "rewrite" and pending:  # a line of a write that may not be folded yet, changed
            line = rng.choice(pending)
            lines.append({**line, "quantity": line["quantity"] + 3, "product_id": rng.choice(products)})
        elif kind == "regive" and pending:  # ... or its order given to another customer
            lines += [{**line, "customer_id": other} for line in pending]
        lines = list({(line["order_id"], line["line"]): line for line in lines}.values())
        ingest(engine, lines, **extra)
        for line in (line for line in lines if line["order_id"].startswith("DF-")):
            order = written.setdefault(line["order_id"], [])
            order[:] = [w for w in order if w["line"] != line["line"]] + [line]
        if rng.random() < 0.6:  # some writes are read right away, others pile up before a read
            assert_reads_exact(engine, rng)
        if rng.random() < 0.2:  # and some are folded between
            engine.fold()
    assert_reads_exact(engine, rng)
    assert engine.refresh() is False  # the fingerprint kept beside the rollups is the data's
    engine.fold()
    assert_reads_exact(engine, rng)
    stale = engine.fetch(
        "SELECT c.customer_id FROM customers c LEFT JOIN "
        "(SELECT customer_id, min(ordered_at) AS first FROM order_lines GROUP BY 1) o USING (customer_id) "
        "WHERE c.first_purchase IS DISTINCT FROM o.first"
    )
    assert stale == []


def test_a_read_during_a_stream_never_misses_an_acknowledged_batch(engine: AnalyticsEngine) -> None:
    """One thread ingests batches of 7 lines of 90.0 each while the folder folds every few of them; two read
    the totals from rollups meanwhile. Every answer is a whole number of batches, at least as many as were
    acknowledged when the read began."""
    spec = {"measures": ["lines", "revenue"], "dimensions": ["category"]}
    base = engine.run_query({"measures": ["lines", "revenue"]}, use_rollups=False)["rows"][0]
    acknowledged = 0
    stop = threading.Event()
    problems: list[str] = []
    reads = [0, 0]

    def read(reader: int) -> None:
        while not stop.is_set():
            before = acknowledged
            answer = engine.run_query(spec)
            lines = sum(r["lines"] for r in answer["rows"]) - base["lines"]
            revenue = sum(r["revenue"] for r in answer["rows"]) - base["revenue"]
            batches, part = divmod(lines, 7)
            if part or batches < before or not math.isclose(revenue, lines * 90.0, abs_tol=1e-6):
                problems.append(f"{lines} lines, {revenue} revenue; {before} batches acknowledged before")
            reads[reader] += 1

    readers = [threading.Thread(target=read, args=(n,)) for n in range(2)]
    for thread in readers:
        thread.start()
    engine.fold_after_seconds = 0.02
    engine.start_housekeeping(idle_seconds=60)
    try:
        for batch in range(40):
            ingest(engine, [sale(f"STREAM-{batch}", n) for n in range(1, 8)])
            acknowledged += 1
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        engine.stop_housekeeping()
    assert not problems, problems[:3]
    assert min(reads) > 0
    final = engine.run_query(spec)["rows"]
    assert sum(r["lines"] for r in final) == base["lines"] + 40 * 7


def test_lines_without_a_ship_to_take_the_stored_address_from_the_cache_as_from_the_table(
    engine: AnalyticsEngine,
) -> None:
    """The engine completes a silent line's ship-to from its cache of the customers' addresses; the answer is
    the table's (warehouse.load.complete_line_geography), before and after a batch moves a customer."""
    from salespulse.analytics.ingest import lines_table
    from salespulse.warehouse.load import complete_line_geography

    def batch(customer: str) -> pa.Table:
        silent = sale("GEO-1", 1, customer_id=customer)  # no ship-to of its own
        located = sale("GEO-1", 2, customer_id=customer, ship_city="Lyon", ship_country="France")
        unknown = sale("GEO-1", 3, customer_id="C-NOBODY")
        return lines_table(SalesBatch.model_validate({"lines": [silent, located, unknown]}))

    for customer in ("C-0000011", "C-0000012"):
        with engine.cursor() as con:
            assert engine._lookups.complete_geography(batch(customer)).equals(
                complete_line_geography(con, batch(customer))
            )
    ingest(
        engine,
        [sale("GEO-0", 1, customer_id="C-0000011")],
        customers=[{"customer_id": "C-0000011", "state": "TX", "zip": "73301", "city": "Austin"}],
    )
    with engine.cursor() as con:
        moved = engine._lookups.complete_geography(batch("C-0000011"))
        assert moved.equals(complete_line_geography(con, batch("C-0000011")))
    assert moved.column("ship_state").to_pylist() == ["TX", None, None]
