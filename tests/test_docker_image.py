"""The Docker image, built for real and smoke-tested on 127.0.0.1: health, one forecast, one segment; every
process in the container runs as the unprivileged uid 10001, and SALESPULSE_SERVICE_WORKERS sets the number
of worker processes.

Needs root (to install and start a private Docker engine, as scripts/docker.sh does); CI runs as root.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from service_support import REPO_ROOT, environment, free_port, trained_stack

pytestmark = pytest.mark.slow

UNPRIVILEGED_UID = 10001
# Not the image's default (1): two worker processes show that the setting reaches the service.
CONFIGURED_WORKERS = 2


def run(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a Docker engine needs root")
def test_image_builds_and_answers(tmp_path: Path):
    env = environment(tmp_path)
    env |= {
        "SALESPULSE_BUILD_DIR": str(tmp_path / "build"),
        "SALESPULSE_IMAGE": f"salespulse-test:{uuid.uuid4().hex[:8]}",
        "SALESPULSE_SMOKE_PORT": str(free_port()),
        "SALESPULSE_SMOKE_WORKERS": str(CONFIGURED_WORKERS),
    }
    trained_stack(tmp_path)
    built = run(["salespulse", "serve", "build"], env, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "build" / "salespulse.bento").stat().st_size > 1_000_000
    assert (tmp_path / "build" / "warehouse" / "warehouse.duckdb").exists()

    image = run(["scripts/docker.sh", "build"], env, timeout=1800)
    assert image.returncode == 0, image.stdout[-3000:] + image.stderr[-3000:]
    try:
        smoke = run(["scripts/docker.sh", "smoke"], env, timeout=600)
        assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-3000:]
        assert "smoke test passed" in smoke.stdout
        assert '"ready"' in smoke.stderr  # the /health answer, echoed by the script
        # docker top, run by the script: the uids of all the container's processes, and its worker count.
        assert f"container processes run as uid {UNPRIVILEGED_UID};" in smoke.stdout
        assert "service workers: 1" in smoke.stdout  # the image's default

        workers = run(["scripts/docker.sh", "workers"], env, timeout=600)
        assert workers.returncode == 0, workers.stdout[-3000:] + workers.stderr[-3000:]
        assert f"container processes run as uid {UNPRIVILEGED_UID};" in workers.stdout
        assert f"service workers: {CONFIGURED_WORKERS}" in workers.stdout
    finally:
        run(["scripts/docker.sh", "rmi"], env, timeout=120)
