"""Generate postman/salespulse.postman_collection.json from a running service's OpenAPI document.

    .venv/bin/python postman/make_collection.py --url http://127.0.0.1:3000          # (re)write the file
    .venv/bin/python postman/make_collection.py --url http://127.0.0.1:3000 --check  # exit 1 if it is stale

Every operation of GET /docs.json becomes at least one request, so a new route shows up in the collection
the next time it is generated (and ``--check`` fails until it is). Each request's test script checks three
things, as Postman tests named by what they are:

- ``status: <code>``: the status (the operation's documented 2xx, or the 4xx a bad request must get);
- ``schema: ...``: the answer against the document's schema for that status and media type, ``$ref``s
  inlined and converted to the JSON Schema draft 7 that newman's ajv 6 reads (a download: its media type and
  shape);
- ``rule: ...``: the business rules of the endpoint (postman/rules.py), e.g. a forecast's points per series
  equal the horizon, the rows of a report add up to the total revenue, a refusal names the field.

Request bodies and query values come from the document's examples (``requestBody`` ``example(s)``, schema
``examples``, parameter examples); requests whose values must exist in the warehouse (customer ids, series
keys) take them from collection variables that the collection's pre-request script reads from the service
once. The key goes as ``x-api-key`` by the collection's API-key auth (``{{apiKey}}``); requests made
without it say ``noauth``. ``baseUrl`` and ``apiKey`` come from postman/salespulse.postman_environment.json
(or ``newman --env-var``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules import (
    OPERATION_RULES,
    REPORT_RULES,
    Rule,
    catalogue_rule,
    error_rule,
    helpers_for,
    js,
)

HERE = Path(__file__).resolve().parent
COLLECTION_FILE = HERE / "salespulse.postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
REPORTS_PREFIX = "/analytics/reports/"

# Values of the service under test, read by the collection's pre-request script (see LIVE_VALUES_SCRIPT).
LIVE_VARIABLES = ("segments", "customerId", "customerId2", "seriesA", "seriesB", "regionA", "regionB")
LIVE_VARIABLES += ("productId", "liveFrom")

# Report parameters every report accepts (the member filters, and time): left in the request but disabled,
# so a report runs over all the data by default and the filters are one click away in Postman.
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
# Kubernetes' probes send no key: the collection checks that they answer without one.
UNKEYED_PATHS = {"/healthz", "/livez", "/readyz"}

FOLDERS = [
    ("Predictions", "POST /forecast and POST /predict/customers."),
    ("Segments and customers", "The segmentation model: POST /segment, the segments, a customer's profile."),
    ("Models and health", "The models in service, the service's state, the probes and Prometheus metrics."),
    ("Admin", "Needs the API key."),
    ("Analytics: query", "The semantic layer: POST /analytics/query, GET /analytics/meta."),
    ("Analytics: reports", "One GET route per named report; the common filters are disabled parameters."),
    ("Analytics: insights", "Written insights over the reports."),
    ("Exports", "Reports and queries as CSV (or Excel)."),
    ("Analytics: ingest", "Append order lines (needs the API key); re-sending a batch changes nothing."),
]
FOLDER_OF_TAG = {
    "forecasts": "Predictions",
    "customers": "Predictions",
    "Service APIs": "Predictions",
    "segments": "Segments and customers",
    "models": "Models and health",
    "health": "Models and health",
    "Infrastructure": "Models and health",
    "admin": "Admin",
    "query": "Analytics: query",
    "reports": "Analytics: reports",
    "insights": "Analytics: insights",
    "exports": "Exports",
    "ingest": "Analytics: ingest",
}
"""Folders by the operation's first tag (a tag not listed here is a folder of its own)."""

# ---------------------------------------------------------------------- OpenAPI schema -> JSON Schema draft 7

