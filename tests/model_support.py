"""Shared by the model tests: the start of a fresh-process script that proves a logged model loads and
predicts without the ``training`` package."""

from __future__ import annotations

import textwrap

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
