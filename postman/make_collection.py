"""Generate postman/salespulse.postman_collection.json from a running service's OpenAPI document.

    .venv/bin/python postman/make_collection.py --url http://127.0.0.1:3000          # (re)write the file
    .venv/bin/python postman/make_collection.py --url http://127.0.0.1:3000 --check  # exit 1 if it is stale

Every operation of GET /docs.json becomes at least one request, so a new route shows up in the collection
the next time it is generated (and ``--check`` fails until it is). Request bodies and query values come from
the examples in the OpenAPI document where it has complete ones; the prediction endpoints, whose examples
are per field, and the 4xx examples are declared here. Each request has a test script asserting its status
(and, for errors, words of the message), which tests/test_postman_collection.py replays against a real
service.

Variables: ``baseUrl`` (default http://127.0.0.1:3000), ``apiKey`` (the service's SALESPULSE_API_KEY; sent
as x-api-key on every request, which also makes the collection work with SALESPULSE_READ_ACCESS=keyed) and
``customerId`` (a customer in the warehouse).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLLECTION_FILE = Path(__file__).resolve().parent / "salespulse.postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
VARIABLES = {
    "baseUrl": "http://127.0.0.1:3000",
    "apiKey": "change-me",
    "customerId": "C-0000001",
}

# Report parameters every report accepts (the filters the semantic layer declares, and time); left in the
# request but disabled, so a report runs over all the data by default and the filters are one click away in
# Postman.
COMMON_REPORT_PARAMS = {
    "region",
    "country",
    "state",
    "category",
    "subcategory",
    "product",
    "channel",
    "salesman",
    "distributor",
    "customer_segment",
    "start",
    "end",
    "as_of",
}
# BentoML's probes and /metrics: no JSON (the probes answer an empty body, /metrics Prometheus text). The
# probes need no key; /metrics is keyed like a read (SALESPULSE_READ_ACCESS=keyed), so it sends the key.
INFRASTRUCTURE_PATHS = {"/healthz", "/livez", "/readyz", "/metrics"}
UNKEYED_PATHS = {"/healthz", "/livez", "/readyz"}

FOLDERS = [
    ("Predictions", "POST /forecast and POST /segment (BentoML APIs)."),
    ("Segments and customers", "Segment profiles and one customer's profile."),
    ("Models and health", "The models in service and the service's state."),
    ("Admin", "Needs the API key."),
    ("Analytics: query", "The semantic layer: POST /analytics/query, GET /analytics/meta."),
    ("Analytics: reports", "One GET route per named report; the common filters are disabled parameters."),
    ("Analytics: ingest", "Append order lines (needs the API key); re-sending a batch changes nothing."),
    ("Infrastructure", "BentoML's probes and Prometheus metrics."),
]
FOLDER_OF_TAG = {
    "Service APIs": "Predictions",
    "segments": "Segments and customers",
    "models": "Models and health",
    "health": "Models and health",
    "admin": "Admin",
    "query": "Analytics: query",
    "ingest": "Analytics: ingest",
    "Infrastructure": "Infrastructure",
}


@dataclass(frozen=True)
class Example:
    """One request of the collection and what its test script asserts."""

    name: str
    body: Any = None
    status: int = 200
    words: tuple[str, ...] = ()
    """Text the response must contain (a 4xx must say what is wrong)."""
    path: str | None = None
    """The path with variables filled in, when the operation's path has parameters."""
    query: list[tuple[str, str, bool]] = field(default_factory=list)
    """(name, value, enabled) query parameters."""
    with_key: bool = True
    json_answer: bool = True
    """False for downloads (CSV, xlsx): the test then checks the status and words only."""


def _schema_example(spec: dict[str, Any], name: str) -> Any:
    examples = spec["components"]["schemas"][name].get("examples") or []
    if not examples:
        raise ValueError(
            f"the OpenAPI schema {name} has no example: declare the request in make_collection.py"
        )
    return examples[0]


def _property_example(operation: dict[str, Any], prop: str) -> Any:
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema["properties"][prop]["examples"][0]


