"""The service's API description: one OpenAPI 3.1 document of every app of the service, served at /docs.json
(and the analytics app's part at /analytics/openapi.json), that says what the service really does.

BentoML merges its own APIs and the mounted FastAPI apps into one spec, but that spec is not honest (BentoML
issues 4232 and 5248): it declares OpenAPI 3.0.2 while pydantic writes 3.1 JSON Schema (``type: null``,
numeric ``exclusiveMinimum``); it documents error bodies BentoML's middleware never sends (400 with a string
``detail``, FastAPI's ``HTTPValidationError``) and none of 401/403/413/415; the request examples are buried
in schemas where Swagger UI ignores them; there are no security schemes. This module rewrites it:

- ``openapi: 3.1.0``, the product's own title and version (no external badges: the docs work offline);
- security: ``ApiKey`` (the ``x-api-key`` header) on every operation the access rules key
  (service.auth.access_of, the rule the gate enforces), ``MetricsToken`` where /metrics takes one;
- every status an operation can answer, with the one error body (salespulse.schemas.ErrorBody);
- the BentoML APIs' answers described by their pydantic models, and their "exactly one of" inputs as
  ``oneOf``;
- request examples in each body's media type, drawn from the warehouse in service (a series and customers
  that exist), so "Try it out" answers 200.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel

from salespulse.config import get_settings
from salespulse.schemas import (
    PREDICT_CUSTOMERS_BY_SUMMARY_EXAMPLE,
    SEGMENT_BY_FEATURES_EXAMPLE,
    CustomerValueResponse,
    ErrorBody,
    ForecastResponse,
    SegmentResponse,
)
from service.auth import API_KEY_HEADER, Access, access_of
from service.errors import title

OPENAPI_VERSION = "3.1.0"
SCHEMAS = "#/components/schemas/"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DESCRIPTION = """Sales intelligence as a service: revenue forecasts with intervals for planners, customer
segments and customer value for marketing systems, and the reports, KPIs and written insights sales teams
ask for, all over one warehouse that takes new sales as they happen.

**Access.** Write and admin endpoints need the API key in the `x-api-key` header (the Authorize button);
read endpoints need it too when the service runs with `SALESPULSE_READ_ACCESS=keyed`. `make run` keeps the
key in `data/.api-key`.

