"""Benchmark: training time and peak memory of the pipelines at the default size and at 10M order lines.

For each scale (as ``salespulse data generate --scale``: 1 is the default, ~1.05M lines and 20,000
customers; 10 is ten times both) a warehouse is generated into a temporary folder, then each pipeline runs
in a child process of its own (with its own temporary MLflow store), so its peak resident memory is its
own: the child's ``ru_maxrss``, and separately the largest of its own children (statsforecast's worker
processes). The forecaster's figures are the default product x region daily model: fit (the backtest model
and the final model), backtest (the model's windows and the seasonal-naive and AutoETS baselines) and the
whole process. The segmenter slot is filled when ``training.segmenter.pipeline`` exists.

    .venv/bin/python bench/bench_training.py [--scales 1 10]

Other work on the machine slows the figures down; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

GENERATE = """
import json, sys
from salespulse.dataset.generate import DEFAULT_ROWS, GeneratorConfig, generate_warehouse
scale = float(sys.argv[1])
config = GeneratorConfig(customers=round(20_000 * scale), rows=round(DEFAULT_ROWS * scale))
summary = generate_warehouse(config, sys.argv[2])
print(json.dumps({"rows": summary.order_lines, "seconds": summary.seconds}))
"""

FORECASTER = """
import json, resource, sys, time
started = time.perf_counter()
from training.forecaster.pipeline import run
result = run(progress=False, warehouse=sys.argv[1])
t = result.timings
usage = [resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({
    "fit": t["fit_backtest"] + t["fit_final"], "backtest": t["backtest"] + t["baselines"],
    "load": t["load"], "pipeline": t["total"], "process": time.perf_counter() - started,
    "peak_mb": usage[0], "children_peak_mb": usage[1],
    "method": result.method, "wape_model": result.metrics["wape_model"],
    "wape_seasonal_naive": result.metrics["wape_D_seasonal_naive"],
    "wape_autoets": result.metrics["wape_D_autoets"], "coverage_80": result.metrics["coverage_80"],
}))
"""

SEGMENTER = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from training.segmenter.pipeline import run
run(progress=False, warehouse=Path(sys.argv[1]))
usage = [resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
seconds = time.perf_counter() - started
print(json.dumps({"process": seconds, "peak_mb": usage[0], "children_peak_mb": usage[1]}))
"""


def run_child(code: str, *args: str, env: dict[str, str]) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-3000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


def mlflow_env(directory: Path) -> dict[str, str]:
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    return dict(
        os.environ,
        MLFLOW_TRACKING_URI=uri,
        SALESPULSE_MLFLOW_TRACKING_URI=uri,
        SALESPULSE_MLFLOW_ARTIFACT_ROOT=str(directory / "artifacts"),
    )


def segmenter_available() -> bool:
    try:
        return importlib.util.find_spec("training.segmenter.pipeline") is not None
    except ModuleNotFoundError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    args = parser.parse_args()
    console = Console(stderr=True, width=150)
    table = Table(title="salespulse train: time (s) and peak memory (MB)")
    for column in (
        "order lines",
        "forecaster fit",
        "backtest + baselines",
        "forecaster total",
        "forecaster peak MB (+ workers)",
        "segmenter total",
        "segmenter peak MB",
    ):
        table.add_column(column, justify="right")
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            warehouse = str(directory / "warehouse.duckdb")
            env = mlflow_env(directory)
            started = time.perf_counter()
            generated = run_child(GENERATE, str(scale), warehouse, env=env)
            console.print(
                f"{generated['rows']:,} order lines generated in {time.perf_counter() - started:.0f} s"
            )
            forecaster = run_child(FORECASTER, warehouse, env=env)
            console.print(f"forecaster: {json.dumps({k: round(v, 3) for k, v in forecaster.items()})}")
            segmenter = run_child(SEGMENTER, warehouse, env=env) if segmenter_available() else None
            if segmenter is not None:
                console.print(f"segmenter: {json.dumps({k: round(v, 1) for k, v in segmenter.items()})}")
        table.add_row(
            f"{generated['rows']:,}",
            f"{forecaster['fit']:.1f}",
            f"{forecaster['backtest']:.1f}",
            f"{forecaster['process']:.1f}",
            f"{forecaster['peak_mb']:,.0f} (+{forecaster['children_peak_mb']:,.0f})",
            f"{segmenter['process']:.1f}" if segmenter else "n/a",
            f"{segmenter['peak_mb']:,.0f}" if segmenter else "n/a",
        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