# newman validates with ajv 6 (draft 7): keywords of later drafts that draft 7 cannot say would be ignored
# without a word, so the conversion refuses them rather than check less than the document says.
DRAFT7_KEYWORDS = {
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "format",
}
SUBSCHEMA_KEYWORDS = {"not", "if", "then", "else", "additionalProperties", "additionalItems", "contains"}
SUBSCHEMA_KEYWORDS |= {"propertyNames"}
SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}
SUBSCHEMA_MAPS = {"properties", "patternProperties"}
UNSUPPORTED = {"unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains", "$dynamicRef"}
UNSUPPORTED |= {"$recursiveRef", "contentSchema"}
# The formats ajv 6 knows; it refuses to compile a schema with another (OpenAPI's int64, binary, ...), which
# say nothing a JSON value could be checked against anyway.
AJV6_FORMATS = {
    "date",
    "time",
    "date-time",
    "uri",
    "uri-reference",
    "uri-template",
    "url",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "regex",
    "uuid",
    "json-pointer",
    "json-pointer-uri-fragment",
    "relative-json-pointer",
}


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """``node`` with a top-level ``$ref`` (a pointer into ``spec``) followed, its siblings kept (3.1)."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            raise ValueError(f"cannot follow $ref {ref!r}")
        seen.add(ref)
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def draft7(spec: dict[str, Any], schema: Any, trail: tuple[str, ...] = ()) -> Any:
    """An OpenAPI 3.0/3.1 schema as self-contained JSON Schema draft 7 (``$ref``s inlined, annotations
    dropped, ``nullable`` and ``prefixItems`` rewritten)."""
    if not isinstance(schema, dict):
        return schema  # true / false
    if "$ref" in schema:
        if schema["$ref"] in trail:
            raise ValueError(f"recursive schema {schema['$ref']}: not supported")
        return draft7(spec, resolve(spec, schema), (*trail, schema["$ref"]))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in UNSUPPORTED:
            raise ValueError(f"JSON Schema keyword {key!r} has no draft 7 equivalent (newman's ajv 6)")
        if key == "format":
            if value in AJV6_FORMATS:
                out[key] = value
        elif key in DRAFT7_KEYWORDS:
            out[key] = value
        elif key in SUBSCHEMA_KEYWORDS:
            out[key] = draft7(spec, value, trail)
        elif key in SUBSCHEMA_LISTS:
            out[key] = [draft7(spec, item, trail) for item in value]
        elif key in SUBSCHEMA_MAPS:
            out[key] = {name: draft7(spec, item, trail) for name, item in value.items()}
        elif key == "items":
            if "prefixItems" in schema:  # 2020-12 tuple: items is what follows the prefix
                out["additionalItems"] = draft7(spec, value, trail)
            elif isinstance(value, list):
                out[key] = [draft7(spec, item, trail) for item in value]
            else:
                out[key] = draft7(spec, value, trail)
        elif key == "prefixItems":
            out["items"] = [draft7(spec, item, trail) for item in value]
        elif key == "dependentRequired":
            out.setdefault("dependencies", {}).update(value)
        elif key == "dependentSchemas":
            out.setdefault("dependencies", {}).update({k: draft7(spec, v, trail) for k, v in value.items()})
        # Anything else is an annotation (title, description, examples, default, ...) or OpenAPI's own.
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:  # OpenAPI 3.0: a flag on minimum / maximum
            out[bound] = out.pop(limit)
        elif out.get(bound) is False:
            del out[bound]
    if schema.get("nullable") is True:  # OpenAPI 3.0
        out = _nullable(out)
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema and None not in schema["enum"]:
        schema = {**schema, "enum": [*schema["enum"], None]}
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    if isinstance(schema.get("type"), list):
        return {**schema, "type": sorted({*schema["type"], "null"})}
    return {"anyOf": [schema, {"type": "null"}]}


# ------------------------------------------------------------------------------------- the documented answer


@dataclass(frozen=True)
class Answer:
    """What the document says an operation answers with a status: its media types and the JSON schema."""

    status: int
    media_types: tuple[str, ...]
    schema: Any = None
    """Draft 7 schema of the JSON answer, None when there is no JSON content."""
    schema_name: str = ""
    documented: bool = True


def documented_answer(spec: dict[str, Any], operation: dict[str, Any], status: int) -> Answer:
    responses = operation.get("responses", {})
    response = next(
        (responses[k] for k in (str(status), f"{status // 100}XX", "default") if k in responses), None
    )
    documented = response is not None
    if response is None:
        # An undocumented refusal: every endpoint answers errors with the service's one error body.
        if status >= 400 and "ErrorBody" in spec.get("components", {}).get("schemas", {}):
            response = {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            }
        else:
            raise ValueError(f"status {status} is not documented and has no error body to fall back on")
    response = resolve(spec, response)
    content = response.get("content") or {}
    media_types = tuple(content)
    json_type = next((m for m in media_types if m.split(";")[0].strip().endswith("json")), None)
    if json_type is None:
        return Answer(status, media_types, documented=documented)
    raw = content[json_type].get("schema", {})
    name = raw["$ref"].rsplit("/", 1)[1] if isinstance(raw, dict) and "$ref" in raw else ""
    return Answer(status, media_types, draft7(spec, raw), name, documented)


def success_status(operation: dict[str, Any]) -> int:
    """The operation's documented 2xx status (the lowest), else 200."""
    codes = sorted(int(k) for k in operation.get("responses", {}) if k.isdigit() and k.startswith("2"))
    return codes[0] if codes else 200