**Errors.** Every refusal has one shape, `{"error": what went wrong, "detail": [{"field": where,
"message": why}]}`: 401/403 for the key, 404 for what does not exist, 413 for a body over the size limit,
415 for a body that is not JSON, 422 for an invalid request (the field is named), 503 when the warehouse is
not open on the worker that answered.
"""

# What the BentoML API methods answer, described by the models they return (BentoML's conversion drops
# ``null`` from optional fields).
BENTOML_ANSWERS: dict[str, type[BaseModel]] = {
    "/forecast": ForecastResponse,
    "/segment": SegmentResponse,
    "/predict/customers": CustomerValueResponse,
}
# Tags and ids for BentoML's operations (it tags them "Service APIs" and "Infrastructure", with no ids).
BENTOML_OPERATIONS = {
    "/forecast": ("forecasts", "forecast"),
    "/segment": ("segments", "segment"),
    "/predict/customers": ("customers", "predict_customers"),
    "/livez": ("health", "livez"),
    "/readyz": ("health", "readyz"),
    "/healthz": ("health", "healthz"),
}
# Inputs that take customers either as ids or as raw values, never both.
EITHER_IDS_OR_VALUES = {"/segment", "/predict/customers"}
# Operations that look something up by what the client sent (a series, customer ids, a file).
LOOKUPS = {"/forecast", "/segment", "/predict/customers", "/admin/import", "/admin/import-goals"}
# Operations that refuse to replace what exists.
NEVER_REPLACE = {"/admin/snapshot"}
# Operations that answer without the warehouse (models in memory, probes, pages).
WITHOUT_WAREHOUSE = {"/models", "/segments", "/admin/reload", "/metrics", "/health"}
# Asks the model registry, which may be down or have no champion yet (503).
NEEDS_REGISTRY = {"/admin/reload"}
PROBES = {"/livez", "/readyz", "/healthz"}
TEXT_ANSWERS = {"/metrics", *PROBES}
# How one answer leads to the next request (OpenAPI links, for clients and the fuzzer's stateful phase):
# (producer path, method, link name, target operationId, {target parameter: runtime expression}). They
# are declared because guessing them from field names goes wrong here: schemathesis took the request's list
# of 10,000 `customer_ids` for one `customer_id` of the profile's path.
LINKS: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
    ("/predict/customers", "post", "CustomerProfile", "customer_profile_customers__customer_id__get",
     {"path.customer_id": "$response.body#/customers/0/customer_id"}),
    ("/segment", "post", "CustomerProfile", "customer_profile_customers__customer_id__get",
     {"path.customer_id": "$response.body#/customers/0/customer_id"}),
    ("/analytics/reports", "get", "ReportAsCsv", "export_report_export_report__name___fmt__get",
     {"path.name": "$response.body#/reports/0/name", "path.fmt": "csv"}),
)  # fmt: skip
SECURITY_SCHEMES = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "The service's API key (SALESPULSE_API_KEY; `make run` keeps it in data/.api-key).",
    },
    "MetricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "SALESPULSE_METRICS_TOKEN, for a Prometheus scraper that holds no API key.",
    },
}
CREDENTIAL_HEADERS = {API_KEY_HEADER, "authorization"}
# The one answer that does not come from the service: the HTTP server (uvicorn's parser) refuses a request
# line over its limit (about 64 KB, e.g. a path parameter that long) before any app sees it. The service's
# own refusals are never 400 (an invalid request is 422).
UNPARSEABLE = {
    "description": "The HTTP server could not parse the request (a URL over about 64 KB); plain text.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@dataclass(frozen=True)
class Examples:
    """Values that exist in the warehouse in service, for request examples that answer 200."""

    product_region: str = "P-00012|West"
    categories: tuple[str, ...] = ("Technology", "Furniture")
    product_id: str = "P-00012"
    customer_ids: tuple[str, ...] = ("C-0000001", "C-0000002")
    last_sale: date | None = None


def examples_from_warehouse(cursor: Any) -> Examples:
    """The best-selling product and region, the two biggest categories and customers, the last sale day."""
    top = cursor.execute(
        "SELECT product_id, ship_region FROM order_lines WHERE ship_region IS NOT NULL "
        "GROUP BY ALL ORDER BY sum(revenue) DESC LIMIT 1"
    ).fetchone()
    if top is None:
        return Examples()
    categories = cursor.execute(
        "SELECT p.category FROM order_lines l JOIN products p USING (product_id) "
        "GROUP BY ALL ORDER BY sum(l.revenue) DESC LIMIT 2"
    ).fetchall()
    customers = cursor.execute(
        "SELECT customer_id FROM order_lines GROUP BY ALL ORDER BY sum(revenue) DESC LIMIT 2"
    ).fetchall()
    (last_sale,) = cursor.execute("SELECT max(ordered_at)::DATE FROM order_lines").fetchone()
    return Examples(
        product_region=f"{top[0]}|{top[1]}",
        categories=tuple(row[0] for row in categories),
        product_id=top[0],
        customer_ids=tuple(row[0] for row in customers),
        last_sale=last_sale,
    )


def request_examples(examples: Examples) -> dict[str, dict[str, dict[str, Any]]]:
    """Named request bodies per path, each one a request the service answers with 200."""
    after = (examples.last_sale or date.today()) + timedelta(days=8)
    promotion = {
        "product_id": examples.product_id,
        "discount": 0.2,
        "start": after.isoformat(),
        "end": (after + timedelta(days=6)).isoformat(),
    }
    ids = list(examples.customer_ids)
    return {
        "/forecast": {
            "product_region": {
                "summary": "The next 28 days of one product in one region",
                "value": {"series": [examples.product_region], "level": "product_region", "horizon": 28},
            },
            "categories_weekly": {
                "summary": "Two categories, 8 weeks, 80% and 95% intervals",
                "value": {
                    "series": list(examples.categories),
                    "level": "category",
                    "freq": "W",
                    "horizon": 8,
                    "intervals": [80, 95],
                },
            },
            "total_monthly": {
                "summary": "The whole company, 3 calendar months",
                "value": {"series": ["total"], "level": "total", "freq": "M", "horizon": 3},
            },
            "promotion": {
                "summary": "A planned 20% price cut on one product (what-if)",
                "value": {
                    "series": [examples.product_id],
                    "level": "product",
                    "horizon": 28,
                    "promotions": [promotion],
                },
            },
        },
        "/segment": {
            "by_ids": {"summary": "Customers the warehouse knows", "value": {"customer_ids": ids}},
            "by_features": {
                "summary": "A customer described by its own features",
                "value": SEGMENT_BY_FEATURES_EXAMPLE,
            },
        },
        "/predict/customers": {
            "by_ids": {
                "summary": "Expected spend of known customers over 90 days",
                "value": {"customer_ids": ids, "horizon_days": 90},
            },
            "by_summaries": {
                "summary": "A customer described by its purchase summary",
                "value": PREDICT_CUSTOMERS_BY_SUMMARY_EXAMPLE,
            },
        },
    }


def service_document(
    raw: Mapping[str, Any],
    examples: Examples,
    version: str,
    inputs: Mapping[str, type[BaseModel]],
) -> dict[str, Any]:
    """The honest document of the whole service from BentoML's merged spec ``raw``; ``inputs`` are the
    models BentoML validates each API's body with, by route (its spec drops their ``null`` options)."""
    document = copy.deepcopy(dict(raw))
    document["openapi"] = OPENAPI_VERSION
    document["info"] = {"title": "salespulse", "version": version, "description": DESCRIPTION}
    document.pop("servers", None)  # BentoML's "." : the document is served at the root
    document.pop("tags", None)  # BentoML's two; each operation names its own
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _add_model_schemas(schemas, [ErrorBody, *BENTOML_ANSWERS.values()])
    components["securitySchemes"] = SECURITY_SCHEMES
    bodies = request_examples(examples)
    for path, method, operation in operations(document):
        if path in inputs:
            media = operation["requestBody"]["content"]["application/json"]
            media["schema"] = _model_schema(schemas, inputs[path], mode="validation")
        describe_operation(path, method, operation, schemas, bodies.get(path))
    _declare_links(document)
    _drop_unused_schemas(document)
    return document


