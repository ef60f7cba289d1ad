"""Benchmark: sample-data generation speed and peak memory at 1M and 10M order lines.

Each size runs in a child process of its own so that its peak resident memory is its own. The 1M run is the
baseline the 10M run is read against: rows/s should hold and memory should grow far less than 10x.

    .venv/bin/python bench/bench_generate.py [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def run_child(rows: int, directory: Path) -> dict[str, float]:
    code = f"""
import json, resource, time
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
started = time.perf_counter()
config = GeneratorConfig(rows={rows}, customers=max(2_000, {rows} // 50))
summary = generate_warehouse(config, {str(directory / "w.duckdb")!r})
print(json.dumps({{"rows": summary.order_lines, "seconds": time.perf_counter() - started,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    table = Table(title="salespulse data generate")
    for column in ("target rows", "rows", "seconds", "rows/s", "peak memory MB", "file MB"):
        table.add_column(column, justify="right")
    for rows in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            figures = run_child(rows, Path(tmp))
            size_mb = (Path(tmp) / "w.duckdb").stat().st_size / 2**20
        print(f"{rows:,} rows done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        table.add_row(
            f"{rows:,}",
            f"{figures['rows']:,.0f}",
            f"{figures['seconds']:.1f}",
            f"{figures['rows'] / figures['seconds']:,.0f}",
            f"{figures['peak_mb']:,.0f}",
            f"{size_mb:,.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
