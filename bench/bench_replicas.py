"""Ingest throughput and replica staleness: the embedded warehouse beside PostgreSQL as the system of record
with one and two replicas (issue 14).

    .venv/bin/python bench/bench_replicas.py [--seconds 10] [--senders 4] [--lines 100]

Starts a throw-away PostgreSQL server (tests/postgres_support.py) and runs, in this process, the path the
service runs: a validated SalesBatch -> AnalyticsEngine.ingest (embedded) or Replica.write_sales (the record,
then the writer's own copy shows it), followers applying changes to their DuckDB copies. ``senders`` threads
post batches of ``lines`` lines (alternating between the replicas) for ``seconds``. Printed per set-up: lines
per second acknowledged, acknowledgement latency, and staleness: how long after a batch was acknowledged by
one replica the OTHER replica's copy held it (its watermark reached the batch's change number).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from postgres_support import start_postgres  # noqa: E402

from salespulse.analytics.engine import AnalyticsEngine  # noqa: E402
from salespulse.analytics.ingest import (  # noqa: E402
    SalesBatch,
    customers_table,
    lines_table,
    products_table,
)
from salespulse.analytics.replica import Replica  # noqa: E402
from salespulse.warehouse.record import SystemOfRecord  # noqa: E402
from salespulse.warehouse.store import connect  # noqa: E402

START = datetime(2025, 1, 1, 8, 0)


def batch(sender: int, n: int, lines: int) -> SalesBatch:
    rng = random.Random(sender * 1_000_003 + n)
    return SalesBatch.model_validate(
        {
            "lines": [
                {
                    "order_id": f"B{sender}-{n}",
                    "line": i + 1,
                    "ordered_at": (START + timedelta(minutes=rng.randrange(500_000))).isoformat(),
                    "customer_id": f"C-{rng.randrange(5_000):05d}",
                    "product_id": f"P-{rng.randrange(200):04d}",
                    "quantity": rng.randrange(1, 10),
                    "unit_price": round(rng.uniform(1, 300), 2),
                }
                for i in range(lines)
            ]
        }
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def drive(
    send: Callable[[int, int, SalesBatch], None], *, seconds: float, senders: int, lines: int
) -> tuple[int, list[float]]:
    """Senders post for ``seconds``; returns the lines acknowledged and each batch's latency (s)."""
    done, stop, latencies = [0], threading.Event(), []
    lock = threading.Lock()

    def sender(k: int) -> None:
        n = 0
        while not stop.is_set():
            b = batch(k, n, lines)
            started = time.perf_counter()
            send(k, n, b)
            with lock:
                latencies.append(time.perf_counter() - started)
                done[0] += lines
            n += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return done[0], latencies


def embedded(folder: Path, args: argparse.Namespace) -> dict[str, object]:
    engine = AnalyticsEngine(connect(folder / "embedded.duckdb"))
    lines, latencies = drive(lambda _k, _n, b: engine.ingest(b), **vars(args))
    return {"set-up": "embedded DuckDB", "lines/s": lines / args.seconds, "ack": latencies, "stale": []}


def replicated(folder: Path, url: str, count: int, args: argparse.Namespace) -> dict[str, object]:
    copies = []
    for i in range(count):
        copy = Replica(AnalyticsEngine(connect(folder / f"copy{count}-{i}.duckdb")), SystemOfRecord(url))
        copy.start()
        copy.caught_up.wait(60)
        copies.append(copy)
    seen: list[list[tuple[float, int]]] = [[] for _ in copies]  # (when, watermark) per copy
    watching = threading.Event()

    def watch() -> None:
        last = [c.watermark for c in copies]
        while not watching.is_set():
            for i, copy in enumerate(copies):
                if copy.watermark != last[i]:
                    last[i] = copy.watermark
                    seen[i].append((time.perf_counter(), last[i]))
            time.sleep(0.001)

    acked: list[tuple[int, float, int]] = []  # (copy, when, change number)

    def send(k: int, n: int, b: SalesBatch) -> None:
        through = (k + n) % len(copies)
        written = copies[through].write_sales(lines_table(b), customers_table(b), products_table(b))
        acked.append((through, time.perf_counter(), written.seq))

    watcher = threading.Thread(target=watch)
    watcher.start()
    lines, latencies = drive(send, **vars(args))
    for copy in copies:
        copy.wait_for(copies[0].record.head(), timeout=30)
    time.sleep(0.05)
    watching.set()
    watcher.join()
    stale = []
    for through, when, seq in acked:
        for other in range(len(copies)):
            if other != through:
                shown = next(t for t, mark in seen[other] if mark >= seq)
                stale.append(max(shown - when, 0.0))
    for copy in copies:
        copy.stop()
    name = f"PostgreSQL, {count} replica{'s' if count > 1 else ''}"
    return {"set-up": name, "lines/s": lines / args.seconds, "ack": latencies, "stale": stale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--lines", type=int, default=100)
    args = parser.parse_args()
    server = start_postgres()
    results = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            results.append(embedded(folder, args))
            for count in (1, 2):
                results.append(replicated(folder, server.new_database("bench"), count, args))
    finally:
        server.stop()
    print(f"\n{args.senders} senders, batches of {args.lines} lines, {args.seconds:.0f} s each\n")
    print(f"{'set-up':<24} {'lines/s':>9} {'ack p50':>9} {'ack p95':>9} {'stale p50':>10} {'stale p95':>10}")
    for r in results:
        ack, stale = r["ack"], r["stale"]
        ms = [1000 * percentile(ack, 50), 1000 * percentile(ack, 95)]  # type: ignore[arg-type]
        st = [1000 * percentile(stale, 50), 1000 * percentile(stale, 95)] if stale else ["-", "-"]  # type: ignore[arg-type]
        cells = [f"{v:>9.0f}" if isinstance(v, float) else f"{v:>9}" for v in ms]
        stale_cells = [f"{v:>10.0f}" if isinstance(v, float) else f"{v:>10}" for v in st]
        print(f"{r['set-up']:<24} {r['lines/s']:>9,.0f} {' '.join(cells)} {' '.join(stale_cells)}")
    print("\nack: request to answer (ms); stale: acknowledged by one replica until in the other's copy (ms)")


if __name__ == "__main__":
    main()