def keyless(operation: dict[str, Any], path: str) -> bool:
    """Whether the operation is sent without the API key: it says ``security: []``, or it is a probe."""
    return operation.get("security") == [] or path in UNKEYED_PATHS


# -------------------------------------------------------------------------------------- example values


def parameter_example(spec: dict[str, Any], parameter: dict[str, Any]) -> Any:
    """A parameter's example, wherever the document puts it (None when it has none)."""
    if "example" in parameter:
        return parameter["example"]
    if parameter.get("examples"):
        return resolve(spec, next(iter(parameter["examples"].values()))).get("value")
    schema = resolve(spec, parameter.get("schema", {}))
    if "example" in schema:
        return schema["example"]
    return (schema.get("examples") or [None])[0]


def body_examples(spec: dict[str, Any], operation: dict[str, Any]) -> list[tuple[str, Any]]:
    """The operation's JSON request body examples as (summary, value): the media type's ``examples`` (each
    named one), its ``example``, or the schema's first example."""
    body = resolve(spec, operation.get("requestBody", {}))
    content = (body.get("content") or {}).get("application/json")
    if content is None:
        return []
    if content.get("examples"):
        found = []
        for key, example in content["examples"].items():
            example = resolve(spec, example)
            if "value" in example:
                found.append((example.get("summary") or key, example["value"]))
        return found
    if "example" in content:
        return [("", content["example"])]
    schema = resolve(spec, content.get("schema", {}))
    if "example" in schema:
        return [("", schema["example"])]
    return [("", schema["examples"][0])] if schema.get("examples") else []


def _query_value(value: Any) -> list[str]:
    """A query parameter's example as the strings sent (a list repeats the parameter)."""
    if isinstance(value, list):
        return [item for v in value for item in _query_value(v)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]


# ------------------------------------------------------------------------------------------ the requests


@dataclass(frozen=True)
class Example:
    """One request of the collection: what it sends, the status it must get and the rules of its answer."""

    name: str
    body: Any = None
    status: int | None = None
    """None: the operation's documented 2xx."""
    path: str | None = None
    """The path with its variables filled in, when the operation's path has parameters."""
    query: tuple[tuple[str, str, bool], ...] = ()
    """(name, value, enabled) query parameters."""
    key: str | None = "{{apiKey}}"
    """The x-api-key sent: None sends none, another value a wrong key."""
    rules: tuple[Rule, ...] = ()
    """The rules of an error answer (a 2xx takes its operation's)."""


def refused(name: str, status: int, field_: str, *words: str, **request: Any) -> Example:
    """A request the service must refuse with ``status``, naming ``field_`` (and saying ``words``)."""
    return Example(name, status=status, rules=(error_rule(field_, *words),), **request)