def curated(spec: dict[str, Any]) -> dict[tuple[str, str], list[Example]]:
    """The requests of the operations that need more than the OpenAPI examples: bodies and 4xx cases."""
    paths = spec["paths"]
    segment = paths["/segment"]["post"]
    forecast = paths["/forecast"]["post"]
    customers = paths["/predict/customers"]["post"]
    sales_batch = _schema_example(spec, "SalesBatch")
    return {
        ("post", "/forecast"): [
            Example(
                "Forecast categories, 28 days, 80% and 95% intervals",
                {
                    "level": "category",
                    "series": _property_example(forecast, "series"),
                    "horizon": 28,
                    "intervals": [80, 95],
                },
            ),
            Example("Forecast the total, 7 days", {"level": "total", "series": ["total"], "horizon": 7}),
            Example(
                "Forecast with horizon 0 (422)",
                {"level": "category", "series": ["Technology"], "horizon": 0},
                status=422,
                words=("horizon",),
            ),
            Example(
                "Forecast an unknown series (404)",
                {"level": "category", "series": ["Spaceships"]},
                status=404,
                words=("Spaceships",),
            ),
        ],
        ("post", "/segment"): [
            Example("Segment customers by id", {"customer_ids": _property_example(segment, "customer_ids")}),
            Example(
                "Segment customers by raw features", {"customers": _property_example(segment, "customers")}
            ),
            Example(
                "Segment an unknown customer id (404)",
                {"customer_ids": ["NOPE-1"]},
                status=404,
                words=("NOPE-1",),
            ),
            Example("Segment with neither ids nor features (422)", {}, status=422, words=("exactly one",)),
        ],
        ("post", "/predict/customers"): [
            Example(
                "Predict customers by id: purchases and spend in 90 days, lifetime value",
                {"customer_ids": _property_example(customers, "customer_ids"), "horizon_days": 90},
            ),
            Example(
                "Predict customers by purchase summary",
                {"customers": _property_example(customers, "customers")},
            ),
            Example(
                "Predict an unknown customer id (404)",
                {"customer_ids": ["NOPE-1"]},
                status=404,
                words=("NOPE-1",),
            ),
        ],
        ("get", "/export/report/{name}.{fmt}"): [
            Example(
                "Download a report as CSV",
                path="/export/report/sales-by-state.csv",
                json_answer=False,
                words=("state",),
            ),
            Example("Download an unknown report (404)", path="/export/report/nope.csv", status=404),
        ],
        ("post", "/export/query.{fmt}"): [
            Example(
                "Download a query as CSV",
                {"measures": ["revenue"], "dimensions": ["region"]},
                path="/export/query.csv",
                json_answer=False,
                words=("region",),
            ),
        ],
        ("get", "/admin/warehouse"): [
            Example("Warehouse: row counts and sales range"),
            Example("Warehouse without the API key (401)", status=401, words=("API key",), with_key=False),
        ],
        ("post", "/admin/import"): [
            Example(
                "Import a file that isn't there (422)",
                {"file": "/no/such/orders.csv", "mapping": "/no/such/mapping.yaml"},
                status=422,
                words=("not an existing file",),
            ),
        ],
        ("post", "/admin/import-goals"): [
            Example(
                "Import a goal plan that isn't there (422)",
                {"file": "/no/such/plan.csv"},
                status=422,
                words=("not an existing file",),
            ),
        ],
        ("post", "/admin/snapshot"): [
            Example(
                "Snapshot to a relative path (422)",
                {"path": "copy.duckdb"},
                status=422,
                words=("absolute path",),
            ),
        ],
        ("get", "/customers/{customer_id}"): [
            Example("Customer profile", path="/customers/{{customerId}}"),
            Example("Unknown customer (404)", path="/customers/NOPE-42", status=404, words=("NOPE-42",)),
        ],
        ("post", "/admin/reload"): [
            Example("Reload the registry's champions"),
            Example("Reload without the API key (401)", status=401, words=("API key",), with_key=False),
        ],
        ("post", "/analytics/query"): [
            Example(
                "Query: revenue and orders by category and month, vs a year before",
                _schema_example(spec, "Query"),
            ),
            Example(
                "Query: revenue, profit and margin by region",
                {
                    "measures": ["revenue", "profit", "margin_pct"],
                    "dimensions": ["region"],
                    "order": [{"member": "revenue", "direction": "desc"}],
                },
            ),
            Example(
                "Query an unknown measure (422)",
                {"measures": ["revenu"]},
                status=422,
                words=("unknown measure",),
            ),
        ],
        ("post", "/analytics/sales"): [
            Example("Append order lines", sales_batch),
            Example(
                "Append order lines without the API key (401)",
                sales_batch,
                status=401,
                words=("API key",),
                with_key=False,
            ),
        ],
    }


def _query_value(value: Any) -> list[str]:
    """A query parameter's example as the strings sent (a list repeats the parameter)."""
    if isinstance(value, list):
        return [item for v in value for item in _query_value(v)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]


