"""Regression tests of the defects a contract, fuzz and load run found (issue 13): server errors on
calendar-edge dates, lone surrogates and multipart bodies; values accepted that should not be (a line of
revenue 1e19, NaN filters, "3" for 3, control characters in ids); misleading messages; auth after parsing;
4xx logged as ERROR tracebacks with the input; /metrics labelled by raw path; two validation statuses.

Each test failed before its fix. Most run against a real `bentoml serve` on loopback (one per module, plus
one in keyed read mode); the bounds of the file import, the log writer and the gate's JSON checks are
exercised in process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from service_support import (
    API_KEY,
    REPO_ROOT,
    VENV_BIN,
    RunningService,
    run_python,
    serve_with_fresh_models,
    start_service,
)
from superstore_files import SAMPLE_FILE

from salespulse.dataset.importing import ImportRejected, import_file
from service.middleware import json_problem

MAPPING_FILE = REPO_ROOT / "data" / "mappings" / "superstore.yaml"
KEY = {"x-api-key": API_KEY}
JSON = {"content-type": "application/json"}
METRICS_TOKEN = "scraper-token-7"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("defects"))


@pytest.fixture(scope="module")
def keyed(service: RunningService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The same models in keyed read mode, with a metrics token, over a small warehouse of its own (DuckDB
    lets one process open a warehouse file)."""
    root = tmp_path_factory.mktemp("keyed")
    env = {**service.env, "SALESPULSE_WAREHOUSE_PATH": str(root / "keyed.duckdb")}
    run_python(
        "from salespulse.dataset.generate import GeneratorConfig, generate_warehouse; "
        "generate_warehouse(GeneratorConfig(customers=200, rows=3_000, days=60))",
        env,
    )
    extra = {"SALESPULSE_READ_ACCESS": "keyed", "SALESPULSE_METRICS_TOKEN": METRICS_TOKEN}
    running = start_service(env, root / "keyed.log", extra_env=extra)
    yield running
    running.stop()


