"""Customer segmentation: shared features, the served model, the choice of features and k by holdout value,
the names' value order and the tracked training run.

Everything is real: a generated DuckDB warehouse, an MLflow SQLite store and registry in a temporary
folder, and a fresh Python process that loads the champion with the ``training`` package blocked. The
holdout figures are checked against an independent pandas computation from the raw order lines.
"""

from __future__ import annotations

import json
import textwrap
from datetime import date, timedelta
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from model_support import WITHOUT_TRAINING, run_without_training
from scipy.stats import spearmanr
from sklearn.pipeline import Pipeline

from salespulse.analytics.semantic import RFM_SEGMENT_RULES
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.customers import FEATURE_NAMES, customer_features, validate_features
from salespulse.modeling.segmenter import CustomerSegmenter, Segment, Segmentation, build_pipeline
from training.holdout import HOLDOUT_DAYS
from training.segmenter.data import CustomerTable, load_customers
from training.segmenter.naming import CATALOGUE, name_segments
from training.segmenter.pipeline import SegmenterRun, run
from training.segmenter.train import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    SILHOUETTE_SLACK,
    VALUE_ORDER_Z,
    VALUE_TIE,
    TrainedSegmentation,
    train_segmentation,
)

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
def customers(warehouse: Path) -> CustomerTable:
    return load_customers(warehouse)


@pytest.fixture(scope="module")
def trained(first_run: SegmenterRun) -> TrainedSegmentation:
    """The tracked run's segmentation: trained on the customers and split of ``customers``."""
    return first_run.trained