def derived(path: str, method: str, operation: dict[str, Any]) -> Example:
    """The request of an operation with nothing declared: its summary, query parameters from examples."""
    if "requestBody" in operation:
        raise ValueError(f"{method.upper()} {path} takes a body: declare its request in make_collection.py")
    query: list[tuple[str, str, bool]] = []
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            raise ValueError(f"{method.upper()} {path} has path parameters: declare its request")
        if parameter["in"] != "query":
            continue
        examples = parameter.get("schema", {}).get("examples") or []
        if not examples:
            if parameter.get("required"):
                raise ValueError(
                    f"{method.upper()} {path}: required parameter {parameter['name']} has no example"
                )
            continue
        enabled = parameter["name"] not in COMMON_REPORT_PARAMS
        query.extend((parameter["name"], value, enabled) for value in _query_value(examples[0]))
    name = operation.get("summary") or f"{method.upper()} {path}"
    return Example(name, query=query, with_key=path not in UNKEYED_PATHS)


def _test_script(example: Example, json_body: bool) -> list[str]:
    lines = [
        f'pm.test("status is {example.status}", function () {{',
        f"    pm.response.to.have.status({example.status});",
        "});",
    ]
    if json_body:
        lines += ['pm.test("body is JSON", function () {', "    pm.response.json();", "});"]
    for words in example.words:
        lines += [
            f'pm.test("says {words}", function () {{',
            f"    pm.expect(pm.response.text()).to.include({json.dumps(words)});",
            "});",
        ]
    return lines


def _request_item(method: str, path: str, operation: dict[str, Any], example: Example) -> dict[str, Any]:
    target = example.path or path
    enabled = [(k, v) for k, v, on in example.query if on]
    raw = "{{baseUrl}}" + target + ("?" + "&".join(f"{k}={v}" for k, v in enabled) if enabled else "")
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": target.strip("/").split("/")}
    if example.query:
        url["query"] = [
            {"key": k, "value": v, **({} if on else {"disabled": True})} for k, v, on in example.query
        ]
    headers = [{"key": "x-api-key", "value": "{{apiKey}}"}] if example.with_key else []
    request: dict[str, Any] = {"method": method.upper(), "header": headers, "url": url}
    if example.body is not None:
        headers.append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(example.body, indent=2, ensure_ascii=False),
            "options": {"raw": {"language": "json"}},
        }
    description = (operation.get("description") or operation.get("summary") or "").strip()
    if description:
        request["description"] = " ".join(description.split())
    # The probes answer an empty body, /metrics text, downloads CSV or xlsx.
    json_body = path not in INFRASTRUCTURE_PATHS and example.json_answer
    return {
        "name": example.name,
        "event": [
            {
                "listen": "test",
                "script": {"type": "text/javascript", "exec": _test_script(example, json_body)},
            }
        ],
        "request": request,
    }


def _folder_of(path: str, operation: dict[str, Any]) -> str:
    if path.startswith("/analytics/reports"):
        return "Analytics: reports"
    tag = (operation.get("tags") or ["other"])[0]
    return FOLDER_OF_TAG.get(tag, tag)


def build_collection(spec: dict[str, Any]) -> dict[str, Any]:
    """The Postman v2.1 collection of every operation in ``spec`` (the service's OpenAPI document)."""
    declared = curated(spec)
    missing = [f"{m.upper()} {p}" for m, p in declared if m not in spec["paths"].get(p, {})]
    if missing:
        raise ValueError(f"declared requests for operations the service no longer has: {missing}")
    folders: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in FOLDERS}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            examples = declared.get((method, path)) or [derived(path, method, operation)]
            folder = folders.setdefault(_folder_of(path, operation), [])
            folder.extend(_request_item(method, path, operation, example) for example in examples)
    descriptions = dict(FOLDERS)
    return {
        "info": {
            "name": "salespulse",
            "description": (
                "Every endpoint of the salespulse service: forecasts, segments, customers, models, health, "
                "admin reload and the analytics API. Set baseUrl, apiKey (SALESPULSE_API_KEY) and "
                "customerId. Generated from the service's OpenAPI document by postman/make_collection.py."
            ),
            "schema": SCHEMA,
        },
        "variable": [{"key": key, "value": value, "type": "string"} for key, value in VARIABLES.items()],
        "item": [
            {"name": name, "description": descriptions.get(name, ""), "item": items}
            for name, items in folders.items()
            if items
        ],
    }


def render(collection: dict[str, Any]) -> str:
    return json.dumps(collection, indent=2, ensure_ascii=False) + "\n"


def fetch_spec(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + "/docs.json", timeout=30) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="base URL of a running service (its /docs.json is read)")
    source.add_argument("--spec", type=Path, help="a saved OpenAPI document")
    parser.add_argument("--out", type=Path, default=COLLECTION_FILE)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the file is stale")
    args = parser.parse_args(argv)
    spec = fetch_spec(args.url) if args.url else json.loads(args.spec.read_text())
    text = render(build_collection(spec))
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run postman/make_collection.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text)
    count = sum(len(folder["item"]) for folder in json.loads(text)["item"])
    print(f"wrote {args.out} ({count} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