def derived_query(
    spec: dict[str, Any], path: str, operation: dict[str, Any]
) -> tuple[tuple[str, str, bool], ...]:
    query: list[tuple[str, str, bool]] = []
    for parameter in operation.get("parameters", []):
        parameter = resolve(spec, parameter)
        if parameter["in"] != "query":
            continue
        example = parameter_example(spec, parameter)
        if example is None:
            if parameter.get("required"):
                raise ValueError(f"{path}: required parameter {parameter['name']} has no example")
            continue
        enabled = parameter["name"] not in COMMON_REPORT_PARAMS
        query.extend((parameter["name"], value, enabled) for value in _query_value(example))
    return tuple(query)


def derived(spec: dict[str, Any], path: str, method: str, operation: dict[str, Any]) -> list[Example]:
    """The requests of an operation with nothing declared here: its query parameters' and body's examples."""
    if any(resolve(spec, p)["in"] == "path" for p in operation.get("parameters", [])):
        raise ValueError(f"{method.upper()} {path} has path parameters: declare its requests")
    name = operation.get("summary") or f"{method.upper()} {path}"
    query = derived_query(spec, path, operation)
    key = None if keyless(operation, path) else "{{apiKey}}"
    if "requestBody" not in operation:
        return [Example(name, query=query, key=key)]
    bodies = body_examples(spec, operation)
    if not bodies:
        raise ValueError(f"{method.upper()} {path} takes a body with no example: declare its requests")
    return [
        Example(f"{name}: {summary}" if summary and len(bodies) > 1 else name, body, query=query, key=key)
        for summary, body in bodies
    ]


# Values that must exist in the warehouse, from the collection variables the pre-request script fills: the
# document's examples keep their shape (level, horizon, intervals, promotions) with these ids in place.
LIVE_CUSTOMERS = ["{{customerId}}", "{{customerId2}}"]
LIVE_SERIES = {
    "total": ["total"],
    "category": ["{{seriesA}}", "{{seriesB}}"],
    "region": ["{{regionA}}", "{{regionB}}"],
    "category_region": ["{{seriesA}}|{{regionA}}", "{{seriesB}}|{{regionA}}"],
    "product": ["{{productId}}"],
    "product_region": ["{{productId}}|{{regionA}}"],
}
DEFAULT_LEVEL = "product_region"


def livened(body: Any) -> Any:
    """A prediction body with its customer ids, series keys and promoted products replaced by the service's
    own (collection variables)."""
    if not isinstance(body, dict):
        return body
    body = copy.deepcopy(body)
    if isinstance(body.get("customer_ids"), list):
        body["customer_ids"] = LIVE_CUSTOMERS[: max(1, len(body["customer_ids"]))]
    if isinstance(body.get("series"), list):
        level = body.get("level", DEFAULT_LEVEL)
        if level not in LIVE_SERIES:
            raise ValueError(f"no live series keys for level {level!r}: add them to LIVE_SERIES")
        body["series"] = LIVE_SERIES[level][: max(1, len(body["series"]))]
    for promotion in body.get("promotions") or []:
        if isinstance(promotion, dict) and "product_id" in promotion:
            promotion["product_id"] = "{{productId}}"
    return body


def documented_requests(
    spec: dict[str, Any], path: str, title: str, fallback: list[Example]
) -> list[Example]:
    """One request per body example of ``POST path`` in the document, livened; ``fallback`` without any."""
    bodies = body_examples(spec, spec["paths"][path]["post"])
    if not bodies:
        return fallback
    unnamed = "the document's example"
    return [Example(f"{title}: {summary or unnamed}", livened(body)) for summary, body in bodies]