@pytest.fixture(scope="module")
def lines(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT order_id, customer_id, ordered_at, revenue FROM order_lines").df()


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


def holdout_spend(lines: pd.DataFrame, cutoff: date, customers: pd.Index) -> pd.Series:
    """What each customer spent after the cut-off (to the end of the data: a holdout), from the raw lines."""
    after = lines[lines["ordered_at"].dt.date > cutoff]
    return after.groupby("customer_id")["revenue"].sum().reindex(customers, fill_value=0.0)


def pandas_holdout_means(lines: pd.DataFrame, cutoff: date, labels: pd.Series) -> pd.DataFrame:
    """Per segment: customers (as labelled at the cut-off), mean and standard error of their spend in the
    holdout days after the cut-off, from the raw lines."""
    grouped = holdout_spend(lines, cutoff, labels.index).groupby(labels.to_numpy())
    return pd.DataFrame({"customers": grouped.size(), "mean": grouped.mean(), "se": grouped.sem()})


def clearly_out_of_order(means: pd.DataFrame) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, where segment j (named as less valuable) spent more than segment i by more than
    VALUE_ORDER_Z standard errors of the difference."""
    pairs = []
    for i in means.index:
        for j in means.index[means.index > i]:
            margin = VALUE_ORDER_Z * np.hypot(means.loc[i, "se"], means.loc[j, "se"])
            if means.loc[j, "mean"] - means.loc[i, "mean"] > margin:
                pairs.append((int(i), int(j)))
    return pairs


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
    # Segments placed exactly on every prototype get its name, whatever order they come in.
    prototypes = np.array([p.profile for p in CATALOGUE])
    shuffled = np.random.default_rng(0).permutation(len(CATALOGUE))
    assert [n.name for n in name_segments(prototypes[shuffled])] == [CATALOGUE[i].name for i in shuffled]
    # More segments than names: every name stays unique, the copies numbered.
    many = np.vstack([prototypes, prototypes[[0, 9]] + 0.1])
    names = [n.name for n in name_segments(many)]
    assert len(set(names)) == len(names) == len(many)
    assert {"VIP Regulars 2", "Lapsing Regulars 2"} <= set(names)


def test_a_clearly_more_valuable_segment_never_gets_a_lower_name():
    prototypes = np.array([p.profile for p in CATALOGUE])
    # Two segments shaped like "Dormant" (last) and "VIP Regulars" (first), the dormant one worth more.
    profiles = prototypes[[len(CATALOGUE) - 1, 0]]
    assert [n.name for n in name_segments(profiles)] == ["Dormant", "VIP Regulars"]
    above = np.array([[False, True], [False, False]])
    names = name_segments(profiles, above)
    assert names[0].rank < names[1].rank  # the order wins over the shapes; the names stay distinct
    # Without a clear difference the shapes decide again.
    assert [n.name for n in name_segments(profiles, np.zeros((2, 2), bool))] == ["Dormant", "VIP Regulars"]


def test_model_names_are_not_the_rfm_reports_names():
    """The rule-based RFM segments (report, customer_segment filter) and the model's segments group
    customers differently: no name may mean both."""
    rfm = {name for name, _, _ in RFM_SEGMENT_RULES}
    model = {p.name for p in CATALOGUE}
    assert not rfm & model
    assert not {f"{name} 2" for name in model} & rfm


def test_features_and_k_are_chosen_by_holdout_value_and_silhouette(trained: TrainedSegmentation):
    candidates = trained.candidates
    chosen = next(c for c in candidates if (c.feature_set, c.k) == (trained.feature_set, trained.k))
    assert {c.feature_set for c in candidates} >= {"rfm", DEFAULT_FEATURE_SET}
    assert all(np.isfinite(c.value_spearman) for c in candidates)
    # Eligible: within the slack of its own feature set's best silhouette; none beats the choice on value.
    best = {name: max(c.silhouette for c in candidates if c.feature_set == name) for name in FEATURE_SETS}
    assert chosen.silhouette >= best[chosen.feature_set] - SILHOUETTE_SLACK
    eligible = [c for c in candidates if c.silhouette >= best[c.feature_set] - SILHOUETTE_SLACK]
    assert all(c.value_spearman <= chosen.value_spearman + VALUE_TIE for c in eligible)
    # The choice separates value better than the five features with k by silhouette (the former rule).
    five = [c for c in candidates if c.feature_set == DEFAULT_FEATURE_SET]
    former = min(
        (c for c in five if c.silhouette >= max(x.silhouette for x in five) - 0.002), key=lambda c: c.k
    )
    assert chosen.value_spearman > former.value_spearman + 0.02
    # The served model (fitted on the whole history) separates value about as well on the split.
    assert trained.final.value_spearman == pytest.approx(chosen.value_spearman, abs=0.05)


def test_names_keep_their_value_order_on_the_holdout(
    trained: TrainedSegmentation, customers: CustomerTable, lines: pd.DataFrame
):
    split = customers.split
    labels = pd.Series(trained.segmentation.assign(split.features).segment_id, index=split.features.index)
    means = pandas_holdout_means(lines, split.cutoff, labels)
    table = trained.holdout
    np.testing.assert_array_equal(
        table["holdout_customers"], means["customers"].reindex(table.index, fill_value=0)
    )
    np.testing.assert_allclose(table["holdout_mean_spend"], means["mean"].reindex(table.index), rtol=1e-9)
    # No name ranks above one whose customers spent clearly more; where two segments are as valuable as
    # the data can tell, their shapes decided. The order of all names follows value.
    assert clearly_out_of_order(means) == []
    assert spearmanr(means.index, means["mean"]).statistic < -0.9
    assert means["mean"].idxmax() == 0 and means["mean"].idxmin() == len(means) - 1


def test_names_keep_their_value_order_in_the_months_after_training(warehouse: Path, lines: pd.DataFrame):
    """Out of time: trained on the history up to a day nine months before the end (its own holdout inside
    it), the names' order is checked against what the customers spent in the nine months after that day."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        end = con.execute("SELECT max(ordered_at)::DATE FROM order_lines").fetchone()[0]
    then = end - timedelta(days=HOLDOUT_DAYS)
    earlier = load_customers(warehouse, as_of=then)
    assert earlier.split is not None and earlier.split.as_of == then
    model = train_segmentation(earlier.features, seed=0, split=earlier.split).segmentation
    labels = pd.Series(model.assign(earlier.features).segment_id, index=earlier.features.index)
    means = pandas_holdout_means(lines, then, labels)
    top = means["mean"].to_numpy()[:4]
    assert (np.diff(top) < 0).all()  # the four most valuable names in strict order
    assert spearmanr(means.index, means["mean"]).statistic < -0.8


def test_without_a_holdout_k_is_chosen_by_silhouette_on_the_five_features(warehouse: Path):
    short = load_customers(warehouse, holdout_days=1_200)  # the cut-off is before the first sale
    assert short.split is None and "needs" in short.why_no_split
    trained = train_segmentation(short.features, seed=0, k_range=(5, 6), split=short.split)
    assert trained.feature_set == DEFAULT_FEATURE_SET and trained.holdout is None
    assert trained.segmentation.features == FEATURE_NAMES
    assert {c.feature_set for c in trained.candidates} == {DEFAULT_FEATURE_SET}


def test_a_model_without_the_select_step_still_serves(features: pd.DataFrame):
    """Models registered before the feature choice cluster on all features with a three-step pipeline."""
    matrix = features.to_numpy()
    pipeline = build_pipeline(5, seed=0, n_init=2)
    older = Pipeline(pipeline.steps[1:]).fit(matrix)
    segments = [Segment(i, f"S{i}", "-") for i in range(5)]
    segmentation = Segmentation(older, segments, pd.DataFrame())
    np.testing.assert_array_equal(segmentation.assign(matrix).segment_id, older.predict(matrix))
    assert segmentation.features == FEATURE_NAMES


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
    assert plots >= {"plots/segment_scatter.png", "plots/segment_profile.png", "plots/k_selection.png"}

    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == first_run.version and first_run.decision.promoted
    info = mlflow.models.get_model_info(f"models:/{MODEL}/{first_run.version}")
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)

    profile = first_run.trained.segmentation.profile.set_index("segment")
    assert profile["customers"].sum() == len(features)
    assert profile["revenue_share"].sum() == pytest.approx(1.0)
    assert profile["mean_monetary"].idxmax() == "VIP Regulars" == profile.index[0]
    assert profile["holdout_mean_spend"].idxmax() == "VIP Regulars"
    assert "VIP Regulars" in first_run.describe() and "first champion" in first_run.describe()