def call(service: RunningService, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with service.client() as client:
        return client.request(method, path, **kwargs)


def assert_refused(answer: httpx.Response, status: int, field: str, words: str = "") -> None:
    """The one error shape, the status, and a problem naming ``field`` (with ``words`` in its message)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert isinstance(body["error"], str) and body["detail"], body
    assert all(set(problem) == {"field", "message"} for problem in body["detail"]), body
    assert any(p["field"] == field and words.lower() in p["message"].lower() for p in body["detail"]), body


def sale(**changes: Any) -> dict[str, Any]:
    line = {
        "order_id": "DEFECT-1",
        "line": 1,
        "ordered_at": "2026-06-29T10:00:00",
        "customer_id": "C-0000001",
        "product_id": "P-00001",
        "quantity": 2,
        "unit_price": 10.0,
    }
    return {"lines": [{**line, **changes}]}


# ------------------------------------------------------------------------------- 1. no more server errors

EDGE_DATES = [
    ("POST", "/analytics/query", {"json": {"measures": ["revenue"], "compare": "previous_period",
     "time_dimension": {"date_range": ["0001-01-01", "0001-01-31"]}}}, "time_dimension.date_range[0]"),
    ("POST", "/analytics/query", {"json": {"measures": ["revenue"], "dimensions": ["hour_of_day"],
     "time_dimension": {"date_range": ["9999-12-01", "9999-12-31"]}}}, "time_dimension.date_range[1]"),
    ("GET", "/analytics/reports/kpi-mom-growth", {"params": {"as_of": "0001-01-01"}}, "as_of"),
    ("GET", "/analytics/reports/kpi-retention-rate", {"params": {"as_of": "0001-01-01"}}, "as_of"),
    ("GET", "/analytics/reports/kpi-revenue-run-rate", {"params": {"as_of": "0001-01-01"}}, "as_of"),
    ("GET", "/analytics/reports/kpi-top-product-mover", {"params": {"as_of": "0001-01-01"}}, "as_of"),
    ("GET", "/analytics/reports/revenue-change-explained", {"params": {"end": "0001-01-10"}}, "end"),
    ("GET", "/analytics/reports/kpi-total-revenue", {"params": {"start": "0001-01-01"}}, "start"),
    ("GET", "/analytics/reports/kpi-average-order-value", {"params": {"start": "0501-05-05"}}, "start"),
    ("GET", "/analytics/reports/underperformers", {"params": {"month": "9999-12-01"}}, "month"),
    ("POST", "/forecast", {"json": {"level": "category", "series": ["Technology"], "promotions": [
     {"category": "Technology", "discount": 0.2, "start": "0001-01-01", "end": "0001-01-07"}]}},
     "promotions[0].start"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "request_", "field"), EDGE_DATES)
def test_dates_outside_the_supported_calendar_are_a_422_naming_the_field(
    service, method, path, request_, field
):
    assert_refused(call(service, method, path, **request_), 422, field, "outside the supported dates")


def test_the_edges_of_the_supported_calendar_are_answered(service):
    """Dates at the bounds still work, comparisons reaching a year before the earliest included."""
    for compare in ("previous_period", "same_period_last_year"):
        query = {"measures": ["revenue"], "compare": compare,
                 "time_dimension": {"date_range": ["1900-01-01", "1900-01-31"]}}  # fmt: skip
        answer = call(service, "POST", "/analytics/query", json=query)
        assert answer.status_code == 200, answer.text
    hours = {"measures": ["revenue"], "dimensions": ["hour_of_day"], "compare": "previous_period",
             "time_dimension": {"grain": "day", "date_range": ["2199-12-01", "2199-12-31"]}}  # fmt: skip
    assert call(service, "POST", "/analytics/query", json=hours).status_code == 200
    for report in ("kpi-mom-growth", "kpi-retention-rate", "kpi-revenue-run-rate", "kpi-top-product-mover"):
        for day in ("1900-01-01", "2199-12-31"):
            answer = call(service, "GET", f"/analytics/reports/{report}", params={"as_of": day})
            assert answer.status_code == 200, (report, day, answer.text)


def test_a_report_blames_the_users_own_parameter_not_an_internal_query(service):
    answer = call(service, "GET", "/analytics/reports/churn-risk", params={"end": "0001-01-01"})
    assert_refused(answer, 422, "end", "0001-01-01")
    assert "time_dimension" not in answer.text


SURROGATE = '"C-\\ud800"'  # JSON's escape of a lone UTF-16 surrogate: no character at all


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/analytics/query", '{"measures": ["revenue"], "filters": [{"member": "customer", "operator": '
         f'"not_in", "values": [{SURROGATE}]}}]}}', "filters[0].values[0]"),
        ("/analytics/query", f'{{"measures": ["revenue"], "dimensions": [{SURROGATE}]}}', "dimensions[0]"),
        ("/segment", f'{{"customer_ids": [{SURROGATE}]}}', "customer_ids[0]"),
        ("/forecast", f'{{"level": "category", "series": [{SURROGATE}]}}', "series[0]"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_a_422_naming_the_field(service, path, body, field):
    answer = call(service, "POST", path, content=body.encode(), headers=JSON)
    assert_refused(answer, 422, field, "surrogate")


def test_a_lone_surrogate_in_a_sale_is_refused_and_nothing_is_written(service):
    body = json.dumps(sale(order_id="C-\ud800"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    answer = call(service, "POST", "/analytics/sales", content=body, headers={**JSON, **KEY})
    assert_refused(answer, 422, "body", "utf-8")
    escaped = json.dumps(sale(order_id="C-\ud800")).encode()  # the \ud800 escape
    assert_refused(call(service, "POST", "/analytics/sales", content=escaped, headers={**JSON, **KEY}), 422,
                   "lines[0].order_id", "surrogate")  # fmt: skip


@pytest.mark.parametrize("path", ["/forecast", "/segment", "/predict/customers", "/analytics/query"])
@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "text/plain", "application/xml"],
)
def test_a_body_that_is_not_json_is_a_415(service, path, content_type):
    answer = call(service, "POST", path, content=b'{"customer_ids": ["C-0000001"]}',
                  headers={"content-type": content_type})  # fmt: skip
    assert_refused(answer, 415, "content-type", "expected application/json")


def test_multipart_without_a_body_is_a_415_too(service):
    answer = call(service, "POST", "/segment", headers={"content-type": "multipart/form-data"})
    assert_refused(answer, 415, "content-type", "expected application/json")


# ------------------------------------------------------------------------------- 2. refused, not accepted


def revenue_total(service: RunningService) -> float:
    answer = call(service, "POST", "/analytics/query", json={"measures": ["revenue", "units"]})
    assert answer.status_code == 200, answer.text
    row = answer.json()["rows"][0]
    return row["revenue"], row["units"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"quantity": 10_000_000, "unit_price": 1e12}, "lines[0].quantity", "SALESPULSE_MAX_LINE_QUANTITY"),
        ({"unit_price": 1e12}, "lines[0].unit_price", "SALESPULSE_MAX_UNIT_PRICE"),
        ({"quantity": 1000, "unit_price": 5e6}, "lines[0]", "SALESPULSE_MAX_LINE_REVENUE"),
        ({"cost": 2e9}, "lines[0].cost", "SALESPULSE_MAX_LINE_REVENUE"),
        ({"quantity": "3"}, "lines[0].quantity", "integer"),
        ({"unit_price": "10.0"}, "lines[0].unit_price", "number"),
        ({"line": "1"}, "lines[0].line", "integer"),
        ({"order_id": "D\x00-1"}, "lines[0].order_id", "control character (U+0000 NUL)"),
        ({"customer_id": "C-1\n2"}, "lines[0].customer_id", "control character (U+000A newline)"),
        ({"product_id": "P\x1b[31m"}, "lines[0].product_id", "control character"),
        ({"ordered_at": "0001-01-01T00:00:00"}, "lines[0].ordered_at", "outside the supported dates"),
    ],
)
def test_an_implausible_sale_is_refused_and_changes_no_total(service, changes, field, words):
    before = revenue_total(service)
    answer = call(service, "POST", "/analytics/sales", json=sale(**changes), headers=KEY)
    assert_refused(answer, 422, field, words)
    assert revenue_total(service) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
@pytest.mark.parametrize("member", ["revenue", "region"])
def test_non_finite_filter_values_are_a_422_not_an_empty_answer(service, literal, member):
    spec = f'{{"member": "{member}", "operator": "in", "values": [{literal}]}}'
    body = f'{{"measures": ["revenue"], "filters": [{spec}]}}'
    answer = call(service, "POST", "/analytics/query", content=body.encode(), headers=JSON)
    assert_refused(answer, 422, "filters[0].values[0]", f"{literal} is not a finite number")


def test_a_filter_value_beyond_64_bits_is_a_422_not_a_500(service):
    body = (
        '{"measures": ["revenue"], "filters": [{"member": "revenue", "operator": "equals", "values": [%s]}]}'
    )
    answer = call(service, "POST", "/analytics/query", content=(body % ("9" * 400)).encode(), headers=JSON)
    assert answer.status_code == 422, answer.text


FEATURES = {"recency_days": 12, "frequency": 9, "monetary": 5120, "tenure_days": 640, "avg_order_value": 569}


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/forecast", {"level": "category", "series": ["Technology"], "horizon": "7"}, "horizon", "integer"),
        ("/forecast", {"level": "category", "series": ["Technology"], "intervals": ["80"]}, "intervals[0]",
         "number"),
        ("/segment", {"customers": [FEATURES | {"recency_days": "12"}]}, "customers[0].recency_days",
         "number"),
        ("/segment", {"customers": [FEATURES | {"recency_days": True}]}, "customers[0].recency_days",
         "number"),
        ("/predict/customers", {"customer_ids": ["C-0000001"], "horizon_days": "90"}, "horizon_days",
         "integer"),
        ("/segment", {"customer_ids": ["C-0000001\x00"]}, "customer_ids[0]", "control character"),
        ("/segment", {"customer_ids": ["C-0000001\r\n"]}, "customer_ids[0]", "control character"),
        ("/forecast", {"level": "category", "series": ["Tech\nnology"]}, "series[0]", "control character"),
    ],
)  # fmt: skip
def test_prediction_bodies_are_strict_and_ids_plain(service, path, body, field, words):
    assert_refused(call(service, "POST", path, json=body), 422, field, words)


def test_whole_numbers_stay_welcome_where_a_number_is_asked(service):
    assert call(service, "POST", "/segment", json={"customers": [FEATURES]}).status_code == 200
    body = {"level": "category", "series": ["Technology"], "horizon": 7, "intervals": [80]}
    assert call(service, "POST", "/forecast", json=body).status_code == 200


def test_a_control_character_in_a_customer_path_is_a_422(service):
    assert_refused(call(service, "GET", "/customers/C-0000001%00"), 422, "customer_id", "control character")


@pytest.mark.parametrize(
    "body",
    [b'{"name": "Infinity Corp", "note": "NaN"}', b'{"a": 1e308, "b": 2E+30}', b'["\\ud83d\\ude00"]',
     b'["\\\\ud800"]', '{"city": "Zürich"}'.encode(), b'{"id": "12345678901234567890123"}'],
)  # fmt: skip
def test_the_gate_passes_legitimate_json(body):
    """No false alarm: the words NaN and Infinity in text, large finite numbers, a surrogate pair (an
    emoji), an escaped backslash before 'ud800', UTF-8 text and long digit strings are all fine."""
    assert json_problem(body) is None


def test_the_file_import_applies_the_same_bounds(isolated_settings: Path, tmp_path: Path):
    spoiled = pd.read_csv(SAMPLE_FILE, dtype=str, keep_default_na=False)
    spoiled.loc[1, "Quantity"] = "5000000"  # row 2
    spoiled.loc[2, "Order Date"] = "1/1/0001"  # row 3
    spoiled.loc[3, "Customer ID"] = "CG-12520\x00"  # row 4
    spoiled.loc[4, "Sales"] = "1e19"  # row 5
    file = tmp_path / "spoiled.csv"
    spoiled.to_csv(file, index=False)
    with pytest.raises(ImportRejected) as rejected:
        import_file(file, MAPPING_FILE)
    problems = {(e.row, e.column): e.message for e in rejected.value.errors}
    assert "SALESPULSE_MAX_LINE_QUANTITY" in problems[(2, "Quantity")]
    assert "before the earliest date accepted, 1900-01-01" in problems[(3, "Order Date")]
    assert "control character" in problems[(4, "Customer ID")]
    assert "SALESPULSE_MAX_LINE_REVENUE" in problems[(5, "Sales")]
    assert not isolated_settings.exists()  # nothing imported (the file it created is removed again)


# ------------------------------------------------------------------------------- 3. messages


def test_a_nan_price_is_not_a_finite_number(service):
    body = json.dumps(sale(unit_price=float("nan"))).encode()  # Python writes the NaN token
    answer = call(service, "POST", "/analytics/sales", content=body, headers={**JSON, **KEY})
    assert_refused(answer, 422, "lines[0].unit_price", "not a finite number")
    assert "1000000000000" not in answer.text


@pytest.mark.parametrize("path", ["/analytics/query", "/analytics/sales", "/segment", "/forecast"])
def test_malformed_json_is_the_bodys_problem(service, path):
    answer = call(service, "POST", path, content=b'{"lines": [', headers={**JSON, **KEY})
    assert_refused(answer, 422, "body", "the body is not valid JSON")


@pytest.mark.parametrize("path", ["/analytics/sales", "/admin/import", "/admin/snapshot"])
def test_the_key_is_checked_before_the_body_is_parsed(service, path):
    answer = call(service, "POST", path, content=b'{"lines": [', headers=JSON)
    assert_refused(answer, 401, "x-api-key", "missing api key")
    answer = call(service, "POST", path, content=b"not json at all", headers={"content-type": "text/plain"})
    assert_refused(answer, 401, "x-api-key", "missing api key")


def test_unknown_paths_answer_a_json_404_in_the_one_shape(service):
    for path in ("/no/such/thing", "/analytics/no-such-thing", "/analytics/reports/no-such-report"):
        assert_refused(call(service, "GET", path), 404, "path", "no such endpoint")


def test_one_validation_status_everywhere(service):
    assert_refused(call(service, "POST", "/segment", json={}), 422, "body", "exactly one")
    assert_refused(call(service, "POST", "/forecast", json={"series": []}), 422, "series", "at least 1")
    assert_refused(
        call(service, "POST", "/analytics/query", json={"measures": []}), 422, "measures", "at least 1"
    )


# ------------------------------------------------------------------------------- 4. logs


def test_a_refused_request_is_one_info_line_without_its_values(service):
    start = service.log.stat().st_size
    marker = "SECRET-MARKER-4711"
    refusals = [
        ("/forecast", {"level": "galaxy", "series": [marker]}),
        ("/forecast", {"level": "category", "series": [marker], "horizon": marker}),
        ("/segment", {"customers": [{"recency_days": marker}]}),
        ("/segment", {"customer_ids": [marker, ""]}),
    ]
    for path, body in refusals:
        assert call(service, "POST", path, json=body).status_code == 422
    assert call(service, "POST", "/segment", json={"customer_ids": [marker]}).status_code == 404
    time.sleep(1)  # the worker's log reaches the file
    written = service.log.read_text()[start:]
    lines = [line for line in written.splitlines() if "-> 4" in line]
    assert len([line for line in lines if "POST /forecast -> 422" in line]) == 2, written
    assert len([line for line in lines if "POST /segment -> 422" in line]) == 2, written
    assert any("POST /segment -> 404" in line for line in lines), written
    assert all("[INFO]" in line for line in lines), written
    assert marker not in written, written
    assert "Traceback" not in written and "[ERROR]" not in written, written


def test_the_service_log_writer_rotates_by_size(tmp_path: Path):
    log = tmp_path / "service.log"
    env = {**os.environ, "SALESPULSE_SERVICE_LOG_MAX_BYTES": "20000", "SALESPULSE_SERVICE_LOG_BACKUPS": "2"}
    lines = "".join(f"2026-11-26 [INFO] line {i:06d} {'x' * 80}\n" for i in range(3000))  # ~300 KB
    subprocess.run(
        [str(VENV_BIN / "python"), str(REPO_ROOT / "scripts" / "rotating_log.py"), str(log)],
        input=lines.encode(), env=env, check=True, timeout=60,
    )  # fmt: skip
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["service.log", "service.log.1", "service.log.2"]
    assert all((tmp_path / name).stat().st_size <= 20_000 for name in files)
    assert log.read_text().splitlines()[-1].startswith("2026-11-26 [INFO] line 002999")
    assert "rotating_log.py" in (REPO_ROOT / "scripts" / "service.sh").read_text()


# ------------------------------------------------------------------------------- 5. bounded metrics


async def _hammer(base_url: str, paths: list[str], concurrency: int = 16) -> list[int]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(path: str) -> int:
            async with gate:
                return (await client.get(path)).status_code

        return await asyncio.gather(*(one(path) for path in paths))


def test_metrics_stay_bounded_whatever_paths_are_asked_for(service):
    # The first request of each kind adds its series (route x status) once; then no request adds any.
    warm = asyncio.run(_hammer(service.url, ["/customers/NOPE-0", "/no/such/path/0"]))
    assert warm == [404, 404]
    before = call(service, "GET", "/metrics").text
    paths = [f"/customers/NOPE-{i}" if i % 2 else f"/no/such/path/{i}" for i in range(1, 3001)]
    assert set(asyncio.run(_hammer(service.url, paths))) == {404}
    after = call(service, "GET", "/metrics").text
    assert len(after) <= 1.10 * len(before), (len(before), len(after))
    assert 'endpoint="/customers/{customer_id}"' in after and 'endpoint="other"' in after
    assert "NOPE-" not in after and "/no/such/path" not in after  # nor who asked for which customer
    assert "bentoml_service_request_total" in after


# ------------------------------------------------------------------------------- keyed read mode


def documented_reads(service: RunningService) -> list[str]:
    """Every GET of the served API description (path parameters filled in), the analytics' reports too."""
    spec = call(service, "GET", "/docs.json").json()
    fill = {"customer_id": "C-0000001", "name": "top-products", "fmt": "csv"}
    paths = []
    for path, operations in spec["paths"].items():
        if "get" in operations:
            for name, value in fill.items():
                path = path.replace("{" + name + "}", value)
            paths.append(path)
    reports = call(service, "GET", "/analytics/reports", headers=KEY).json()["reports"]
    paths += [f"/analytics/reports/{r['name']}" for r in reports]
    return sorted(set(paths))


OPEN = {"/", "/docs", "/redoc", "/docs.json", "/schema.json", "/health", "/livez", "/healthz", "/readyz"}


def test_keyed_mode_keys_every_read_endpoint(keyed):
    reads = [path for path in documented_reads(keyed) if path not in OPEN]
    assert {"/models", "/metrics", "/analytics/reports", "/analytics/meta", "/customers/C-0000001"} <= set(
        reads
    )
    for path in [*reads, "/no/such/path"]:
        assert_refused(call(keyed, "GET", path), 401, "x-api-key")
    for path in reads:
        assert call(keyed, "GET", path, headers=KEY).status_code not in (401, 403), path
    for path in ("/health", "/readyz", "/docs.json"):
        assert call(keyed, "GET", path).status_code == 200, path


def test_keyed_mode_checks_the_key_before_the_body(keyed):
    for path in ("/forecast", "/segment", "/predict/customers", "/analytics/query"):
        assert_refused(call(keyed, "POST", path, content=b"{broken", headers=JSON), 401, "x-api-key")
        multipart = {"content-type": "multipart/form-data"}
        assert_refused(call(keyed, "POST", path, content=b"x", headers=multipart), 401, "x-api-key")


def test_metrics_take_their_own_token(keyed):
    assert (
        call(keyed, "GET", "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).status_code
        == 200
    )
    assert call(keyed, "GET", "/metrics", headers=KEY).status_code == 200
    assert_refused(
        call(keyed, "GET", "/metrics", headers={"authorization": "Bearer wrong"}), 401, "x-api-key"
    )
    assert_refused(call(keyed, "GET", "/metrics", headers={"x-api-key": "wrong"}), 403, "x-api-key")
