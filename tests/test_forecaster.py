"""The sales forecaster: series definition, feature pipeline, training pipeline, registry and serving path.

Everything is real: a generated DuckDB warehouse, MLflow with a SQLite store (and a real ``mlflow server``
for one test), the registered model loaded back in a fresh process with the training package blocked.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import mlflow_server  # noqa: F401  (fixture)
from model_support import WITHOUT_TRAINING, run_without_training

from salespulse.config import get_settings
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.features.series import (
    LEVELS,
    Panel,
    RecentHistory,
    SeriesFeatures,
    load_series,
    parse_series_id,
    series_id,
)
from salespulse.modeling.forecaster import Forecaster, PlannedPromotion
from salespulse.modeling.registry import registered_model_name
from salespulse.warehouse.store import connect
from training.forecaster.pipeline import ForecasterResult, run
from training.forecaster.train import TrainConfig

END = date(2026, 6, 30)  # a Tuesday: the week in progress is not a complete week
CONFIG = GeneratorConfig(seed=3, customers=3_000, rows=200_000, products=120, days=730, end_date=END)
MODEL = "sales-forecaster"
SERIES = ["P-00003|West", "P-00010|East"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forecaster") / "warehouse.duckdb"
    generate_warehouse(CONFIG, path)
    return path


@pytest.fixture(scope="module")
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    # The warehouse's own settings: DuckDB shares one database per file and process only between
    # connections opened with the same configuration, and the pipeline opens it this way too.
    with connect(warehouse, read_only=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def first_run(mlflow_store: Path, warehouse: Path) -> ForecasterResult:
    return run(progress=False, warehouse=warehouse)


def recent(con: duckdb.DuckDBPyConnection, forecaster: Forecaster, ids: list[str]) -> pd.DataFrame:
    """The recent daily history of ``ids`` the way the service reads it."""
    return RecentHistory(forecaster.history_periods).panel(con, forecaster.level, ids).to_frame()


@pytest.fixture(scope="module")
def champion(first_run: ForecasterResult) -> Forecaster:
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    return model.unwrap_python_model().forecaster


# ------------------------------------------------------------------------------------------- the series


def test_every_level_adds_up_to_the_revenue_of_the_warehouse(con: duckdb.DuckDBPyConnection):
    revenue = con.execute("SELECT sum(revenue) FROM order_lines").fetchone()[0]
    counts = {}
    for level in LEVELS:
        frame = load_series(con, level, "D")
        assert frame["y"].sum() == pytest.approx(revenue, rel=1e-9), level
        counts[level] = frame["unique_id"].nunique()
        for unique_id in frame["unique_id"].unique()[:5]:
            parse_series_id(level, unique_id)  # every id has the documented shape
    assert counts["total"] == 1 and counts["region"] == 4 and counts["category"] == 3
    assert counts["category_region"] == 12
    assert counts["product"] <= CONFIG.products and counts["product_region"] <= 4 * counts["product"]


def test_series_are_zero_filled_from_their_first_sale_to_the_end(con: duckdb.DuckDBPyConnection):
    frame = load_series(con, "product_region", "D")
    lines = (
        con.execute(
            # The series' region is the line's ship-to region, as in the reports.
            """SELECT o.product_id || '|' || coalesce(nullif(o.ship_region, ''), c.region) AS unique_id,
                  min(o.ordered_at)::DATE AS first_sale,
                  count(DISTINCT o.ordered_at::DATE) AS days_with_sales
           FROM order_lines o JOIN customers c USING (customer_id) GROUP BY 1"""
        )
        .df()
        .set_index("unique_id")
    )
    spans = frame.groupby("unique_id").agg(
        first=("ds", "min"), last=("ds", "max"), rows=("ds", "size"), sold=("y", lambda y: (y > 0).sum())
    )
    assert (spans["last"] == pd.Timestamp(END)).all()
    assert (spans["first"].dt.date == lines.loc[spans.index, "first_sale"]).all()
    assert (spans["rows"] == (spans["last"] - spans["first"]).dt.days + 1).all()  # no gaps
    assert (spans["sold"] == lines.loc[spans.index, "days_with_sales"]).all()
    assert (frame["y"] == 0).mean() > 0.3  # the zeros are there
    assert frame["discount"].between(0, 1).all()
    assert frame["discount"].max() >= 0.1  # promotions show
    assert set(frame.columns) == {"unique_id", "ds", "y", "discount", "category", "region"}


def test_weekly_series_are_complete_monday_weeks(con: duckdb.DuckDBPyConnection):
    daily = load_series(con, "category", "D")
    weekly = load_series(con, "category", "W")
    assert (weekly["ds"].dt.dayofweek == 0).all()
    last_week = weekly["ds"].max()
    assert last_week.date() == END - timedelta(days=END.weekday() + 7)  # the week in progress is left out
    in_weeks = daily[daily["ds"] < last_week + pd.Timedelta(days=7)]
    expected = in_weeks.groupby(["unique_id", in_weeks["ds"].dt.to_period("W-SUN").dt.start_time])["y"].sum()
    np.testing.assert_allclose(weekly.set_index(["unique_id", "ds"])["y"], expected, rtol=1e-9)


def test_asking_for_some_series_reads_the_same_values(con: duckdb.DuckDBPyConnection):
    full = load_series(con, "product_region", "D")
    start = END - timedelta(days=90)
    newest = full.groupby("unique_id")["ds"].min().idxmax()  # a series that started late
    wanted = [*SERIES, newest]
    some = load_series(con, "product_region", "D", start=start, series_ids=wanted)
    expected = full[full["unique_id"].isin(wanted) & (full["ds"] >= pd.Timestamp(start))]
    pd.testing.assert_frame_equal(some.reset_index(drop=True), expected.reset_index(drop=True))
    assert load_series(con, "product_region", "D", series_ids=["P-99999|West"]).empty


def test_series_ids_are_key_values_joined_by_a_bar():
    assert series_id("product_region", product_id="P-00012", region="West") == "P-00012|West"
    assert series_id("total") == "total"
    assert parse_series_id("category_region", "Technology|West") == {
        "category": "Technology",
        "region": "West",
    }
    for level, bad in [
        ("product_region", "P-00012"),
        ("region", "West|East"),
        ("total", "all"),
        ("nope", "x"),
    ]:
        with pytest.raises(ValueError):
            parse_series_id(level, bad)


def test_features_of_a_period_use_only_the_history_before_it(con: duckdb.DuckDBPyConnection):
    panel = Panel.from_frame(load_series(con, "product_region", "D"), "D")
    features = SeriesFeatures.default("D", ["category", "region"]).fitted(panel)
    t = len(panel.dates) - 10
    before, scale = features.matrix_and_scale(panel, np.array([t]))
    panel.y[:, t:] = 1e6  # rewrite the period and everything after it
    after, scale_after = features.matrix_and_scale(panel, np.array([t]))
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(scale, scale_after)
    # Level features are in units of the series' mean over the last 28 days (what the boosters learn).
    lag1 = features.names.index("lag1")
    np.testing.assert_allclose(before[:, lag1] * scale, panel.y[:, t - 1])
    recent = panel.y[:, t - 28 : t]
    observed = np.nanmean(np.where(np.isnan(recent), np.nan, recent), axis=1)
    np.testing.assert_allclose(scale[observed > 0], observed[observed > 0])


# ------------------------------------------------------------------------------------------ the pipeline


@pytest.mark.slow
def test_pipeline_logs_metrics_table_plots_and_registers_the_champion(first_run: ForecasterResult):
    client = MlflowClient()
    run_data = client.get_run(first_run.run_id).data
    methods = {
        "lightgbm",
        "lightgbm_median",
        "combination",
        "seasonal_naive",
        "autoets",
        "seasonal_naive_cal",
    }
    for method in methods:
        for metric in ("wape", "mase", "bias", "coverage_80"):
            assert np.isfinite(run_data.metrics[f"{metric}_D_{method}"])
        assert np.isfinite(run_data.metrics[f"wape_W_{method}"]) and np.isfinite(
            run_data.metrics[f"wape_M_{method}"]
        )
    for name in ("wape_D", "bias_D", "coverage_80_W", "coverage_95", "wape_margin_D_vs_seasonal_naive"):
        assert name in run_data.metrics
    assert run_data.params["method"] == first_run.method
    assert run_data.params["level"] == "product_region" and run_data.params["horizon"] == "28"
    artifacts = _artifact_paths(client, first_run.run_id)
    assert {"backtest/metrics.csv", "backtest/metrics.json", "plots/forecast_vs_actual.png"} <= artifacts
    assert {"plots/feature_importance.png", "plots/backtest_metrics.png", "events/lifts.csv"} <= artifacts
    table = pd.read_csv(client.download_artifacts(first_run.run_id, "backtest/metrics.csv"))
    assert methods <= set(table["method"]) and set(table["freq"]) == {"D", "W", "M"}
    assert len(table) == table["method"].nunique() * 3 * 4  # three windows and overall, per frequency
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == first_run.version == "1"
    assert first_run.decision.promoted and run_data.tags["gate.decision"] == "promoted"
    model = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    assert model.signature is not None and model.saved_input_example_info is not None
    summary = first_run.describe()
    assert "seasonal_naive" in summary and "autoets" in summary and "first champion" in summary
    assert first_run.decision.baselines.keys() == {"seasonal_naive", "autoets"}


@pytest.mark.slow
def test_champion_beats_the_baselines_and_its_intervals_cover(first_run: ForecasterResult):
    m = first_run.metrics
    for freq in ("D", "W"):
        assert m[f"wape_{freq}"] <= min(m[f"wape_{freq}_seasonal_naive"], m[f"wape_{freq}_autoets"]) + 1e-9
        assert 0.70 <= m[f"coverage_80_{freq}"] <= 0.90
    assert 0.88 <= m["coverage_95"] <= 0.99
    assert abs(m["bias_D"]) < 0.10  # the headline is the mean: the figure that adds up


@pytest.mark.slow
def test_forecast_continues_the_history_with_nested_intervals(
    champion: Forecaster, con: duckdb.DuckDBPyConnection
):
    history = recent(con, champion, SERIES)
    assert len(history) == len(SERIES) * champion.history_periods
    forecast = champion.forecast(history, h=28, levels=(80, 95))
    assert list(forecast.columns) == [
        "unique_id",
        "ds",
        "forecast",
        "mean",
        "median",
        "lo-95",
        "lo-80",
        "hi-80",
        "hi-95",
    ]
    assert forecast.groupby("unique_id").size().to_dict() == dict.fromkeys(SERIES, 28)
    for _, rows in forecast.groupby("unique_id"):
        expected = pd.date_range(pd.Timestamp(END) + pd.Timedelta(days=1), periods=28, freq="D")
        assert list(rows["ds"]) == list(expected)
    ordered = forecast[["lo-95", "lo-80", "forecast", "hi-80", "hi-95"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all() and (ordered[:, 0] >= 0).all()
    assert (forecast["median"] >= 0).all() and forecast["hi-95"].gt(forecast["lo-95"]).any()
    assert (forecast["mean"] == forecast["forecast"]).all()
    # Only the last history_periods matter: the whole history gives the same forecast.
    everything = load_series(con, "product_region", "D", series_ids=SERIES, with_discount=False)
    pd.testing.assert_frame_equal(champion.forecast(everything, 28), forecast)
    # A history without its zero days (but its first and last) and without the static features is
    # completed: zeros from the series loader's definition, statics from the model.
    ends = history["ds"].isin([history["ds"].min(), history["ds"].max()])
    sparse = history[(history["y"] > 0) | ends].drop(columns=["category", "region"])
    assert len(sparse) < len(history)
    pd.testing.assert_frame_equal(champion.forecast(sparse, 28), forecast)


@pytest.mark.slow
def test_new_sales_and_planned_promotions_move_the_forecast(
    champion: Forecaster, con: duckdb.DuckDBPyConnection
):
    history = recent(con, champion, SERIES[:1])
    base = champion.forecast(history, 7)
    boosted = history.copy()
    boosted.loc[boosted.index[-3:], "y"] += 5_000  # a big order in the last three days
    assert champion.forecast(boosted, 7)["mean"].sum() > base["mean"].sum()
    plan = pd.DataFrame({"unique_id": SERIES[0], "ds": base["ds"], "discount": 0.3})
    assert champion.forecast(history, 7, discounts=plan)["mean"].sum() > base["mean"].sum()
    with pytest.raises(KeyError, match="P-99999"):
        recent(con, champion, ["P-99999|West"])


@pytest.mark.slow
def test_a_planned_promotion_lifts_the_forecast_of_its_product(
    champion: Forecaster, con: duckdb.DuckDBPyConnection
):
    # The generator's products answer a price cut with elasticities of 1.2 to 2.8: a 20% cut in week 3
    # lifts the forecast of those days, and only of those days.
    busiest = load_series(con, "product_region", "D", start=END - timedelta(days=90), with_discount=False)
    series = busiest.groupby("unique_id")["y"].sum().idxmax()
    product = parse_series_id("product_region", series)["product_id"]
    history = recent(con, champion, [series])
    base = champion.forecast(history, 28, levels=())
    week3 = (END + timedelta(days=15), END + timedelta(days=21))
    plan = [PlannedPromotion(discount=0.2, start=week3[0], end=week3[1], product_id=product)]
    promoted = champion.forecast(history, 28, levels=(), promotions=plan)
    in_week3 = base["ds"].between(pd.Timestamp(week3[0]), pd.Timestamp(week3[1])).to_numpy()
    assert champion.method in ("lightgbm", "combination")
    # The generator's elasticities would lift the week by 24-56%; the boosters learn only part of that (about
    # +6% measured on this sample: the open gap of issue 11), so the test asks for a clear lift, not its size.
    assert promoted["forecast"][in_week3].sum() > 1.03 * base["forecast"][in_week3].sum()
    assert promoted["forecast"][~in_week3].sum() == pytest.approx(base["forecast"][~in_week3].sum(), rel=0.05)
    other = [PlannedPromotion(discount=0.2, start=week3[0], end=week3[1], product_id="P-99999")]
    pd.testing.assert_frame_equal(champion.forecast(history, 28, levels=(), promotions=other), base)


@pytest.mark.slow
def test_gate_keeps_the_champion_against_a_worse_challenger(first_run: ForecasterResult, warehouse: Path):
    # No lags, no windows: the calendar, the discount and the statics only.
    crippled = SeriesFeatures(freq="D", lags=(), windows=(), season=7, seasonal_means=(), activity_window=28)
    worse = run(progress=False, warehouse=warehouse, config=TrainConfig(num_boost_round=5, features=crippled))
    client = MlflowClient()
    assert not worse.decision.promoted and worse.version == "2"
    assert worse.decision.champion_score < worse.decision.challenger_score
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == first_run.version
    logged = client.get_run(worse.run_id).data
    assert logged.tags["gate.decision"] == "rejected"
    assert logged.metrics["gate_challenger_wape"] == pytest.approx(worse.wape)
    assert logged.metrics["gate_champion_wape"] == pytest.approx(worse.decision.champion_score)
    assert client.get_model_version(MODEL, worse.version).tags["gate.decision"] == "rejected"
    assert "kept as challenger" in worse.describe()


LOAD_CHAMPION = WITHOUT_TRAINING + textwrap.dedent(
    """
    model = mlflow.pyfunc.load_model("models:/sales-forecaster@champion")
    history = pd.read_json(sys.argv[1], orient="split", convert_dates=["ds"])
    result = model.predict(history, params={"h": 14, "levels": [80.0, 95.0]})
    loaded_duckdb = "duckdb" in sys.modules
    loaded = training_modules_loaded()
    answer = {
        "result": result.to_json(orient="split", date_format="iso"),
        "training_modules": loaded,
        "duckdb": loaded_duckdb,
    }
    print(json.dumps(answer))
    """
)


@pytest.mark.slow
def test_champion_loads_and_forecasts_in_a_fresh_process_without_training(
    champion: Forecaster, con: duckdb.DuckDBPyConnection, warehouse: Path, tmp_path: Path
):
    env = dict(os.environ, SALESPULSE_WAREHOUSE_PATH=str(warehouse))
    history = recent(con, champion, SERIES)
    answer = run_without_training(
        LOAD_CHAMPION, history.to_json(orient="split", date_format="iso"), tmp_path, env
    )
    result = pd.read_json(io.StringIO(answer["result"]), orient="split", convert_dates=["ds"])
    expected = champion.forecast(history, h=14)
    assert len(result) == 2 * 14
    assert not answer["duckdb"]  # the model takes data, not connections
    np.testing.assert_allclose(result[expected.columns[2:]].to_numpy(), expected.iloc[:, 2:].to_numpy())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("level", "freq"), [("category", "D"), ("region", "D"), ("total", "W"), ("category_region", "W")]
)
def test_other_levels_and_weekly_train_and_register_on_their_own(
    first_run: ForecasterResult, warehouse: Path, con: duckdb.DuckDBPyConnection, level: str, freq: str
):
    result = run(level=level, freq=freq, progress=False, warehouse=warehouse)
    name = registered_model_name(level, freq)
    assert result.model_name == name != MODEL and result.decision.promoted
    assert result.horizon == (8 if freq == "W" else 28)
    assert result.metrics["wape_model"] <= result.metrics[f"wape_{freq}_seasonal_naive"]
    forecaster = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().forecaster
    history = load_series(con, level, freq, with_discount=False)
    ids = history["unique_id"].unique()
    forecast = forecaster.forecast(history)
    assert (
        forecast.groupby("unique_id").size().eq(result.horizon).all()
        and len(ids) == forecast["unique_id"].nunique()
    )
    assert str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == first_run.version


@pytest.mark.slow
def test_pipeline_logs_and_registers_on_a_real_mlflow_server(
    mlflow_server: str,  # noqa: F811  (the fixture imported above)
    warehouse: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    local = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    get_settings.cache_clear()
    try:
        result = run(level="category", freq="D", progress=False, warehouse=warehouse)
        name = registered_model_name("category", "D")
        client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
        assert str(client.get_model_version_by_alias(name, "champion").version) == result.version
        assert {"backtest/metrics.csv", "plots/forecast_vs_actual.png"} <= _artifact_paths(
            client, result.run_id
        )
        forecaster = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().forecaster
        assert forecaster.level == "category" and set(forecaster.calibrations) == {"D", "W", "M"}
    finally:  # the pipeline pointed MLflow at the server; the module's other tests use the local store
        mlflow.set_tracking_uri(local[0])
        mlflow.set_registry_uri(local[1])


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found
