"""Benchmark: the salespulse service side by side with `mlflow models serve` of the same segmenter and with
the framework echo ceilings, and /segment with 1, 2 and 4 service workers, all on this machine, in one
sitting, with the same load tool (`hey`).

0. hey is a Debian package: when it is missing, scripts/tools.sh installs it (apt-get; needs root, as CI
   has). It stays the load tool because it is a Go binary: on 2 cores the load generator competes with the
   server, and hey costs far less CPU per request than a Python one (Locust); its CPU is shown anyway.
1. A private environment (warehouse, MLflow sqlite store, BentoML model store) is prepared once and cached in
   data/bench/service/ (default sample, ~1.05M order lines; about 5 min: generation, then the daily
   forecaster of every level, the segmenter and the customer-value model, trained and imported as
   champions) or data/bench/service-small/ (--small: the integration tests' sample, about 3 min). A cache is
   reused when its prepared.json says it is complete, of the same sample and models; --fresh throws it away
   and prepares anew.
2. Six servers start, OMP_NUM_THREADS=1, bound to 127.0.0.1 on a free port, each in its own process group
   (stopped at the end, on errors, Ctrl-C and SIGTERM too; logs in <cache>/logs/):
   the salespulse service (`bentoml serve service.service:SalesPulse`) with SALESPULSE_SERVICE_WORKERS=1,
   the same with SALESPULSE_SERVICE_WORKERS=2 and =4 (each on a copy of the warehouse: DuckDB lets one
   process write a file),
   `mlflow models serve -m models:/customer-segmenter@champion --env-manager local -w 1`, a trivial
   BentoML echo service (a sync and an async endpoint) and a trivial FastAPI echo app under uvicorn (both
   generated into a temp dir), the last three with 1 worker.
3. One target at a time, every response checked once first: throughput rows get a --warmup, then
   `hey -c <clients> -z <duration>`, in --rounds interleaved rounds (the median round is reported); latency
   rows are sequential requests from one client (`hey -c 1 -n N -o csv`, percentiles computed here). The 1-
   and 2-worker rows of the same request run back to back. Around every measured run the CPU time of hey and
   of each server process is read, so the table shows what the load tool, the server and each BentoML
   worker used (in % of one core): two workers sharing one socket can split the connections unevenly.
4. Prints the table (req/s, p50/p95/p99, errors, ratio to `mlflow models serve`, CPU), the 1-vs-2-vs-4-worker
   table, the goals as PASS/MISS and the load average around the run (other work on the machine skews
   everything), and writes the figures to data/bench/service-results[-small].json.

    .venv/bin/python bench/bench_service.py --small             # quick: small sample, about 8 min
    .venv/bin/python bench/bench_service.py --rounds 3          # default sample, about 25 min
    options: --fresh --duration 20 --warmup 2 --clients 10 --batch-requests 30 --latency-requests 300

Goals (the issue's "Speed" section): /segment single-customer throughput >= 2x `mlflow models serve` of the
same model with p99 < 20 ms at that load (10 clients, 1 worker); /forecast for one series, 28 days, p99 <
50 ms (judged on sequential requests; the same p99 under 10 clients is shown as the stricter reading); a
10,000-customer /segment batch (raw features) in under 200 ms (p99 of sequential requests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from salespulse.features.customers import FEATURE_NAMES, customer_features  # noqa: E402

VENV_BIN = REPO_ROOT / ".venv" / "bin"
BENCH_DATA = REPO_ROOT / "data" / "bench"
BATCH_CUSTOMERS = 10_000
SMALL_BATCH_CUSTOMERS = 100  # the batch size of the 1/2/4-worker /segment rows
MORE_WORKERS = (2, 4)  # the service with more workers than 1, each on its own copy of the warehouse
# How `bentoml serve` names the module its worker processes run (python -m ...).
BENTOML_WORKER_MODULE = "_bentoml_impl.worker.service"
LOAD_TOOL = "hey"
TOOLS_SCRIPT = REPO_ROOT / "scripts" / "tools.sh"
MARKER = "prepared.json"
# The models PREPARE_CODE trains (every one the service serves); a cache prepared with others is rebuilt.
PREPARED_MODELS = ["forecaster (every level)", "segmenter", "customer-value"]
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
console = Console(width=None if sys.stdout.isatty() else 170)  # the tables have 10-11 columns


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
from training.customer_value.pipeline import run as train_customer_value
from service.build import import_champions
generate_warehouse(GeneratorConfig(end_date=date.fromisoformat(sys.argv[1]), **SAMPLE))
say("warehouse generated")
for level in LEVELS:
    train_forecaster(level=level, freq="D", progress=False)
    say(f"forecaster {level} trained")
train_segmenter(progress=False)
say("segmenter trained")
train_customer_value(progress=False)
say("customer-value model trained")
print("MODELS=" + ",".join(str(m.tag) for m in import_champions()), flush=True)
say("champions imported into the BentoML store")
"""