def curated(spec: dict[str, Any]) -> dict[tuple[str, str], list[Example]]:
    """The requests of the operations that need more than the document's examples: values that must exist
    in the warehouse (collection variables), several cases, refusals."""
    paths = spec["paths"]
    return {
        ("post", "/forecast"): [
            *documented_requests(
                spec,
                "/forecast",
                "Forecast",
                [
                    Example(
                        "Forecast: the two biggest categories, 28 days, 80% and 95% intervals",
                        {
                            "level": "category",
                            "series": LIVE_SERIES["category"],
                            "horizon": 28,
                            "intervals": [80, 95],
                        },
                    ),
                    Example(
                        "Forecast: the total, 8 weeks",
                        {"level": "total", "series": ["total"], "freq": "W", "horizon": 8},
                    ),
                ],
            ),
            refused(
                "Forecast with horizon 0 (422)",
                422,
                "horizon",
                body={"level": "category", "series": ["{{seriesA}}"], "horizon": 0},
            ),
            refused(
                "Forecast an unknown series (404)",
                404,
                "series",
                "Spaceships",
                body={"level": "category", "series": ["Spaceships"]},
            ),
        ],
        ("post", "/segment"): [
            *documented_requests(
                spec,
                "/segment",
                "Segment",
                [Example("Segment: the two biggest customers by id", {"customer_ids": LIVE_CUSTOMERS})],
            ),
            refused(
                "Segment an unknown customer id (404)",
                404,
                "customer_ids",
                "NOPE-1",
                body={"customer_ids": ["NOPE-1"]},
            ),
            refused("Segment with neither ids nor features (422)", 422, "body", "exactly one", body={}),
        ],
        ("post", "/predict/customers"): [
            *documented_requests(
                spec,
                "/predict/customers",
                "Predict customers",
                [
                    Example(
                        "Predict customers: the two biggest, purchases and spend in 90 days, lifetime value",
                        {"customer_ids": LIVE_CUSTOMERS, "horizon_days": 90},
                    )
                ],
            ),
            refused(
                "Predict an unknown customer id (404)",
                404,
                "customer_ids",
                "NOPE-1",
                body={"customer_ids": ["NOPE-1"]},
            ),
        ],
        ("get", "/customers/{customer_id}"): [
            Example("The biggest customer's profile", path="/customers/{{customerId}}"),
            refused("Unknown customer (404)", 404, "customer_id", "NOPE-42", path="/customers/NOPE-42"),
        ],
        ("get", "/export/report/{name}.{fmt}"): [
            Example("Download a report as CSV", path="/export/report/sales-by-state.csv"),
            refused("Download an unknown report (404)", 404, "name", "nope", path="/export/report/nope.csv"),
        ],
        ("post", "/export/query.{fmt}"): [
            Example("Download a query as CSV", body, path="/export/query.csv")
            for _, body in body_examples(spec, paths["/export/query.{fmt}"]["post"])[:1]
        ],
        ("get", "/admin/warehouse"): [
            Example("Warehouse: row counts and sales range"),
            refused("Warehouse without the API key (401)", 401, "x-api-key", "API key", key=None),
            refused("Warehouse with a wrong API key (403)", 403, "x-api-key", key="not-the-key"),
        ],
        ("post", "/admin/import"): [
            refused(
                "Import a file that isn't there (404)",
                404,
                "file",
                "no file",
                body={"file": "/no/such/orders.csv", "mapping": "/no/such/mapping.yaml"},
            ),
        ],
        ("post", "/admin/import-goals"): [
            refused(
                "Import a goal plan that isn't there (404)",
                404,
                "file",
                "no file",
                body={"file": "/no/such/plan.csv"},
            ),
        ],
        ("post", "/admin/snapshot"): [
            refused(
                "Snapshot to a relative path (422)",
                422,
                "path",
                body={"path": "copy.duckdb"},
            ),
        ],
        ("post", "/admin/reload"): [
            Example("Reload the registry's champions"),
            refused("Reload without the API key (401)", 401, "x-api-key", "API key", key=None),
        ],
        ("post", "/analytics/query"): [
            *[
                Example(f"Query: {summary}" if summary else "Query: the document's example", body)
                for summary, body in body_examples(spec, paths["/analytics/query"]["post"])
            ],
            Example(
                "Query: revenue, profit and margin by region",
                {
                    "measures": ["revenue", "profit", "margin_pct"],
                    "dimensions": ["region"],
                    "order": [{"member": "revenue", "direction": "desc"}],
                },
            ),
            refused(
                "Query an unknown measure (422)", 422, "measures[0]", "revenu", body={"measures": ["revenu"]}
            ),
        ],
        ("post", "/analytics/sales"): [
            *[
                Example("Append order lines" + (f": {summary}" if summary else ""), body)
                for summary, body in body_examples(spec, paths["/analytics/sales"]["post"])
            ],
            refused(
                "Append order lines without the API key (401)",
                401,
                "x-api-key",
                "API key",
                body={"lines": []},
                key=None,
            ),
        ],
    }


