"""The Postman collection, proven rather than just written: every request is replayed against a real service
the way Postman sends it (variables substituted) and must answer what its test script asserts; and the file
must be what postman/make_collection.py generates from the live service's OpenAPI document, so a new or
changed route cannot be missing from it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
from service_support import (
    API_KEY,
    REPO_ROOT,
    RunningService,
    serve_with_fresh_models,
)

COLLECTION_PATH = REPO_ROOT / "postman" / "salespulse.postman_collection.json"
GENERATOR_PATH = REPO_ROOT / "postman" / "make_collection.py"
SCHEMA_V2_1 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

VARIABLE = re.compile(r"\{\{(\w+)\}\}")
# The vocabulary of the collection's test scripts; the replay refuses a script line it does not know, so an
# assertion can never be skipped silently.
STATUS = re.compile(r"^\s*pm\.response\.to\.have\.status\((\d{3})\);$")
JSON_BODY = re.compile(r"^\s*pm\.response\.json\(\);$")
INCLUDES = re.compile(r"^\s*pm\.expect\(pm\.response\.text\(\)\)\.to\.include\((\".*\")\);$")
TEST_OPEN = re.compile(r'^pm\.test\(".*", function \(\) \{$')
TEST_CLOSE = "});"


@dataclass(frozen=True)
class Expectation:
    status: int
    json_body: bool
    words: tuple[str, ...]


@dataclass(frozen=True)
class CollectionRequest:
    folder: str
    item: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.folder} / {self.item['name']}"

    def expectation(self) -> Expectation:
        (script,) = [e["script"]["exec"] for e in self.item.get("event", []) if e["listen"] == "test"]
        statuses, words, json_body = [], [], False
        for line in script:
            if status := STATUS.match(line):
                statuses.append(int(status.group(1)))
            elif JSON_BODY.match(line):
                json_body = True
            elif include := INCLUDES.match(line):
                words.append(json.loads(include.group(1)))
            elif not (TEST_OPEN.match(line) or line == TEST_CLOSE):
                raise AssertionError(f"{self.id}: test script line the replay does not understand: {line!r}")
        assert len(statuses) == 1, f"{self.id}: a test script asserts exactly one status"
        return Expectation(statuses[0], json_body, tuple(words))


def requests_of(items: list[dict[str, Any]], folder: str = "") -> list[CollectionRequest]:
    found = []
    for item in items:
        if "item" in item:  # a folder
            found += requests_of(item["item"], f"{folder}/{item['name']}".strip("/"))
        else:
            found.append(CollectionRequest(folder, item))
    return found


COLLECTION: dict[str, Any] = json.loads(COLLECTION_PATH.read_text())
REQUESTS = requests_of(COLLECTION["item"])


def substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        assert match.group(1) in variables, f"undefined variable {{{{{match.group(1)}}}}}"
        return variables[match.group(1)]

    return VARIABLE.sub(value, text)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_collection", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("postman"))


@pytest.fixture(scope="module")
def variables(service: RunningService) -> dict[str, str]:
    """The collection's variables as a Postman environment for this service would set them."""
    defaults = {v["key"]: v["value"] for v in COLLECTION["variable"]}
    return {**defaults, "baseUrl": service.url, "apiKey": API_KEY}


# ------------------------------------------------------------------------------------------- structure


def test_collection_is_a_postman_v2_1_collection_with_a_test_on_every_request() -> None:
    assert COLLECTION["info"]["schema"] == SCHEMA_V2_1
    defaults = {v["key"]: v["value"] for v in COLLECTION["variable"]}
    assert defaults["baseUrl"] == "http://127.0.0.1:3000"
    assert "apiKey" in defaults
    assert len(REQUESTS) > 60
    for request in REQUESTS:
        sent = request.item["request"]
        assert sent["method"] in {"GET", "POST"}, request.id
        assert sent["url"]["raw"].startswith("{{baseUrl}}/"), request.id
        assert set(VARIABLE.findall(json.dumps(sent))) <= set(defaults), request.id
        if "body" in sent:
            json.loads(sent["body"]["raw"])
        request.expectation()  # parses, with exactly one status
    names = [r.id for r in REQUESTS]
    assert len(names) == len(set(names)), "request names repeat within a folder"
    # The bad-input examples the collection documents.
    statuses = {r.item["name"]: r.expectation().status for r in REQUESTS}
    assert statuses["Forecast with horizon 0 (422)"] == 422
    assert statuses["Query an unknown measure (422)"] == 422


# ------------------------------------------------------------------------------- against the service


@pytest.mark.slow
def test_collection_is_what_the_generator_makes_of_the_live_openapi(service: RunningService) -> None:
    spec = httpx.get(f"{service.url}/docs.json", timeout=30).raise_for_status().json()
    generator = load_generator()
    assert generator.render(generator.build_collection(spec)) == COLLECTION_PATH.read_text(), (
        "postman/salespulse.postman_collection.json is stale: "
        "run .venv/bin/python postman/make_collection.py --url <service URL>"
    )


@pytest.mark.slow
def test_every_operation_of_the_service_has_a_request(service: RunningService) -> None:
    spec = httpx.get(f"{service.url}/docs.json", timeout=30).raise_for_status().json()
    sent = {(r.item["request"]["method"], "/" + "/".join(r.item["request"]["url"]["path"])) for r in REQUESTS}
    missing = []
    for path, operations in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")
        for method in operations:
            if not any(m == method.upper() and pattern.match(p) for m, p in sent):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"operations without a request in the collection: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("request_", REQUESTS, ids=[r.id for r in REQUESTS])
def test_request_answers_as_its_test_script_expects(
    service: RunningService, variables: dict[str, str], request_: CollectionRequest
) -> None:
    sent = request_.item["request"]
    url = substitute(sent["url"]["raw"], variables)
    headers = {h["key"]: substitute(h["value"], variables) for h in sent["header"] if not h.get("disabled")}
    body = substitute(sent["body"]["raw"], variables).encode() if "body" in sent else None
    answer = httpx.request(sent["method"], url, headers=headers, content=body, timeout=60)
    expected = request_.expectation()
    assert answer.status_code == expected.status, f"{sent['method']} {url}: {answer.text[:1000]}"
    if expected.json_body:
        answer.json()
    for words in expected.words:
        assert words in answer.text, answer.text[:1000]