def prepared_root(sample: str, fresh: bool) -> Path:
    """The cached environment of ``sample``, prepared first if it is missing, incomplete or ``fresh``."""
    root = BENCH_DATA / ("service" if sample == "default" else f"service-{sample}")
    wanted = {"sample": SAMPLES[sample], "end_date": END_DATE.isoformat(), "models": PREPARED_MODELS}
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
        "segment_batch100": {"customers": inputs.batch_features[:SMALL_BATCH_CUSTOMERS]},
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
    workers: int = 1  # worker processes found running and staying up (BentoML services)
    asked_workers: int = 1

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
    # salespulse also reads its address from the settings: its warehouse owner record says where it answers.
    env = {**env, "SALESPULSE_SERVICE_HOST": "127.0.0.1", "SALESPULSE_SERVICE_PORT": str(number)}
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
    """Start the five servers at once (their start-ups overlap), then wait for each to be ready, and for the
    BentoML ones to have every worker loaded."""
    env = environment(root)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    (run_dir / "echo_bentoml.py").write_text(BENTOML_ECHO)
    (run_dir / "echo_fastapi.py").write_text(FASTAPI_ECHO)
    loopback = ["--host", "127.0.0.1", "--port", "{port}"]
    salespulse = [str(VENV_BIN / "bentoml"), "serve", "service.service:SalesPulse", *loopback]
    more_workers = {
        f"salespulse-{n}w": (salespulse, REPO_ROOT, {
            "SALESPULSE_SERVICE_WORKERS": str(n),
            "SALESPULSE_WAREHOUSE_PATH": str(warehouse_copy(stack, root, f"warehouse-{n}w.duckdb")),
        }, n)
        for n in MORE_WORKERS
    }  # fmt: skip
    # name: (argv, working directory, environment on top of the shared one, worker processes asked for)
    commands: dict[str, tuple[list[str], Path, dict[str, str], int]] = {
        "salespulse": (salespulse, REPO_ROOT, {"SALESPULSE_SERVICE_WORKERS": "1"}, 1),
        **more_workers,
        "mlflow": (
            [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/customer-segmenter@champion",
             "--env-manager", "local", "-w", "1", "-h", "127.0.0.1", "-p", "{port}"],
            REPO_ROOT, {}, 1,
        ),
        "bentoml-echo": (
            [str(VENV_BIN / "bentoml"), "serve", "echo_bentoml:Echo", *loopback], run_dir, {}, 1
        ),
        "fastapi-echo": (
            [str(VENV_BIN / "uvicorn"), "echo_fastapi:app", "--workers", "1", "--log-level", "warning",
             "--no-access-log", *loopback],
            run_dir, {}, 1,
        ),
    }  # fmt: skip
    servers = {
        name: start_server(stack, name, argv, {**env, **extra}, cwd, logs)
        for name, (argv, cwd, extra, _) in commands.items()
    }
    ready_paths = {
        "salespulse": "/readyz",
        **{name: "/readyz" for name in more_workers},
        "mlflow": "/ping",
        "bentoml-echo": "/readyz",
        "fastapi-echo": "/ping",
    }
    started = time.perf_counter()
    for name, server in servers.items():
        wait_ready(server, ready_paths[name])
        if ready_paths[name] == "/readyz":  # a BentoML service
            server.asked_workers = commands[name][3]
            server.workers = wait_for_workers(server, server.asked_workers)
        elapsed = time.perf_counter() - started
        console.print(f"  {name} ready at {server.url}, {worker_label(server)} ({elapsed:.0f} s)")
    for name, (_, _, _, asked) in more_workers.items():
        warn_if_workers_missing(servers[name], asked)
    return servers


