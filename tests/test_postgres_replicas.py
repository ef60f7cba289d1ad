"""PostgreSQL as the system of record (issue 14): the record's writes, followers that never lose a change, and
service replicas over one record.

Everything runs against a real PostgreSQL server on 127.0.0.1 (tests/postgres_support.py) and real DuckDB
warehouses; the last test runs two real `bentoml serve` replicas under senders and Locust.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pyarrow as pa
import pytest
from service_support import (
    API_KEY,
    VENV_BIN,
    RunningService,
    environment,
    run_python,
    start_service,
    trained_stack,
)
from test_hot_swap import (
    LOCUSTFILE,
    aggregated_stats,
    promote_new_segmenter,
    segment_version,
    served_version,
    set_champion,
)

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.ingest import SalesBatch, customers_table, lines_table, products_table
from salespulse.analytics.replica import NotACopy, Replica, publish_warehouse
from salespulse.config import get_settings
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.dataset.goals import import_goals_into
from salespulse.dataset.importing import import_file
from salespulse.warehouse.record import SystemOfRecord
from salespulse.warehouse.store import connect

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "data" / "examples"
MAPPINGS = REPO_ROOT / "data" / "mappings"
START = datetime(2025, 3, 1, 9, 0)


def sale_batch(order: str, lines: int, *, customers: int = 7, seed: int = 0, **extra: Any) -> SalesBatch:
    rng = random.Random(f"{order}-{seed}")
    return SalesBatch.model_validate(
        {
            "lines": [
                {
                    "order_id": order,
                    "line": i + 1,
                    "ordered_at": (START + timedelta(hours=rng.randrange(2_000))).isoformat(),
                    "customer_id": f"C-{rng.randrange(customers)}",
                    "product_id": f"P-{rng.randrange(5)}",
                    "quantity": rng.randrange(1, 9),
                    "unit_price": round(rng.uniform(5, 500), 2),
                    **extra,
                }
                for i in range(lines)
            ]
        }
    )


def write(record: SystemOfRecord, batch: SalesBatch) -> Any:
    return record.write_sales(
        lines_table(batch), customers=customers_table(batch), products=products_table(batch)
    )


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


# --- the record ---------------------------------------------------------------------------------------


def test_a_write_is_one_transaction(postgres_url: str) -> None:
    record = SystemOfRecord(postgres_url)
    good = lines_table(sale_batch("O-1", 3))
    # A line the database refuses (quantity 0 breaks the CHECK) after its customers were inserted.
    bad = good.set_column(
        good.schema.get_field_index("quantity"), "quantity", pa.array([1, 0, 2], pa.int32())
    )
    customers = pa.table({"customer_id": ["C-new"], "customer_name": ["Ada"]})
    with pytest.raises(ValueError, match="check"):
        record.write_sales(bad, customers=customers)
    assert rows(postgres_url, "SELECT count(*) FROM customers")[0][0] == 0
    assert rows(postgres_url, "SELECT count(*) FROM order_lines")[0][0] == 0
    assert record.head() == 0
    written = record.write_sales(good, customers=customers)
    assert (written.seq, written.inserted, written.updated, written.unchanged) == (1, 3, 0, 0)
    record.close()


def test_writing_again_is_idempotent_and_rewrites_nothing(postgres_url: str) -> None:
    record = SystemOfRecord(postgres_url)
    batch = sale_batch("O-2", 20)
    first = write(record, batch)
    before = rows(postgres_url, "SELECT order_id, line, revenue, change_id FROM order_lines ORDER BY 1, 2")
    again = write(record, batch)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 20)
    assert again.seq == first.seq + 1
    # Unchanged rows keep their change: a follower has nothing to apply for the second write.
    assert (
        rows(postgres_url, "SELECT order_id, line, revenue, change_id FROM order_lines ORDER BY 1, 2")
        == before
    )
    assert rows(postgres_url, f"SELECT rows FROM change_log WHERE seq = {again.seq}") == [(0,)]
    changed = sale_batch("O-2", 20, seed=1)
    third = write(record, changed)
    assert third.inserted == 0 and third.updated + third.unchanged == 20 and third.updated > 0
    (count, revenue) = rows(postgres_url, "SELECT count(*), sum(revenue) FROM order_lines")[0]
    expected = sum(line.quantity * line.unit_price for line in changed.lines)
    assert count == 20 and revenue == pytest.approx(expected)
    record.close()


def test_dimensions_are_completed_never_wiped(postgres_url: str) -> None:
    record = SystemOfRecord(postgres_url)
    lines = sale_batch("O-3", 1, customers=1).model_dump(mode="json")["lines"]
    first = {"lines": lines, "customers": [{"customer_id": "C-0", "customer_name": "Ada", "state": "CA",
                                            "zip": "94105"}]}  # fmt: skip
    write(record, SalesBatch.model_validate(first))
    # A later batch knows only the customer's city and the product's category: nothing is wiped.
    # A later line says nowhere it went: it takes the stored customer's address.
    later = {
        "lines": [{**lines[0], "order_id": "O-4"}],
        "products": [{"product_id": lines[0]["product_id"], "category": "Tools", "subcategory": "Saws"}],
    }
    write(record, SalesBatch.model_validate(later))
    # Then a batch knows only the customer's city: nothing is wiped.
    city = {"lines": [{**lines[0], "order_id": "O-5", "ship_city": "Oakland"}],
            "customers": [{"customer_id": "C-0", "city": "San Francisco"}]}  # fmt: skip
    write(record, SalesBatch.model_validate(city))
    customer = rows(postgres_url, "SELECT customer_name, city, state, zip, region, country FROM customers")
    assert customer == [("Ada", "San Francisco", "CA", "94105", "West", "United States")]
    product = rows(
        postgres_url, "SELECT product_id, product_name, category, subcategory, list_price FROM products"
    )
    # The bare key got placeholders (its name is its id), the category came later, the price from the line.
    assert product == [
        (lines[0]["product_id"], lines[0]["product_id"], "Tools", "Saws", lines[0]["unit_price"])
    ]
    shipped = rows(
        postgres_url, "SELECT ship_city, ship_state, ship_region FROM order_lines ORDER BY order_id"
    )
    assert shipped == [(None, "CA", "West"), (None, "CA", "West"), ("Oakland", None, None)]
    record.close()


def test_concurrent_writers_never_lose_a_change_to_a_follower(postgres_url: str) -> None:
    """The ordering trap: change numbers committed out of order would let a follower that reads "above my
    watermark" pass over a row. Four writers race (sharing customers and products) while a follower polls
    as fast as it can; what it applied must be exactly the record."""
    record = SystemOfRecord(postgres_url, connections=4)
    follower = SystemOfRecord(postgres_url, connections=1)
    applied: dict[tuple[str, int], float] = {}
    watermark, done = 0, threading.Event()

    def follow() -> None:
        nonlocal watermark
        while True:
            finished = done.is_set()
            changes = follower.read_changes(watermark)
            assert changes.tables is not None
            if changes.upto == changes.after:
                if finished:
                    return
                continue
            lines = changes.tables["order_lines"]
            columns = [lines.column(c).to_pylist() for c in ("order_id", "line", "revenue")]
            for order, line, revenue in zip(*columns, strict=True):
                applied[(order, line)] = revenue
            watermark = changes.upto

    def send(sender: int) -> None:
        for n in range(40):
            write(record, sale_batch(f"S{sender}-{n % 25}", 5, seed=n))  # some orders are rewritten

    reader = threading.Thread(target=follow)
    reader.start()
    senders = [threading.Thread(target=send, args=(s,)) for s in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    done.set()
    reader.join(timeout=60)
    stored = dict(
        ((o, line), r) for o, line, r in rows(postgres_url, "SELECT order_id, line, revenue FROM order_lines")
    )
    assert len(stored) == 4 * 25 * 5
    assert applied == stored
    assert watermark == record.head() == 160
    seqs = [s for (s,) in rows(postgres_url, "SELECT seq FROM change_log ORDER BY seq")]
    assert seqs == list(range(1, 161))
    record.close()
    follower.close()


# --- replicas in one process ------------------------------------------------------------------------------


def replica(path: Path, url: str) -> Replica:
    engine = AnalyticsEngine(connect(path))
    copy = Replica(engine, SystemOfRecord(url), poll_seconds=0.5)
    copy.start()
    assert copy.caught_up.wait(60), copy.last_error
    return copy


def totals(copy: Replica, *, use_rollups: bool = True) -> tuple[int, float]:
    answer = copy.engine.run_query({"measures": ["lines", "revenue"]}, use_rollups=use_rollups)["rows"][0]
    return answer["lines"] or 0, answer["revenue"] or 0.0


def wait_until(condition: Any, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not within the time allowed"
        time.sleep(0.02)
    return time.monotonic() - started


def test_two_copies_follow_one_record(postgres_url: str, tmp_path: Path) -> None:
    first, second = replica(tmp_path / "a.duckdb", postgres_url), replica(tmp_path / "b.duckdb", postgres_url)
    try:
        for n in range(6):
            through, other = (first, second) if n % 2 else (second, first)
            batch = sale_batch(f"R-{n}", 30, customers=40)
            lines, revenue = totals(through)
            result = through.engine.ingest(batch)
            assert result.inserted == 30
            # Read your writes on the replica that answered, the other within the notification.
            expected = sum(line.quantity * line.unit_price for line in batch.lines)
            assert totals(through) == (lines + 30, pytest.approx(revenue + expected))
            wait_until(lambda other=other, through=through: totals(other) == totals(through))
        count, revenue = first.record.sales_totals()
        for copy in (first, second):
            assert totals(copy)[0] == count == 180
            assert totals(copy)[1] == pytest.approx(revenue)
            assert totals(copy, use_rollups=False)[1] == pytest.approx(revenue)
            assert copy.status()["lag_changes"] == 0
    finally:
        first.stop()
        second.stop()


def same_tables(copy: Replica, source: Path, tables: tuple[str, ...]) -> None:
    """The copy holds exactly the rows of ``source`` (a DuckDB warehouse) in ``tables``."""
    with copy.engine.cursor() as con:
        con.execute(f"ATTACH '{source}' AS source (READ_ONLY)")
        try:
            for table in tables:
                differ = con.execute(
                    f"SELECT count(*) FROM ((FROM {table} EXCEPT FROM source.{table}) "
                    f"UNION ALL (FROM source.{table} EXCEPT FROM {table}))"
                ).fetchone()[0]
                assert differ == 0, table
        finally:
            con.execute("DETACH source")


def test_a_large_change_and_a_restart_catch_up_exactly(postgres_url: str, tmp_path: Path) -> None:
    source = tmp_path / "embedded.duckdb"
    generate_warehouse(GeneratorConfig(seed=5, customers=400, products=40, rows=30_000, days=200), source)
    record = SystemOfRecord(postgres_url)
    with connect(source) as con:
        published, _ = publish_warehouse(con, record)
    assert published.inserted > 20_000  # more than one ingest group: the copy takes the streamed path
    copy_path = tmp_path / "copy.duckdb"
    copy = replica(copy_path, postgres_url)
    # Everything the embedded warehouse held, first purchases and catalogue prices included.
    same_tables(copy, source, ("order_lines", "customers", "products", "salesmen", "distributors"))
    copy.stop()
    # Changes while the copy is down (another replica writes), then a restart on the same file.
    other = replica(tmp_path / "other.duckdb", postgres_url)
    for n in range(3):
        other.engine.ingest(sale_batch(f"LATE-{n}", 50, customers=400))
    other.stop()
    copy = replica(copy_path, postgres_url)
    try:
        assert copy.watermark == record.head()
        count, revenue = record.sales_totals()
        assert totals(copy)[0] == count and totals(copy)[1] == pytest.approx(revenue)
        assert totals(copy, use_rollups=False)[1] == pytest.approx(revenue)
    finally:
        copy.stop()
        record.close()


def test_a_warehouse_of_its_own_is_not_taken_for_a_copy(postgres_url: str, tmp_path: Path) -> None:
    own = tmp_path / "own.duckdb"
    generate_warehouse(GeneratorConfig(seed=1, customers=50, products=10, rows=500, days=30), own)
    with pytest.raises(NotACopy, match="order lines of its own"):
        Replica(AnalyticsEngine(connect(own)), SystemOfRecord(postgres_url))


def test_file_and_goal_imports_write_to_the_record(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command line's import (no service running): staged in the local file, written to the record.
    monkeypatch.setenv("SALESPULSE_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    staging = tmp_path / "staging.duckdb"
    result = import_file(EXAMPLES / "superstore_sample.csv", MAPPINGS / "superstore.yaml", path=staging)
    assert result.inserted == 300
    with connect(staging) as con:
        assert con.execute("SELECT count(*) FROM order_lines").fetchone()[0] == 0
    assert rows(postgres_url, "SELECT count(*) FROM order_lines")[0][0] == 300
    copy = replica(tmp_path / "copy.duckdb", postgres_url)
    try:
        # The service's goal import: checked against the copy, written to the record, shown by the copy.
        with copy.engine.cursor() as con:
            goals = import_goals_into(con, EXAMPLES / "goal_plan_sample.csv", write_goals=copy.write_goals)
            shown = con.execute("SELECT region, revenue_target FROM region_goals ORDER BY region").fetchall()
        assert goals.targets_by_level["region"] == 2
        assert shown == [("East", 110000.0), ("West", 125000.0)]
        assert rows(postgres_url, "SELECT region, revenue_target FROM region_goals ORDER BY region") == shown
        count, revenue = copy.record.sales_totals()
        assert totals(copy) == (count, pytest.approx(revenue))
    finally:
        copy.stop()


# --- two service replicas over one record -------------------------------------------------------------------

LOAD_SECONDS = 30
SENDERS = 4
BATCH_LINES = 20
VISIBLE_WITHIN = 5.0
LOCUST_USERS = 2  # per replica


@dataclass
class Replicas:
    root: Path
    url: str
    env: dict[str, str]
    services: dict[str, RunningService]
    versions: tuple[str, str]
    """The segmenter champion the replicas start with, and the one promoted under load."""

    def start(self, name: str) -> RunningService:
        env = {
            **self.env,
            "SALESPULSE_DATABASE_URL": self.url,
            "SALESPULSE_WAREHOUSE_PATH": str(self.root / f"replica-{name}.duckdb"),
            "SALESPULSE_MODEL_WATCH_SECONDS": "1",
        }
        self.services[name] = start_service(env, self.root / f"replica-{name}.log")
        return self.services[name]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, postgres_server: Any) -> Iterator[Replicas]:
    """The trained stack's warehouse published into a new record, a second segmenter trained (and rolled
    back, to be promoted under load), and two replicas started together, each on a DuckDB copy of its own."""
    root = tmp_path_factory.mktemp("replicas")
    trained_stack(root)
    env = environment(root)
    url = postgres_server.new_database("replicas")
    record = SystemOfRecord(url)
    with connect(root / "warehouse.duckdb") as con:
        publish_warehouse(con, record)
    record.close()
    before = served_version_in_registry(env)
    newer, _ = promote_new_segmenter(env, seed=7)
    set_champion(env, before)
    stack = Replicas(root, url, env, {}, (before, newer))
    starting = [threading.Thread(target=stack.start, args=(name,)) for name in ("a", "b")]
    for thread in starting:
        thread.start()
    for thread in starting:
        thread.join()
    assert set(stack.services) == {"a", "b"}, "a replica did not start (see its log)"
    yield stack
    for service in stack.services.values():
        service.stop()


def served_version_in_registry(env: dict[str, str]) -> str:
    out = run_python(
        """
