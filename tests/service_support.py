"""A real salespulse service for integration tests: a small generated warehouse, both models trained into a
real MLflow store, the champions imported into a private BentoML store, and `bentoml serve` on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from filelock import FileLock

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
API_KEY = "integration-test-key"
SERVICE_SAMPLE = dict(
    seed=11, customers=2_500, rows=150_000, products=80, days=540, end_date=date(2026, 6, 30)
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(root: Path) -> dict[str, str]:
    """Everything the service and its build steps read, pointed into ``root``."""
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "SALESPULSE_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
            "SALESPULSE_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "SALESPULSE_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
            "BENTOML_HOME": str(root / "bentoml"),
            "SALESPULSE_API_KEY": API_KEY,
            "OMP_NUM_THREADS": "1",
        }
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_python(code: str, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"python -c failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result.stdout


def prepare_models(env: dict[str, str]) -> None:
    """Generate the warehouse, train every served model (champions), import them into the BentoML store."""
    run_python(
        f"""
import datetime
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.series import LEVELS
from training.forecaster.pipeline import run as train_forecaster
from training.segmenter.pipeline import run as train_segmenter
from training.customer_value.pipeline import run as train_customer_value
from service.build import import_champions
generate_warehouse(GeneratorConfig(**{SERVICE_SAMPLE!r}))
for level in LEVELS:
    train_forecaster(level=level, freq="D", progress=False)
train_segmenter(progress=False)
train_customer_value(progress=False)
import_champions()
""",
        env,
    )


def trained_stack(root: Path) -> None:
    """Fill ``root`` with what :func:`prepare_models` makes (warehouse, MLflow store with the champions,
    BentoML store), trained once per test session and copied for every module that asks: training takes
    about a minute, and seven modules need a stack of their own to write to.

    The first caller trains into ``trained-models`` under the session's temporary folder (shared by the
    xdist workers, under a file lock); the copies' MLflow runs keep their artifacts there, which nobody
    changes (a new run writes its own)."""
    worker_base = root.parent
    session_base = worker_base.parent if os.environ.get("PYTEST_XDIST_WORKER") else worker_base
    template = session_base / "trained-models"
    with FileLock(str(session_base / "trained-models.lock")):
        if not (template / "ready").exists():
            shutil.rmtree(template, ignore_errors=True)
            template.mkdir()
            prepare_models(environment(template))
            (template / "ready").touch()
    root.mkdir(parents=True, exist_ok=True)
    for item in template.iterdir():
        if item.name == "ready":
            continue
        if item.is_dir():
            shutil.copytree(item, root / item.name)
        else:
            shutil.copy2(item, root / item.name)


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen
    env: dict[str, str]
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_service(
    env: dict[str, str], log: Path, *, extra_env: dict[str, str] | None = None
) -> RunningService:
    port = free_port()
    # The service reads its own address from the settings: its owner record says where it answers.
    env = {
        **env,
        "SALESPULSE_SERVICE_HOST": "127.0.0.1",
        "SALESPULSE_SERVICE_PORT": str(port),
        **(extra_env or {}),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "bentoml"), "serve", "service.service:SalesPulse", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    service = RunningService(url=f"http://127.0.0.1:{port}", process=process, env=env, log=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{log.read_text()[-5000:]}")
        try:
            if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    service.stop()
    raise RuntimeError(f"service not ready in 120 s:\n{log.read_text()[-5000:]}")


def serve_with_fresh_models(root: Path) -> Iterator[RunningService]:
    """A whole stack in ``root`` (warehouse, trained champions, BentoML store) served until the caller is
    done: the body of a module-scoped ``service`` fixture."""
    env = environment(root)
    trained_stack(root)
    running = start_service(env, root / "service.log")
    yield running
    running.stop()
