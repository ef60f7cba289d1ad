"""The service's one error shape, from BentoML's own error bodies (the middleware's rewriting rules)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, ValidationError

from service.errors import (
    QuietClientErrors,
    UniformErrors,
    Unprocessable,
    field_message,
    field_path,
    uniform,
    validation_problems,
)


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


def run_middleware(app: Any, path: str = "/x") -> list[dict[str, Any]]:
    """The messages UniformErrors sends for one request to ``app``."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(UniformErrors(app)({"type": "http", "method": "GET", "path": path}, receive, send))
    return sent


def plain_app(status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def test_bentomls_400_becomes_the_one_validation_status_422() -> None:
    body = json.dumps(
        {"error": "1 validation error for Input", "detail": [{"loc": ["horizon"], "msg": "bad"}]}
    )
    start, answer = run_middleware(plain_app(400, body.encode(), b"application/json"))
    assert start["status"] == 422
    assert json.loads(answer["body"]) == {
        "error": "invalid request",
        "detail": [{"field": "horizon", "message": "bad"}],
    }


def test_a_plain_text_404_becomes_json_in_the_one_shape() -> None:
    start, answer = run_middleware(plain_app(404, b"Not Found"))
    headers = dict(start["headers"])
    assert start["status"] == 404 and headers[b"content-type"] == b"application/json"
    assert json.loads(answer["body"])["detail"] == [
        {"field": "path", "message": "no such endpoint (see /docs for the API)"}
    ]
    assert int(headers[b"content-length"]) == len(answer["body"])


def test_an_error_raised_after_the_answer_does_not_reach_the_server() -> None:
    """Starlette re-raises after its handler answered 500; the server would then drop the connection."""

    async def answered_then_raised(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await plain_app(500, b'{"error": "internal error", "detail": []}', b"application/json")(
            scope, receive, send
        )
        raise RuntimeError("boom")

    start, answer = run_middleware(answered_then_raised)
    assert start["status"] == 500 and json.loads(answer["body"])["error"] == "internal error"

    async def raised(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    start, answer = run_middleware(raised)
    assert start["status"] == 500
    assert json.loads(answer["body"])["detail"] == [{"field": "", "message": "the error was logged"}]


def test_malformed_json_is_the_body_not_a_character_position() -> None:
    fastapi_error = {"type": "json_invalid", "loc": ("body", 11), "msg": "JSON decode error",
                     "ctx": {"error": "Expecting value"}}  # fmt: skip
    assert validation_problems([fastapi_error]) == [
        {"field": "body", "message": "the body is not valid JSON: Expecting value (at character 11)"}
    ]
    pydantic_error = {"type": "json_invalid", "loc": (), "msg": "Invalid JSON: EOF while parsing a list"}
    assert validation_problems([pydantic_error])[0] == {
        "field": "body",
        "message": "the body is not valid JSON: EOF while parsing a list",
    }
    assert field_path(("path", "customer_id")) == "customer_id"


def test_bentomls_record_of_a_client_error_is_dropped_and_a_server_errors_kept() -> None:
    quiet = QuietClientErrors()

    def record(error: BaseException) -> logging.LogRecord:
        try:
            raise error
        except BaseException:
            return logging.LogRecord("bentoml", logging.ERROR, "", 0, "Exception on /x", (), sys.exc_info())

    class Input(BaseModel):
        horizon: int

    try:
        Input.model_validate({"horizon": "x"})
    except ValidationError as invalid:
        input_error = invalid
    assert not quiet.filter(record(input_error))
    assert not quiet.filter(record(Unprocessable("horizon: too far")))
    assert quiet.filter(record(BentoMLException("the model failed")))  # 500
    assert quiet.filter(record(RuntimeError("a bug")))
