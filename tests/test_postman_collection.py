"""The Postman collection, proven rather than just written: newman (pinned by postman/package-lock.json,
installed by scripts/bootstrap.sh) runs it against a real service, and every request must pass its status,
schema and business-rule tests; and the file must be what postman/make_collection.py generates from the live
service's OpenAPI document, so a new or changed route cannot be missing from it.

newman's reports are kept in build/reports/ (newman.json, newman.xml as JUnit) for CI to archive.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from service_support import API_KEY, REPO_ROOT, RunningService, serve_with_fresh_models

POSTMAN = REPO_ROOT / "postman"
COLLECTION_PATH = POSTMAN / "salespulse.postman_collection.json"
ENVIRONMENT_PATH = POSTMAN / "salespulse.postman_environment.json"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
REPORTS = REPO_ROOT / "build" / "reports"
SCHEMA_V2_1 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
KINDS = ("status", "schema", "rule")
TEST_NAME = re.compile(r'^pm\.test\(("(?:[^"\\]|\\.)*"), function \((done)?\) \{$')
VARIABLE = re.compile(r"\{\{(\w+)\}\}")

COLLECTION: dict[str, Any] = json.loads(COLLECTION_PATH.read_text())
ENVIRONMENT: dict[str, Any] = json.loads(ENVIRONMENT_PATH.read_text())


def requests_of(items: list[dict[str, Any]], folder: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for item in items:
        if "item" in item:  # a folder
            found += requests_of(item["item"], f"{folder}/{item['name']}".strip("/"))
        else:
            found.append((folder, item))
    return found


REQUESTS = requests_of(COLLECTION["item"])


def postman_tests(item: dict[str, Any]) -> list[str]:
    """The names of the Postman tests of a request's test script."""
    (script,) = [e["script"]["exec"] for e in item["event"] if e["listen"] == "test"]
    return [json.loads(match.group(1)) for line in script if (match := TEST_NAME.match(line))]


def load_generator() -> ModuleType:
    # make_collection imports its sibling rules.py, as it does when run as a script.
    if str(POSTMAN) not in sys.path:
        sys.path.insert(0, str(POSTMAN))
    return importlib.import_module("make_collection")


def run_newman(collection: Path, service: RunningService, reports: Path) -> tuple[int, str, dict[str, Any]]:
    """newman's exit code, console output and JSON report for ``collection`` run against ``service``."""
    if not NEWMAN.exists():
        pytest.fail(f"{NEWMAN} is missing: scripts/bootstrap.sh installs it (npm ci in postman/)")
    reports.mkdir(parents=True, exist_ok=True)
    command = [
        str(NEWMAN), "run", str(collection), "-e", str(ENVIRONMENT_PATH),
        "--env-var", f"baseUrl={service.url}", "--env-var", f"apiKey={API_KEY}",
        "--reporters", "cli,json,junit",
        "--reporter-json-export", str(reports / "newman.json"),
        "--reporter-junit-export", str(reports / "newman.xml"),
        "--timeout-request", "30000", "--timeout-script", "120000", "--timeout", "600000", "--color", "off",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    report_file = reports / "newman.json"
    assert report_file.exists(), f"newman wrote no report:\n{output[-5000:]}"
    report = json.loads(report_file.read_text())
    # The JSON reporter writes every answer's body as an array of byte values (about 27 MB for one run):
    # the report kept is the rest (requests, statuses, timings, every assertion and failure).
    for execution in report["run"]["executions"]:
        execution.get("response", {}).pop("stream", None)
    report_file.write_text(json.dumps(report))
    return result.returncode, output, report


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{f['source'].get('name')}: {f['error'].get('test', '')}: {f['error']['message'][:500]}"
        for f in report["run"]["failures"]
    ]


