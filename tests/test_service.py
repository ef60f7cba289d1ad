"""Integration tests against a real `bentoml serve` process on loopback, with champions trained for real."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from service_support import (
    API_KEY,
    RunningService,
    run_python,
    serve_with_fresh_models,
    start_service,
)

from salespulse.analytics.reports.customers import MODEL_METHOD
from salespulse.modeling.registry import served_model_names

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("service"))


def post(service: RunningService, path: str, body: object, **headers: str):
    with service.client() as client:
        return client.post(path, json=body, headers=headers)


def get(service: RunningService, path: str, **headers: str):
    with service.client() as client:
        return client.get(path, headers=headers)


# ------------------------------------------------------------------------------------------- health, models


def test_health_says_models_and_warehouse_are_loaded(service):
    health = get(service, "/health").json()
    assert health["status"] == "ready"
    assert health["warehouse"]["loaded"] is True
    assert health["warehouse"]["order_lines"] > 100_000
    assert set(health["models"]) == set(served_model_names())
    assert get(service, "/readyz").status_code == 200
    assert get(service, "/livez").status_code == 200


def test_models_endpoint_describes_the_champions(service):
    models = {m["name"]: m for m in get(service, "/models").json()["models"]}
    forecaster, segmenter = models["sales-forecaster"], models["customer-segmenter"]
    assert forecaster["alias"] == segmenter["alias"] == "champion"
    assert forecaster["version"] == segmenter["version"] == "1"
    assert date.fromisoformat(forecaster["trained_at"][:10])
    assert any(key.startswith("wape") for key in forecaster["metrics"])
    assert "silhouette" in segmenter["metrics"]


def test_prometheus_metrics_and_openapi_with_examples(service):
    metrics = get(service, "/metrics").text
    assert "bentoml_service_request_total" in metrics or "bentoml_api_server_request_total" in metrics
    spec = get(service, "/docs.json").json()
    paths = spec["paths"]
    for path in ("/forecast", "/segment", "/models", "/segments", "/customers/{customer_id}", "/health"):
        assert path in paths, f"{path} missing from OpenAPI"
    assert "example" in str(paths["/segment"]) or "examples" in str(paths["/segment"])
    assert get(service, "/").status_code == 200  # Swagger UI


# ------------------------------------------------------------------------------------------- segments


def test_segment_by_ids_matches_the_customer_profile(service):
    customers = ["C-0000001", "C-0000002", "C-0000003"]
    known = [c for c in customers if get(service, f"/customers/{c}").status_code == 200]
    assert known, "the sample warehouse should know some of the first customers"
    answer = post(service, "/segment", {"customer_ids": known}).json()
    assert answer["model_version"] == "1"
    assert [c["customer_id"] for c in answer["customers"]] == known
    for row in answer["customers"]:
        profile = get(service, f"/customers/{row['customer_id']}").json()
        assert profile["segment"]["name"] == row["segment"]
        assert profile["lifetime_revenue"] == pytest.approx(profile["features"]["monetary"])
        assert row["action"] and row["distance"] >= 0


def test_customer_predictions_by_ids_match_the_profile_and_raw_summaries(service):
    known = [
        c
        for c in ("C-0000001", "C-0000002", "C-0000003")
        if get(service, f"/customers/{c}").status_code == 200
    ]
    answer = post(service, "/predict/customers", {"customer_ids": known, "horizon_days": 90})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [c["customer_id"] for c in body["customers"]] == known and body["horizon_days"] == 90
    for row in body["customers"]:
        assert 0 <= row["probability_alive"] <= 1
        assert row["expected_spend"] == pytest.approx(
            row["expected_purchases"] * row["expected_purchase_value"]
        )
        assert row["lifetime_value"] >= row["expected_spend"] >= 0
        profile = get(service, f"/customers/{row['customer_id']}").json()
        assert profile["prediction"]["probability_alive"] == pytest.approx(row["probability_alive"])
    # A loyal, recent customer is more likely alive than one gone quiet long ago (whole numbers accepted).
    recent = {"frequency": 12, "recency": 400, "T": 410, "monetary_value": 500}
    quiet = {"frequency": 12, "recency": 60, "T": 410, "monetary_value": 500}
    summaries = post(service, "/predict/customers", {"customers": [recent, quiet]}).json()["customers"]
    assert summaries[0]["probability_alive"] > summaries[1]["probability_alive"]
    unknown = post(service, "/predict/customers", {"customer_ids": ["NOPE-1"]})
    assert unknown.status_code == 404 and unknown.json()["detail"][0]["field"] == "customer_ids"


def test_segment_by_raw_features_puts_a_big_recent_buyer_among_champions(service):
    champion = {
        "recency_days": 1,
        "frequency": 90,
        "monetary": 90_000,
        "tenure_days": 900,
        "avg_order_value": 1_000,
    }
    lapsed = {
        "recency_days": 480,
        "frequency": 2,
        "monetary": 300,
        "tenure_days": 500,
        "avg_order_value": 150,
    }
    answer = post(service, "/segment", {"customers": [champion | {"customer_id": "x"}, lapsed]}).json()
    first, second = answer["customers"]
    assert first["customer_id"] == "x" and first["segment"] == "VIP Regulars"
    assert second["customer_id"] is None and second["segment"] != "VIP Regulars"


def test_segment_batch_of_10000(service):
    row = {"recency_days": 30, "frequency": 5, "monetary": 2_000, "tenure_days": 200, "avg_order_value": 400}
    answer = post(service, "/segment", {"customers": [row] * 10_000})
    assert answer.status_code == 200
    assert len(answer.json()["customers"]) == 10_000


def test_customer_reports_predict_with_the_customer_value_champion(service):
    for report in ("customer-lifetime-value", "churn-risk"):
        answer = get(service, f"/analytics/reports/{report}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["summary"]["method"] == MODEL_METHOD, report


def test_segment_profiles(service):
    segments = get(service, "/segments").json()["segments"]
    names = [s["segment"] for s in segments]
    assert "VIP Regulars" in names
    assert all(s["customers"] > 0 for s in segments)


# ------------------------------------------------------------------------------------------- forecasts


def test_forecast_one_series_with_intervals(service):
    answer = post(service, "/forecast", {"level": "category", "series": ["Technology"], "horizon": 28})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (series,) = body["series"]
    assert series["series"] == "Technology"
    points = series["points"]
    assert len(points) == 28
    dates = [date.fromisoformat(p["date"]) for p in points]
    assert dates == sorted(dates) and len(set(dates)) == 28
    for p in points:
        assert p["lo_95"] <= p["lo_80"] <= p["forecast"] <= p["hi_80"] <= p["hi_95"]
        assert all(math.isfinite(v) for k, v in p.items() if k != "date")


def test_forecast_many_series_at_the_model_level(service):
    level = post(service, "/forecast", {"level": "region", "series": ["West", "East"], "horizon": 7})
    assert level.status_code == 200, level.text
    assert [s["series"] for s in level.json()["series"]] == ["West", "East"]


def test_forecast_moves_with_sales_ingested_a_minute_ago(service):
    request = {"level": "total", "series": ["total"], "horizon": 7}
    before = post(service, "/forecast", request).json()["series"][0]["points"]
    last_day = date.fromisoformat(get(service, "/health").json()["warehouse"]["last_sale"][:10])
    lines = [
        {"order_id": f"BIG-{i}", "line": 1, "ordered_at": f"{last_day}T12:00:00", "customer_id": "C-0000001",
         "product_id": "P-00001", "channel": "direct", "quantity": 50, "unit_price": 2_000.0, "discount": 0.0}
        for i in range(40)
    ]  # fmt: skip
    ingest = post(service, "/analytics/sales", {"lines": lines}, **{"x-api-key": API_KEY})
    assert ingest.status_code == 200, ingest.text
    after = post(service, "/forecast", request).json()["series"][0]["points"]
    assert after[0]["forecast"] != before[0]["forecast"]


def _forecasts(service, level: str, freq: str, horizon: int) -> dict[str, list[float]]:
    members = ["total"]
    if level != "total":  # every member with sales, as the warehouse has them
        rows = post(service, "/analytics/query", {"measures": ["revenue"], "dimensions": [level]}).json()
        members = [row[level] for row in rows["rows"]]
    answer = post(service, "/forecast", {"level": level, "series": members, "freq": freq, "horizon": horizon})
    assert answer.status_code == 200, answer.text
    return {s["series"]: [p["forecast"] for p in s["points"]] for s in answer.json()["series"]}


@pytest.mark.parametrize(("freq", "horizon"), [("D", 28), ("W", 6), ("M", 3)])
def test_category_and_region_forecasts_add_up_to_the_total_every_period(service, freq, horizon):
    total = np.array(_forecasts(service, "total", freq, horizon)["total"])
    for level in ("category", "region"):
        parts = np.array(list(_forecasts(service, level, freq, horizon).values())).sum(axis=0)
        # Each level has its own champion; reconciled, they add up: within 0.1% every period.
        np.testing.assert_allclose(parts, total, rtol=1e-3)
    assert (total >= 0).all() and (total > 0).mean() > 0.5  # the sample closes on some days


# ------------------------------------------------------------------------------------------- bad input


FEATURES = {"recency_days": 1, "frequency": 1, "monetary": 1, "tenure_days": 1, "avg_order_value": 1}
TECH = {"level": "category", "series": ["Technology"]}


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "words"),
    [
        ("/segment", {"customer_ids": []}, 422, "customer_ids", "at least 1"),
        ("/segment", {"customers": []}, 422, "customers", "at least 1"),
        ("/segment", {}, 422, "body", "exactly one"),
        ("/segment", {"customer_ids": ["C-0000001"], "customers": []}, 422, "customers", "at least 1"),
        ("/segment", {"customer_ids": ["NOPE-1"]}, 404, "customer_ids", "NOPE-1"),
        ("/segment", {"customers": [{"recency_days": "x"}]}, 422, "customers[0].recency_days", "number"),
        ("/segment", {"customers": [FEATURES | {"recency_days": -1}]}, 422, "customers[0].recency_days", "0"),
        ("/segment", {"customers": [FEATURES | {"colour": "red"}]}, 422, "customers[0].colour", "permitted"),
        ("/forecast", TECH | {"horizon": 0}, 422, "horizon", "1"),
        ("/forecast", TECH | {"horizon": 100000}, 422, "horizon", "less"),
        ("/forecast", {"level": "category", "series": []}, 422, "series", "at least 1"),
        ("/forecast", {"level": "galaxy", "series": ["x"]}, 422, "level", "category"),
        ("/forecast", {"level": "category", "series": ["Spaceships"]}, 404, "series", "Spaceships"),
        ("/forecast", TECH | {"intervals": [120]}, 422, "intervals[0]", "less than 100"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_4xx_naming_the_field(service, path, body, status, field, words):
    answer = post(service, path, body)
    assert answer.status_code == status, answer.text
    assert_error_shape(answer.json(), field, words)


def assert_error_shape(body: dict, field: str, words: str) -> None:
    """The service's one error shape: {"error": title, "detail": [{"field", "message"}, ...]}."""
    assert isinstance(body["error"], str) and body["detail"], body
    assert all(set(problem) == {"field", "message"} for problem in body["detail"]), body
    assert any(p["field"] == field and words.lower() in p["message"].lower() for p in body["detail"]), body


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(service, literal):
    body = (
        '{"customers": [{"recency_days": ' + literal + ', "frequency": 1, "monetary": 1, "tenure_days": 1, '
        '"avg_order_value": 1}]}'
    )
    with service.client() as client:
        answer = client.post("/segment", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert "recency_days" in answer.text


def test_malformed_json_and_oversize_body(service):
    with service.client() as client:
        broken = client.post("/segment", content="{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 422
        huge = client.post("/segment", content=b"x" * 9_000_000, headers={"content-type": "application/json"})
        assert huge.status_code == 413
        assert_error_shape(huge.json(), "body", "larger than")
        assert broken.status_code == 422
        assert_error_shape(broken.json(), "body", "json")


def test_unknown_customer_profile_is_404(service):
    answer = get(service, "/customers/NOPE-42")
    assert answer.status_code == 404
    assert_error_shape(answer.json(), "customer_id", "NOPE-42")


# ------------------------------------------------------------------------------------------- admin


def test_admin_reload_needs_the_key(service):
    missing = post(service, "/admin/reload", {})
    assert missing.status_code == 401
    assert_error_shape(missing.json(), "x-api-key", "missing api key")
    wrong = post(service, "/admin/reload", {}, **{"x-api-key": "wrong"})
    assert wrong.status_code == 403
    assert_error_shape(wrong.json(), "x-api-key", "invalid api key")
    answer = post(service, "/admin/reload", {}, **{"x-api-key": API_KEY})
    assert answer.status_code == 200
    assert {m["changed"] for m in answer.json()["models"]} == {"no"}


def test_admin_reload_without_a_champion_is_a_503_naming_the_model(service):
    """A new cluster's registry has no champion yet: the operator gets one line, not a 500."""
    from mlflow import MlflowClient

    # Both URIs: this process may have set a global registry URI (another module's store) earlier.
    store = service.env["SALESPULSE_MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    name, alias = "customer-segmenter", "champion"
    version = client.get_model_version_by_alias(name, alias).version
    client.delete_registered_model_alias(name, alias)
    try:
        answer = post(service, "/admin/reload", {}, **{"x-api-key": API_KEY})
    finally:
        client.set_registered_model_alias(name, alias, version)
    assert answer.status_code == 503
    assert f"no champion of {name}" in answer.json()["detail"][0]["message"]
    assert post(service, "/admin/reload", {}, **{"x-api-key": API_KEY}).status_code == 200


def test_keyed_read_access(service, tmp_path: Path):
    # DuckDB lets one process open a warehouse file, so the second service gets a small warehouse of its own.
    env = {**service.env, "SALESPULSE_WAREHOUSE_PATH": str(tmp_path / "keyed.duckdb")}
    run_python(
        "from salespulse.dataset.generate import GeneratorConfig, generate_warehouse; "
        "generate_warehouse(GeneratorConfig(customers=200, rows=3_000, days=60))",
        env,
    )
    keyed = start_service(env, tmp_path / "keyed.log", extra_env={"SALESPULSE_READ_ACCESS": "keyed"})
    try:
        for path in ("/models", "/segments", "/analytics/reports", "/analytics/meta",
                     "/analytics/reports/kpi-total-revenue"):  # fmt: skip
            assert get(keyed, path).status_code == 401, path
            assert get(keyed, path, **{"x-api-key": API_KEY}).status_code == 200, path
        # The key is checked before the body is validated: a wrong-shaped body without a key is a 401.
        assert post(keyed, "/analytics/query", {"measures": "not a list"}).status_code == 401
        row = {"recency_days": 1, "frequency": 2, "monetary": 3, "tenure_days": 4, "avg_order_value": 1.5}
        refused = post(keyed, "/segment", {"customers": [row]})
        assert refused.status_code == 401
        assert_error_shape(refused.json(), "x-api-key", "api key")
        assert post(keyed, "/segment", {"customers": [row]}, **{"x-api-key": API_KEY}).status_code == 200
    finally:
        keyed.stop()


def test_two_workers_stay_up_and_share_the_prediction_load(service, tmp_path: Path):
    """SALESPULSE_SERVICE_WORKERS=2: the first worker owns the warehouse, the second serves what needs none
    (segments from raw features); neither crashes on the warehouse's lock."""
    snapshot = tmp_path / "two-workers.duckdb"
    taken = post(service, "/admin/snapshot", {"path": str(snapshot)}, **{"x-api-key": API_KEY})
    assert taken.status_code == 200, taken.text
    env = {**service.env, "SALESPULSE_WAREHOUSE_PATH": str(snapshot)}
    two = start_service(env, tmp_path / "two.log", extra_env={"SALESPULSE_SERVICE_WORKERS": "2"})
    try:
        row = {"recency_days": 5, "frequency": 12, "monetary": 600, "tenure_days": 400, "avg_order_value": 50}
        with two.client() as client:
            answers = [client.post("/segment", json={"customers": [row]}).status_code for _ in range(40)]
        assert answers == [200] * 40
        time.sleep(5)  # a worker that crashes on start-up is restarted by the supervisor: give it time to
        log = (tmp_path / "two.log").read_text()
        assert "WarehouseLocked" not in log and "startup failed" not in log.lower(), log[-3000:]
        assert log.count("Service salespulse initialized") == 2, log[-3000:]
    finally:
        two.stop()
