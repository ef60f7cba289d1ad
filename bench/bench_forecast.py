"""Cost of one forecast (one series x 28 days) on the serving path, old and new side by side in one run.

    .venv/bin/python bench/bench_forecast.py --warehouse data/warehouse.duckdb --level product_region

The champion of the level is loaded from the configured MLflow registry (train it first). Both paths run in
this process on one DuckDB connection, with the forecaster's own single LightGBM thread:

- ``per-request SQL`` (how /forecast read history before): the series' recent history read from the order
  lines for every request (``load_series``), then the forecast;
- ``cached history``: the level's recent history from :class:`RecentHistory` (a version check and an
  array slice), then :meth:`Forecaster.forecast_panel` and the response payload;
- ``batched`` (what /forecast does now): the same through :class:`service.forecasting.ForecastBatcher`, which
  forecasts the requests that arrive while one runs together, as one panel (a lone request never waits).

Sequential: p50 / p99 latency over ``--requests`` random series. Concurrent: ``--clients`` threads issuing
requests back to back for ``--seconds``: requests per second of one process (one service worker shares its
GIL the same way). HTTP and BentoML overhead (~1.5 ms a request on this machine) come on top.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta

os.environ.setdefault("OMP_NUM_THREADS", "1")

import mlflow
import numpy as np

from salespulse.features.series import Panel, RecentHistory, last_sale_day, load_series
from salespulse.modeling.registry import registered_model_name
from salespulse.schemas import forecast_series_payload
from salespulse.warehouse.store import connect
from service.forecasting import ForecastBatcher
from training.tracking import configure_mlflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--level", default="product_region")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    configure_mlflow()
    name = registered_model_name(args.level, "D")
    forecaster = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().forecaster
    con = connect(args.warehouse, read_only=True)
    cache = RecentHistory(periods=190)
    ids = cache.series_ids(con, args.level)
    print(f"{name} ({forecaster.method}), {len(ids):,} series; one series x 28 days per request")

    def per_request_sql(cursor, series: str) -> None:
        last = last_sale_day(cursor)
        start = last - timedelta(days=forecaster.history_periods - 1)
        frame = load_series(cursor, args.level, "D", start=start, series_ids=[series], with_discount=False)
        result = forecaster.forecast_panel(Panel.from_frame(frame, "D"), 28)
        forecast_series_payload(result, [series])

    def cached_history(cursor, series: str) -> None:
        result = forecaster.forecast_panel(cache.panel(cursor, args.level, [series]), 28)
        forecast_series_payload(result, [series])

    batcher = ForecastBatcher()

    def batched(cursor, series: str) -> None:
        result = batcher.forecast_panel(
            forecaster, cache.panel(cursor, args.level, [series]), 28, (80, 95), "D"
        )
        forecast_series_payload(result, [series])

    paths = (("per-request SQL", per_request_sql), ("cached history", cached_history), ("batched", batched))
    for label, path in paths:
        sequential = _sequential(path, con, ids, args.requests)
        throughput = _concurrent(path, con, ids, args.clients, args.seconds)
        print(
            f"{label:<16} sequential p50 {np.percentile(sequential, 50):6.2f} ms  "
            f"p99 {np.percentile(sequential, 99):6.2f} ms   {args.clients} clients: {throughput:7.1f} req/s"
        )


def _sequential(path: Callable, con, ids: list[str], requests: int) -> np.ndarray:
    cursor = con.cursor()
    rng = random.Random(1)
    for series in rng.sample(ids, min(20, len(ids))):  # warm-up: caches, LightGBM, DuckDB
        path(cursor, series)
    times = []
    for _ in range(requests):
        series = rng.choice(ids)
        started = time.perf_counter()
        path(cursor, series)
        times.append((time.perf_counter() - started) * 1e3)
    return np.asarray(times)


def _concurrent(path: Callable, con, ids: list[str], clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        cursor, rng = con.cursor(), random.Random(k)
        while time.perf_counter() < stop:
            path(cursor, rng.choice(ids))
            done[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
