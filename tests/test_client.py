"""salespulse.client (blocking and async) and the `salespulse predict` commands against a real service:
`bentoml serve` on loopback with champions trained on a small generated sample."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import get_args

import httpx
import pytest
from service_support import API_KEY, REPO_ROOT, VENV_BIN, RunningService, free_port, serve_with_fresh_models

from salespulse.analytics.ingest import SalesBatch
from salespulse.analytics.query import Query
from salespulse.client import (
    AsyncSalesPulseClient,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    SalesPulseClient,
    ServerError,
    ServiceUnreachableError,
    error_from_response,
)
from salespulse.features.series import Level
from salespulse.schemas import CustomerFeatures, ForecastResponse, QueryResult

pytestmark = pytest.mark.slow

# The README's example customer, as whole numbers (int64 in a DataFrame, JSON integers on the wire).
WHOLE_NUMBERS = {
    "recency_days": 12,
    "frequency": 9,
    "monetary": 5120,
    "tenure_days": 640,
    "avg_order_value": 568,
}
SAMPLE_CUSTOMERS = [f"C-{n:07d}" for n in range(1, 13)]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("client"))


@pytest.fixture
def client(service: RunningService) -> Iterator[SalesPulseClient]:
    with SalesPulseClient(service.url, api_key=API_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def known_customers(service: RunningService) -> list[str]:
    """Sample customer ids the warehouse knows (the generator does not give every id a sale)."""
    with SalesPulseClient(service.url) as client:
        known = [c for c in SAMPLE_CUSTOMERS if _is_known(client, c)]
    assert len(known) >= 3
    return known[:3]


def _is_known(client: SalesPulseClient, customer_id: str) -> bool:
    try:
        client.customer(customer_id)
    except NotFoundError:
        return False
    return True


def sale(order_id: str, customer_id: str) -> dict[str, object]:
    return {
        "order_id": order_id,
        "line": 1,
        "ordered_at": "2026-06-30T11:00:00",
        "customer_id": customer_id,
        "product_id": "P-00010",
        "quantity": 2,
        "unit_price": 50,
        "discount": 0.1,
    }


def revenue_of(customer_id: str) -> Query:
    return Query(
        measures=["revenue", "orders"],
        filters=[{"member": "customer", "operator": "equals", "values": [customer_id]}],
    )


def orders(result: QueryResult) -> int:
    """Orders in a totals query (no rows, or a null count, when nothing matched)."""
    return (result.rows[0]["orders"] or 0) if result.rows else 0


def assert_forecast(answer: ForecastResponse, series: list[str], horizon: int) -> None:
    assert [s.series for s in answer.series] == series
    for entry in answer.series:
        assert len(entry.points) == horizon
        for point in entry.points:
            assert point.lo_80 <= point.forecast <= point.hi_80


# ------------------------------------------------------------------------------------ the blocking client


def test_forecast_has_horizon_points_inside_their_intervals(client: SalesPulseClient):
    answer = client.forecast(["Technology", "Furniture"], level="category", horizon=7, intervals=[80, 95])
    assert_forecast(answer, ["Technology", "Furniture"], 7)
    assert answer.level == "category" and answer.model_version == "1"
    first = answer.series[0].points[0]
    assert first.lo_95 <= first.lo_80 and first.hi_80 <= first.hi_95
    assert first.date > answer.history_until


def test_forecast_by_week_with_a_planned_promotion(client: SalesPulseClient):
    weekly = client.forecast("Technology", level="category", horizon=4, freq="W")
    assert weekly.freq == "W" and len(weekly.series[0].points) == 4
    assert all(p.date.weekday() == 0 for p in weekly.series[0].points)  # weeks start on Monday
    start = weekly.series[0].points[1].date
    promotion = {"category": "Technology", "discount": 0.3, "start": start, "end": start + timedelta(days=6)}
    promoted = client.forecast("Technology", level="category", horizon=4, freq="W", promotions=[promotion])
    before = [p.forecast for p in weekly.series[0].points]
    after = [p.forecast for p in promoted.series[0].points]
    assert after[1] > before[1]  # the promoted week sells more


def test_segment_by_ids_agrees_with_each_customer_profile(client: SalesPulseClient, known_customers):
    answer = client.segment(customer_ids=known_customers)
    assert [c.customer_id for c in answer.customers] == known_customers
    for segmented in answer.customers:
        profile = client.customer(segmented.customer_id)
        assert profile["segment"]["name"] == segmented.segment
        assert profile["segment"]["distance"] == pytest.approx(segmented.distance)
    names = {s["segment"] for s in client.segments()["segments"]}
    assert {c.segment for c in answer.customers} <= names


def test_segment_by_whole_number_features(client: SalesPulseClient):
    as_dict = client.segment(customers=[WHOLE_NUMBERS]).customers[0]
    as_model = client.segment(customers=[CustomerFeatures(customer_id="crm-1", **WHOLE_NUMBERS)]).customers[0]
    as_floats = client.segment(customers=[{k: float(v) for k, v in WHOLE_NUMBERS.items()}]).customers[0]
    assert as_dict.segment == as_model.segment == as_floats.segment
    assert as_dict.distance == pytest.approx(as_floats.distance)
    assert as_model.customer_id == "crm-1" and as_dict.customer_id is None


def test_health_models_and_reports(client: SalesPulseClient):
    assert client.health()["status"] == "ready"
    assert {m["alias"] for m in client.models()} == {"champion"}
    assert "sales-by-category-monthly" in {r["name"] for r in client.reports()}
    result = client.report("sales-by-category-monthly", region=["West"], start=date(2026, 1, 1))
    assert result.report == "sales-by-category-monthly"
    assert result.params["region"] == ["West"] and result.params["start"] == "2026-01-01"
    assert result.rows and {"category", "revenue"} <= {c.name for c in result.columns}


def test_ingest_with_the_key_then_the_sale_is_in_the_next_query_and_profile(client: SalesPulseClient):
    unknown = client.query(revenue_of("C-CLIENT-01"))  # a customer the data doesn't have yet: nothing sold
    assert [row["orders"] for row in unknown.rows] == [0]
    assert any(note.startswith("filters[0].values: no customer 'C-CLIENT-01'") for note in unknown.notes)
    result = client.ingest([sale("CLIENT-1", "C-CLIENT-01")])
    assert (result.lines, result.inserted, result.unchanged) == (1, 1, 0)
    row = client.query(revenue_of("C-CLIENT-01").model_dump(mode="json")).rows[0]  # a dict query works too
    assert row["revenue"] == pytest.approx(2 * 50 * 0.9) and row["orders"] == 1
    assert client.customer("C-CLIENT-01")["lifetime_revenue"] == pytest.approx(90)
    assert client.ingest([sale("CLIENT-1", "C-CLIENT-01")]).unchanged == 1  # idempotent: safe to retry


def test_unknown_ids_raise_not_found_naming_the_field(client: SalesPulseClient):
    with pytest.raises(NotFoundError) as unknown_customer:
        client.customer("C-no-such-customer")
    assert unknown_customer.value.status == 404 and unknown_customer.value.fields == ["customer_id"]
    assert "customer_id: unknown customer id 'C-no-such-customer'" in str(unknown_customer.value)
    with pytest.raises(NotFoundError) as unknown_series:
        client.forecast(["Spaceships"], level="category")
    assert unknown_series.value.fields == ["series"] and "Spaceships" in str(unknown_series.value)
    with pytest.raises(InvalidRequestError) as invalid:
        client.segment(customers=[{**WHOLE_NUMBERS, "recency_days": -1}])
    assert invalid.value.fields == ["customers[0].recency_days"]


def test_a_wrong_key_raises_authentication_error(service: RunningService):
    with SalesPulseClient(service.url, api_key="wrong-key") as client:
        with pytest.raises(AuthenticationError) as refused:
            client.ingest([sale("CLIENT-2", "C-CLIENT-02")])
        assert refused.value.status == 403 and refused.value.fields == ["x-api-key"]
        assert client.health()["status"] == "ready"  # read endpoints are open


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return super().handle_request(request)


def test_a_closed_port_is_retried_with_backoff_then_reported():
    transport = CountingTransport()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    client = SalesPulseClient(url, retries=2, backoff=0.05, transport=transport)
    with client, pytest.raises(ServiceUnreachableError) as unreachable:
        client.health()
    elapsed = time.monotonic() - started
    assert transport.attempts == unreachable.value.attempts == 3  # the first attempt and 2 retries
    assert 0.05 + 0.1 <= elapsed < 2  # waited 0.05 s, then 0.1 s
    assert url in str(unreachable.value)


def test_gateway_errors_are_retried_and_client_errors_never():
    answers = iter([httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"status": "ready"})])
    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/health":
            return next(answers)
        return httpx.Response(
            422, json={"error": "invalid request", "detail": [{"field": "x", "message": "m"}]}
        )

    with SalesPulseClient("http://svc", backoff=0, transport=httpx.MockTransport(respond)) as client:
        assert client.health() == {"status": "ready"}
        with pytest.raises(InvalidRequestError):
            client.segment(customer_ids=["C-1"])
    assert seen == ["/health", "/health", "/health", "/segment"]
    always_busy = httpx.MockTransport(lambda request: httpx.Response(504, text="gateway timeout"))
    client = SalesPulseClient("http://svc", retries=1, backoff=0, transport=always_busy)
    with client, pytest.raises(ServerError, match="504 gateway timeout"):
        client.health()


# ------------------------------------------------------------------------------------ the async client


def test_async_client_answers_like_the_blocking_one(service: RunningService, known_customers):
    async def ask() -> tuple:
        async with AsyncSalesPulseClient(service.url, api_key=API_KEY) as client:
            answers = await asyncio.gather(
                client.forecast("Technology", level="category", horizon=5, intervals=[80]),
                client.segment(customer_ids=known_customers),
                client.segment(customers=[WHOLE_NUMBERS]),
                client.customer(known_customers[0]),
                client.report("sales-by-category-monthly", region=["West"]),
                client.models(),
            )
            batch = SalesBatch.model_validate({"lines": [sale("CLIENT-3", "C-CLIENT-03")]})
            ingested = await client.ingest(batch)
            queried = await client.query(revenue_of("C-CLIENT-03"))
            with pytest.raises(NotFoundError) as unknown:
                await client.customer("C-no-such-customer")
            return (*answers, ingested, queried, unknown.value)

    forecast, by_ids, by_features, profile, report, models, ingested, queried, unknown = asyncio.run(ask())
    assert_forecast(forecast, ["Technology"], 5)
    with SalesPulseClient(service.url) as blocking:
        assert by_ids == blocking.segment(customer_ids=known_customers)
        assert by_features == blocking.segment(customers=[WHOLE_NUMBERS])
    assert profile["segment"]["name"] == by_ids.customers[0].segment
    assert report.report == "sales-by-category-monthly" and models
    assert ingested.inserted == 1 and orders(queried) == 1
    assert unknown.fields == ["customer_id"]


def test_async_client_retries_a_closed_port_then_reports():
    async def ask() -> ServiceUnreachableError:
        url = f"http://127.0.0.1:{free_port()}"
        async with AsyncSalesPulseClient(url, retries=1, backoff=0.01) as client:
            with pytest.raises(ServiceUnreachableError) as unreachable:
                await client.health()
            return unreachable.value

    assert asyncio.run(ask()).attempts == 2


# ------------------------------------------------------------------------------------ models and README


def test_customer_features_take_whole_numbers():
    features = CustomerFeatures.model_validate_json(json.dumps(WHOLE_NUMBERS))
    assert features.frequency == 9.0 and isinstance(features.frequency, float)
    assert CustomerFeatures(**WHOLE_NUMBERS) == features


def readme_client_example() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### Python client") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]


def test_the_readme_example_runs_against_the_service(service: RunningService, tmp_path: Path):
    port = service.url.rsplit(":", 1)[1]
    env = {**service.env, "SALESPULSE_SERVICE_HOST": "127.0.0.1", "SALESPULSE_SERVICE_PORT": port}
    code = readme_client_example()
    assert len(code.strip().splitlines()) <= 6
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first_day, segment = done.stdout.strip().splitlines()
    assert first_day.startswith("date=datetime.date(") and "lo_80=" in first_day
    with SalesPulseClient(service.url) as client:
        assert segment == client.segment(customers=[WHOLE_NUMBERS]).customers[0].segment


# ------------------------------------------------------------------------------------ salespulse predict

PREDICT = [str(VENV_BIN / "salespulse"), "predict"]


def predict(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # room for every column of the table
    return subprocess.run(
        [*PREDICT, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_predict_forecast_prints_json_or_a_table(service: RunningService):
    done = predict("forecast", "Technology", "Furniture", "--level", "category", "--horizon", "3",
                   "--url", service.url, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_forecast(ForecastResponse.model_validate_json(done.stdout), ["Technology", "Furniture"], 3)
    table = predict("forecast", "West", "--level", "region", "--horizon", "2", "--url", service.url)
    assert table.returncode == 0, table.stderr
    assert "region forecast" in table.stdout and "West" in table.stdout and "hi_95" in table.stdout
    monthly = predict("forecast", "total", "--level", "total", "--freq", "M", "--horizon", "2",
                      "--promotion", "category=Technology,discount=0.2,start=2030-01-01,end=2030-01-07",
                      "--url", service.url, "--json")  # fmt: skip
    assert monthly.returncode == 0, monthly.stderr
    assert ForecastResponse.model_validate_json(monthly.stdout).freq == "M"
    wrong_level = predict("forecast", "West", "--level", "galaxy", "--url", service.url)
    assert wrong_level.returncode == 2 and "category_region" in wrong_level.stderr


def test_predict_segment_by_ids_and_by_whole_number_features(service: RunningService, known_customers):
    by_ids = predict("segment", *known_customers, "--url", service.url, "--json")
    assert by_ids.returncode == 0, by_ids.stderr
    assert [c["customer_id"] for c in json.loads(by_ids.stdout)["customers"]] == known_customers
    features = ",".join(f"{name}={value}" for name, value in WHOLE_NUMBERS.items())
    by_features = predict("segment", "--features", features, "--url", service.url)
    assert by_features.returncode == 0, by_features.stderr
    with SalesPulseClient(service.url) as client:
        expected = client.segment(customers=[WHOLE_NUMBERS]).customers[0].segment
    assert expected in by_features.stdout
    unknown = predict("segment", "C-no-such-customer", "--url", service.url)
    assert unknown.returncode == 1 and "customer_ids: unknown customer id" in unknown.stderr


def test_predict_says_when_the_service_is_not_running():
    url = f"http://127.0.0.1:{free_port()}"
    done = predict("forecast", "Technology", "--level", "category", "--url", url)
    assert done.returncode == 1
    assert done.stderr.strip() == f"cannot reach the salespulse service at {url}: is it running? (make run)"
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_predict_levels_are_the_service_levels():
    from cli.predict import LevelChoice

    assert get_args(LevelChoice) == get_args(Level)


@pytest.mark.parametrize(
    ("status", "family"),
    [(400, InvalidRequestError), (413, InvalidRequestError), (415, InvalidRequestError),
     (422, InvalidRequestError), (404, NotFoundError)],
)  # fmt: skip
def test_each_refusal_maps_to_its_error_family_with_the_services_problems(status: int, family: type):
    body = {"error": "refused", "detail": [{"field": "body", "message": "expected application/json"}]}
    request = httpx.Request("POST", "http://127.0.0.1:3000/forecast")
    error = error_from_response(httpx.Response(status, json=body, request=request))
    assert isinstance(error, family) and error.status == status
    assert error.detail[0].field == "body" and "application/json" in error.detail[0].message