def _declare_links(document: dict[str, Any]) -> None:
    """Put LINKS on their producers' 200 answers (a producer or target the document lacks is skipped: the
    analytics app can be served alone)."""
    known = {operation.get("operationId") for _, _, operation in operations(document)}
    for path, method, name, target, parameters in LINKS:
        producer = document["paths"].get(path, {}).get(method)
        if producer is None or target not in known or "200" not in producer.get("responses", {}):
            continue
        links = producer["responses"]["200"].setdefault("links", {})
        links[name] = {"operationId": target, "parameters": dict(parameters)}


def analytics_document(raw: Mapping[str, Any], mount: str, version: str) -> dict[str, Any]:
    """The analytics app's own document (FastAPI's), made honest the same way; its paths are relative to
    ``mount``, given as its server."""
    document = copy.deepcopy(dict(raw))
    document["openapi"] = OPENAPI_VERSION
    document["info"] = {**document.get("info", {}), "version": version}
    document["servers"] = [{"url": mount}]
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _add_model_schemas(schemas, [ErrorBody])
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, method, operation in operations(document):
        describe_operation(mount + path, method, operation, schemas, None)
    _drop_unused_schemas(document)
    return document


def operations(document: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def describe_operation(
    path: str,
    method: str,
    operation: dict[str, Any],
    schemas: dict[str, Any],
    examples: dict[str, dict[str, Any]] | None,
) -> None:
    access = access_of(path)
    if path in BENTOML_OPERATIONS:
        tag, operation["operationId"] = BENTOML_OPERATIONS[path]
        operation["tags"] = [tag]
    # The key is a security scheme, not a parameter: a parameter would be fuzzed, and shown twice.
    parameters = [
        p for p in operation.get("parameters", []) if p.get("name", "").lower() not in CREDENTIAL_HEADERS
    ]
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    _declare_security(operation, access)
    body = operation.get("requestBody")
    if body is not None:
        body["required"] = True
        media = body.setdefault("content", {}).setdefault("application/json", {})
        if path in EITHER_IDS_OR_VALUES:
            media["schema"] = _either_ids_or_values(media.get("schema", {}), schemas)
        if examples:
            media["examples"] = examples
        elif "examples" not in media:
            media["examples"] = _examples_of_schema(media.get("schema", {}), schemas)
            if not media["examples"]:
                del media["examples"]
    answer = BENTOML_ANSWERS.get(path)
    responses = {str(status): response for status, response in operation.get("responses", {}).items()}
    operation["responses"] = responses
    if answer is not None:
        responses["200"] = _json_response("The answer", {"$ref": SCHEMAS + answer.__name__})
    if path in TEXT_ANSWERS:
        responses["200"] = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    for status in list(responses):
        if not status.startswith("2"):
            del responses[status]
    for status in error_statuses(path, method, operation, access):
        responses[str(status)] = _json_response(title(status), {"$ref": SCHEMAS + "ErrorBody"})
    if operation.get("parameters"):
        responses["400"] = UNPARSEABLE


def error_statuses(path: str, method: str, operation: Mapping[str, Any], access: Access) -> list[int]:
    """Every error status the operation can answer, by what it takes and which rule guards it."""
    settings = get_settings()
    statuses: set[int] = set()
    if path in PROBES:
        return [503] if path == "/readyz" else []
    keyed = (
        access == "write"
        or (access == "read" and settings.read_access == "keyed")
        or (access == "metrics" and (settings.metrics_token is not None or settings.read_access == "keyed"))
    )
    if keyed:
        statuses |= {401, 403}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if operation.get("requestBody"):
        statuses |= {413, 415}
    if path in LOOKUPS or "{" in path or path.startswith("/analytics/"):
        statuses.add(404)
    if path in NEVER_REPLACE:
        statuses.add(409)
    if (access != "open" and path not in WITHOUT_WAREHOUSE) or path in NEEDS_REGISTRY:
        statuses.add(503)
    return sorted(statuses)


def _declare_security(operation: dict[str, Any], access: Access) -> None:
    settings = get_settings()
    if access == "write" or (access == "read" and settings.read_access == "keyed"):
        operation["security"] = [{"ApiKey": []}]
    elif access == "metrics" and settings.metrics_token is not None:
        operation["security"] = [{"MetricsToken": []}, {"ApiKey": []}]
    elif access == "metrics" and settings.read_access == "keyed":
        operation["security"] = [{"ApiKey": []}]
    else:
        operation.pop("security", None)


def _either_ids_or_values(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The body schema with its rule: exactly one of ``customer_ids`` and ``customers`` is a list (the
    other absent or null)."""
    resolved = copy.deepcopy(_resolve(schema, schemas))
    resolved["oneOf"] = [
        {"required": [name], "properties": {name: {"type": "array"}}}
        for name in ("customer_ids", "customers")
    ]
    return resolved


def _examples_of_schema(schema: dict[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A body model's own ``examples`` as the media type's, where Swagger UI's "Try it out" takes them."""
    values = _resolve(schema, schemas).get("examples") or []
    return {f"example_{number}": {"value": value} for number, value in enumerate(values, start=1)}


def _resolve(schema: dict[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref", "")
    return schemas[reference.removeprefix(SCHEMAS)] if reference.startswith(SCHEMAS) else schema


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _add_model_schemas(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """Each answer model's schema under its name."""
    for model in models:
        schemas[model.__name__] = _model_schema(schemas, model, mode="serialization")


def _model_schema(schemas: dict[str, Any], model: type[BaseModel], mode: str) -> dict[str, Any]:
    """``model``'s JSON schema, the models it nests put beside the others under their own names."""
    schema = model.model_json_schema(mode=mode, ref_template=SCHEMAS + "{model}")  # type: ignore[arg-type]
    schemas.update(schema.pop("$defs", {}))
    return schema


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    """Schemas nothing refers to any more (BentoML's and FastAPI's error models, replaced ones)."""
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    pending = [document.get("paths", {})]
    while pending:
        for reference in _references(pending.pop()):
            name = reference.removeprefix(SCHEMAS)
            if name not in used and name in schemas:
                used.add(name)
                pending.append(schemas[name])
    for name in set(schemas) - used:
        del schemas[name]


def _references(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)
