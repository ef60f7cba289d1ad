"""The service's one error shape, from BentoML's own error bodies (the middleware's rewriting rules)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from service.errors import UniformErrors, field_message, uniform


def test_bentoml_validation_errors_name_the_field() -> None:
    body = {
        "error": "1 validation error for Input",
        "detail": [
            {
                "type": "greater_than_equal",
                "loc": ["customers", 0, "recency_days"],
                "msg": "Input should be >= 0",
            }
        ],
    }
    assert uniform(400, body) == {
        "error": "invalid request",
        "detail": [{"field": "customers[0].recency_days", "message": "Input should be >= 0"}],
    }


def test_a_raised_exception_keeps_the_field_its_message_names() -> None:
    body = [{"error": field_message("customer_ids", "unknown customer id(s): 'NOPE'")}]
    assert uniform(404, body) == {
        "error": "not found",
        "detail": [{"field": "customer_ids", "message": "unknown customer id(s): 'NOPE'"}],
    }
    assert uniform(400, [{"error": "no field here"}])["detail"] == [{"field": "", "message": "no field here"}]


def test_refusals_name_the_key_header_and_shaped_bodies_pass() -> None:
    assert uniform(401, {"error": "Authorization error"})["detail"][0]["field"] == "x-api-key"
    assert uniform(500, {"error": "An unexpected error has occurred"})["error"] == "internal error"
    shaped = {
        "error": "invalid request",
        "detail": [{"field": "lines[3].quantity", "message": "must be > 0"}],
    }
    assert uniform(422, shaped) is None
    assert uniform(200, {"rows": []}) is None


def test_the_middleware_rewrites_error_bodies_only() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, body = (
            (200, {"ok": True}) if scope["path"] == "/fine" else (404, [{"error": "series: unknown"}])
        )
        raw = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    def call(path: str) -> tuple[int, dict[bytes, bytes], Any]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        asyncio.run(UniformErrors(app)({"type": "http", "path": path}, receive, send))
        headers = dict(sent[0]["headers"])
        return sent[0]["status"], headers, json.loads(sent[1]["body"])

    status, _, body = call("/fine")
    assert (status, body) == (200, {"ok": True})
    status, headers, body = call("/missing")
    assert (status, body) == (
        404,
        {"error": "not found", "detail": [{"field": "series", "message": "unknown"}]},
    )
    assert int(headers[b"content-length"]) == len(json.dumps(body).encode())
