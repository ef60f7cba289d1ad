"""The forecaster trains on a Dask cluster (issue 14): a real LocalCluster of two worker processes on
loopback, and one generated warehouse trained through the same pipeline in one process and on the cluster
(same seed, same data): the same features per series partition, both workers at work, a backtest WAPE within
1% of the single-process model's, and a registered artifact that is the single-process one's (nothing in it
points at the cluster) and serves like it. An unreachable scheduler is a one-line usage error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster, get_task_stream
from distributed.utils import key_split
from mlflow.tracking import MlflowClient
from test_cli import assert_one_line_error, closed_port, salespulse

from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.series import RecentHistory, SeriesFeatures
from salespulse.modeling.registry import registered_model_name
from salespulse.warehouse.store import connect
from training.forecaster import data
from training.forecaster import distributed as dask_training
from training.forecaster.distributed import DaskUnreachable, dask_boosters
from training.forecaster.pipeline import ForecasterResult, run
from training.forecaster.train import TrainConfig, training_rows

pytestmark = pytest.mark.slow

END = date(2026, 6, 30)
# 40 products in 4 regions: ~160 series, ~65k training rows; enough rows that distributed LightGBM's own
# binning and bagging move the backtest WAPE less than a change of seed does.
SAMPLE = GeneratorConfig(seed=3, customers=1_500, rows=60_000, products=40, days=500, end_date=END)
LEVEL = "product_region"
MODEL = registered_model_name(LEVEL, "D")
WAPE_TOLERANCE = 0.01  # relative: |wape_dask - wape_single| / wape_single, the "within 1%"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dask") / "warehouse.duckdb"
    generate_warehouse(SAMPLE, path)
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # One thread per worker: LightGBM's OpenMP threads spin at barriers when another process holds a core.
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(scope="module")
def single(mlflow_store: Path, warehouse: Path) -> ForecasterResult:
    return run(level=LEVEL, progress=False, warehouse=warehouse)


@dataclass(frozen=True)
class DaskRun:
    result: ForecasterResult
    workers: set[str]
    tasks: list[dict]  # the cluster's task stream during the run
    placement: dict[str, int]  # worker -> series of its partition (final fit)


@pytest.fixture(scope="module")
def on_dask(single: ForecasterResult, cluster: LocalCluster, warehouse: Path) -> DaskRun:
    # The CLI's path (`salespulse train forecaster --dask ADDRESS`): connect by address, run the pipeline.
    with dask_boosters(cluster.scheduler_address) as boosters, get_task_stream(boosters.client) as stream:
        result = run(level=LEVEL, progress=False, warehouse=warehouse, boosters=boosters)
        workers = set(boosters.workers())
    return DaskRun(result, workers, list(stream.data), dict(boosters.placement))


def test_features_built_per_series_partition_are_the_single_process_rows(
    cluster: LocalCluster, warehouse: Path
):
    panel = data.load_panel(LEVEL, "D", warehouse)
    features = SeriesFeatures.default("D", panel.statics.columns).fitted(panel)
    periods = TrainConfig().periods(panel)
    with dask_boosters(cluster.scheduler_address) as boosters:
        frame = boosters.client.compute(boosters.training_frame(panel, features, periods)).result()
        placement = boosters.placement
    x, y, weight = training_rows(panel, features, periods)
    assert len(placement) == 2 and sum(placement.values()) == len(panel.ids)
    assert min(placement.values()) > 0.3 * len(panel.ids)  # both partitions hold a fair share
    # Partitions hold whole series in panel order: put together, they are the single-process rows exactly.
    np.testing.assert_array_equal(frame[features.names].to_numpy(), x)
    np.testing.assert_array_equal(frame[dask_training.TARGET].to_numpy(), y)
    np.testing.assert_array_equal(frame[dask_training.WEIGHT].to_numpy(), weight)


def test_dask_backtest_wape_is_within_one_percent_of_the_single_process_model(
    single: ForecasterResult, on_dask: DaskRun
):
    dask = on_dask.result
    assert dask.series == single.series and dask.table["window"].unique().tolist() == (
        single.table["window"].unique().tolist()
    )
    figures = {
        freq: (single.metrics[f"wape_{freq}_lightgbm"], dask.metrics[f"wape_{freq}_lightgbm"])
        for freq in ("D", "W", "M")
    }
    w_single, w_dask = figures["D"]
    assert abs(w_dask - w_single) / w_single <= WAPE_TOLERANCE, figures
    # The statistical candidates are the same code on the same windows.
    assert dask.metrics["wape_D_autoets"] == pytest.approx(single.metrics["wape_D_autoets"], rel=1e-9)
    # Gated like any run: against the champion and both baselines on the same backtest.
    assert dask.decision.baselines.keys() == {"seasonal_naive", "autoets"}
    assert dask.metrics["wape_model"] < min(dask.decision.baselines.values())


def test_the_run_says_it_trained_on_dask_with_two_workers(single: ForecasterResult, on_dask: DaskRun):
    client = MlflowClient()
    logged = client.get_run(on_dask.result.run_id).data
    assert logged.params["trainer"] == "dask" and logged.params["dask_workers"] == "2"
    assert logged.tags["trainer"] == "dask" and logged.tags["dask.scheduler"].startswith("tcp://127.0.0.1:")
    assert logged.tags["gate.decision"] in ("promoted", "rejected")
    assert client.get_run(single.run_id).data.params["trainer"] == "local"


def test_both_workers_built_features_and_trained(on_dask: DaskRun):
    assert len(on_dask.workers) == 2
    assert set(on_dask.placement) == on_dask.workers and min(on_dask.placement.values()) > 0
    ran = {}
    for task in on_dask.tasks:
        ran.setdefault(key_split(task["key"]), []).append(task["worker"])
    assert set(ran["partition_rows"]) == on_dask.workers  # each partition's features, on its worker
    training = next(name for name in ran if name.endswith("train_part"))  # lightgbm.dask's training task
    # Two fits (backtest, final) of two boosters, each on both workers.
    assert Counter(ran[training]) == dict.fromkeys(on_dask.workers, 4)


def test_the_dask_model_is_registered_and_serves_like_the_single_process_one(
    single: ForecasterResult, on_dask: DaskRun, warehouse: Path
):
    assert (single.version, on_dask.result.version) == ("1", "2")
    single_files, dask_files = (_model_files(v) for v in ("1", "2"))
    assert set(dask_files) == set(single_files)  # the same self-contained artifact
    for booster in ("mean_booster.txt", "point_booster.txt"):
        single_params, dask_params = (_saved_params(files[booster]) for files in (single_files, dask_files))
        assert dask_params.keys() == single_params.keys()
        for name in ("tree_learner", "num_machines", "machines", "num_threads"):
            assert dask_params[name] == single_params[name], name  # nothing points at the cluster
    with connect(warehouse, read_only=True) as con:
        recent = RecentHistory(182)
        busiest = recent.panel(con, LEVEL, recent.series_ids(con, LEVEL)).to_frame()
        ids = busiest.groupby("unique_id")["y"].sum().nlargest(3).index.tolist()
        history = recent.panel(con, LEVEL, ids)
    # The service's path: the registered version loaded through MLflow, asked for a forecast.
    one, two = (
        mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").predict(
            history.to_frame(), params={"h": 14, "levels": [80.0, 95.0]}
        )
        for version in ("1", "2")
    )
    pd.testing.assert_frame_equal(one[["unique_id", "ds"]], two[["unique_id", "ds"]])
    assert list(two.columns) == list(one.columns)
    ordered = two[["lo-95", "lo-80", "forecast", "hi-80", "hi-95"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all()
    # Another fit of the same model: each series' two-week total close to the single-process one's.
    totals = pd.DataFrame({"single": one.groupby("unique_id")["forecast"].sum()}).assign(
        dask=two.groupby("unique_id")["forecast"].sum()
    )
    np.testing.assert_allclose(totals["dask"], totals["single"], rtol=0.10)  # measured: within 5%


def test_an_unreachable_scheduler_is_a_one_line_usage_error(mlflow_store: Path, cli_env: dict[str, str]):
    address = f"tcp://127.0.0.1:{closed_port()}"
    env = {**cli_env, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}  # Dask's own setting
    result = salespulse("train", "forecaster", "--level", "total", "--dask", address, env=env)
    assert_one_line_error(result, 2, "--dask", f"no Dask scheduler answered at {address} within 1 s")


def _model_files(version: str) -> dict[str, Path]:
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{version}"))
    return {p.name: p for p in folder.rglob("*") if p.is_file() and p.parent.name == "forecaster"}


def _saved_params(booster_file: Path) -> dict[str, str]:
    """The ``[name: value]`` parameter lines LightGBM writes after the trees."""
    lines = booster_file.read_text().splitlines()
    return dict(line[1:-1].split(": ", 1) for line in lines if line.startswith("[") and ": " in line)


def test_a_scheduler_without_workers_or_a_malformed_address_says_so():
    with (
        LocalCluster(
            n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=":0"
        ) as empty,
        pytest.raises(DaskUnreachable, match=r"has no worker .*'dask worker tcp://127\.0\.0\.1:"),
    ):
        dask_training.connect(empty.scheduler_address, timeout=1)
    with pytest.raises(DaskUnreachable, match="'tcp://host' is not a Dask scheduler address"):
        dask_training.connect("tcp://host")  # no port: refused at once, no waiting
