"""Acceptance: a newcomer's session in a fresh copy of the project, as the README tells it.

`make run`; then, with the service still running, `salespulse data info`, an import of the shipped example,
`salespulse train segmenter`, `salespulse serve build`, and `make run` again: each succeeds, the second
`make run` waits for its own new instance, and no line is lost. The copy shares this checkout's virtual
environment (installing one takes minutes) and runs on a small sample.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_SAMPLE = "--rows 20000 --customers 1500 --products 40 --days 400"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_copy(target: Path) -> Path:
    """The project's files as a clone has them (tracked and new, not ignored), with this checkout's venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(REPO_ROOT / ".venv")
    return target


class Newcomer:
    def __init__(self, clone: Path, port: int) -> None:
        self.clone = clone
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SALESPULSE_", "MLFLOW_", "BENTOML_"))
        }
        self.env.update(
            {
                "SALESPULSE_HOME": str(clone),  # the shared venv's package would otherwise find this checkout
                "SALESPULSE_SERVICE_PORT": str(port),
                "SALESPULSE_SAMPLE_ARGS": SMALL_SAMPLE,
                "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            }
        )

    def run(self, *command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(command), cwd=self.clone, env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=30).raise_for_status().json()


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    # Up to date here first, so that the copy's `make run` finds the shared venv installed and leaves it be
    # (an install from the copy would point the venv's editable install at a temporary folder).
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "bootstrap.sh")], cwd=REPO_ROOT, check=True, capture_output=True
    )
    person = Newcomer(fresh_copy(tmp_path_factory.mktemp("clone")), free_port())
    yield person
    subprocess.run(["make", "stop"], cwd=person.clone, env=person.env, capture_output=True, timeout=120)


def test_a_newcomer_session_while_the_service_runs(newcomer: Newcomer) -> None:
    first = newcomer.run("make", "run")
    assert f"salespulse is answering on {newcomer.url}" in first.stdout
    key_file = newcomer.clone / "data" / ".api-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in first.stdout + first.stderr, "the key is printed in full"
    first_instance = newcomer.health()["instance"]
    lines = newcomer.health()["warehouse"]["order_lines"]

    info = newcomer.run("salespulse", "data", "info")
    assert f"{lines:,}" in info.stdout and "Owned by the running service" in info.stdout

    imported = newcomer.run(
        "salespulse", "data", "import", "data/examples/superstore_sample.csv",
        "--mapping", "data/mappings/superstore.yaml",
    )  # fmt: skip
    new_lines = int(re.search(r"([\d,]+) new", imported.stderr + imported.stdout).group(1).replace(",", ""))
    assert new_lines > 0
    lines += new_lines
    assert newcomer.health()["warehouse"]["order_lines"] == lines

    plan = newcomer.clone / "plan.csv"
    plan.write_text(
        "month,level,member,target\n2030-01,region,West,125000\n2030-01,category,Technology,9000\n"
    )
    goals = newcomer.run("salespulse", "data", "import-goals", str(plan))
    assert "Imported 2 targets" in goals.stderr and "through the running service" in goals.stderr

    newcomer.run("salespulse", "train", "segmenter")
    newcomer.run("salespulse", "serve", "build")
    assert (newcomer.clone / "build" / "salespulse.bento").is_file()
    assert (newcomer.clone / "build" / "warehouse" / "warehouse.duckdb").is_file()

    again = newcomer.run("make", "run")
    assert "Keeping the warehouse" in again.stderr
    health = newcomer.health()
    assert health["instance"] != first_instance, "make run answered before its own new instance was up"
    assert health["warehouse"]["order_lines"] == lines, "a second make run lost lines"
