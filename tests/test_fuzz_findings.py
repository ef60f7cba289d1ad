"""What schemathesis found on the analytics API and the exports (issue 13), each fixed in the service: no
500 for any input, dates only as YYYY-MM-DD, a document that says what the service accepts (patterns,
enums, limits), and the hooks that keep the fuzzer's valid cases within the rules a document cannot state.

In process, over a small generated warehouse: the analytics app and the export routes with FastAPI's
TestClient (server errors come back as 500s, not exceptions).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis_hooks as hooks
from analytics_support import copy_warehouse, open_engine
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.ingest import SalesBatch
from salespulse.analytics.query import Query
from salespulse.analytics.reports import REGISTRY
from salespulse.analytics.reports.base import FILTER_PARAMS
from salespulse.analytics.reports.goals import GOAL_FILTERS
from salespulse.bounds import (
    SPACES,
    SaneDate,
    date_pattern,
    identifier,
    iso_datetime,
    plain_text,
    trimmed_text,
)
from salespulse.config import get_settings
from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from service.analytics_api import create_analytics_app
from service.errors import install_error_handlers
from service.exports import add_export_routes

KEY = "fuzz-key"
END = date(2025, 6, 30)
HEADERS = {"x-api-key": KEY}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "warehouse.duckdb"
    generate_warehouse(GeneratorConfig(customers=200, rows=5_000, days=120, end_date=END), path)
    open_engine(path)._con.close()  # the copies start with their rollups built
    return path


@pytest.fixture
def engine(source: Path, tmp_path: Path) -> Iterator[AnalyticsEngine]:
    engine = open_engine(copy_warehouse(source, tmp_path))
    yield engine
    engine._con.close()


@pytest.fixture
def client(engine: AnalyticsEngine, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("SALESPULSE_API_KEY", KEY)
    get_settings.cache_clear()
    return TestClient(create_analytics_app(engine), raise_server_exceptions=False, headers=HEADERS)


@pytest.fixture
def downloads(engine: AnalyticsEngine, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The export routes as the service mounts them: on a read app, answered by the analytics app."""
    monkeypatch.setenv("SALESPULSE_API_KEY", KEY)
    get_settings.cache_clear()
    app = FastAPI()
    install_error_handlers(app)
    add_export_routes(app, create_analytics_app(engine))
    return TestClient(app, raise_server_exceptions=False, headers=HEADERS)


def fields(response: Any) -> list[str]:
    return [problem["field"] for problem in response.json()["detail"]]


# --- server errors (ST101) ---


def test_insights_near_the_ends_of_the_calendar_are_422_naming_the_parameter(client: TestClient) -> None:
    """Found: period=week&as_of=0001-01-07 overflowed the date arithmetic (OverflowError, 500)."""
    for params, field in (
        ({"period": "week", "as_of": "0001-01-07"}, "as_of"),  # outside the supported dates
        ({"period": "week", "end": "9999-12-31"}, "end"),
        ({"period": "month", "as_of": "1900-01-20"}, "as_of"),  # the baseline would begin in 1899
        ({"start": "1900-01-01", "end": "2199-12-31"}, "start"),  # 300 years before 1900
    ):
        response = client.get("/insights", params=params)
        assert response.status_code == 422, (params, response.text)
        assert fields(response) == [field], response.text
    # The earliest window whose baseline fits is answered.
    assert client.get("/insights", params={"period": "week", "as_of": "1900-01-14"}).status_code == 200
    # A start after the data, without an end: a window with no sales yet, not an inverted one.
    later = client.get("/insights", params={"start": "2150-01-01"})
    assert later.status_code == 200 and later.json()["current_period"] == ["2150-01-01", "2150-01-01"]