def warehouse_copy(stack: contextlib.ExitStack, root: Path, name: str) -> Path:
    """A copy of the prepared warehouse for a second salespulse service (DuckDB lets one process write a file,
    and a service holds its warehouse open), removed at the end with everything the service left beside it."""
    source = root / "warehouse.duckdb"
    copy = root / name
    remove_warehouse_copy(copy)
    shutil.copyfile(source, copy)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    stack.callback(remove_warehouse_copy, copy)
    return copy


def remove_warehouse_copy(copy: Path) -> None:
    for leftover in copy.parent.glob(f"{copy.name}*"):  # the file, its WAL, the service's owner record
        leftover.unlink(missing_ok=True)


def wait_for_workers(
    server: Server, expected: int, spawn_s: float = 10, settle_s: float = 90, stable_s: float = 10
) -> int:
    """Wait until the BentoML service runs ``expected`` worker processes (circus spawns them all at once) and
    they have finished loading the models (their CPU falls quiet): /readyz answers as soon as one worker is
    up, and a worker still loading when the load starts would get none of hey's connections. Returns the
    number of workers whose process then stays the same for ``stable_s``: circus restarts a worker that
    fails at start-up in a loop, and such a worker serves nothing (it only burns CPU loading models)."""
    spawn_deadline = time.monotonic() + spawn_s
    while len(bentoml_workers(server.process.pid)) < expected and time.monotonic() < spawn_deadline:
        time.sleep(0.5)
    settle_deadline = time.monotonic() + settle_s
    while time.monotonic() < settle_deadline:
        workers = bentoml_workers(server.process.pid)
        if busy_percent(workers, over_s=1.0) < 10 * max(len(workers), 1):
            break
    first = worker_keys(server.process.pid)
    time.sleep(stable_s)
    return len(first & worker_keys(server.process.pid))


def worker_keys(pid: int) -> set[ProcessKey]:
    keys = set()
    for process in bentoml_workers(pid):
        with contextlib.suppress(psutil.Error):
            keys.add((process.pid, process.create_time()))
    return keys


def warn_if_workers_missing(server: Server, expected: int) -> None:
    if server.workers != expected:
        console.print(
            f"[red]{server.name}: SALESPULSE_SERVICE_WORKERS={expected} gave {server.workers} worker(s) that "
            f"stay up (a worker failing at start-up is restarted in a loop; see {server.log}). The "
            f"{expected}-worker rows below measure that.[/red]"
        )


# ------------------------------------------------------------------------------------------- CPU accounting

ProcessKey = tuple[int, float]  # (pid, start time): a pid reused by a new process is another process


def server_processes(pid: int) -> list[psutil.Process]:
    """The server's process and all its descendants (bentoml: the circus arbiter and its workers; mlflow: the
    CLI and the uvicorn it starts)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def worker_id(process: psutil.Process) -> int | None:
    """The id (1, 2, ...) of a BentoML service worker process, None for any other process."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return None
    if BENTOML_WORKER_MODULE not in argv or "--worker-id" not in argv:
        return None
    return int(argv[argv.index("--worker-id") + 1])


def bentoml_workers(pid: int) -> list[psutil.Process]:
    return [process for process in server_processes(pid) if worker_id(process) is not None]


def cpu_seconds(processes: list[psutil.Process]) -> dict[ProcessKey, float]:
    """User + system CPU seconds of each process still alive."""
    seconds = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[(process.pid, process.create_time())] = times.user + times.system
    return seconds


