"""Customer segmentation: shared features, the served model and the tracked training run.

Everything is real: a generated DuckDB warehouse, an MLflow SQLite store and registry in a temporary
folder, and a fresh Python process that loads the champion with the ``training`` package blocked.
"""

from __future__ import annotations

import json
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from model_support import WITHOUT_TRAINING, run_without_training

from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.customers import FEATURE_NAMES, customer_features, validate_features
from salespulse.modeling.segmenter import CustomerSegmenter, Segmentation
from training.segmenter.naming import CATALOGUE, name_clusters
from training.segmenter.pipeline import SegmenterRun, run
from training.segmenter.train import TrainedSegmentation, train_segmentation

CONFIG = GeneratorConfig(seed=1, customers=5_000, rows=250_000, days=1096, end_date=date(2026, 6, 30))
MODEL = "customer-segmenter"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("segmenter") / "warehouse.duckdb"
    generate_warehouse(CONFIG, path)
    return path


@pytest.fixture(scope="module")
def features(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return customer_features(con)


@pytest.fixture(scope="module")
def trained(features: pd.DataFrame) -> TrainedSegmentation:
    return train_segmentation(features, seed=0)


@pytest.fixture(scope="module")
def first_run(mlflow_store: Path, warehouse: Path) -> SegmenterRun:
    return run(seed=0, progress=False, warehouse=warehouse)


def pandas_features(lines: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The documented feature definitions, computed independently of the SQL."""
    lines = lines[lines["ordered_at"].dt.date <= as_of]
    day = lines["ordered_at"].dt.normalize()
    grouped = lines.assign(day=day).groupby("customer_id")
    reference = pd.Timestamp(as_of)
    frame = pd.DataFrame(
        {
            "recency_days": (reference - grouped["day"].max()).dt.days.astype(float),
            "frequency": grouped["order_id"].nunique().astype(float),
            "monetary": grouped["revenue"].sum(),
            "tenure_days": (reference - grouped["day"].min()).dt.days.astype(float),
        }
    )
    frame["avg_order_value"] = frame["monetary"] / frame["frequency"]
    return frame[list(FEATURE_NAMES)].sort_index()


def test_features_match_an_independent_pandas_computation(warehouse: Path, features: pd.DataFrame):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        lines = con.execute("SELECT order_id, customer_id, ordered_at, revenue FROM order_lines").df()
        some = list(features.index[[0, 17, 400]])
        as_of = date(2026, 1, 15)
        subset = customer_features(con, [*some, "C-no-such-customer"], as_of=as_of)
    expected = pandas_features(lines, CONFIG.end_date)
    pd.testing.assert_index_equal(features.index, expected.index, check_names=False)
    np.testing.assert_allclose(features.to_numpy(), expected.to_numpy(), rtol=1e-9)
    expected_subset = pandas_features(lines, as_of).reindex(some).dropna()
    assert list(subset.index) == list(expected_subset.index)  # the unknown id is simply absent
    np.testing.assert_allclose(subset.to_numpy(), expected_subset.to_numpy(), rtol=1e-9)
    assert (features["tenure_days"] >= features["recency_days"]).all()
    validate_features(features)  # real features are within the bounds the service enforces


def test_fast_assign_equals_the_pipeline(trained: TrainedSegmentation, features: pd.DataFrame):
    segmentation = trained.segmentation
    matrix = features.to_numpy()
    assignment = segmentation.assign(matrix)
    predicted = segmentation.pipeline.predict(matrix)
    np.testing.assert_array_equal(assignment.segment_id, predicted)
    np.testing.assert_array_equal(assignment.segment_id, trained.labels)
    distances = segmentation.pipeline.transform(matrix)
    np.testing.assert_allclose(assignment.distance, distances[np.arange(len(matrix)), predicted], rtol=1e-9)
    names = [s.name for s in segmentation.segments]
    assert list(assignment.segment) == [names[i] for i in predicted]


def test_bad_inputs_raise_a_value_error_naming_the_field(
    trained: TrainedSegmentation, features: pd.DataFrame
):
    model = CustomerSegmenter(trained.segmentation)
    good = features.head(3).reset_index(drop=True)
    for column, value in [("monetary", np.nan), ("recency_days", -1.0), ("frequency", np.inf)]:
        bad = good.copy()
        bad.loc[1, column] = value
        with pytest.raises(ValueError, match=rf"^{column} must be a finite number .*row 1"):
            model.predict(None, bad)
    with pytest.raises(ValueError, match=r"missing feature column.*tenure_days"):
        model.predict(None, good.drop(columns="tenure_days"))


def test_names_follow_the_profile_for_any_k():
    # Clusters placed exactly on every prototype get its name, whatever order they come in.
    prototypes = np.array([p.profile for p in CATALOGUE])
    shuffled = np.random.default_rng(0).permutation(len(CATALOGUE))
    assert [n.name for n in name_clusters(prototypes[shuffled])] == [CATALOGUE[i].name for i in shuffled]
    # More clusters than names: every name stays unique.
    many = np.vstack([prototypes, prototypes[[0, 7]] + 0.1])
    names = [n.name for n in name_clusters(many)]
    assert len(set(names)) == len(names) == len(many)
    assert names[-2:] == ["Champions 2", "At Risk 2"]


@pytest.mark.slow
def test_run_logs_registers_and_names_champions(first_run: SegmenterRun, features: pd.DataFrame):
    client = MlflowClient()
    logged = client.get_run(first_run.run_id)
    for metric in ("silhouette", "davies_bouldin", "ari_mean", "ari_min", "k"):
        assert metric in logged.data.metrics
    assert logged.data.metrics["k"] == first_run.trained.k
    assert 0 < logged.data.metrics["silhouette"] < 1
    assert 0 < logged.data.metrics["ari_min"] <= logged.data.metrics["ari_mean"] <= 1
    assert logged.data.params["seed"] == "0"
    artifacts = {a.path for a in client.list_artifacts(first_run.run_id)}
    plots = {a.path for a in client.list_artifacts(first_run.run_id, "plots")}
    assert "segment_profile.csv" in artifacts
    assert plots == {"plots/segment_scatter.png", "plots/segment_profile.png", "plots/k_selection.png"}

    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == first_run.version and first_run.decision.promoted
    info = mlflow.models.get_model_info(f"models:/{MODEL}/{first_run.version}")
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)

    profile = first_run.trained.segmentation.profile.set_index("segment")
    assert profile["customers"].sum() == len(features)
    assert profile["revenue_share"].sum() == pytest.approx(1.0)
    assert profile["mean_monetary"].idxmax() == "Champions"
    assert profile["mean_recency_days"].idxmin() == "Champions"
    assert "Champions" in first_run.describe() and "first champion" in first_run.describe()


@pytest.mark.slow
def test_retrain_keeps_names_and_the_gate_rejects_a_worse_model(
    first_run: SegmenterRun, warehouse: Path, features: pd.DataFrame
):
    client = MlflowClient()
    retrained = run(seed=1, progress=False, warehouse=warehouse)
    first, second = first_run.trained.segmentation, retrained.trained.segmentation
    assert [s.name for s in second.segments] == [s.name for s in first.segments]
    agreement = (first.assign(features).segment == second.assign(features).segment).mean()
    assert agreement > 0.9
    # The gate scored v1 on the same customers exactly as v1 scored itself.
    gate_metrics = client.get_run(retrained.run_id).data.metrics
    assert gate_metrics["gate_champion_silhouette"] == pytest.approx(first_run.trained.final.silhouette)

    champion_before = client.get_model_version_by_alias(MODEL, "champion").version
    worse = run(seed=0, k_range=(12, 12), progress=False, warehouse=warehouse)
    assert worse.trained.k == 12 and len({s.name for s in worse.trained.segmentation.segments}) == 12
    assert not worse.decision.promoted
    assert worse.decision.champion_score > worse.decision.challenger_score
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion_before
    logged = client.get_run(worse.run_id).data
    assert logged.tags["gate.decision"] == "rejected"
    assert {"gate_challenger_silhouette", "gate_champion_silhouette"} <= set(logged.metrics)
    assert client.get_model_version(MODEL, worse.version).tags["gate.decision"] == "rejected"


LOAD_CHAMPION = WITHOUT_TRAINING + textwrap.dedent(
    """
    model = mlflow.pyfunc.load_model("models:/customer-segmenter@champion")
    rows = pd.DataFrame(json.loads(sys.argv[1]))
    result = model.predict(rows)
    try:
        model.predict(rows.assign(monetary=-1.0))
    except ValueError as error:
        refused = str(error)
    loaded = training_modules_loaded()
    answer = {"result": result.to_dict(orient="list"), "refused": refused, "training_modules": loaded}
    print(json.dumps(answer))
    """
)


@pytest.mark.slow
def test_champion_loads_and_predicts_in_a_fresh_process_without_training(
    first_run: SegmenterRun, features: pd.DataFrame, tmp_path: Path
):
    rows = features.head(20)
    answer = run_without_training(LOAD_CHAMPION, json.dumps(rows.to_dict(orient="list")), tmp_path)
    assert answer["refused"].startswith("monetary must be a finite number >= 0: 20 bad row(s)")
    champion = MlflowClient().get_model_version_by_alias(MODEL, "champion")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{champion.version}")
    expected: Segmentation = model.unwrap_python_model().segmentation
    assignment = expected.assign(rows)
    assert answer["result"]["segment_id"] == assignment.segment_id.tolist()
    assert answer["result"]["segment"] == assignment.segment.tolist()
    assert answer["result"]["action"] == assignment.action.tolist()
    np.testing.assert_allclose(answer["result"]["distance"], assignment.distance)


@pytest.mark.slow
def test_logged_model_predicts_from_whole_numbers_and_mixed_columns(
    first_run: SegmenterRun, features: pd.DataFrame
):
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{first_run.version}")
    # The README's example customer: every column int64, which a "double" signature refused.
    whole = pd.DataFrame(
        [{"recency_days": 12, "frequency": 9, "monetary": 5120, "tenure_days": 640, "avg_order_value": 568}]
    )
    assert set(whole.dtypes) == {np.dtype("int64")}
    pd.testing.assert_frame_equal(model.predict(whole), model.predict(whole.astype(np.float64)))
    # Counts as integers next to fractional money, as a caller's own data often has them.
    rows = features.head(20).reset_index(drop=True)
    mixed = rows.astype({"recency_days": "int64", "frequency": "int64", "tenure_days": "int64"})
    assert model.predict(mixed)["segment"].tolist() == model.predict(rows)["segment"].tolist()
    with pytest.raises(
        ValueError, match=r"^monetary must be a number: 1 bad row\(s\), first at row 0 \('lots'\)"
    ):
        model.predict(whole.astype(object).assign(monetary=["lots"]))