def assertions_by_request(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each executed request's assertions, by name. (The JSON report repeats a request's execution for each
    pm.sendRequest its scripts make, with the same assertions.)"""
    found: dict[str, list[dict[str, Any]]] = {}
    for execution in report["run"]["executions"]:
        found.setdefault(execution["item"]["name"], execution.get("assertions", []))
    return found


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("postman"))


@pytest.fixture(scope="module")
def spec(service: RunningService) -> dict[str, Any]:
    return httpx.get(f"{service.url}/docs.json", timeout=30).raise_for_status().json()


# ------------------------------------------------------------------------------------------- structure


def test_collection_has_key_auth_an_environment_and_three_kinds_of_test_on_every_request() -> None:
    assert COLLECTION["info"]["schema"] == SCHEMA_V2_1
    auth = COLLECTION["auth"]
    assert auth["type"] == "apikey"
    assert {p["key"]: p["value"] for p in auth["apikey"]} == {
        "key": "x-api-key",
        "value": "{{apiKey}}",
        "in": "header",
    }
    environment = {v["key"]: v["value"] for v in ENVIRONMENT["values"]}
    assert environment == {"baseUrl": "http://127.0.0.1:3000", "apiKey": ""}  # the key is never committed
    defined = set(environment) | {v["key"] for v in COLLECTION["variable"]}
    assert len(REQUESTS) > 80
    names = [item["name"] for _, item in REQUESTS]
    assert len(names) == len(set(names)), "request names repeat (the report is read by name)"
    for folder, item in REQUESTS:
        where = f"{folder} / {item['name']}"
        sent = item["request"]
        assert sent["url"]["raw"].startswith("{{baseUrl}}/"), where
        assert set(VARIABLE.findall(json.dumps(sent))) <= defined, where
        assert not any(h["key"].lower() == "x-api-key" for h in sent["header"]), f"{where}: key by auth only"
        if "body" in sent:
            json.loads(sent["body"]["raw"])
        tests = postman_tests(item)
        for kind in KINDS:
            assert any(t.startswith(f"{kind}: ") for t in tests), f"{where} has no {kind} test: {tests}"
    # Requests that must go without the key say so; the refusals the collection documents.
    unkeyed = [item for _, item in REQUESTS if item["request"].get("auth", {}).get("type") == "noauth"]
    assert "Warehouse without the API key (401)" in {item["name"] for item in unkeyed}
    assert "{{baseUrl}}/healthz" in {item["request"]["url"]["raw"] for item in unkeyed}  # as Kubernetes asks
    statuses = {item["name"]: postman_tests(item)[0] for _, item in REQUESTS}
    assert statuses["Forecast with horizon 0 (422)"] == "status: 422"
    assert statuses["Unknown customer (404)"] == "status: 404"
    assert statuses["Warehouse with a wrong API key (403)"] == "status: 403"


def test_openapi_schemas_become_draft_7_for_newman_ajv() -> None:
    generator = load_generator()
    spec = {
        "components": {
            "schemas": {
                "Day": {"type": "string", "format": "date", "title": "Day", "examples": ["2026-01-01"]},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}},
            }
        }
    }
    schema = {
        "type": "object",
        "description": "dropped",
        "properties": {
            "day": {"$ref": "#/components/schemas/Day"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "legacy": {"type": "number", "nullable": True, "minimum": 0, "exclusiveMinimum": True},
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                "items": False,
            },
            "size": {"type": "integer", "format": "int64"},
        },
    }
    assert generator.draft7(spec, schema) == {
        "type": "object",
        "properties": {
            "day": {"type": "string", "format": "date"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "legacy": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "pair": {
                "type": "array",
                "items": [{"type": "string"}, {"type": "integer"}],
                "additionalItems": False,
            },
            "size": {"type": "integer"},  # a format ajv 6 does not know would fail to compile
        },
    }
    with pytest.raises(ValueError, match="recursive"):
        generator.draft7(spec, {"$ref": "#/components/schemas/Node"})
    with pytest.raises(ValueError, match="draft 7"):
        generator.draft7(spec, {"type": "object", "unevaluatedProperties": False})


# ------------------------------------------------------------------------------- against the service


@pytest.mark.slow
def test_newman_runs_the_collection_with_every_test_passing(service: RunningService) -> None:
    code, output, report = run_newman(COLLECTION_PATH, service, REPORTS)
    failed = failures(report)
    assert not failed, "\n".join(failed)
    assert code == 0, output[-5000:]
    assert report["run"]["stats"]["assertions"]["failed"] == 0
    executed = assertions_by_request(report)
    assert set(executed) == {item["name"] for _, item in REQUESTS}, "requests newman did not run"
    declared = {item["name"]: postman_tests(item) for _, item in REQUESTS}
    for name, assertions in executed.items():
        # Every test of the script ran (an asynchronous test whose callback never came would be dropped
        # without a word), and passed; each request has all three kinds.
        assert sorted(a["assertion"] for a in assertions) == sorted(declared[name]), name
        assert not [a for a in assertions if "error" in a], name
        for kind in KINDS:
            assert any(a["assertion"].startswith(f"{kind}: ") for a in assertions), f"{name}: no {kind} test"
    assert (REPORTS / "newman.xml").exists()


@pytest.mark.slow
def test_a_wrong_answer_fails_its_schema_and_its_rule(service: RunningService, tmp_path: Path) -> None:
    """The checks bite: the same tests against the wrong route's answer fail, by name."""
    by_name = {item["name"]: item for _, item in REQUESTS}
    bottom = copy.deepcopy(by_name["Top customers by revenue"])  # ranked highest first
    bottom["request"]["url"]["raw"] = bottom["request"]["url"]["raw"].replace("top-", "bottom-")
    bottom["request"]["url"]["path"][-1] = "bottom-customers"
    meta = copy.deepcopy(by_name["Total sales by region"])  # a ReportResult
    meta["request"]["url"] = {
        "raw": "{{baseUrl}}/analytics/meta",
        "host": ["{{baseUrl}}"],
        "path": ["analytics", "meta"],
    }
    wrong = {**COLLECTION, "item": [bottom, meta]}
    path = tmp_path / "wrong.postman_collection.json"
    path.write_text(json.dumps(wrong))
    code, _, report = run_newman(path, service, tmp_path)
    assert code == 1
    failed = {(f["source"]["name"], f["error"]["test"].split(":")[0]) for f in report["run"]["failures"]}
    # Bottom customers are a good ReportResult in the wrong order; the meta is no report at all.
    explained = "\n".join(failures(report))
    assert ("Top customers by revenue", "rule") in failed, explained
    assert ("Top customers by revenue", "schema") not in failed, explained
    assert ("Total sales by region", "schema") in failed, explained


@pytest.mark.slow
def test_collection_is_what_the_generator_makes_of_the_live_openapi(spec: dict[str, Any]) -> None:
    generator = load_generator()
    assert generator.render(generator.build_collection(spec)) == COLLECTION_PATH.read_text(), (
        "postman/salespulse.postman_collection.json is stale: "
        "run .venv/bin/python postman/make_collection.py --url <service URL>"
    )


@pytest.mark.slow
def test_every_operation_of_the_service_has_a_request(spec: dict[str, Any]) -> None:
    sent = {
        (item["request"]["method"], "/" + "/".join(item["request"]["url"]["path"])) for _, item in REQUESTS
    }
    missing = []
    for path, operations in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")
        for method in operations:
            if not any(m == method.upper() and pattern.match(p) for m, p in sent):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"operations without a request in the collection: {missing}"