def busy_percent(processes: list[psutil.Process], over_s: float) -> float:
    """CPU the processes use together over the next ``over_s`` seconds, in % of one core."""
    before = cpu_seconds(processes)
    time.sleep(over_s)
    after = cpu_seconds(processes)
    return 100 * sum(after[key] - before.get(key, 0.0) for key in after) / over_s


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    server: dict[ProcessKey, float]
    workers: dict[ProcessKey, int]  # which of the server's processes are BentoML workers, by worker id
    load_tool: float  # CPU seconds of the benchmark's finished children: hey runs are the only ones
    machine: float  # busy CPU seconds of the whole machine, all cores

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        processes = server_processes(server_pid)
        workers = {}
        for process in processes:
            with contextlib.suppress(psutil.Error):
                if (number := worker_id(process)) is not None:
                    workers[(process.pid, process.create_time())] = number
        finished = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_tool = finished.ru_utime + finished.ru_stime
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        return cls(time.perf_counter(), cpu_seconds(processes), workers, load_tool, busy)


@dataclass(frozen=True)
class CpuUse:
    """CPU used during one measured run, in % of one core (the machine has os.cpu_count() of them)."""

    server_pct: float
    worker_pct: tuple[float, ...]  # each BentoML worker, by worker id
    worker_restarts: int  # workers that were not there when the run started
    load_tool_pct: float
    other_pct: float  # everything else on the machine