# Requests added after an operation's derived one: refusals of bad query values, and cases with rows.
EXTRA: dict[tuple[str, str], list[Example]] = {
    ("get", "/analytics/reports/top-customers"): [
        refused("Top customers with n = 0 (422)", 422, "n", query=(("n", "0", True),)),
    ],
    # Cases with rows in any warehouse with sales and goals, so that the rules of every row check something.
    ("get", "/analytics/reports/sales-opportunities"): [
        Example(
            "Sales opportunities at any attainment (0 to 1000%)",
            query=(("low_pct", "0", True), ("high_pct", "1000", True)),
        ),
    ],
    ("get", "/analytics/reports/product-affinity"): [
        Example("Product affinity of all pairs", query=(("n", "20", True),)),
    ],
    ("get", "/analytics/reports/slow-movers"): [
        Example(
            "Slow movers, discontinued products included",
            query=(("days", "30", True), ("include_discontinued", "true", True)),
        ),
    ],
    ("get", "/analytics/reports/sales-by-region"): [
        refused("Sales by region from month 13 (422)", 422, "start", query=(("start", "2026-13-01", True),)),
    ],
}


# ------------------------------------------------------------------------------------------ test scripts


def rules_of(spec: dict[str, Any], method: str, path: str, example: Example, status: int) -> list[Rule]:
    if status >= 300:
        if not example.rules:
            raise ValueError(f"{example.name}: a refusal needs its rule (what it names)")
        return list(example.rules)
    if method == "get" and path == "/analytics/reports":
        names = [p[len(REPORTS_PREFIX) :] for p in spec["paths"] if p.startswith(REPORTS_PREFIX)]
        return [catalogue_rule(names)]
    if method == "get" and path.startswith(REPORTS_PREFIX):
        found = REPORT_RULES.get(path[len(REPORTS_PREFIX) :])
    else:
        found = OPERATION_RULES.get((method, path))
    if not found:
        raise ValueError(f"{method.upper()} {path} has no business rule: declare one in postman/rules.py")
    return found


def _test(title: str, lines: list[str], *, asynchronous: bool = False) -> list[str]:
    opening = f"pm.test({js(title)}, function ({'done' if asynchronous else ''}) {{"
    return [opening, *("    " + line if line else line for line in lines), "});"]


def schema_test(answer: Answer, method: str, path: str, request_path: str) -> list[str]:
    """The ``schema:`` test: the JSON answer against the documented schema, or a download's media type and
    shape."""
    where = f"{answer.status} of {method.upper()} {path}"
    if answer.schema is not None:
        label = answer.schema_name or "the documented answer"
        if not answer.documented:
            label += " (status not documented: the service's error body)"
        return [
            f"const schema = {json.dumps(answer.schema, separators=(',', ':'), sort_keys=True)};",
            *_test(f"schema: {label} ({where})", ["pm.response.to.have.jsonSchema(schema);"]),
        ]
    if not answer.media_types:
        return _test(
            f"schema: no content documented, so a blank body ({where})",
            ['pm.expect(pm.response.text().trim()).to.equal("");'],
        )
    bases = sorted({m.split(";")[0].strip() for m in answer.media_types})
    lines = [
        'const type = (pm.response.headers.get("Content-Type") || "").split(";")[0].trim();',
        f"pm.expect(type).to.be.oneOf({js(bases)});",
    ]
    if "text/csv" in bases and request_path.endswith(".csv"):
        lines += [
            'pm.expect(type).to.equal("text/csv");',
            "const rows = csvRows(pm.response.text());",
            "rows.forEach((row, i) =>",
            "    pm.expect(row.length, `fields of line ${i + 1}`).to.equal(rows[0].length));",
        ]
        title = f"schema: text/csv, every line with the header's fields ({where})"
    else:
        title = f"schema: one of {', '.join(bases)} ({where})"
    return _test(title, lines)


