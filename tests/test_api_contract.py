"""The API contract, against a real service on loopback: the served OpenAPI documents are valid OpenAPI 3.1,
their request examples are valid and answered 2xx, and schemathesis, over every operation with all its
checks, a fixed seed and a bounded number of examples, finds nothing, with the API key and without it.

The fuzzer knows the rules a schema cannot say (start before end, a horizon per frequency...) from
tests/schemathesis_service_hooks.py; a larger run against a running service: `make fuzz`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from service_support import API_KEY, REPO_ROOT, VENV_BIN, RunningService, serve_with_fresh_models

pytestmark = pytest.mark.slow

REPORTS = REPO_ROOT / "build" / "reports"
# Bounded: every operation, each phase (examples, coverage, fuzzing, stateful) with at most this many
# generated cases per operation; the seed makes a failure reproducible.
MAX_EXAMPLES = int(os.environ.get("SALESPULSE_FUZZ_EXAMPLES", "8"))
SEED = 20261126
# Every phase; the stateful one follows the links the document declares (tests/schemathesis.toml says why
# it does not guess others).
PHASES = os.environ.get("SALESPULSE_FUZZ_PHASES", "examples,coverage,fuzzing,stateful")
CONFIG = REPO_ROOT / "tests" / "schemathesis.toml"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("contract"))


@pytest.fixture(scope="module")
def document(service: RunningService) -> dict[str, Any]:
    answer = httpx.get(f"{service.url}/docs.json", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_documents_are_valid_openapi_3_1(service: RunningService, document: dict[str, Any]) -> None:
    analytics = httpx.get(f"{service.url}/analytics/openapi.json", timeout=30).json()
    for served in (document, analytics):
        assert served["openapi"] == "3.1.0"
        OpenAPIV31SpecValidator(served).validate()  # raises with the first error
        assert served["components"]["securitySchemes"]["ApiKey"] == {
            **served["components"]["securitySchemes"]["ApiKey"],
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
        }
    # The analytics part is the same API as in the whole service's document.
    assert {f"/analytics{path}" for path in analytics["paths"]} <= set(document["paths"])


def test_every_operation_documents_its_errors_with_the_one_error_body(document: dict[str, Any]) -> None:
    undocumented = []
    for path, method, operation in operations(document):
        responses = operation["responses"]
        statuses = set(responses)
        if operation.get("security"):
            statuses_needed = {"401", "403"}
        elif path.startswith("/admin/") or path == "/analytics/sales":
            undocumented.append(f"{method.upper()} {path}: no security declared")
            continue
        else:
            statuses_needed = set()
        if operation.get("requestBody"):
            statuses_needed |= {"413", "415", "422"}
        if not statuses_needed <= statuses:
            undocumented.append(f"{method.upper()} {path}: {sorted(statuses_needed - statuses)}")
        if "400" in responses:  # only the HTTP server's own refusal of an unparseable request line
            assert list(responses["400"]["content"]) == ["text/plain"], path
        for status, response in responses.items():
            if status.startswith(("4", "5")) and status != "400":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
        assert "500" not in responses, path
    assert undocumented == []
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["error", "detail"]


def test_request_examples_are_valid_and_answered_2xx(
    service: RunningService, document: dict[str, Any]
) -> None:
    tried = []
    for path, method, operation in operations(document):
        media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        for name, example in media.get("examples", {}).items():
            value = example["value"]
            # The document's components beside the schema, so that its "#/components/schemas/X" resolve.
            schema = {**media["schema"], "components": document["components"]}
            validator = jsonschema.Draft202012Validator(schema)
            problems = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(value)]
            assert problems == [], (path, name, problems)
            if path == "/admin/snapshot":  # a new file each time: the example's path is the docs' suggestion
                value = {"path": str(service.log.parent / f"example-{len(tried)}.duckdb")}
            answer = httpx.request(
                method,
                service.url + with_path_examples(path, operation),
                json=value,
                headers={"x-api-key": API_KEY},
                timeout=120,
            )
            assert 200 <= answer.status_code < 300, (path, name, answer.status_code, answer.text[:500])
            tried.append((path, name))
    assert {"/forecast", "/segment", "/predict/customers", "/analytics/query", "/analytics/sales"} <= {
        path for path, _ in tried
    }
    assert len(tried) >= 12


def test_declared_links_lead_to_answers(service: RunningService, document: dict[str, Any]) -> None:
    """Each link the document declares, followed from a real answer of its producer, is answered 200."""
    by_id = {operation["operationId"]: (path, method) for path, method, operation in operations(document)}
    followed = []
    for path, method, operation in operations(document):
        for name, link in operation["responses"].get("200", {}).get("links", {}).items():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            body = next(iter(media.get("examples", {}).values()), {}).get("value")
            headers = {"x-api-key": API_KEY}
            produced = httpx.request(method, service.url + path, json=body, headers=headers, timeout=120)
            assert produced.status_code == 200, (path, produced.text[:300])
            target_path, target_method = by_id[link["operationId"]]
            for parameter, expression in link["parameters"].items():
                value = resolve_link_value(expression, produced.json())
                target_path = target_path.replace("{" + parameter.removeprefix("path.") + "}", str(value))
            answer = httpx.request(target_method, service.url + target_path, headers=headers, timeout=120)
            assert answer.status_code == 200, (path, name, target_path, answer.text[:300])
            followed.append(name)
    assert sorted(followed) == ["CustomerProfile", "CustomerProfile", "ReportAsCsv"]


def resolve_link_value(expression: str, body: Any) -> Any:
    """A link parameter: a constant, or ``$response.body#/json/pointer`` into the producer's answer."""
    if not expression.startswith("$response.body#"):
        return expression
    for part in expression.removeprefix("$response.body#/").split("/"):
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
def test_schemathesis_finds_nothing(
    service: RunningService, document: dict[str, Any], with_key: bool, tmp_path: Path
) -> None:
    label = "with-key" if with_key else "without-key"
    report = REPORTS / f"schemathesis-{label}.xml"
    command = [
        str(VENV_BIN / "schemathesis"), "--config-file", str(CONFIG), "run", f"{service.url}/docs.json",
        "--checks", "all", "--phases", PHASES, "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none", "--no-color", "--request-timeout", "60",
        "--report", "junit", "--report-junit-path", str(report),
    ]  # fmt: skip
    if with_key:
        command += ["--header", f"x-api-key: {API_KEY}"]
    env = {
        **os.environ,
        # By module name from tests/ (a library installs a package called "tests" that would shadow it).
        "SCHEMATHESIS_HOOKS": "schemathesis_service_hooks",
        "PYTHONPATH": str(REPO_ROOT / "tests"),
        # Files the admin endpoints may write or read in this run go here, nowhere else on the machine.
        "SALESPULSE_FUZZ_SCRATCH": str(tmp_path),
    }
    run = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    summary = run.stdout[-6000:]
    assert run.returncode == 0, f"schemathesis found problems ({label}):\n{summary}\n{run.stderr[-3000:]}"
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested[1]) == len(list(operations(document))), summary
    print(summary[-1500:])


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def with_path_examples(path: str, operation: dict[str, Any]) -> str:
    """``path`` with each path parameter replaced by its first example (or allowed value)."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            schema = parameter["schema"]
            value = (schema.get("examples") or schema.get("enum") or [parameter.get("example")])[0]
            path = path.replace("{" + parameter["name"] + "}", str(value))
    return path
