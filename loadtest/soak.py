"""Soak test: the load test (loadtest/locustfile.py, every user type) against a running service for a long,
bounded time, watching the memory of the service's processes.

    .venv/bin/python loadtest/soak.py                      # 30 minutes against `make run` (127.0.0.1:3000)
    .venv/bin/python loadtest/soak.py --minutes 5 --users 20
    .venv/bin/python loadtest/soak.py --host https://your-instance --api-key KEY   (no RSS: not this machine)
    make soak SOAK_ARGS="--minutes 5"

It prints each server process's resident memory (RSS) at the start and at the end (and the peak, sampled
every few seconds), a progress line every minute, then requests, failures, req/s and p50/p95 per user type.
The exit status is 1 when any request failed, Locust failed, or a server process went away during the run.

The server processes are the tree of the process listening on the host's port (on this machine), else of
``data/service.pid`` (written by scripts/service.sh), else of ``--pid``. The API key (the write key, for the
sales trickle) is ``--api-key``, else $LOCUST_API_KEY, else, for a service on this machine, data/.api-key.
Locust's CSV statistics, log and the run's JSON record go to ``--out`` (default: a new temporary folder).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # a dependency of Locust

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
PID_FILE = REPO_ROOT / "data" / "service.pid"
KEY_FILE = REPO_ROOT / "data" / ".api-key"
SAMPLE_SECONDS = 5
PROGRESS_SECONDS = 60
STOP_TIMEOUT = 10  # seconds Locust gives a running task to finish at the end
MIB = 1024 * 1024


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:3000", help="the service's URL")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--users", type=int, default=10, help="concurrent users (at least 4; default 10)")
    parser.add_argument("--spawn-rate", type=float, default=None, help="users started per second")
    parser.add_argument("--api-key", default=None, help="API key (default: $LOCUST_API_KEY, data/.api-key)")
    parser.add_argument("--no-sales", action="store_true", help="do not post sales")
    parser.add_argument("--pid", type=int, default=None, help="the server's main process, if not found")
    parser.add_argument("--out", type=Path, default=None, help="folder for Locust's CSV, log and report")
    options = parser.parse_args(argv)
    if not 0 < options.minutes <= 24 * 60:
        parser.error("--minutes must be in (0, 1440]")
    if options.users < 1:
        parser.error("--users must be at least 1")
    return options


# ------------------------------------------------------------------------------------------- processes


def is_local(host: str) -> bool:
    return urllib.parse.urlsplit(host).hostname in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def listening_process(host: str) -> psutil.Process | None:
    """The service's top process: the one listening on the host's port, or its parents that are the service
    too (BentoML's arbiter holds the socket its API workers answer on)."""
    port = urllib.parse.urlsplit(host).port or 80
    try:
        listening = [
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
        ]
        process = psutil.Process(listening[0]) if listening else None
        while process is not None and (parent := process.parent()) is not None and is_service(parent):
            process = parent
        return process
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return None


def is_service(process: psutil.Process) -> bool:
    try:
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return ("bentoml" in command or "salespulse" in command) and "serve" in command


def pid_file_process() -> psutil.Process | None:
    try:
        return psutil.Process(int(PID_FILE.read_text().strip()))
    except (OSError, ValueError, psutil.NoSuchProcess):
        return None


def server_root(options: argparse.Namespace) -> psutil.Process | None:
    if options.pid is not None:
        return psutil.Process(options.pid)
    if not is_local(options.host):
        return None
    return listening_process(options.host) or pid_file_process()


def role(process: psutil.Process) -> str:
    """What a process of the service is, from its command line."""
    try:
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    text = " ".join(command)
    if "_bentoml_impl.worker.service" in text:
        worker = command[command.index("--worker-id") + 1] if "--worker-id" in command else "?"
        return f"API worker {worker}"
    if "rotating_log.py" in text:
        return "log writer"
    if "serve" in command:
        return "bentoml serve (arbiter)"
    return process.name()


@dataclass
class Memory:
    """RSS of every process of the server's tree: at the start, the peak, and at the end."""

    root: psutil.Process
    roles: dict[int, str] = field(default_factory=dict)
    start: dict[int, int] = field(default_factory=dict)
    peak: dict[int, int] = field(default_factory=dict)
    end: dict[int, int] = field(default_factory=dict)

    def sample(self) -> dict[int, int]:
        sizes = {}
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        for process in tree:
            try:
                sizes[process.pid] = process.memory_info().rss
                self.roles.setdefault(process.pid, role(process))
            except psutil.NoSuchProcess:
                continue
        for pid, rss in sizes.items():
            self.peak[pid] = max(self.peak.get(pid, 0), rss)
        return sizes

    def table(self, final: bool) -> str:
        """RSS per process in MiB: at the start; with ``final``, also at the end, the change and the peak."""
        columns = f"{'start MiB':>10}" + (f"{'end MiB':>10}{'change':>9}{'peak MiB':>10}" if final else "")
        lines = [f"{'pid':>8}  {'process':<26}{columns}"]
        for pid in sorted(set(self.start) | set(self.end)):
            start, end = self.start.get(pid), self.end.get(pid)
            line = f"{pid:>8}  {self.roles.get(pid, '?'):<26}{mib(start):>10}"
            if final:
                change = (
                    f"{(end - start) / MIB:+9.1f}" if start and end else f"{'gone' if start else 'new':>9}"
                )
                line += f"{mib(end):>10}{change}{mib(self.peak.get(pid)):>10}"
            lines.append(line)
        total_start, total_end = sum(self.start.values()), sum(self.end.values())
        total = f"{'':>8}  {'all':<26}{mib(total_start):>10}"
        if final:
            total += f"{mib(total_end):>10}{(total_end - total_start) / MIB:+9.1f}"
        return "\n".join([*lines, total])

    @property
    def lost(self) -> list[int]:
        """Processes of the start that are gone at the end: a worker that died (and maybe restarted)."""
        return sorted(set(self.start) - set(self.end))


def mib(size: int | None) -> str:
    return "-" if size is None else f"{size / MIB:.1f}"


# ------------------------------------------------------------------------------------------- the run


def api_key(options: argparse.Namespace) -> str | None:
    if options.api_key:
        return options.api_key
    if os.environ.get("LOCUST_API_KEY"):
        return os.environ["LOCUST_API_KEY"]
    if is_local(options.host) and KEY_FILE.is_file():
        return KEY_FILE.read_text().strip() or None
    return None


def locust_command(options: argparse.Namespace, out: Path) -> list[str]:
    seconds = max(1, round(options.minutes * 60))
    rate = options.spawn_rate or max(1.0, options.users / 10)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(options.users), "-r", str(rate), "-t", f"{seconds}s", "--stop-timeout", str(STOP_TIMEOUT),
        "--host", options.host, "--csv", str(out / "load"), "--run-report", str(out / "run.json"),
    ]  # fmt: skip
    return [*command, "--no-sales"] if options.no_sales else command