def script_of(spec: dict[str, Any], method: str, path: str, example: Example) -> list[str]:
    operation = spec["paths"][path][method]
    status = example.status or success_status(operation)
    answer = documented_answer(spec, operation, status)
    rules = rules_of(spec, method, path, example, status)
    schema = schema_test(answer, method, path, example.path or path)
    code = "\n".join([*schema, *(r.code for r in rules)])
    lines = [line for helper in helpers_for(code) for line in helper.splitlines()]
    lines += _test(f"status: {status}", [f"pm.response.to.have.status({status});"])
    lines += schema
    # The body once for every rule; a body that does not parse fails the schema test and each rule.
    if answer.schema is not None:
        lines += ["let body;", "try { body = pm.response.json(); } catch (error) { body = undefined; }"]
    else:
        lines += ["const body = pm.response.text();"]
    for rule in rules:
        lines += _test(f"rule: {rule.title}", rule.code.splitlines(), asynchronous=rule.asks)
    return lines


LIVE_VALUES_SCRIPT = """\
// Values of the service under test that requests send or check, read once per service (baseUrl) into
// collection variables: the customers, categories, regions and product with the most revenue, and the
// segmentation model's segments (id -> name).
const base = pm.variables.replaceIn("{{baseUrl}}");
const top = (dimension, limit) => ({ measures: ["revenue"], dimensions: [dimension],
    order: [{ member: "revenue", direction: "desc" }], limit });
const keep = (names, dimension) => (answer) => names.forEach((name, i) =>
    pm.collectionVariables.set(name, answer.rows[Math.min(i, answer.rows.length - 1)][dimension]));
if (pm.collectionVariables.get("liveFrom") !== base) {
    const reads = [
        ["GET", "/segments", null, (answer) => pm.collectionVariables.set("segments",
            JSON.stringify(Object.fromEntries(answer.segments.map((s) => [s.segment_id, s.segment]))))],
        ["POST", "/analytics/query", top("customer", 2), keep(["customerId", "customerId2"], "customer")],
        ["POST", "/analytics/query", top("category", 2), keep(["seriesA", "seriesB"], "category")],
        ["POST", "/analytics/query", top("region", 2), keep(["regionA", "regionB"], "region")],
        ["POST", "/analytics/query", top("product", 1), keep(["productId"], "product")],
    ];
    let pending = reads.length;
    reads.forEach(([method, path, payload, use]) => pm.sendRequest({
        url: base + path,
        method,
        header: { "x-api-key": pm.variables.replaceIn("{{apiKey}}"), "Content-Type": "application/json" },
        body: payload === null ? undefined : { mode: "raw", raw: JSON.stringify(payload) },
    }, (error, answer) => {
        if (error || answer.code !== 200) {
            console.warn(`live values: ${method} ${path} answered ${error || answer.code}`);
            return;
        }
        use(answer.json());
        if (--pending === 0) pm.collectionVariables.set("liveFrom", base);
    }));
}"""


# ------------------------------------------------------------------------------------------- assembling


def _auth(key: str | None) -> dict[str, Any] | None:
    """The request's auth: inherited from the collection (the key), none, or a wrong key."""
    if key == "{{apiKey}}":
        return None
    if key is None:
        return {"type": "noauth"}
    return {"type": "apikey", "apikey": _apikey(key)}


def _apikey(value: str) -> list[dict[str, str]]:
    return [
        {"key": "key", "value": "x-api-key", "type": "string"},
        {"key": "value", "value": value, "type": "string"},
        {"key": "in", "value": "header", "type": "string"},
    ]


