"""One error shape for every endpoint of the service: ``{"error": what went wrong, "detail": [{"field": where,
"message": why}, ...]}``.

The analytics app and the read/admin app answer in it from their exception handlers
(:func:`install_error_handlers`). BentoML's API methods (/forecast, /segment) answer in BentoML's own
shapes: a pydantic error list, or ``[{"error": message}]`` for a raised BentoML exception. So
:class:`UniformErrors`, an ASGI middleware around the whole service, rewrites those. BentoML passes only an
exception's message on, so a message raised as ``"field: text"`` (see :func:`field_message`) names its
field.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from salespulse.analytics.errors import AnalyticsError
from service.auth import API_KEY_HEADER, AuthError

log = logging.getLogger(__name__)

TITLES = {
    400: "invalid request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    413: "request too large",
    422: "invalid request",
    503: "unavailable",
}
FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$", re.DOTALL)

Problem = dict[str, str]


def title(status: int) -> str:
    if status in TITLES:
        return TITLES[status]
    return "internal error" if status >= 500 else HTTPStatus(status).phrase.lower()


def error_body(status: int, problems: list[Problem], error: str | None = None) -> dict[str, Any]:
    return {"error": error or title(status), "detail": problems}


def error_response(status: int, error: str, problems: list[Problem]) -> JSONResponse:
    return JSONResponse(error_body(status, problems, error), status_code=status)


def field_message(field: str, message: str) -> str:
    """A message that names its field, for an exception whose message alone reaches the client."""
    return f"{field}: {message}"


def problem_from_message(message: str) -> Problem:
    match = FIELD_PREFIX.match(message)
    return {"field": match[1], "message": match[2]} if match else {"field": "", "message": message}


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'lines', 17, 'quantity') -> 'lines[17].quantity'."""
    path = ""
    for part in location:
        if part in ("body", "query") and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_problems(errors: list[dict[str, Any]]) -> list[Problem]:
    problems = []
    for error in errors:
        message = error.get("msg", "invalid")
        message = message.removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            message = f"the body is not valid JSON: {error.get('ctx', {}).get('error', message)}"
        problems.append({"field": field_path(error.get("loc", ())), "message": message})
    return problems


def install_error_handlers(app: FastAPI) -> None:
    """Every error of a FastAPI app as a 4xx (or 500) in the service's error shape."""

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid request", validation_problems(list(error.errors())))

    @app.exception_handler(ValidationError)
    async def _model_invalid(_: Request, error: ValidationError) -> JSONResponse:
        return error_response(422, "invalid request", validation_problems(list(error.errors())))

    @app.exception_handler(AnalyticsError)
    async def _analytics(_: Request, error: AnalyticsError) -> JSONResponse:
        return error_response(error.status, error.title, [p.as_dict() for p in error.problems])

    @app.exception_handler(AuthError)
    async def _auth(_: Request, error: AuthError) -> JSONResponse:
        return error_response(
            error.status, title(error.status), [{"field": API_KEY_HEADER, "message": error.message}]
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        problems = [problem_from_message(str(error.detail))] if error.detail else []
        return error_response(error.status_code, title(error.status_code), problems)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("request failed")
        return error_response(500, "internal error", [{"field": "", "message": "the error was logged"}])


def uniform(status: int, body: Any) -> dict[str, Any] | None:
    """An error body in the service's shape; None when it is in it already (or is no error body at all)."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = body.get("detail")
        if isinstance(detail, list) and all(isinstance(p, dict) and "field" in p for p in detail):
            return None  # already in shape
        if isinstance(detail, list):  # BentoML's request validation: pydantic's errors
            return error_body(status, validation_problems(detail))
        if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):  # BentoML hides the reason
            message = f"a valid API key is needed in the {API_KEY_HEADER!r} header"
            return error_body(status, [{"field": API_KEY_HEADER, "message": message}])
        return error_body(status, [problem_from_message(body["error"])])  # BentoML's generic answers
    if isinstance(body, list) and body and all(isinstance(p, dict) and "error" in p for p in body):
        return error_body(status, [problem_from_message(str(p["error"])) for p in body])  # a raised exception
    return None


class UniformErrors:
    """Rewrite error responses (4xx, 5xx) that are not in the service's shape; others pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is known
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = _rewritten(start["status"], b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


def _rewritten(status: int, body: bytes) -> bytes:
    try:
        shaped = uniform(status, json.loads(body))
    except ValueError:  # not JSON: leave it be
        return body
    return body if shaped is None else json.dumps(shaped).encode()