def test_a_sales_line_without_an_address_is_no_server_error(
    client: TestClient, engine: AnalyticsEngine
) -> None:
    """Found: a line with ship_state null (and a customer with state null) reached state_code(None):
    AttributeError, 500. Absent parts are not checked; the bad fields are 422, named."""
    found = {
        "quantity": -1272,
        "unit_price": 5.07e16,
        "line": 6056,
        "customer_id": "C-1",
        "product_id": "P-1",
        "order_id": "NUL",
        "discount": None,
        "cost": None,
        "ship_state": None,
        "ship_zip": None,
        "ordered_at": "2025-06-30T10:00:00",
    }
    customers = [{"customer_id": "C-1", "state": None, "zip": None, "region": None}]
    response = client.post("/sales", json={"lines": [found], "customers": customers})
    assert response.status_code == 422, response.text
    assert set(fields(response)) == {"lines[0].quantity", "lines[0].unit_price", "lines[0].discount"}
    good = {**found, "quantity": 2, "unit_price": 5.0, "discount": 0.0}
    response = client.post("/sales", json={"lines": [good], "customers": customers})
    assert response.status_code == 200 and response.json()["inserted"] == 1, response.text


def test_an_export_of_an_odd_or_unknown_report_name_is_404(downloads: TestClient) -> None:
    """Found: /export/report/%3F%C3%B8%C3%BA%1D.csv put the name in a URL httpx refused (InvalidURL, 500)."""
    for path in ("/export/report/%3F%C3%B8%C3%BA%1D.csv", "/export/report/no-such-report.xlsx"):
        response = downloads.get(path)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "unknown report" and fields(response) == ["name"]
    ok = downloads.get("/export/report/top-products.csv", params={"n": 3})
    assert ok.status_code == 200 and len(ok.content.decode("utf-8-sig").splitlines()) == 4
    refused = downloads.get("/export/report/top-products.csv", params={"n": 0})
    assert refused.status_code == 422 and fields(refused) == ["n"]
    # The document names the reports, and the query download's body is the query's schema.
    spec = downloads.get("/openapi.json").json()
    (name,) = [
        p for p in spec["paths"]["/export/report/{name}.{fmt}"]["get"]["parameters"] if p["name"] == "name"
    ]
    assert name["schema"]["enum"] == sorted(REGISTRY)
    body = spec["paths"]["/export/query.{fmt}"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body["$ref"] == "#/components/schemas/Query"
    bad = downloads.post("/export/query.csv", json={"measures": ["revenue"], "limit": "10"})
    assert bad.status_code == 422 and fields(bad) == ["limit"]
    rows = downloads.post("/export/query.csv", json={"measures": ["revenue"], "dimensions": ["region"]})
    assert rows.status_code == 200 and rows.content.decode("utf-8-sig").startswith("region,revenue")


def test_a_date_measure_compared_is_no_server_error(client: TestClient) -> None:
    """Found: first_sale with a comparison computed a percentage of a DATE (abs(DATE): BinderException, 500).
    Its change is a number of days; its % change is null."""
    response = client.post(
        "/query",
        json={
            "measures": ["first_sale", "last_sale", "revenue"],
            "time_dimension": {"date_range": ["2025-05-01", "2025-06-30"]},
            "compare": "previous_period",
        },
    )
    assert response.status_code == 200, response.text
    (row,) = response.json()["rows"]
    formats = {c["name"]: c["format"] for c in response.json()["columns"]}
    assert row["first_sale_change_pct"] is None and row["last_sale_change_pct"] is None
    assert isinstance(row["last_sale_change"], int) and formats["last_sale_change"] == "integer"
    assert row["revenue_change_pct"] is not None


# --- dates: YYYY-MM-DD only (ST201) ---


def test_dates_are_iso_days_only(client: TestClient) -> None:
    """Found: start=0 and as_of=0 were taken as Unix times (1970-01-01)."""
    for value in (
        "0",
        "1700000000",
        "2025-01-01T00:00",
        "20250101",
        "2025-1-1",
        "2025-02-30",
        "\uff12\uff10\uff12\uff15-01-01",  # fullwidth digits, which \d would take
    ):
        for route, name in (
            ("/reports/top-products", "start"),
            ("/reports/kpi-mom-growth", "as_of"),
            ("/insights", "start"),
        ):
            response = client.get(route, params={name: value})
            assert response.status_code == 422 and fields(response) == [name], (route, value, response.text)
    for body, field in (
        ({"time_dimension": {"date_range": [0, "2025-01-31"]}}, "time_dimension.date_range[0]"),
        ({"time_dimension": {"date_range": ["2025-01-01", "2025-01-31"]}, "compare_date_range": ["0", 1]},
         "compare_date_range[0]"),
    ):  # fmt: skip
        response = client.post("/query", json={"measures": ["revenue"], **body})
        assert response.status_code == 422 and fields(response)[0] == field, response.text
    for moment in ("1700000000", "2025-06-30", "2025-06-30 10:00:00", 1700000000):
        line = {"order_id": "O-1", "line": 1, "ordered_at": moment, "customer_id": "C-1", "product_id": "P-1",
                "quantity": 1, "unit_price": 1.0}  # fmt: skip
        response = client.post("/sales", json={"lines": [line]})
        assert response.status_code == 422 and fields(response) == ["lines[0].ordered_at"], moment


def test_the_date_pattern_is_exactly_the_supported_days() -> None:
    """The document's pattern (format: date) matches exactly the days the service takes: a fuzzer drawing
    from it gets no 422, and no day the service refuses is offered."""
    earliest, latest = get_settings().earliest_date, get_settings().latest_date
    pattern = re.compile(date_pattern(earliest, latest))
    days = TypeAdapter(SaneDate)
    texts = [f"{y:04d}-{m:02d}-{d:02d}" for y in (1899, 1900, 1904, 2000, 2100, 2199, 2200) for m in range(14)
             for d in range(33)]  # fmt: skip
    for text in texts:
        try:
            days.validate_python(text)
            accepted = True
        except ValidationError:
            accepted = False
        assert bool(pattern.fullmatch(text)) == accepted, text
    # Other bounds: partial first and last years, leap days.
    for first, last in ((date(1950, 6, 15), date(2031, 2, 28)), (date(2000, 2, 29), date(2000, 3, 1))):
        pattern, day = re.compile(date_pattern(first, last)), first - timedelta(days=400)
        while day <= last + timedelta(days=400):
            assert bool(pattern.fullmatch(day.isoformat())) == (first <= day <= last), (first, last, day)
            day += timedelta(days=1)
    assert not re.compile(date_pattern(date(1999, 1, 1), date(2001, 12, 31))).fullmatch("1999-02-29")


def test_the_documented_dates_carry_the_pattern(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    wanted = {
        "format": "date",
        "pattern": date_pattern(get_settings().earliest_date, get_settings().latest_date),
    }
    for path in ("/reports/top-products", "/insights", "/reports/revenue-change-explained"):
        for parameter in spec["paths"][path]["get"]["parameters"]:
            if parameter["name"] in ("start", "end", "as_of", "baseline_start", "baseline_end"):
                assert wanted.items() <= parameter["schema"].items(), (path, parameter)
    ordered_at = spec["components"]["schemas"]["SaleLine"]["properties"]["ordered_at"]
    assert "format" not in ordered_at and re.fullmatch(ordered_at["pattern"], "2025-06-30T10:00:00+02:00")
    assert iso_datetime("2025-06-30T10:00") == "2025-06-30T10:00"


# --- the document says what is accepted (ST202) ---


def test_text_patterns_agree_with_the_service() -> None:
    """Each text type's pattern (JSON Schema) and its validation agree, value by value."""
    samples = ["", "a", " a ", "   ", "\u3000", "\ufeff", "\xa0x", "a\tb", "a\nb", "\x00", "a\x7f", "\x85",
               "é", "\U0001f600", "C-0000042", " \u2028 "]  # fmt: skip
    for kind in (
        identifier(64),
        plain_text(200),
        trimmed_text(64, plain=True),
        trimmed_text(200, plain=False),
    ):
        adapter = TypeAdapter(kind)
        pattern = re.compile(adapter.json_schema()["pattern"])
        minimum = adapter.json_schema().get("minLength", 0)
        for value in samples:
            documented = bool(pattern.search(value)) and len(value) >= minimum
            try:
                adapter.validate_python(value)
                accepted = True
            except ValidationError:
                accepted = False
            assert documented == accepted, (kind, repr(value))
    assert TypeAdapter(trimmed_text(64, plain=False)).validate_python(f"{SPACES}C-1 ") == "C-1"
    assert TypeAdapter(trimmed_text(64, plain=True)).validate_python("\u3000C-1\xa0") == "C-1"


def test_a_filter_with_a_control_character_is_refused_as_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    region = next(
        p for p in spec["paths"]["/reports/top-products"]["get"]["parameters"] if p["name"] == "region"
    )
    assert region["schema"]["type"] == "array" and region["schema"]["maxItems"] == 100
    assert region["schema"]["items"]["pattern"] == "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    refused = client.get("/reports/top-products", params={"region": ["West", "a\x00b"]})
    assert refused.status_code == 422 and fields(refused) == ["region[1]"], refused.text
    # An empty value, like any value the data does not have, matches nothing.
    empty = client.get("/reports/top-products", params={"region": ""})
    assert empty.status_code == 200 and empty.json()["rows"] == []


def test_every_report_answers_every_filter_it_declares(client: TestClient) -> None:
    """Found: goal-attainment-by-region declared country, state, category... and refused them (422: the goal
    plan has no 'country'). Each report now declares the filters it answers; all at once, with the
    examples of the document, are answered."""
    spec = client.get("/openapi.json").json()
    for name in REGISTRY:
        declared = spec["paths"][f"/reports/{name}"]["get"]["parameters"]
        params = {p["name"]: p["schema"]["examples"][0] for p in declared if p["schema"].get("examples")}
        response = client.get(f"/reports/{name}", params=params)
        assert response.status_code == 200, (name, params, response.text)
    every_filter = {p.name for p in FILTER_PARAMS}
    for level, filters in GOAL_FILTERS.items():
        declared = {
            p["name"] for p in spec["paths"][f"/reports/goal-attainment-by-{level}"]["get"]["parameters"]
        }
        assert declared & every_filter == set(filters), level


def test_query_limit_and_offset_are_strict_integers(client: TestClient) -> None:
    """Left from a previous round: "100" (text), 100.5 and true were coerced or taken."""
    for field, value in (("limit", "100"), ("limit", 100.5), ("limit", True), ("offset", "1"), ("limit", 0)):
        response = client.post("/query", json={"measures": ["revenue"], field: value})
        assert response.status_code == 422 and fields(response) == [field], (field, value)
    # 100.0 is an integer to JSON Schema: taken as 100.
    assert (
        client.post("/query", json={"measures": ["revenue"], "limit": 100.0, "offset": 0.0}).status_code
        == 200
    )
    schema = Query.model_json_schema()["properties"]
    assert {k: schema["limit"][k] for k in ("type", "minimum", "maximum")} == {
        "type": "integer", "minimum": 1, "maximum": 50_000}  # fmt: skip
    line = SalesBatch.model_json_schema()["$defs"]["SaleLine"]["properties"]
    assert line["quantity"]["exclusiveMinimum"] == 0 and "gt" not in line["quantity"]  # was "gt": 0
    assert line["quantity"]["maximum"] == get_settings().max_line_quantity


# --- rules between parameters: 422, said in the description, kept by the hooks ---


def test_rules_between_parameters_are_said_and_refused(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    described = {
        p["name"]: p["description"] for p in spec["paths"]["/reports/top-products"]["get"]["parameters"]
    }
    assert "Not after `end`" in described["start"]
    inverted = client.get("/reports/top-products", params={"start": "2025-06-01", "end": "2025-01-01"})
    assert inverted.status_code == 422 and fields(inverted) == ["end"]
    lone = client.get("/reports/revenue-change-explained", params={"baseline_start": "2025-01-01"})
    assert lone.status_code == 422 and fields(lone) == ["baseline_start"]
    level = client.get("/reports/sales-opportunities", params={"level": "region", "category": "Technology"})
    assert level.status_code == 422 and "goal plan by region has no 'category'" in level.text


def test_the_hooks_make_valid_cases_that_the_service_answers(client: TestClient) -> None:
    """The hooks (tests/schemathesis_hooks.py) repair what a fuzzer draws from the document alone: the
    repaired requests are answered, so the rules they encode are the service's."""
    query = {"start": "2025-06-01", "end": "2025-01-01", "baseline_end": "2025-01-01"}
    hooks.consistent_query("/reports/revenue-change-explained", query)
    assert client.get("/reports/revenue-change-explained", params=query).status_code == 200
    opportunities = {
        "level": "product",
        "region": ["West"],
        "category": ["Technology"],
        "channel": ["direct"],
    }
    hooks.consistent_query("/reports/sales-opportunities", opportunities)
    assert opportunities == {"level": "product", "category": ["Technology"]}
    assert client.get("/reports/sales-opportunities", params=opportunities).status_code == 200
    for window in (
        {"start": "1900-01-01"},
        {"as_of": "1900-01-02"},
        {"start": "2199-12-31", "as_of": "1900-01-01"},
    ):
        hooks.consistent_query("/insights", window)
        assert client.get("/insights", params=window).status_code == 200, window
    body = {
        "measures": ["goal", "revenue", "revenue"],
        "dimensions": ["channel"],
        "time_dimension": {"grain": "week", "date_range": ["2025-06-30", "2025-01-01"]},
        "filters": [
            {"member": "orders", "operator": "range", "values": [None, None]},
            {"member": "month_of_year", "operator": "equals", "values": ["6", 5]},
            {"member": "region", "operator": "in", "values": [None, 3]},
        ],
        "order": [{"member": "revenue_change", "direction": "desc"}, {"member": "period"}],
        "compare": "previous_period",
        "compare_date_range": ["2024-01-01", "2024-06-30"],
    }
    broken = copy.deepcopy(body)
    assert client.post("/query", json=broken).status_code == 422
    hooks.consistent_analytics_query(body)
    answered = client.post("/query", json=body)
    assert answered.status_code == 200, (body, answered.text)
    assert body["measures"] == ["revenue"] and "compare_date_range" not in body
    line = {"order_id": " O-1", "line": 1, "ordered_at": "1900-01-01T00:30:00+01:00", "customer_id": "C-1",
            "product_id": "P-1", "quantity": 1_000_000, "unit_price": 1e9, "discount": 0.5, "revenue": 1.0,
            "cost": 3.0, "profit": 1.0, "ship_country": "usa", "ship_state": "Atlantis",
            "ship_zip": "1"}  # fmt: skip
    customer = {"customer_id": "C-1", "country": "US", "region": "Nowhere"}
    sales = {"lines": [line, {**line, "order_id": "O-1 "}], "customers": [customer]}
    assert client.post("/sales", json=copy.deepcopy(sales)).status_code == 422
    hooks.consistent_sales(sales)
    written = client.post("/sales", json=sales)
    assert written.status_code == 200 and written.json()["inserted"] == 1, written.text


# --- found by the whole service's run (tests/test_api_contract.py) ---


def test_a_start_after_the_data_is_an_empty_period_not_an_inverted_one(client: TestClient) -> None:
    # churn-risk reads the customers' history up to the as-of day (the last sale): it blamed its own
    # internal time_dimension.date_range for a start after it.
    answer = client.get("/reports/churn-risk", params={"start": "2140-02-28"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == []
    refused = client.get("/reports/churn-risk", params={"start": "2025-06-01", "end": "2025-05-01"})
    assert refused.status_code == 422
    assert [p["field"] for p in refused.json()["detail"]] == ["end"]  # the user's own field


def test_insights_skip_a_member_nobody_recorded(client: TestClient) -> None:
    # Sales without a region are a row of the change by region; drilling into it asked for region=[null].
    sale = {
        "order_id": "NO-REGION-1", "line": 1, "ordered_at": "2025-06-29T10:00:00", "customer_id": "C-0000001",
        "product_id": "P-00001", "quantity": 500, "unit_price": 900.0, "ship_country": "Narnia",
    }  # fmt: skip
    assert client.post("/sales", json={"lines": [sale]}).status_code == 200
    answer = client.get("/insights", params={"end": END.isoformat()})
    assert answer.status_code == 200, answer.text


def test_an_excel_download_replaces_what_a_cell_cannot_hold(downloads: TestClient) -> None:
    from service.exports import excel_value

    assert excel_value("A\x0bB", "text") == "A\ufffdB"
    answer = downloads.get("/export/report/sales-by-region.xlsx")
    assert answer.status_code == 200
