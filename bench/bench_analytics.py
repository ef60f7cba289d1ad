"""Benchmark: every named analytics report over HTTP at 10M order lines, against pandas on the same data, and
real-time ingest through POST /sales while reports are being read.

1. A 10M-line warehouse is generated once into data/bench/warehouse-10m.duckdb (about 25 s) and its rollups
   built once (about 30 s); each run works on a fresh copy of it.
2. The analytics app runs for real: uvicorn in a child process, bound to 127.0.0.1 on a free port.
3. Each report: --warmup requests, then --requests timed requests (default parameters) -> p50, p95.
4. Ingest: --batches batches of 1,000 new lines through POST /sales by 1 sender, by 4 and by --senders
   senders at once, while a reader thread requests reports 5 times a second (the last run: back to back).
   Their latency under load is reported too. Concurrent batches share a transaction (group commit), whose
   cost is mostly fixed, so several feeds ingest faster than one.
5. pandas: the same reports as group-bys over DataFrames loaded from the same warehouse (load time printed
   apart; only the computation is timed) -> the ratio pandas time / HTTP p50.
6. With --baseline REF, the ingest runs are made against that git ref too, in the same session: its code is
   checked out into a temporary worktree and served beside this checkout's, each on its own copy of the
   warehouse, the same batches sent to both, runs alternating (which goes first alternates too); the table
   shows them side by side. Figures measured at different times on a shared machine do not compare.

    .venv/bin/python bench/bench_analytics.py [--requests 30] [--batches 80] [--senders 8] [--skip-pandas]
    .venv/bin/python bench/bench_analytics.py --only-ingest --baseline f4b7c50
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from salespulse.analytics.reports import REGISTRY  # noqa: E402
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse  # noqa: E402

CACHED = REPO_ROOT / "data" / "bench" / "warehouse-10m.duckdb"
CONFIG = GeneratorConfig(rows=10_000_000, customers=200_000, end_date=date(2025, 11, 20))
API_KEY = "bench-key"
BATCH_LINES = 1_000
console = Console(width=140)


# --- the warehouse and the server ---


def prepared_warehouse(directory: Path) -> Path:
    """A working copy of the cached 10M-line warehouse, with its rollups already built."""
    if not CACHED.exists():
        console.print(f"Generating {CONFIG.rows:,} order lines into {CACHED} (once) ...")
        CACHED.parent.mkdir(parents=True, exist_ok=True)
        generate_warehouse(CONFIG, CACHED)
    started = time.perf_counter()
    from salespulse.analytics.engine import AnalyticsEngine
    from salespulse.warehouse.store import connect

    with connect(CACHED) as con:
        AnalyticsEngine(con)  # builds the rollups if they are missing or stale, else only checks them
        con.execute("CHECKPOINT")
    console.print(f"Rollups checked (or built) in {time.perf_counter() - started:.1f} s")
    copy = directory / "warehouse.duckdb"
    shutil.copy(CACHED, copy)
    return copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The analytics app under uvicorn, in a child process bound to 127.0.0.1; the code of ``root`` (this
    checkout, or a baseline's worktree)."""

    def __init__(self, warehouse: Path, root: Path = REPO_ROOT) -> None:
        self.port = free_port()
        env = dict(os.environ, SALESPULSE_WAREHOUSE_PATH=str(warehouse), SALESPULSE_API_KEY=API_KEY)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "service.analytics_api:create_analytics_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.process = subprocess.Popen(command, cwd=root, env=env, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                if httpx.get(f"{self.url}/meta", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the server did not start")

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_quiet(self, timeout: float = 60, quiet_seconds: int = 4) -> None:
        """Until the server's background work (folds, compactions, checkpoints) is done: the other one is
        measured next. Quiet for ``quiet_seconds`` in a row: housekeeping starts only after
        SALESPULSE_ANALYTICS_IDLE_SECONDS (2 s) without a batch."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline and quiet < quiet_seconds:
            before = self.cpu_seconds()
            time.sleep(1.0)
            quiet = quiet + 1 if self.cpu_seconds() - before < 0.05 else 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Baseline:
    """A git ref's code in a temporary worktree, served on its own copy of the warehouse."""

    def __init__(self, ref: str, directory: Path, warehouse: Path) -> None:
        self.path = directory / "baseline"
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", ref],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(self.path), commit],
            capture_output=True,
            check=True,
        )
        self.label = f"baseline {commit}"
        copy = directory / "baseline.duckdb"
        shutil.copy(warehouse, copy)
        console.print(f"Baseline {ref} ({commit}) checked out into {self.path}")
        self.server = Server(copy, root=self.path)

    def remove(self) -> None:
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(self.path)],
            capture_output=True,
        )


