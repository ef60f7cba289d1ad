"""Benchmark: the salespulse service side by side with `mlflow models serve` of the same segmenter and with
the framework echo ceilings, all on this machine, in one sitting, with the same load tool (`hey`).

1. A private environment (warehouse, MLflow sqlite store, BentoML model store) is prepared once and cached in
   data/bench/service/ (default sample, ~1.05M order lines; about 5 min: generation, then the daily
   forecaster of every level and the segmenter, trained and imported as champions) or
   data/bench/service-small/ (--small: the integration tests' sample, about 1.5 min). A cache is reused when
   its prepared.json says it is complete and of the same sample; --fresh throws it away and prepares anew.
2. Four servers start, each with 1 worker, OMP_NUM_THREADS=1, bound to 127.0.0.1 on a free port, each in
   its own process group (stopped at the end, on errors, Ctrl-C and SIGTERM too; logs in <cache>/logs/):
   the salespulse service (`bentoml serve service.service:SalesPulse`),
   `mlflow models serve -m models:/customer-segmenter@champion --env-manager local -w 1`,
   a trivial BentoML echo service (a sync and an async endpoint) and a trivial FastAPI echo app under uvicorn
   (both generated into a temp dir).
3. One target at a time, every response checked once first: throughput rows get a --warmup, then
   `hey -c <clients> -z <duration>`, in --rounds interleaved rounds (the median round is reported); latency
   rows are sequential requests from one client (`hey -c 1 -n N -o csv`, percentiles computed here).
4. Prints the table (req/s, p50/p95/p99, errors, ratio to `mlflow models serve`), the goals as PASS/MISS and
   the load average around the run (other work on the machine skews everything), and writes the figures to
   data/bench/service-results[-small].json.

    .venv/bin/python bench/bench_service.py --small             # quick: small sample, about 5 min
    .venv/bin/python bench/bench_service.py --rounds 3          # default sample, about 15 min
    options: --fresh --duration 20 --warmup 2 --clients 10 --batch-requests 30 --latency-requests 300

Goals (the issue's "Speed" section): /segment single-customer throughput >= 2x `mlflow models serve` of the
same model with p99 < 20 ms at that load (10 clients); /forecast for one series, 28 days, p99 < 50 ms
(judged on sequential requests; the same p99 under 10 clients is shown as the stricter reading); a
10,000-customer /segment batch (raw features) in under 200 ms (p99 of sequential requests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from salespulse.features.customers import FEATURE_NAMES, customer_features  # noqa: E402

VENV_BIN = REPO_ROOT / ".venv" / "bin"
BENCH_DATA = REPO_ROOT / "data" / "bench"
BATCH_CUSTOMERS = 10_000
MARKER = "prepared.json"
END_DATE = date(2026, 6, 30)
# The integration tests' sample (tests/service_support.py) and the default GeneratorConfig (~1.05M lines).
SAMPLES: dict[str, dict[str, Any]] = {
    "small": {"seed": 11, "customers": 2_500, "rows": 150_000, "products": 80, "days": 540},
    "default": {},
}
# One customer as a CRM would send it; floats, because the MLflow signature says double for every feature.
ONE_CUSTOMER = {
    "recency_days": 12.0,
    "frequency": 9.0,
    "monetary": 5120.5,
    "tenure_days": 640.0,
    "avg_order_value": 568.9,
}
GOAL_SEGMENT_RATIO = 2.0
GOAL_SEGMENT_P99_MS = 20.0
GOAL_FORECAST_P99_MS = 50.0
GOAL_BATCH_MS = 200.0
console = Console(width=None if sys.stdout.isatty() else 130)


# ------------------------------------------------------------------------------------------- environment


def environment(root: Path) -> dict[str, str]:
    """Everything the service, the training code and `mlflow models serve` read, pointed into ``root``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SALESPULSE_", "MLFLOW_", "BENTOML_"))
    }
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "SALESPULSE_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
            "SALESPULSE_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "SALESPULSE_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "BENTOML_HOME": str(root / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


PREPARE_CODE = """
import sys, time
from datetime import date
started = time.perf_counter()
def say(message):
    print(f"  [{time.perf_counter() - started:6.1f} s] {message}", flush=True)
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.series import LEVELS
from training.forecaster.pipeline import run as train_forecaster
from training.segmenter.pipeline import run as train_segmenter
from service.build import import_champions
generate_warehouse(GeneratorConfig(end_date=date.fromisoformat(sys.argv[1]), **SAMPLE))
say("warehouse generated")
for level in LEVELS:
    train_forecaster(level=level, freq="D", progress=False)
    say(f"forecaster {level} trained")
train_segmenter(progress=False)
say("segmenter trained")
print("MODELS=" + ",".join(str(m.tag) for m in import_champions()), flush=True)
say("champions imported into the BentoML store")
"""


def prepared_root(sample: str, fresh: bool) -> Path:
    """The cached environment of ``sample``, prepared first if it is missing, incomplete or ``fresh``."""
    root = BENCH_DATA / ("service" if sample == "default" else f"service-{sample}")
    wanted = {"sample": SAMPLES[sample], "end_date": END_DATE.isoformat()}
    marker = root / MARKER
    if not fresh and marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("config") == wanted:
            console.print(f"Reusing the prepared environment in {root} (--fresh to rebuild it)")
            return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    console.print(f"Preparing a {sample} environment in {root}: warehouse, training, champion import ...")
    started = time.perf_counter()
    models = run_preparation(sample, environment(root))
    seconds = time.perf_counter() - started
    marker.write_text(
        json.dumps({"config": wanted, "models": models, "seconds": round(seconds, 1)}, indent=2)
    )
    console.print(f"Prepared in {seconds:.0f} s")
    return root


def run_preparation(sample: str, env: dict[str, str]) -> list[str]:
    """Run PREPARE_CODE in a child process (the settings and stores must see ``env`` from the start),
    showing its progress lines as they come; the rest of its output is shown only if it fails."""
    code = f"SAMPLE = {SAMPLES[sample]!r}\n{PREPARE_CODE}"
    env = {**env, "TQDM_DISABLE": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    argv = [str(VENV_BIN / "python"), "-c", code, END_DATE.isoformat()]
    other: list[str] = []
    models: list[str] = []
    with subprocess.Popen(
        argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("MODELS="):
                models = line.strip().removeprefix("MODELS=").split(",")
            elif line.startswith("  ["):
                console.print(line.rstrip(), highlight=False)
            else:
                other.append(line)
    if process.returncode != 0:
        console.print("".join(other[-80:]), highlight=False, markup=False)
        raise RuntimeError(f"preparing the environment failed (exit {process.returncode}); see above")
    return models


# ------------------------------------------------------------------------------------------- request bodies


@dataclass(frozen=True)
class Inputs:
    series: str
    series_revenue: float
    order_lines: int
    customers_known: int
    batch_features: list[dict[str, float | str]]
    batch_ids: list[str]


def read_inputs(warehouse: Path) -> Inputs:
    """Request material from the warehouse, read before the service opens (and locks) the file."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        series, revenue = con.execute(
            """SELECT o.product_id || '|' || coalesce(c.region, 'Unknown') AS series,
                      sum(o.revenue) AS revenue
               FROM order_lines o LEFT JOIN customers c USING (customer_id)
               GROUP BY series ORDER BY revenue DESC LIMIT 1"""
        ).fetchone()
        (lines,) = con.execute("SELECT count(*) FROM order_lines").fetchone()
        features = customer_features(con)
    # Real customers' features; a sample with fewer than 10,000 customers repeats them to make the batch.
    rows = np.resize(np.arange(len(features)), BATCH_CUSTOMERS)
    batch = [
        {"customer_id": f"crm-{n:07d}", **dict(zip(FEATURE_NAMES, map(float, values), strict=True))}
        for n, values in enumerate(features.to_numpy(dtype=np.float64)[rows])
    ]
    ids = features.index[:BATCH_CUSTOMERS].tolist()
    return Inputs(series, float(revenue), int(lines), len(features), batch, ids)


def write_bodies(directory: Path, inputs: Inputs) -> dict[str, Path]:
    bodies = {
        "segment_one": {"customers": [ONE_CUSTOMER]},
        "mlflow_one": {"dataframe_records": [ONE_CUSTOMER]},
        "echo_one": {"customers": [ONE_CUSTOMER]},
        "forecast_one": {"level": "product_region", "series": [inputs.series], "horizon": 28},
        "segment_batch": {"customers": inputs.batch_features},
        "segment_batch_ids": {"customer_ids": inputs.batch_ids},
    }
    paths = {}
    for name, body in bodies.items():
        paths[name] = directory / f"{name}.json"
        paths[name].write_text(json.dumps(body))
    return paths


# ------------------------------------------------------------------------------------------- servers

BENTOML_ECHO = """
from typing import Any

import bentoml


@bentoml.service(
    name="echo", workers=1, logging={"access": {"enabled": False}}, tracing={"sample_rate": 0.0}
)
class Echo:
    @bentoml.api(route="/echo")
    def echo(self, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return customers

    @bentoml.api(route="/echo_async")
    async def echo_async(self, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return customers
"""

FASTAPI_ECHO = """
from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> str:
    return "ok"


@app.post("/echo")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return payload
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the server's process group (bentoml runs several processes), SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(
    stack: contextlib.ExitStack, name: str, argv: list[str], env: dict[str, str], cwd: Path, logs: Path
) -> Server:
    """Start ``argv`` in its own process group; the stack stops it, whatever happens next."""
    log = logs / f"{name}.log"
    if "{port}" not in argv:
        raise ValueError("argv needs a {port} placeholder")
    number = free_port()
    argv = [str(number) if a == "{port}" else a for a in argv]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{number}", process, log)
    stack.callback(server.stop)
    return server


def wait_ready(server: Server, path: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready in {timeout:.0f} s:\n{server.log_tail()}")


def start_all(stack: contextlib.ExitStack, root: Path, run_dir: Path) -> dict[str, Server]:
    """Start the four servers at once (their start-ups overlap), then wait for each to be ready."""
    env = environment(root)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    (run_dir / "echo_bentoml.py").write_text(BENTOML_ECHO)
    (run_dir / "echo_fastapi.py").write_text(FASTAPI_ECHO)
    loopback = ["--host", "127.0.0.1", "--port", "{port}"]
    commands = {
        "salespulse": (
            [str(VENV_BIN / "bentoml"), "serve", "service.service:SalesPulse", *loopback], REPO_ROOT
        ),
        "mlflow": (
            [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/customer-segmenter@champion",
             "--env-manager", "local", "-w", "1", "-h", "127.0.0.1", "-p", "{port}"],
            REPO_ROOT,
        ),
        "bentoml-echo": ([str(VENV_BIN / "bentoml"), "serve", "echo_bentoml:Echo", *loopback], run_dir),
        "fastapi-echo": (
            [str(VENV_BIN / "uvicorn"), "echo_fastapi:app", "--workers", "1", "--log-level", "warning",
             "--no-access-log", *loopback],
            run_dir,
        ),
    }  # fmt: skip
    servers = {
        name: start_server(stack, name, argv, env, cwd, logs) for name, (argv, cwd) in commands.items()
    }
    ready_paths = {
        "salespulse": "/readyz",
        "mlflow": "/ping",
        "bentoml-echo": "/readyz",
        "fastapi-echo": "/ping",
    }
    started = time.perf_counter()
    for name, server in servers.items():
        wait_ready(server, ready_paths[name])
        console.print(f"  {name} ready at {server.url} ({time.perf_counter() - started:.0f} s)")
    return servers


# ------------------------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    url: str
    body: Path
    clients: int
    duration_s: float | None = None  # a timed run (throughput rows) ...
    requests: int | None = None  # ... or a fixed number of requests (latency rows)


@dataclass(frozen=True)
class Measurement:
    label: str
    clients: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    responses: int
    errors: int


def hey(
    target: Target, *, duration_s: float | None = None, requests: int | None = None, csv: bool = False
) -> str:
    argv = ["hey", "-c", str(target.clients), "-m", "POST", "-T", "application/json", "-D", str(target.body)]
    argv += ["-z", f"{duration_s:g}s"] if duration_s is not None else ["-n", str(requests)]
    argv += ["-o", "csv"] if csv else []
    timeout = (duration_s or 0) + 120 + (requests or 0) * 5
    result = subprocess.run([*argv, target.url], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"hey failed on {target.label}: {result.stderr[-2000:]}")
    return result.stdout


def parse_hey(output: str, label: str, clients: int) -> Measurement:
    """Requests/sec, latency percentiles and error counts out of hey's summary."""

    def number(pattern: str) -> float:
        found = re.search(pattern, output)
        if found is None:
            raise ValueError(f"no {pattern!r} in hey's output:\n{output}")
        return float(found.group(1))

    statuses = {int(code): int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors_section = output.split("Error distribution:", 1)[1] if "Error distribution:" in output else ""
    transport_errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", errors_section, re.MULTILINE))
    return Measurement(
        label=label,
        clients=clients,
        requests_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=number(r"50%+ in ([\d.]+) secs") * 1000,
        p95_ms=number(r"95%+ in ([\d.]+) secs") * 1000,
        p99_ms=number(r"99%+ in ([\d.]+) secs") * 1000,
        responses=sum(statuses.values()),
        errors=transport_errors + sum(n for code, n in statuses.items() if not 200 <= code < 300),
    )


def parse_hey_csv(output: str, label: str, sent: int) -> Measurement:
    """Per-request latencies from ``hey -o csv`` (one client, a fixed count): hey's own summary leaves out
    percentiles it has too few samples for, and its csv lists only requests that got a response."""
    rows = [line.split(",") for line in output.strip().splitlines()[1:]]
    latencies = np.array([float(row[0]) for row in rows]) * 1000
    statuses = [int(row[6]) for row in rows]
    elapsed_s = max(float(row[7]) + float(row[0]) for row in rows) if rows else 0.0
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if rows else (np.nan,) * 3
    return Measurement(
        label=label,
        clients=1,
        requests_per_s=len(rows) / elapsed_s if elapsed_s else 0.0,
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        responses=len(rows),
        errors=sent - len(rows) + sum(1 for status in statuses if not 200 <= status < 300),
    )


def check_response(target: Target) -> None:
    """One request before the load: a benchmark of error responses would measure nothing."""
    response = httpx.post(
        target.url, content=target.body.read_bytes(), headers={"content-type": "application/json"}, timeout=60
    )
    if response.status_code != 200:
        raise RuntimeError(f"{target.label}: HTTP {response.status_code}: {response.text[:1000]}")


def measure(target: Target, warmup_s: float) -> Measurement:
    check_response(target)
    if target.duration_s is not None:
        hey(target, duration_s=warmup_s)
        result = parse_hey(hey(target, duration_s=target.duration_s), target.label, target.clients)
    else:
        assert target.requests is not None and target.clients == 1
        hey(target, requests=3)
        result = parse_hey_csv(hey(target, requests=target.requests, csv=True), target.label, target.requests)
    console.print(
        f"  {target.label:<44} {result.requests_per_s:9.1f} req/s  p50 {result.p50_ms:7.1f} ms  "
        f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}",
        highlight=False,
    )
    return result


def run_rounds(all_targets: list[Target], args: argparse.Namespace) -> dict[str, list[Measurement]]:
    """The throughput rows ``args.rounds`` times, interleaved (so a burst of other load on the machine hits
    every target alike), then the sequential latency rows once."""
    rounds: dict[str, list[Measurement]] = {target.key: [] for target in all_targets}
    timed = [target for target in all_targets if target.duration_s is not None]
    for number in range(args.rounds):
        if args.rounds > 1:
            console.print(f"  round {number + 1} of {args.rounds}")
        for target in timed:
            rounds[target.key].append(measure(target, args.warmup))
    for target in all_targets:
        if target.duration_s is None:
            rounds[target.key].append(measure(target, args.warmup))
    return rounds


def median_round(measured: list[Measurement]) -> Measurement:
    """The round with the median throughput (the lower middle one of an even count)."""
    return sorted(measured, key=lambda m: m.requests_per_s)[(len(measured) - 1) // 2]


def targets(servers: dict[str, Server], bodies: dict[str, Path], args: argparse.Namespace) -> list[Target]:
    timed = {"clients": args.clients, "duration_s": args.duration}
    batch = {"clients": 1, "requests": args.batch_requests}
    ids = len(json.loads(bodies["segment_batch_ids"].read_text())["customer_ids"])
    forecast = "salespulse /forecast, 1 series x 28 d"
    rows: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
        ("segment", "salespulse /segment, 1 customer", "salespulse", "/segment", "segment_one", timed),
        ("mlflow", "mlflow models serve, 1 customer", "mlflow", "/invocations", "mlflow_one", timed),
        ("bentoml_echo", "BentoML echo (sync def)", "bentoml-echo", "/echo", "echo_one", timed),
        ("bentoml_echo_async", "BentoML echo (async def)", "bentoml-echo", "/echo_async", "echo_one", timed),
        ("fastapi_echo", "FastAPI echo (uvicorn)", "fastapi-echo", "/echo", "echo_one", timed),
        ("forecast", forecast, "salespulse", "/forecast", "forecast_one", timed),
        (
            "forecast_1client", forecast, "salespulse", "/forecast", "forecast_one",
            {"clients": 1, "requests": args.latency_requests},
        ),
        (
            "batch", f"salespulse /segment, {BATCH_CUSTOMERS:,} customers (features)", "salespulse",
            "/segment", "segment_batch", batch,
        ),
        (
            "batch_ids", f"salespulse /segment, {ids:,} customer_ids", "salespulse", "/segment",
            "segment_batch_ids", batch,
        ),
    ]  # fmt: skip
    return [
        Target(key, label, servers[server].url + path, bodies[body], **load)
        for key, label, server, path, body, load in rows
    ]


# ------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Goal:
    text: str
    measured: str
    passed: bool


def goals(results: dict[str, Measurement]) -> list[Goal]:
    segment, mlflow = results["segment"], results["mlflow"]
    ratio = segment.requests_per_s / mlflow.requests_per_s
    forecast, forecast_1, batch = results["forecast"], results["forecast_1client"], results["batch"]
    clean = all(r.errors == 0 for r in results.values())
    return [
        Goal(
            f"/segment 1 customer >= {GOAL_SEGMENT_RATIO:g}x mlflow models serve ({segment.clients} clients)",
            f"{ratio:.2f}x", ratio >= GOAL_SEGMENT_RATIO,
        ),
        Goal(
            f"/segment 1 customer p99 < {GOAL_SEGMENT_P99_MS:g} ms at that load",
            f"{segment.p99_ms:.1f} ms", segment.p99_ms < GOAL_SEGMENT_P99_MS,
        ),
        Goal(
            f"/forecast 1 series x 28 d p99 < {GOAL_FORECAST_P99_MS:g} ms (1 client, sequential)",
            f"{forecast_1.p99_ms:.1f} ms", forecast_1.p99_ms < GOAL_FORECAST_P99_MS,
        ),
        Goal(
            f"/forecast 1 series x 28 d p99 < {GOAL_FORECAST_P99_MS:g} ms ({forecast.clients} clients, "
            "the stricter reading)",
            f"{forecast.p99_ms:.1f} ms", forecast.p99_ms < GOAL_FORECAST_P99_MS,
        ),
        Goal(
            f"/segment {BATCH_CUSTOMERS:,} customers < {GOAL_BATCH_MS:g} ms (p99 of sequential requests)",
            f"{batch.p99_ms:.1f} ms", batch.p99_ms < GOAL_BATCH_MS,
        ),
        Goal("no errors in any run", f"{sum(r.errors for r in results.values())} errors", clean),
    ]  # fmt: skip


def print_table(results: dict[str, Measurement], all_targets: list[Target], rounds: int) -> None:
    baseline = results["mlflow"].requests_per_s
    title = "salespulse vs mlflow models serve vs framework echo (1 worker each, hey)"
    if rounds > 1:
        title += f"; throughput rows: the median of {rounds} rounds"
    table = Table(title=title)
    for column in ("target", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "x mlflow serve"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for target in all_targets:
        r = results[target.key]
        timed = target.duration_s is not None
        table.add_row(
            r.label,
            str(r.clients) if timed else f"1 ({target.requests} seq.)",
            f"{r.requests_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}",
            f"{r.p99_ms:.1f}",
            str(r.errors),
            f"{r.requests_per_s / baseline:.2f}x" if timed else "-",
        )
    console.print(table)


def print_goals(results: dict[str, Measurement], checked: list[Goal]) -> None:
    segment = results["segment"].requests_per_s
    for key in ("bentoml_echo", "bentoml_echo_async", "fastapi_echo"):
        ceiling = results[key]
        console.print(f"  /segment reaches {segment / ceiling.requests_per_s:.0%} of {ceiling.label}")
    for goal in checked:
        verdict = "[green]PASS[/green]" if goal.passed else "[red]MISS[/red]"
        console.print(f"  {verdict}  {goal.text}: {goal.measured}")


def print_machine_load(before: tuple[float, ...], after: tuple[float, ...]) -> None:
    """The load average around the measurements: with 2 cores, hey and one server fill about 2; much more
    means other work shared the CPU and the figures are pessimistic (and noisier)."""
    console.print(
        f"Load average (1, 5, 15 min) before the load: {', '.join(f'{x:.1f}' for x in before)}; "
        f"after: {', '.join(f'{x:.1f}' for x in after)} on {os.cpu_count()} CPUs"
    )
    if max(before[0], after[0]) > (os.cpu_count() or 1) + 0.5:
        console.print(
            "[yellow]Other processes competed for the CPU: rerun on a quiet machine to compare.[/yellow]"
        )


@dataclass(frozen=True)
class Record:
    args: argparse.Namespace
    inputs: Inputs
    results: dict[str, Measurement]
    rounds: dict[str, list[Measurement]]
    goals: list[Goal]
    load: tuple[tuple[float, ...], tuple[float, ...]]


def write_results(path: Path, run: Record) -> None:
    args, inputs, results, checked = run.args, run.inputs, run.results, run.goals
    record = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            "sample": "small" if args.small else "default",
            "clients": args.clients,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "order_lines": inputs.order_lines,
            "customers": inputs.customers_known,
            "forecast_series": inputs.series,
            "workers": 1,
            "omp_num_threads": 1,
        },
        "load_average": {
            "before": [round(x, 2) for x in run.load[0]],
            "after": [round(x, 2) for x in run.load[1]],
        },
        "results": {key: asdict(value) for key, value in results.items()},
        "rounds": {key: [asdict(m) for m in measured] for key, measured in run.rounds.items()},
        "ratios_to_mlflow_serve": {
            key: round(value.requests_per_s / results["mlflow"].requests_per_s, 3)
            for key, value in results.items()
            if key in ("segment", "bentoml_echo", "bentoml_echo_async", "fastapi_echo", "forecast")
        },
        "goals": [asdict(goal) for goal in checked],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    console.print(f"Figures written to {path.relative_to(REPO_ROOT)}")


# ------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="the integration tests' small sample (quick)")
    parser.add_argument("--fresh", action="store_true", help="prepare the cached environment anew")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per throughput row")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of the throughput rows (median reported)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load before each row")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients of the throughput rows")
    parser.add_argument("--batch-requests", type=int, default=30, help="sequential 10k-customer requests")
    parser.add_argument("--latency-requests", type=int, default=300, help="sequential 1-client /forecast")
    return parser.parse_args()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the benchmark unwinds like Ctrl-C, so the servers are stopped either way."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    args = parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed (https://github.com/rakyll/hey)")
    sample = "small" if args.small else "default"
    root = prepared_root(sample, args.fresh)
    inputs = read_inputs(root / "warehouse.duckdb")
    console.print(
        f"Warehouse: {inputs.order_lines:,} order lines, {inputs.customers_known:,} customers; "
        f"forecast series {inputs.series!r} (the product x region with the most revenue)"
    )
    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="bench-service-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        run_dir = Path(tmp)
        bodies = write_bodies(run_dir, inputs)
        console.print("Starting the servers (1 worker each, 127.0.0.1) ...")
        servers = start_all(stack, root, run_dir)
        all_targets = targets(servers, bodies, args)
        console.print(f"Load: hey, {args.warmup:g} s warm-up then {args.duration:g} s per throughput row")
        load_before = os.getloadavg()
        rounds = run_rounds(all_targets, args)
        results = {key: median_round(measured) for key, measured in rounds.items()}
        load_after = os.getloadavg()
    print_table(results, all_targets, args.rounds)
    checked = goals(results)
    print_goals(results, checked)
    print_machine_load(load_before, load_after)
    suffix = "" if sample == "default" else f"-{sample}"
    record = Record(args, inputs, results, rounds, checked, (load_before, load_after))
    write_results(BENCH_DATA / f"service-results{suffix}.json", record)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        console.print("Interrupted: the servers are stopped.")
        sys.exit(130)
