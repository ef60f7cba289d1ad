"""Customer value (BG/NBD + Gamma-Gamma): the purchase summary, the served closed forms against
PyMC-Marketing's, the holdout validation against the heuristic lifetime value, the tracked run and its gate.

Everything is real: the services' generated sample warehouse, an MLflow SQLite store and registry in a
temporary folder, PyMC-Marketing fits, and a fresh Python process that loads the champion with the
``training`` package blocked and without pytensor.
"""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import replace
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
from service_support import SERVICE_SAMPLE
from threadpoolctl import threadpool_limits

from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.customers import SUMMARY_NAMES, purchase_summary, validate_summary
from salespulse.modeling.customer_value import (
    PREDICTION_NAMES,
    BgNbdParameters,
    CustomerValueModel,
    CustomerValueParameters,
    CustomerValuePredictor,
    GammaGammaParameters,
    customer_value_frame,
    expected_purchases,
    predict_customers,
)
from salespulse.modeling.segmenter import build_pipeline
from training.customer_value import pipeline
from training.customer_value.data import HOLDOUT_DAYS, CustomerValueData, load_customer_value_data
from training.customer_value.evaluate import HoldoutScores, heuristic_lifetime_value, rank_correlation
from training.customer_value.pipeline import CustomerValueRun, run
from training.customer_value.train import fit_purchase_model, fit_spend_model
from training.segmenter.train import CANDIDATE_SEED, FEATURE_SETS, N_INIT

CONFIG = GeneratorConfig(**SERVICE_SAMPLE)
MODEL = "customer-value"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("customer_value") / "warehouse.duckdb"
    generate_warehouse(CONFIG, path)
    return path


@pytest.fixture(scope="module")
def data(warehouse: Path) -> CustomerValueData:
    return load_customer_value_data(warehouse)


@pytest.fixture(scope="module")
def first_run(mlflow_store: Path, warehouse: Path) -> CustomerValueRun:
    return run(seed=0, progress=False, warehouse=warehouse)