@pytest.mark.slow
def test_run_logs_the_choice_and_holdout_spend_per_segment(
    first_run: SegmenterRun, customers: CustomerTable, lines: pd.DataFrame
):
    client = MlflowClient()
    logged = client.get_run(first_run.run_id).data
    trained = first_run.trained
    assert logged.tags["feature_set"] == trained.feature_set
    assert logged.tags["features"] == ",".join(trained.segmentation.features)
    assert logged.params["holdout_days"] == str(HOLDOUT_DAYS)
    for c in trained.candidates:
        key = f"{c.feature_set}_k{c.k}"
        assert logged.metrics[f"silhouette_{key}"] == pytest.approx(c.silhouette)
        assert logged.metrics[f"value_spearman_{key}"] == pytest.approx(c.value_spearman)
    # The served model's holdout spend per segment, recomputed from the raw lines.
    split = customers.split
    labels = pd.Series(trained.segmentation.assign(split.features).segment_id, index=split.features.index)
    means = pandas_holdout_means(lines, split.cutoff, labels)
    for segment_id, row in means.iterrows():
        assert logged.metrics[f"holdout_mean_spend_segment{segment_id}"] == pytest.approx(row["mean"])
        assert logged.metrics[f"holdout_customers_segment{segment_id}"] == row["customers"]
    spend = holdout_spend(lines, split.cutoff, labels.index)
    segment_mean = means["mean"].reindex(range(trained.k)).to_numpy()[labels.to_numpy()]
    expected = spearmanr(segment_mean, spend).statistic
    assert logged.metrics["holdout_value_spearman"] == pytest.approx(expected)
    plots = {a.path for a in client.list_artifacts(first_run.run_id, "plots")}
    assert "plots/segment_holdout_spend.png" in plots


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
    assert gate_metrics["gate_champion_holdout_value_spearman"] == pytest.approx(
        first_run.trained.final.value_spearman
    )

    # Two segments separate value worse than the champion's: rejected on the same holdout.
    champion_before = client.get_model_version_by_alias(MODEL, "champion").version
    worse = run(seed=0, k_range=(2, 2), progress=False, warehouse=warehouse)
    assert worse.trained.k == 2 and worse.decision is not None
    assert not worse.decision.promoted
    assert worse.decision.champion_score > worse.decision.challenger_score
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion_before
    logged = client.get_run(worse.run_id).data
    assert logged.tags["gate.decision"] == "rejected"
    assert {"gate_challenger_holdout_value_spearman", "gate_champion_holdout_value_spearman"} <= set(
        logged.metrics
    )
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
