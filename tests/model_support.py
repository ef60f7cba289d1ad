"""Shared by the model tests: the start of a fresh-process script that proves a logged model loads and
predicts without the ``training`` package."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

WITHOUT_TRAINING = textwrap.dedent(
    """
    import json, sys

    # Block the training package: any import of it, direct or from the model's code, now fails.
    sys.modules["training"] = None
    try:
        import training  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("training is importable")

    import mlflow.pyfunc
    import pandas as pd


    def training_modules_loaded() -> list[str]:
        return sorted(m for m in sys.modules if m.split(".")[0] == "training" and sys.modules[m] is not None)
    """
)


def run_without_training(script: str, argument: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``script`` (WITHOUT_TRAINING + a model check) in a fresh interpreter outside the repository; its
    last line of output is the JSON answer, which must show no training module loaded."""
    completed = subprocess.run(
        [sys.executable, "-c", script, argument],
        cwd=cwd,  # not the repository: the repo root is not on sys.path
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["training_modules"] == []
    return answer