def _saved_examples(
    spec: dict[str, Any], operation: dict[str, Any], status: int, request: dict[str, Any]
) -> list[dict[str, Any]]:
    """The document's examples of the answer, as Postman saved responses."""
    response = resolve(spec, operation.get("responses", {}).get(str(status), {}))
    content = (response.get("content") or {}).get("application/json", {})
    values = [("", content["example"])] if "example" in content else []
    for key, example in (content.get("examples") or {}).items():
        example = resolve(spec, example)
        if "value" in example:
            values.append((example.get("summary") or key, example["value"]))
    return [
        {
            "name": summary or f"{status} (the document's example)",
            "originalRequest": request,
            "code": status,
            "header": [{"key": "Content-Type", "value": "application/json"}],
            "_postman_previewlanguage": "json",
            "body": json.dumps(value, indent=2, ensure_ascii=False),
        }
        for summary, value in values
    ]


def request_item(spec: dict[str, Any], method: str, path: str, example: Example) -> dict[str, Any]:
    operation = spec["paths"][path][method]
    target = example.path or path
    enabled = [(k, v) for k, v, on in example.query if on]
    raw = "{{baseUrl}}" + target + ("?" + "&".join(f"{k}={v}" for k, v in enabled) if enabled else "")
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": target.strip("/").split("/")}
    if example.query:
        url["query"] = [
            {"key": k, "value": v, **({} if on else {"disabled": True})} for k, v, on in example.query
        ]
    request: dict[str, Any] = {"method": method.upper(), "header": [], "url": url}
    if (auth := _auth(example.key)) is not None:
        request["auth"] = auth
    if example.body is not None:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(example.body, indent=2, ensure_ascii=False),
            "options": {"raw": {"language": "json"}},
        }
    description = (operation.get("description") or operation.get("summary") or "").strip()
    if description:
        request["description"] = " ".join(description.split())
    status = example.status or success_status(operation)
    item = {
        "name": example.name,
        "event": [
            {
                "listen": "test",
                "script": {"type": "text/javascript", "exec": script_of(spec, method, path, example)},
            }
        ],
        "request": request,
    }
    saved = _saved_examples(spec, operation, status, request)
    if saved:
        item["response"] = saved
    return item


def _folder_of(path: str, operation: dict[str, Any]) -> str:
    if path.startswith(REPORTS_PREFIX) or path == "/analytics/reports":
        return "Analytics: reports"
    tag = (operation.get("tags") or ["other"])[0]
    if tag.startswith("reports"):
        return "Analytics: reports"
    return FOLDER_OF_TAG.get(tag, tag)


def build_collection(spec: dict[str, Any]) -> dict[str, Any]:
    """The Postman v2.1 collection of every operation in ``spec`` (the service's OpenAPI document)."""
    declared = curated(spec)
    stale = [f"{m.upper()} {p}" for m, p in [*declared, *EXTRA] if m not in spec["paths"].get(p, {})]
    if stale:
        raise ValueError(f"declared requests for operations the service no longer has: {stale}")
    folders: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in FOLDERS}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            examples = declared.get((method, path)) or derived(spec, path, method, operation)
            examples = [*examples, *EXTRA.get((method, path), [])]
            folder = folders.setdefault(_folder_of(path, operation), [])
            folder.extend(request_item(spec, method, path, example) for example in examples)
    descriptions = dict(FOLDERS)
    return {
        "info": {
            "name": "salespulse",
            "description": (
                "Every endpoint of the salespulse service, each request with tests of its status, its "
                "answer's schema (the OpenAPI document's) and business rules. Use it with "
                "postman/salespulse.postman_environment.json (baseUrl, apiKey: the service's "
                "SALESPULSE_API_KEY). Generated from the service's OpenAPI document by "
                "postman/make_collection.py; the rules are postman/rules.py."
            ),
            "schema": SCHEMA,
        },
        "auth": {"type": "apikey", "apikey": _apikey("{{apiKey}}")},
        "event": [
            {
                "listen": "prerequest",
                "script": {"type": "text/javascript", "exec": LIVE_VALUES_SCRIPT.splitlines()},
            }
        ],
        "variable": [{"key": key, "value": "", "type": "string"} for key in LIVE_VARIABLES],
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