# --- HTTP measurements ---


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_reports(client: httpx.Client, requests: int, warmup: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for name in REGISTRY:
        for _ in range(warmup):
            response = client.get(f"/reports/{name}")
            response.raise_for_status()
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(f"/reports/{name}")
            response.content  # noqa: B018 - the body is part of the time
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        timings[name] = samples
    return timings


def sales_batches(count: int, tag: str, day: int = 1) -> list[bytes]:
    """``count`` JSON bodies of 1,000 new lines each: orders of known customers and products, ``day`` days
    after the last day with sales, in time order like a live feed (every batch a few seconds later than the
    one before). Read from the cached warehouse: the server holds its copy's lock."""
    with duckdb.connect(str(CACHED), read_only=True) as con:
        customers = [
            r[0] for r in con.execute("SELECT customer_id FROM customers USING SAMPLE 20000").fetchall()
        ]
        products = con.execute("SELECT product_id, list_price FROM products").fetchall()
        salesmen = [r[0] for r in con.execute("SELECT salesman_id FROM salesmen").fetchall()]
        (last,) = con.execute("SELECT CAST(max(ordered_at) AS DATE) FROM order_lines").fetchall()[0]
    start = datetime.combine(last + timedelta(days=day), datetime.min.time()) + timedelta(hours=8)
    rng = random.Random(7)
    bodies = []
    for batch in range(count):
        lines = []
        for number in range(BATCH_LINES):
            order, line = divmod(number, 4)
            product, price = rng.choice(products)
            lines.append(
                {
                    "order_id": f"BENCH-{tag}-{batch:05d}-{order:04d}",
                    "line": line + 1,
                    "ordered_at": (start + timedelta(seconds=batch * 20 + order // 25)).isoformat(),
                    "customer_id": customers[(batch * 250 + order) % len(customers)],
                    "product_id": product,
                    "salesman_id": rng.choice(salesmen),
                    "quantity": rng.randint(1, 6),
                    "unit_price": price,
                    "discount": 0.0,
                    "cost": round(price * 0.6, 2),
                }
            )
        bodies.append(json.dumps({"lines": lines}).encode())
    return bodies


def ingest(
    url: str, bodies: list[bytes], senders: int, read_every: float, readers: int = 1
) -> dict[str, Any]:
    """Send the batches from ``senders`` threads while ``readers`` threads keep requesting reports, one
    every ``read_every`` seconds each (0: back to back, which keeps both cores busy by itself)."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    done = threading.Event()
    read_ms: list[float] = []
    failures: list[str] = []
    groups: list[int] = []
    report_names = [n for n in REGISTRY if n not in ("product-affinity", "new-vs-repeat-customers")]

    def send() -> None:
        with httpx.Client(
            base_url=url, timeout=120, headers={"X-API-Key": API_KEY, "content-type": "application/json"}
        ) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                response = client.post("/sales", content=body)
                if response.status_code != 200:
                    failures.append(response.text[:200])
                else:
                    groups.append(response.json()["batches_in_transaction"])

    def read() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            number = 0
            while not done.is_set():
                started = time.perf_counter()
                client.get(f"/reports/{report_names[number % len(report_names)]}").raise_for_status()
                read_ms.append((time.perf_counter() - started) * 1000)
                number += 1
                done.wait(max(0.0, read_every - (time.perf_counter() - started)))

    reader_threads = [threading.Thread(target=read) for _ in range(readers)]
    for thread in reader_threads:
        thread.start()
    started = time.perf_counter()
    sender_threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in sender_threads:
        thread.start()
    for thread in sender_threads:
        thread.join()
    seconds = time.perf_counter() - started
    done.set()
    for thread in reader_threads:
        thread.join()
    return {
        "senders": senders,
        "reads_per_s": "back to back" if read_every == 0 else f"{1 / read_every:g}/s",
        "lines": len(bodies) * BATCH_LINES,
        "seconds": seconds,
        "lines_per_s": len(bodies) * BATCH_LINES / seconds,
        "failures": failures,
        "group": statistics.mean(groups) if groups else 0,
        "reads": len(read_ms),
        "read_p50": percentile(read_ms, 50) if read_ms else None,
        "read_p95": percentile(read_ms, 95) if read_ms else None,
    }


# --- pandas ---


class Frames:
    """The warehouse as pandas DataFrames; text columns as categoricals (the fair, fast way for group-bys)."""

    def __init__(self, warehouse: Path) -> None:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            lines = con.sql("""
                SELECT o.*, c.region, c.state, c.city, c.zip, c.first_purchase, p.category
                FROM order_lines o
                LEFT JOIN customers c USING (customer_id) LEFT JOIN products p USING (product_id)
            """).to_arrow_table()
            self.lines = lines.to_pandas(strings_to_categorical=True)
            self.products = con.execute("SELECT * FROM products").df()
            self.salesmen = con.execute("SELECT * FROM salesmen").df()
            self.region_goals = con.execute("SELECT * FROM region_goals").df()
            self.salesman_goals = con.execute("SELECT * FROM salesman_goals").df()
        self.lines["day"] = self.lines["ordered_at"].dt.normalize()
        self.last = self.lines["day"].max()
        for goals in (self.region_goals, self.salesman_goals):
            goals["month"] = pd.to_datetime(goals["month"])


def pandas_reports(f: Frames) -> dict[str, Callable[[], Any]]:
    """Each report's default answer with pandas (all data, no filters)."""
    lines, last = f.lines, f.last

    def period(grain: str) -> pd.Series:
        if grain == "D":
            return lines["day"]
        return lines["ordered_at"].dt.to_period(grain).dt.start_time

    def totals(by: list[Any], orders: bool = True) -> pd.DataFrame:
        spec = {"revenue": ("revenue", "sum"), "units": ("quantity", "sum")}
        if orders:
            spec["orders"] = ("order_id", "nunique")
        return lines.groupby(by, observed=True).agg(**spec).sort_values("revenue", ascending=False)

    def between(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return lines[(lines["day"] >= start) & (lines["day"] <= end)]

    def top(column: str, ascending: bool, orders: bool) -> Callable[[], Any]:
        return lambda: totals([column], orders).sort_values("revenue", ascending=ascending).head(10)

    def attainment(column: str, goals: pd.DataFrame) -> pd.DataFrame:
        revenue = lines.groupby([period("M").rename("month"), column], observed=True)["revenue"].sum()
        plan = goals.rename(columns={"salesman_id": column}).set_index(["month", column])["revenue_target"]
        frame = pd.DataFrame({"revenue": revenue, "goal": plan})
        frame["attainment"] = 100 * frame["revenue"] / frame["goal"]
        return frame

    def customers() -> pd.DataFrame:
        return lines.groupby("customer_id", observed=True).agg(
            revenue=("revenue", "sum"),
            orders=("order_id", "nunique"),
            first=("day", "min"),
            last=("day", "max"),
            days=("day", "nunique"),
            profit=("profit", "sum"),
        )

    def rfm() -> pd.DataFrame:
        stats = customers()
        n = len(stats)

        def score(values: pd.Series) -> pd.Series:
            return (5 * values.rank(method="min") + n - 1) // n

        r, fr = score(-(last - stats["last"]).dt.days), score(stats["orders"])
        stats["segment"] = np.select(
            [
                (r >= 4) & (fr >= 4),
                (r <= 2) & (fr >= 3),
                fr >= 3,
                (r >= 4) & (stats["orders"] == 1),
                r >= 4,
                r == 1,
                r == 2,
            ],
            ["Champions", "At Risk", "Loyal", "New", "Promising", "Lost", "Hibernating"],
            "Need Attention",
        )
        return stats.groupby("segment").agg(customers=("orders", "size"), revenue=("revenue", "sum"))

    def churn() -> pd.DataFrame:
        stats = customers()
        stats = stats[(stats["days"] >= 3) & (stats["last"] > stats["first"])]
        ratio = (last - stats["last"]).dt.days / (
            (stats["last"] - stats["first"]).dt.days / (stats["days"] - 1)
        )
        return stats.assign(ratio=ratio)[ratio >= 3].sort_values("ratio", ascending=False).head(100)

    def lifetime_value() -> pd.DataFrame:
        stats = customers()
        tenure = np.maximum(((last - stats["first"]).dt.days + 1) / 365.25, 1 / 12)
        value = stats["revenue"] / tenure * stats["profit"] / stats["revenue"] * 3
        return stats.assign(value=value).sort_values("value", ascending=False).head(100)

    def new_vs_repeat() -> pd.DataFrame:
        month = period("M")
        kind = np.where(lines["first_purchase"] >= month, "new", "repeat")
        return lines.groupby([month, kind]).agg(
            customers=("customer_id", "nunique"), orders=("order_id", "nunique"), revenue=("revenue", "sum")
        )

    def affinity() -> pd.DataFrame:
        baskets = lines[["order_id", "product_id"]].drop_duplicates()
        pairs = baskets.merge(baskets, on="order_id")
        pairs = pairs[pairs["product_id_x"].astype(str) < pairs["product_id_y"].astype(str)]
        return pairs.groupby(["product_id_x", "product_id_y"], observed=True).size().nlargest(20)

    def abc() -> pd.DataFrame:
        revenue = lines.groupby("product_id", observed=True)["revenue"].sum().sort_values(ascending=False)
        before = (revenue.cumsum() - revenue) / revenue.sum()
        return pd.DataFrame(
            {"revenue": revenue, "class": np.select([before < 0.8, before < 0.95], ["A", "B"], "C")}
        )

    def month_to_date() -> tuple[pd.DataFrame, pd.DataFrame]:
        start = last.replace(day=1)
        previous = start - pd.DateOffset(months=1)
        return between(start, last), between(previous, previous + pd.Timedelta(days=last.day - 1))

    def retention() -> float:
        start = last.replace(day=1)
        before = set(between(start - pd.DateOffset(months=1), start - pd.Timedelta(days=1))["customer_id"])
        now = set(between(start, last)["customer_id"])
        return len(before & now) / len(before)

    def active_salesmen() -> float:
        week = between(last - pd.Timedelta(days=last.weekday()), last)
        employed = f.salesmen[pd.to_datetime(f.salesmen["hire_date"]) <= last]
        return len(set(week["salesman_id"]) & set(employed["salesman_id"])) / len(employed)

    def mover() -> pd.Series:
        start = last.replace(day=1)
        previous = start - pd.DateOffset(months=1)
        now = between(start, last).groupby("product_id", observed=True)["quantity"].sum() / last.day
        before = (
            between(previous, start - pd.Timedelta(days=1))
            .groupby("product_id", observed=True)["quantity"]
            .sum()
            / (start - previous).days
        )
        return now.sub(before, fill_value=0).nlargest(5)

    def consistency() -> pd.DataFrame:
        daily = lines.groupby(["salesman_id", "day"], observed=True)["revenue"].sum().unstack(fill_value=0.0)
        first = lines.groupby("salesman_id", observed=True)["day"].min()
        mask = daily.columns.values[None, :] >= first.reindex(daily.index).values[:, None]
        values = daily.where(mask)
        return pd.DataFrame({"mean": values.mean(axis=1), "std": values.std(axis=1)})

    def seasonality() -> pd.DataFrame:
        month = lines["ordered_at"].dt.month
        revenue = lines.groupby(month)["revenue"].sum()
        occurrences = lines["day"].dt.to_period("M").drop_duplicates().dt.month.value_counts()
        return pd.DataFrame(
            {"revenue": revenue, "index": revenue / occurrences / (revenue.sum() / occurrences.sum())}
        )

    def underperformers() -> pd.DataFrame:
        month = last.replace(day=1) - pd.DateOffset(months=1)
        window = between(month - pd.DateOffset(months=12), month + pd.offsets.MonthEnd(0))
        grid = (
            window.groupby(["region", window["ordered_at"].dt.to_period("M")], observed=True)["revenue"]
            .sum()
            .unstack(fill_value=0.0)
        )
        history, x = grid.iloc[:, :12].to_numpy(), np.arange(12)
        slope = ((x - x.mean()) * (history - history.mean(axis=1, keepdims=True))).sum(axis=1) / (
            (x - x.mean()) ** 2
        ).sum()
        expected = history.mean(axis=1) + slope * (12 - x.mean())
        return grid.assign(expected=expected)[grid.iloc[:, 12] < expected * 0.9]

    def change_explained() -> pd.Series:
        now = between(last - pd.Timedelta(days=29), last).groupby("category", observed=True)["revenue"].sum()
        before = (
            between(last - pd.Timedelta(days=59), last - pd.Timedelta(days=30))
            .groupby("category", observed=True)["revenue"]
            .sum()
        )
        return now.sub(before, fill_value=0)

    def slow_movers() -> pd.DataFrame:
        last_sale = lines.groupby("product_id", observed=True)["day"].max()
        products = f.products.assign(last=f.products["product_id"].map(last_sale))
        return products[products["last"].isna() | (products["last"] <= last - pd.Timedelta(days=30))]

    def profitability() -> pd.DataFrame:
        grouped = lines.groupby("product_id", observed=True)[["profit", "revenue"]].sum()
        return grouped.assign(margin=100 * grouped["profit"] / grouped["revenue"]).nlargest(10, "profit")

    trade = lines["distributor_id"].notna()
    reports: dict[str, Callable[[], Any]] = {
        "sales-by-category-daily": lambda: totals([period("D"), "category"], False),
        "sales-by-category-weekly": lambda: totals([period("W-SUN"), "category"], False),
        "sales-by-category-monthly": lambda: totals([period("M"), "category"], False),
        "sales-by-category-quarterly": lambda: totals([period("Q"), "category"], False),
        "sales-by-zip": lambda: totals(["zip"]),
        "sales-by-state": lambda: totals(["state"]),
        "sales-by-state-zip": lambda: totals(["state", "zip"]),
        "sales-by-product": lambda: totals(["product_id", "category"], False),
        "sales-by-distributor": lambda: (
            lines[trade].groupby("distributor_id", observed=True)[["revenue", "quantity"]].sum()
        ),
        "distributor-sales-by-state": lambda: (
            lines[trade].groupby(["distributor_id", "state"], observed=True)[["revenue", "quantity"]].sum()
        ),
        "distributor-sales-by-product": lambda: (
            lines[trade]
            .groupby(["distributor_id", "product_id"], observed=True)[["revenue", "quantity"]]
            .sum()
        ),
        "distributor-ranking": lambda: (
            lines[trade]
            .groupby("distributor_id", observed=True)
            .agg(revenue=("revenue", "sum"), orders=("order_id", "nunique"))
            .sort_values("revenue", ascending=False)
        ),
        "kpi-total-revenue": lambda: lines["revenue"].sum(),
        "kpi-average-order-value": lambda: lines["revenue"].sum() / lines["order_id"].nunique(),
        "kpi-mom-growth": lambda: [part["revenue"].sum() for part in month_to_date()],
        "kpi-retention-rate": retention,
        "kpi-region-contribution": lambda: (
            lines.groupby("region", observed=True)["revenue"].sum() / lines["revenue"].sum()
        ),
        "kpi-revenue-run-rate": lambda: month_to_date()[0]["revenue"].sum() / last.day * last.days_in_month,
        "kpi-active-salesmen": active_salesmen,
        "kpi-top-product-mover": mover,
        "kpi-product-profitability": profitability,
        "goal-attainment-by-region": lambda: attainment("region", f.region_goals),
        "goal-attainment-by-salesman": lambda: attainment("salesman_id", f.salesman_goals),
        "sales-opportunities": lambda: attainment("region", f.region_goals).query("60 <= attainment <= 80"),
        "abc-classification": abc,
        "product-affinity": affinity,
        "slow-movers": slow_movers,
        "rfm-segments": rfm,
        "new-vs-repeat-customers": new_vs_repeat,
        "churn-risk": churn,
        "customer-lifetime-value": lifetime_value,
        "salesman-ranking": lambda: totals(["salesman_id"]),
        "salesman-consistency": consistency,
        "seasonality": seasonality,
        "underperformers": underperformers,
        "revenue-change-explained": change_explained,
    }
    for entity, column, orders in (
        ("products", "product_id", False),
        ("states", "state", True),
        ("zips", "zip", True),
        ("customers", "customer_id", True),
        ("salesmen", "salesman_id", True),
    ):
        reports[f"top-{entity}"] = top(column, False, orders)
        reports[f"bottom-{entity}"] = top(column, True, orders)
    return reports


def time_pandas(warehouse: Path, only: set[str] | None) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    frames = Frames(warehouse)
    load_seconds = time.perf_counter() - started
    timings = {}
    for name, compute in pandas_reports(frames).items():
        if only is not None and name not in only:
            continue
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            compute()
            samples.append((time.perf_counter() - started) * 1000)
            if samples[-1] > 5_000:  # slow enough that one run tells
                break
        timings[name] = statistics.median(samples)
    return timings, load_seconds


# --- the run ---


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=30, help="timed requests per report")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=80, help="1,000-line batches per ingest run")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders in the last ingest runs")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--only-ingest", action="store_true", help="skip the report timings and pandas")
    parser.add_argument("--reports", nargs="*", help="only these reports")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the ingest runs against this git ref (a temporary worktree), in the same session",
    )
    args = parser.parse_args()
    console.print(
        f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        warehouse = prepared_warehouse(Path(tmp))
        servers = {"this checkout": Server(warehouse)}
        baseline = None
        try:
            if args.baseline:
                baseline = Baseline(args.baseline, Path(tmp), warehouse)
                servers = {baseline.label: baseline.server, **servers}
            started = time.perf_counter()
            for server in servers.values():
                server.wait_ready()
            server = servers["this checkout"]
            console.print(f"Server ready in {time.perf_counter() - started:.1f} s at {server.url}")
            with httpx.Client(base_url=server.url, timeout=300) as client:
                lines = client.post("/query", json={"measures": ["lines"]}).json()["rows"][0]["lines"]
                console.print(f"{lines:,} order lines")
                if args.reports:
                    for name in list(REGISTRY):
                        if name not in args.reports:
                            REGISTRY.pop(name)
                http = {} if args.only_ingest else time_reports(client, args.requests, args.warmup)
            runs = []
            counts = sorted({1, min(4, args.senders), args.senders})
            plan = [(n, 0.2) for n in counts] + ([(args.senders, 0.0)] if args.senders > 1 else [])
            for day, (senders, read_every) in enumerate(plan, start=1):
                bodies = sales_batches(args.batches, f"r{day}-{os.getpid()}", day=day)
                # Both get the same batches; which goes first alternates, so that a drift in the machine's
                # load does not always favour the same one.
                order = list(servers.items()) if day % 2 else list(reversed(servers.items()))
                for label, each in order:
                    for other in servers.values() if len(servers) > 1 else ():
                        other.wait_quiet()  # no server's folds or checkpoints during the other's run
                    run = ingest(each.url, bodies, senders=senders, read_every=read_every)
                    runs.append({**run, "code": label})
        finally:
            for each in servers.values():
                each.stop()
            if baseline is not None:
                baseline.remove()
        skip = args.skip_pandas or args.only_ingest
        pandas_ms, load_seconds = ({}, 0.0) if skip else time_pandas(CACHED, set(http))

    print_results(http, pandas_ms, load_seconds, runs, args)
    console.print(
        f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes count too)"
    )