def pandas_summary(lines: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The documented summary definitions, computed independently of the SQL."""
    lines = lines[lines["ordered_at"].dt.date <= as_of]
    days = (
        lines.assign(day=lines["ordered_at"].dt.normalize()).groupby(["customer_id", "day"])["revenue"].sum()
    )
    days = days.reset_index().sort_values(["customer_id", "day"])
    grouped = days.groupby("customer_id")
    first_revenue = grouped["revenue"].first()
    repeats = grouped["day"].count() - 1
    frame = pd.DataFrame(
        {
            "frequency": repeats.astype(float),
            "recency": (grouped["day"].max() - grouped["day"].min()).dt.days.astype(float),
            "T": (pd.Timestamp(as_of) - grouped["day"].min()).dt.days.astype(float),
            "monetary_value": ((grouped["revenue"].sum() - first_revenue) / repeats.replace(0, np.nan))
            .fillna(0.0)
            .clip(lower=0.0),
        }
    )
    return frame[list(SUMMARY_NAMES)].sort_index()


def test_summary_matches_an_independent_pandas_computation(warehouse: Path):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        lines = con.execute("SELECT customer_id, ordered_at, revenue FROM order_lines").df()
        summary = purchase_summary(con)
        as_of = date(2026, 1, 15)
        some = list(summary.index[[0, 17, 400]])
        subset = purchase_summary(con, [*some, "C-no-such-customer"], as_of=as_of)
    expected = pandas_summary(lines, CONFIG.end_date)
    pd.testing.assert_index_equal(summary.index, expected.index, check_names=False)
    np.testing.assert_allclose(summary.to_numpy(), expected.to_numpy(), rtol=1e-9)
    expected_subset = pandas_summary(lines, as_of).reindex(some).dropna()
    assert list(subset.index) == list(expected_subset.index)  # the unknown id is simply absent
    np.testing.assert_allclose(subset.to_numpy(), expected_subset.to_numpy(), rtol=1e-9)
    validate_summary(summary)  # real summaries are within the bounds the service enforces


def test_split_holds_the_calibration_customers_and_their_holdout_spend(
    warehouse: Path, data: CustomerValueData
):
    split = data.split
    assert (split.as_of - split.cutoff).days == HOLDOUT_DAYS == split.holdout_days
    with duckdb.connect(str(warehouse), read_only=True) as con:
        holdout = con.execute(
            "SELECT customer_id, sum(revenue) AS spend FROM order_lines "
            "WHERE ordered_at >= $start::DATE GROUP BY ALL",
            {"start": split.cutoff + timedelta(days=1)},
        ).df()
    expected = holdout.set_index("customer_id")["spend"].reindex(split.summary.index, fill_value=0.0)
    np.testing.assert_allclose(split.holdout_spend.to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert split.summary["T"].max() <= (split.cutoff - CONFIG.start_date).days
    assert (split.margin < 1).all()  # profit is revenue less a positive cost


def test_closed_forms_equal_pymc_marketing(first_run: CustomerValueRun, data: CustomerValueData):
    frame = data.split.summary.rename_axis("customer_id").reset_index()
    bg = fit_purchase_model(frame)
    gg = fit_spend_model(frame[(frame["frequency"] > 0) & (frame["monetary_value"] > 0)])
    parameters = CustomerValueParameters(
        BgNbdParameters(**{n: float(bg.fit_result[n].values.squeeze()) for n in ("r", "alpha", "a", "b")}),
        GammaGammaParameters(**{n: float(gg.fit_result[n].values.squeeze()) for n in ("p", "q", "v")}),
    )
    # The pipeline's calibration fit is this very fit.
    for group, values in parameters.as_dict().items():
        assert first_run.calibration.parameters.as_dict()[group] == pytest.approx(values, rel=1e-6)
    ours = predict_customers(parameters, data.split.summary, horizon_days=90, lifetime_months=12)

    def library(values: object) -> np.ndarray:
        return np.asarray(values.values).squeeze()  # type: ignore[attr-defined]

    np.testing.assert_allclose(
        ours.expected_purchases, library(bg.expected_purchases(frame, future_t=90)), rtol=1e-8
    )
    np.testing.assert_allclose(
        ours.probability_alive, library(bg.expected_probability_alive(frame)), rtol=1e-8
    )
    np.testing.assert_allclose(
        ours.expected_purchase_value, library(gg.expected_customer_spend(frame)), rtol=1e-8
    )
    discounted = predict_customers(
        parameters, data.split.summary, lifetime_months=12, monthly_discount_rate=0.01
    )
    for rate, predicted in ((0.0, ours.lifetime_value), (0.01, discounted.lifetime_value)):
        expected = gg.expected_customer_lifetime_value(
            transaction_model=bg, data=frame.copy(), future_t=12, discount_rate=rate, time_unit="D"
        )
        np.testing.assert_allclose(predicted, library(expected), rtol=1e-7)


def test_heavy_buyers_stay_finite_where_the_papers_form_overflows():
    bg = BgNbdParameters(r=0.9, alpha=15.0, a=0.8, b=36.0)
    # Someone buying every day for five years: the paper's hypergeometric factor alone is ~1e300+.
    predicted = expected_purchases(bg, np.array([1825.0]), np.array([1825.0]), np.array([1825.0]), 90.0)
    assert np.isfinite(predicted).all() and 80 < predicted[0] < 90


def test_a_batch_of_1000_customers_predicts_in_milliseconds(
    first_run: CustomerValueRun, data: CustomerValueData
):
    model = CustomerValueModel(first_run.fitted.parameters)
    batch = pd.concat([data.summary] * (1 + 1000 // len(data.summary))).head(1000)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        frame = model.predict_frame(batch)
        timings.append(time.perf_counter() - started)
    assert list(frame.columns) == list(PREDICTION_NAMES) and len(frame) == 1000
    assert min(timings) < 0.05  # measured ~2 ms; the bound only catches a regression to the library's path


def test_bad_summaries_are_refused_naming_the_column(first_run: CustomerValueRun, data: CustomerValueData):
    model = CustomerValuePredictor(CustomerValueModel(first_run.fitted.parameters))
    good = data.summary.head(3).reset_index(drop=True)
    for column, value, rule in [
        ("monetary_value", np.nan, "a finite number >= 0"),
        ("recency", -1.0, "a finite number >= 0"),
        ("frequency", np.inf, "a finite number >= 0"),
        ("recency", 1e6, "at most T"),
    ]:
        bad = good.copy()
        bad.loc[1, column] = value
        with pytest.raises(ValueError, match=rf"^{column} must be {rule}: 1 bad row\(s\), first at row 1"):
            model.predict(None, bad)
    with pytest.raises(ValueError, match=r"missing summary column.*\bT\b"):
        model.predict(None, good.drop(columns="T"))
    with pytest.raises(ValueError, match=r"horizon_days must be in"):
        model.predict(None, good, params={"horizon_days": 0.0})


def test_more_purchases_and_recent_ones_mean_more_value(first_run: CustomerValueRun):
    parameters = first_run.fitted.parameters
    customers = pd.DataFrame(
        {
            "frequency": [0, 5, 5, 20],
            "recency": [0, 100, 350, 350],
            "T": [365] * 4,
            "monetary_value": [0, 500] * 2,
        },
        index=["new", "lapsed", "recent", "loyal"],
    )
    frame = customer_value_frame(parameters, customers, horizon_days=90)
    assert frame.loc["lapsed", "probability_alive"] < frame.loc["recent", "probability_alive"]
    assert frame.loc["lapsed", "expected_spend"] < frame.loc["recent", "expected_spend"]
    assert frame.loc["recent", "expected_purchases"] < frame.loc["loyal", "expected_purchases"]
    assert frame.loc["new", "probability_alive"] == 1.0
    assert frame.loc["new", "expected_purchase_value"] == pytest.approx(parameters.spend.population_mean)
    np.testing.assert_allclose(
        frame["expected_spend"], frame["expected_purchases"] * frame["expected_purchase_value"]
    )
    assert (frame["lifetime_value"] > frame["expected_spend"]).all()  # 36 months hold more than 90 days


@pytest.mark.slow
def test_model_beats_the_heuristic_on_the_holdout_and_logs_every_score(
    first_run: CustomerValueRun, data: CustomerValueData
):
    """The acceptance criterion of the issue: logged, and higher than the heuristic's rank correlation."""
    metrics = MlflowClient().get_run(first_run.run_id).data.metrics
    model, heuristic = metrics["holdout_spearman"], metrics["heuristic_holdout_spearman"]
    segments = metrics["segment_means_holdout_spearman"]
    assert model > heuristic and model > segments
    assert model > 0.7  # 0.84 on this sample (heuristic 0.68, segment means 0.74)
    # The logged heuristic is the report's formula, recomputed here on the same split.
    split = data.split
    actual = split.holdout_spend.to_numpy()
    recomputed = rank_correlation(heuristic_lifetime_value(split), actual)
    assert heuristic == pytest.approx(recomputed)
    # The segment means are those of the segmentation the segmenter chooses on this split, recomputed: its
    # features and k refitted on the calibration features, each customer's segment mean of holdout spend.
    chosen = first_run.scores.segments
    assert metrics["benchmark_segments"] == chosen.k
    columns = FEATURE_SETS[chosen.feature_set]
    with threadpool_limits(limits=1):
        segmenter = build_pipeline(chosen.k, seed=CANDIDATE_SEED, n_init=N_INIT, features=columns)
        labels = segmenter.fit(split.features.to_numpy()).named_steps["kmeans"].labels_
    means = pd.Series(actual).groupby(labels).transform("mean")
    assert segments == pytest.approx(spearmanr(means, actual).statistic)
    # Totals are in the right range, not only the ranks.
    assert 0.7 < metrics["holdout_total_ratio"] < 1.3


@pytest.mark.slow
def test_run_registers_a_champion_with_parameters_plots_and_signature(first_run: CustomerValueRun):
    client = MlflowClient()
    logged = client.get_run(first_run.run_id)
    for name in ("purchases_r", "purchases_alpha", "purchases_a", "purchases_b", "spend_p", "spend_q"):
        assert name in logged.data.metrics and f"calibration_{name}" in logged.data.metrics
    assert logged.data.params["holdout_days"] == str(HOLDOUT_DAYS)
    plots = {a.path for a in client.list_artifacts(first_run.run_id, "plots")}
    assert plots == {"plots/holdout_deciles.png", "plots/probability_alive.png"}
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == first_run.version and first_run.decision.promoted
    info = mlflow.models.get_model_info(f"models:/{MODEL}/{first_run.version}")
    assert info.signature.inputs.input_names() == list(SUMMARY_NAMES)
    assert "first champion" in first_run.describe()


@pytest.mark.slow
def test_gate_keeps_the_champion_unless_beaten_and_never_serves_below_the_heuristic(
    first_run: CustomerValueRun, warehouse: Path, monkeypatch: pytest.MonkeyPatch
):
    client = MlflowClient()
    # The same data gives the same fit: equal is not better, so the champion stays.
    again = run(seed=0, progress=False, warehouse=warehouse)
    assert again.decision is not None and not again.decision.promoted
    assert again.decision.champion_score == pytest.approx(again.decision.challenger_score)
    assert again.scores.model == pytest.approx(first_run.scores.model)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == first_run.version

    # A model that ranks customers worse than the heuristic is rejected before it meets the champion.
    def below_heuristic(*args: object, **kwargs: object) -> HoldoutScores:
        return replace(first_run.scores, model=first_run.scores.heuristic - 0.01)

    monkeypatch.setattr(pipeline, "holdout_scores", below_heuristic)
    worse = run(seed=0, progress=False, warehouse=warehouse)
    assert worse.decision is None and not worse.beats_heuristic
    logged = client.get_run(worse.run_id).data
    assert logged.tags["gate.decision"] == "rejected" and logged.tags["gate.reason"] == "heuristic"
    assert client.get_model_version(MODEL, worse.version).tags["gate.decision"] == "rejected"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == first_run.version
    assert "does not beat the heuristic" in worse.describe()


LOAD_CHAMPION = WITHOUT_TRAINING + textwrap.dedent(
    """
    model = mlflow.pyfunc.load_model("models:/customer-value@champion")
    rows = pd.DataFrame(json.loads(sys.argv[1]))
    result = model.predict(rows.astype({"frequency": "int64", "recency": "int64", "T": "int64"}))
    try:
        model.predict(rows.assign(recency=rows["T"] + 1))
    except ValueError as error:
        refused = str(error)
    heavy = sorted(m for m in ("pymc", "pymc_marketing", "pytensor", "xarray") if m in sys.modules)
    loaded = training_modules_loaded()
    answer = {"result": result.to_dict(orient="list"), "refused": refused, "heavy": heavy}
    answer["training_modules"] = loaded
    print(json.dumps(answer))
    """
)


@pytest.mark.slow
def test_champion_loads_and_predicts_in_a_fresh_process_without_training_or_pytensor(
    first_run: CustomerValueRun, data: CustomerValueData, tmp_path: Path
):
    rows = data.summary.head(20)
    answer = run_without_training(LOAD_CHAMPION, json.dumps(rows.to_dict(orient="list")), tmp_path)
    assert answer["heavy"] == []
    assert answer["refused"].startswith("recency must be at most T: 20 bad row(s)")
    expected = customer_value_frame(first_run.fitted.parameters, rows)
    for name in PREDICTION_NAMES:
        np.testing.assert_allclose(answer["result"][name], expected[name].to_numpy(), rtol=1e-12)