def cpu_use(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    wall_s = after.at - before.at

    def percent(seconds: float) -> float:
        return round(100 * seconds / wall_s, 1) if wall_s > 0 else 0.0

    # A process that started during the run (a restarted worker) counts from zero; one that ended is lost.
    used = {key: seconds - before.server.get(key, 0.0) for key, seconds in after.server.items()}
    by_worker = sorted((number, used.get(key, 0.0)) for key, number in after.workers.items())
    server, load_tool = sum(used.values()), after.load_tool - before.load_tool
    other = max(after.machine - before.machine - server - load_tool, 0.0)
    return CpuUse(
        server_pct=percent(server),
        worker_pct=tuple(percent(seconds) for _, seconds in by_worker),
        worker_restarts=len(after.workers.keys() - before.workers.keys()),
        load_tool_pct=percent(load_tool),
        other_pct=percent(other),
    )


# ------------------------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    url: str
    body: Path
    clients: int
    server_pid: int  # the server's process-group leader, whose process tree the CPU columns add up
    workers: int
    workers_asked: int
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
    workers: int = 1  # that stayed up
    workers_asked: int = 1
    # CPU during the measured run, in % of one core: the whole server, each BentoML worker, hey, and every
    # other process on the machine (other people's work competes for the same cores).
    server_cpu_pct: float = 0.0
    worker_cpu_pct: tuple[float, ...] = ()
    worker_restarts: int = 0
    load_tool_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0


def ensure_load_tool() -> None:
    """Install hey through the project's scripts/tools.sh when it is missing: nothing to install by hand."""
    if shutil.which(LOAD_TOOL) is not None:
        return
    console.print(f"{LOAD_TOOL} is missing: installing it with {TOOLS_SCRIPT.relative_to(REPO_ROOT)}")
    if subprocess.run([str(TOOLS_SCRIPT)], check=False).returncode != 0 or shutil.which(LOAD_TOOL) is None:
        raise SystemExit(f"{LOAD_TOOL} could not be installed: run {TOOLS_SCRIPT} as root")


def hey(
    target: Target, *, duration_s: float | None = None, requests: int | None = None, csv: bool = False
) -> tuple[str, CpuUse]:
    """hey's output, and the CPU hey and the server used while it ran."""
    argv = [LOAD_TOOL, "-c", str(target.clients), "-m", "POST", "-T", "application/json"]
    argv += ["-D", str(target.body)]
    argv += ["-z", f"{duration_s:g}s"] if duration_s is not None else ["-n", str(requests)]
    argv += ["-o", "csv"] if csv else []
    timeout = (duration_s or 0) + 120 + (requests or 0) * 5
    before = CpuSnapshot.take(target.server_pid)
    result = subprocess.run([*argv, target.url], capture_output=True, text=True, timeout=timeout, check=False)
    after = CpuSnapshot.take(target.server_pid)
    if result.returncode != 0:
        raise RuntimeError(f"hey failed on {target.label}: {result.stderr[-2000:]}")
    return result.stdout, cpu_use(before, after)


def parse_hey(output: str, label: str, clients: int) -> Measurement:
    """Requests/sec, latency percentiles and error counts out of hey's summary."""

    def number(pattern: str) -> float:
        found = re.search(pattern, output)
        if found is None:
            raise ValueError(f"no {pattern!r} in hey's output:\n{output}")
        return float(found.group(1))

    def percentile(share: int) -> float:
        """hey leaves out (or prints as "0% in 0 secs") a percentile it has too few responses for."""
        found = re.search(rf"{share}%+ in ([\d.]+) secs", output)
        return float(found.group(1)) * 1000 if found else float("nan")

    statuses = {int(code): int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors_section = output.split("Error distribution:", 1)[1] if "Error distribution:" in output else ""
    transport_errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", errors_section, re.MULTILINE))
    return Measurement(
        label=label,
        clients=clients,
        requests_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=percentile(50),
        p95_ms=percentile(95),
        p99_ms=percentile(99),
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
        output, cpu = hey(target, duration_s=target.duration_s)
        result = parse_hey(output, target.label, target.clients)
    else:
        assert target.requests is not None and target.clients == 1
        hey(target, requests=3)
        output, cpu = hey(target, requests=target.requests, csv=True)
        result = parse_hey_csv(output, target.label, target.requests)
    result = replace(
        result,
        workers=target.workers,
        workers_asked=target.workers_asked,
        server_cpu_pct=cpu.server_pct,
        worker_cpu_pct=cpu.worker_pct,
        worker_restarts=cpu.worker_restarts,
        load_tool_cpu_pct=cpu.load_tool_pct,
        other_cpu_pct=cpu.other_pct,
    )
    console.print(
        f"  {target.label:<50} {result.requests_per_s:8.1f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  errors {result.errors}  CPU: server {cpu_split(result)}, "
        f"hey {result.load_tool_cpu_pct:.0f}%, others {result.other_cpu_pct:.0f}%",
        highlight=False,
    )
    return result


def cpu_split(result: Measurement) -> str:
    """'180%' for one process, '180% (95% + 85%)' for a server with several workers."""
    text = f"{result.server_cpu_pct:.0f}%"
    if len(result.worker_cpu_pct) > 1:
        text += f" ({' + '.join(f'{share:.0f}%' for share in result.worker_cpu_pct)})"
    if result.worker_restarts:
        text += f", {result.worker_restarts} worker restart(s)"
    return text


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
    one = worker_label(servers["salespulse"])
    hundred = f"salespulse /segment, {SMALL_BATCH_CUSTOMERS} customers"
    # The 1-, 2- and 4-worker rows of one request run back to back, so a burst of other load hits both alike.
    rows: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
        (
            "segment", f"salespulse /segment, 1 customer, {one}", "salespulse", "/segment", "segment_one",
            timed,
        ),
        *(
            (f"segment_{n}w", f"salespulse /segment, 1 customer, {worker_label(servers[f'salespulse-{n}w'])}",
             f"salespulse-{n}w", "/segment", "segment_one", timed)
            for n in MORE_WORKERS
        ),
        ("segment_100", f"{hundred}, {one}", "salespulse", "/segment", "segment_batch100", timed),
        *(
            (f"segment_100_{n}w", f"{hundred}, {worker_label(servers[f'salespulse-{n}w'])}",
             f"salespulse-{n}w", "/segment", "segment_batch100", timed)
            for n in MORE_WORKERS
        ),
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
        Target(
            key, label, servers[server].url + path, bodies[body],
            server_pid=servers[server].process.pid, workers=servers[server].workers,
            workers_asked=servers[server].asked_workers, **load,
        )
        for key, label, server, path, body, load in rows
    ]  # fmt: skip


def worker_label(server: Server) -> str:
    """'2 workers', or '2 workers asked, 1 up' when some fail to stay up."""
    label = f"{server.asked_workers} worker{'s' if server.asked_workers != 1 else ''}"
    return label if server.workers == server.asked_workers else f"{label} asked, {server.workers} up"


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
    title = (
        f"salespulse vs mlflow models serve vs framework echo (hey; 1 worker unless the row says otherwise; "
        f"CPU in % of one core, {os.cpu_count()} cores)"
    )
    if rounds > 1:
        title += f"; throughput rows: the median of {rounds} rounds"
    table = Table(title=title)
    columns = ("target", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "x mlflow serve",
               "server CPU", "hey CPU", "others CPU")  # fmt: skip
    for column in columns:
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
            f"{r.server_cpu_pct:.0f}%",
            f"{r.load_tool_cpu_pct:.0f}%",
            f"{r.other_cpu_pct:.0f}%",
        )
    console.print(table)


# (request, keys of its rows with 1 worker, then with each of MORE_WORKERS)
WORKER_PAIRS = (
    ("/segment, 1 customer", "segment", *(f"segment_{n}w" for n in MORE_WORKERS)),
    (
        f"/segment, {SMALL_BATCH_CUSTOMERS} customers",
        "segment_100",
        *(f"segment_100_{n}w" for n in MORE_WORKERS),
    ),
)


def print_worker_table(results: dict[str, Measurement], clients: int) -> None:
    """The 1-, 2- and 4-worker rows side by side, with each worker's CPU: two workers sharing one listening
    socket can split hey's connections unevenly, and then the second worker adds little."""
    table = Table(
        title=f"salespulse /segment with SALESPULSE_SERVICE_WORKERS=1, 2 and 4 ({clients} clients, hey; "
        f"CPU in % of one core, {os.cpu_count()} cores shared by hey and the server)"
    )
    columns = ("request", "workers", "req/s", "x 1 worker", "p50 ms", "p99 ms", "errors", "server CPU",
               "CPU per worker", "hey CPU", "others CPU")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "request" else "right")
    for request, one_key, *more_keys in WORKER_PAIRS:
        single = results[one_key].requests_per_s
        for key in (one_key, *more_keys):
            r = results[key]
            table.add_row(
                request,
                workers_shown(r),
                f"{r.requests_per_s:,.0f}",
                f"{r.requests_per_s / single:.2f}x",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                str(r.errors),
                f"{r.server_cpu_pct:.0f}%",
                worker_shares(r),
                f"{r.load_tool_cpu_pct:.0f}%",
                f"{r.other_cpu_pct:.0f}%",
            )
    console.print(table)