from mlflow.tracking import MlflowClient
from salespulse.config import get_settings
from training.tracking import configure_mlflow
configure_mlflow()
champion = MlflowClient().get_model_version_by_alias("customer-segmenter", get_settings().champion_alias)
print(f"VERSION={champion.version}")
""",
        env,
    )
    return out.split("VERSION=")[-1].strip()


def service_totals(client: httpx.Client) -> tuple[int, float]:
    answer = client.post("/analytics/query", json={"measures": ["lines", "revenue"]})
    assert answer.status_code == 200, answer.text
    row = answer.json()["rows"][0]
    return row["lines"], row["revenue"]


def post_batch(client: httpx.Client, sender: int, n: int) -> float:
    """One batch of new lines; returns its revenue once acknowledged."""
    batch = sale_batch(f"PG-S{sender}-{n:05d}", BATCH_LINES, customers=2_000, seed=sender)
    body = batch.model_dump(mode="json", exclude_none=True)
    for line in body["lines"]:  # the stack's customers, in its sales period
        line["customer_id"] = f"C-{int(line['customer_id'][2:]):07d}"
        line["product_id"] = "P-00001"
        line["ordered_at"] = line["ordered_at"].replace("2025-", "2026-")
    answer = client.post("/analytics/sales", json=body, headers={"x-api-key": API_KEY})
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == BATCH_LINES, answer.text
    return sum(line["quantity"] * line["unit_price"] for line in body["lines"])


def start_locust(service: RunningService, prefix: Path) -> subprocess.Popen:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with (prefix.parent / f"{prefix.name}.log").open("w") as log:
        return subprocess.Popen(
            [str(VENV_BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "-u", str(LOCUST_USERS),
             "-r", str(LOCUST_USERS), "-t", f"{LOAD_SECONDS}s", "--stop-timeout", "10", "--host", service.url,
             "--csv", str(prefix), "--only-summary"],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_two_replicas_under_load_show_every_acknowledged_line(replicas: Replicas) -> None:
    """Four senders ingest through both replicas for 30 s while Locust reads through both and a new
    segmenter champion is promoted: every acknowledged line is in both replicas' reports within 5 s, no
    request fails, the swap reaches both; the totals equal PostgreSQL's."""
    services = replicas.services
    clients = {name: service.client() for name, service in services.items()}
    base_lines, _ = service_totals(clients["a"])
    assert service_totals(clients["b"])[0] == base_lines
    acked: list[tuple[float, int]] = []  # (when acknowledged, lines)
    seen: list[tuple[str, float, int]] = []  # (replica, when asked, lines)
    stop, errors = threading.Event(), []

    def send(sender: int) -> None:
        own = {name: service.client() for name, service in services.items()}
        n = 0
        while not stop.is_set():
            try:
                post_batch(own["a" if (n + sender) % 2 else "b"], sender, n)
            except BaseException as error:  # reported by the test's thread
                errors.append(error)
                return
            acked.append((time.monotonic(), BATCH_LINES))
            n += 1

    def watch() -> None:
        own = {name: service.client() for name, service in services.items()}
        while not stop.is_set():
            for name, client in own.items():
                asked = time.monotonic()
                seen.append((name, asked, service_totals(client)[0]))
            time.sleep(0.2)

    locusts = {
        name: start_locust(service, replicas.root / "locust" / name) for name, service in services.items()
    }
    threads = [threading.Thread(target=send, args=(s,)) for s in range(SENDERS)]
    threads.append(threading.Thread(target=watch))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(8)
        promoted_at = time.monotonic()
        set_champion(replicas.env, replicas.versions[1])
        for name, service in services.items():
            while served_version(service) != replicas.versions[1]:
                assert time.monotonic() - promoted_at < 30, f"replica {name} still serves the old champion"
                time.sleep(0.25)
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for locust in locusts.values():
            locust.wait(timeout=LOAD_SECONDS + 60)
    assert not errors, errors[:3]
    total = base_lines + sum(lines for _, lines in acked)
    # Within 5 s of its acknowledgement a line is in both replicas' reports (counts only grow here).
    for name, asked, lines in seen:
        due = base_lines + sum(n for when, n in acked if when <= asked - VISIBLE_WITHIN)
        assert lines >= due, f"replica {name} showed {lines:,} lines at +{asked - started:.1f} s, {due:,} due"
        assert lines <= total
    print(f"\n{len(acked)} batches ({len(acked) * BATCH_LINES:,} lines) acknowledged in {LOAD_SECONDS} s")
    record_totals = SystemOfRecord(replicas.url)
    try:
        expected = record_totals.sales_totals()
        assert expected[0] == total
        for name, client in clients.items():
            wait_until(lambda client=client: service_totals(client)[0] == total, VISIBLE_WITHIN)
            lines, revenue = service_totals(client)
            assert (lines, revenue) == (expected[0], pytest.approx(expected[1])), name
        for name in services:
            stats = aggregated_stats(replicas.root / "locust" / name)
            print(f"Locust on {name}: {stats['Request Count']} requests, {stats['Failure Count']} failures")
            assert int(stats["Request Count"]) >= 20  # the real users think between requests
            assert int(stats["Failure Count"]) == 0, (
                replicas.root / "locust" / f"{name}_failures.csv"
            ).read_text()
            assert segment_version(services[name]) == replicas.versions[1]
    finally:
        record_totals.close()


def kill_9(service: RunningService) -> None:
    """`kill -9` of the whole service: `bentoml serve` and its workers (which run in sessions of their own,
    so killing the serve's process group alone leaves them holding the warehouse)."""
    serve = psutil.Process(service.process.pid)
    processes = [serve, *serve.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=30)
    service.process.wait(timeout=30)


def test_a_killed_replica_restarts_and_catches_up_exactly(replicas: Replicas) -> None:
    survivor, victim = replicas.services["a"], replicas.services["b"]
    kill_9(victim)
    with survivor.client() as client:
        for n in range(10):
            post_batch(client, sender=9, n=n)
    restarted = replicas.start("b")
    record = SystemOfRecord(replicas.url)
    try:
        expected = record.sales_totals()
        with restarted.client() as client:
            health = client.get("/health").json()
            assert health["warehouse"]["replica"]["lag_changes"] == 0, health
            assert health["warehouse"]["replica"]["watermark"] == record.head()
            lines, revenue = service_totals(client)
        assert (lines, revenue) == (expected[0], pytest.approx(expected[1]))
        with survivor.client() as client:
            assert service_totals(client) == (expected[0], pytest.approx(expected[1]))
    finally:
        record.close()