def print_results(
    http: dict[str, list[float]],
    pandas_ms: dict[str, float],
    load_seconds: float,
    runs: list[dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    table = Table(title=f"Named reports over HTTP at 10M order lines ({args.requests} requests each)")
    for column in ("report", "p50 ms", "p95 ms", "pandas ms", "pandas / p50"):
        table.add_column(column, justify="left" if column == "report" else "right")
    ratios = []
    for name, samples in http.items():
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        pandas = pandas_ms.get(name)
        ratio = pandas / p50 if pandas else None
        if ratio:
            ratios.append(ratio)
        table.add_row(
            name,
            f"{p50:,.1f}",
            f"{p95:,.1f}",
            f"{pandas:,.0f}" if pandas else "-",
            f"{ratio:,.0f}x" if ratio else "-",
            style="red" if p50 > 100 or p95 > 300 else None,
        )
    if http:
        console.print(table)
    p50s = [percentile(s, 50) for s in http.values()]
    p95s = [percentile(s, 95) for s in http.values()]
    console.print(
        f"reports with p50 < 100 ms: {sum(p < 100 for p in p50s)}/{len(p50s)}; "
        f"with p95 < 300 ms: {sum(p < 300 for p in p95s)}/{len(p95s)}"
    )
    if ratios:
        timed = [name for name in http if pandas_ms.get(name)]
        total_pandas = sum(pandas_ms[name] for name in timed)
        total_http = sum(percentile(http[name], 50) for name in timed)
        console.print(
            f"pandas / HTTP p50: median {statistics.median(ratios):,.0f}x, geometric mean "
            f"{statistics.geometric_mean(ratios):,.0f}x, min {min(ratios):,.0f}x; all {len(timed)} reports "
            f"one after another: {total_pandas / 1000:,.1f} s with pandas, {total_http / 1000:,.2f} s over "
            f"HTTP ({total_pandas / total_http:,.0f}x); {sum(r >= 20 for r in ratios)}/{len(ratios)} "
            "reports at least 20x"
        )
        console.print(
            "(pandas computation only, on DataFrames already in memory: loading them took "
            f"{load_seconds:.1f} s. A report pandas answers in a few milliseconds, one sum over a column, "
            f"cannot be 20x faster over HTTP, where the quickest report takes {min(p50s):.1f} ms end to end.)"
        )
    table = Table(title="POST /sales, 1,000-line batches, while a reader requests reports")
    baseline = {
        (r["senders"], r["reads_per_s"]): r["lines_per_s"] for r in runs if r["code"] != "this checkout"
    }
    columns = (
        *(("code",) if baseline else ()),
        "senders",
        "reader",
        "lines",
        "seconds",
        "lines/s",
        "batches per commit",
        "reads",
        "read p50 ms",
        "read p95 ms",
        "failures",
        *(("vs baseline",) if baseline else ()),
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "code" else "right")
    for run in runs:
        before = (
            baseline.get((run["senders"], run["reads_per_s"])) if run["code"] == "this checkout" else None
        )
        table.add_row(
            *((run["code"],) if baseline else ()),
            str(run["senders"]),
            run["reads_per_s"],
            f"{run['lines']:,}",
            f"{run['seconds']:.1f}",
            f"{run['lines_per_s']:,.0f}",
            f"{run['group']:.1f}",
            str(run["reads"]),
            f"{run['read_p50'] or 0:,.1f}",
            f"{run['read_p95'] or 0:,.1f}",
            str(len(run["failures"])),
            *((f"{run['lines_per_s'] / before:.2f}x" if before else "",) if baseline else ()),
        )
    console.print(table)


if __name__ == "__main__":
    main()
