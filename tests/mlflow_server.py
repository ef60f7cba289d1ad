"""A real ``mlflow server`` for tests that must talk to a tracking server over HTTP.

    from mlflow_server import mlflow_server  # noqa: F401  (a module-scoped fixture: the server's URL)

The server keeps its runs and registry in SQLite and its artifacts in a folder, both in a temporary
directory; it listens on a free port of 127.0.0.1 and is stopped (its whole process group) at teardown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_mlflow_server(root: Path) -> Iterator[str]:
    """Start ``mlflow server`` with its stores under ``root``; yields its URL once /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    log = (root / "server.log").open("w")
    # A session of its own, so teardown stops the server and the workers it forks, and nothing else.
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_healthy(url, server, root / "server.log")
        yield url
    finally:
        _stop(server)
        log.close()


def _wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(
        f"mlflow server did not answer on {url} in {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}"
    )


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group (the server and the workers it started), by its id."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return  # the group is gone
        try:
            server.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real MLflow tracking server, running for the module's tests."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url