def aggregated(out: Path) -> dict[str, str] | None:
    """Locust's running totals (its CSV is rewritten every second)."""
    try:
        with (out / "load_stats.csv").open() as stats:
            return next((row for row in csv.DictReader(stats) if row["Name"] == "Aggregated"), None)
    except (OSError, csv.Error):
        return None


def run(options: argparse.Namespace) -> int:
    out = options.out or Path(tempfile.mkdtemp(prefix="salespulse-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    key = api_key(options)
    root = server_root(options)
    memory = Memory(root) if root is not None else None
    print(f"soak: {options.minutes:g} min, {options.users} users against {options.host}; files in {out}")
    print(
        f"API key: {'given (sales are posted)' if key and not options.no_sales else 'none: no sales posted'}"
    )
    if memory is not None:
        memory.start = memory.sample()
        print("\nserver processes at the start (RSS):")
        print(memory.table(final=False))
    else:
        print("server processes: not found on this machine (no RSS figures)")
    env = {**os.environ, "LOCUST_API_KEY": key or ""}  # the key stays off the command line
    budget = options.minutes * 60 + STOP_TIMEOUT + 120  # discovery, ramp-up and shutdown included
    started = time.monotonic()
    with (out / "locust.log").open("w") as log:
        locust = subprocess.Popen(locust_command(options, out), env=env, stdout=log, stderr=subprocess.STDOUT)
        status = watch(locust, memory, out, started, budget)
    if memory is not None:
        memory.end = memory.sample()
    return summarize(options, out, memory, status, time.monotonic() - started)


def watch(locust: subprocess.Popen, memory: Memory | None, out: Path, started: float, budget: float) -> int:
    """Sample the server's memory until Locust ends (or overruns its time: then it is stopped)."""
    next_progress = started + PROGRESS_SECONDS
    while locust.poll() is None:
        if time.monotonic() - started > budget:
            print(f"Locust still running after {budget:.0f} s: stopped")
            locust.terminate()
            try:
                locust.wait(timeout=30)
            except subprocess.TimeoutExpired:
                locust.kill()
            return -1
        time.sleep(SAMPLE_SECONDS)
        sizes = memory.sample() if memory is not None else {}
        if time.monotonic() >= next_progress:
            next_progress += PROGRESS_SECONDS
            totals = aggregated(out) or {}
            rss = f", server RSS {sum(sizes.values()) / MIB:.0f} MiB" if sizes else ""
            minutes = (time.monotonic() - started) / 60
            count, failed = totals.get("Request Count", "?"), totals.get("Failure Count", "?")
            print(f"  {minutes:5.1f} min: {count} requests, {failed} failures{rss}", flush=True)
    return locust.returncode


def summarize(
    options: argparse.Namespace, out: Path, memory: Memory | None, status: int, seconds: float
) -> int:
    report: dict[str, Any] = {}
    if (out / "run.json").is_file():
        report = json.loads((out / "run.json").read_text())
    # The run's record counts every request (Locust's CSV is written every second: it may miss the last).
    by_type = report.get("user_types", {})
    totals = aggregated(out) or {}
    requests = sum(t["requests"] for t in by_type.values()) or int(totals.get("Request Count") or 0)
    failures = sum(t["failures"] for t in by_type.values()) or int(totals.get("Failure Count") or 0)
    rate = requests / report["seconds"] if report.get("seconds") else float(totals.get("Requests/s") or 0)
    print(f"\nafter {seconds / 60:.1f} min: {requests} requests, {failures} failures, {rate:.1f} req/s, "
          f"Locust exit status {status}")  # fmt: skip
    header = f"{'requests':>10}{'failures':>10}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}"
    print(f"\n{'user type':<16}{header}")
    for user_type, stats in by_type.items():
        print(
            f"{user_type:<16}{stats['requests']:>10}{stats['failures']:>10}{stats['requests_per_s']:>8}"
            f"{stats['p50_ms']:>8}{stats['p95_ms']:>8}{stats['max_ms']:>8}"
        )
    for user_type, reason in report.get("disabled", {}).items():
        print(f"{user_type:<16}disabled: {reason}")
    sales = report.get("sales_posted")
    if sales:
        lines, batches, revenue = sales["lines"], sales["batches"], sales["revenue"]
        print(f"\nsales posted: {lines} lines in {batches} batches, revenue {revenue}")
    if memory is not None:
        print("\nserver processes at the start and the end (RSS):")
        print(memory.table(final=True))
        if memory.lost:
            print(f"server processes gone during the run: {memory.lost}")
    if failures or status != 0:
        failed = out / "load_failures.csv"
        print(f"\nfailures ({failed}):\n{failed.read_text() if failed.is_file() else '(none written)'}")
        print(f"last lines of {out / 'locust.log'}:")
        print("\n".join((out / "locust.log").read_text().splitlines()[-30:]))
    ok = failures == 0 and status == 0 and requests > 0 and not (memory and memory.lost)
    print(f"\nsoak {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(arguments()))