def workers_shown(result: Measurement) -> str:
    if result.workers == result.workers_asked:
        return str(result.workers)
    return f"{result.workers_asked} asked, {result.workers} up"


def worker_shares(result: Measurement) -> str:
    shares = " + ".join(f"{share:.0f}%" for share in result.worker_cpu_pct) or "-"
    return shares + (f" ({result.worker_restarts} restarted)" if result.worker_restarts else "")


def worker_comparison(results: dict[str, Measurement]) -> dict[str, Any]:
    """The JSON form of the side-by-side table."""
    comparison = {}
    for request, *keys in WORKER_PAIRS:
        rows = [results[key] for key in keys]
        comparison[request] = {
            "workers_asked": [r.workers_asked for r in rows],
            "workers_up": [r.workers for r in rows],
            "requests_per_s": [round(r.requests_per_s, 1) for r in rows],
            "speedup": [round(r.requests_per_s / rows[0].requests_per_s, 3) for r in rows],
            "worker_cpu_pct": [list(r.worker_cpu_pct) for r in rows],
            "load_tool_cpu_pct": [r.load_tool_cpu_pct for r in rows],
            "other_cpu_pct": [r.other_cpu_pct for r in rows],
        }
    return comparison


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
            "workers_compared": [results[key].workers_asked for key in WORKER_PAIRS[0][1:]],
            "workers_up": [results[key].workers for key in WORKER_PAIRS[0][1:]],
            "load_tool": LOAD_TOOL,
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
        "worker_comparison": worker_comparison(results),
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
    ensure_load_tool()
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
        console.print("Starting the servers (127.0.0.1; salespulse with 1, 2 and 4 workers) ...")
        servers = start_all(stack, root, run_dir)
        all_targets = targets(servers, bodies, args)
        console.print(f"Load: hey, {args.warmup:g} s warm-up then {args.duration:g} s per throughput row")
        load_before = os.getloadavg()
        rounds = run_rounds(all_targets, args)
        results = {key: median_round(measured) for key, measured in rounds.items()}
        load_after = os.getloadavg()
    print_table(results, all_targets, args.rounds)
    print_worker_table(results, args.clients)
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
