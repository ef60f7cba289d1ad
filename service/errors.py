"""One error shape for every endpoint of the service: ``{"error": what went wrong, "detail": [{"field": where,
"message": why}, ...]}``, and one status for an invalid request: 422.

The analytics app and the read/admin app answer in it from their exception handlers
(:func:`install_error_handlers`). BentoML's API methods (/forecast, /segment) answer in BentoML's own
shapes: a pydantic error list (with 400), or ``[{"error": message}]`` for a raised BentoML exception; and
Starlette answers an unknown path with a plain-text 404. So :class:`UniformErrors`, an ASGI middleware
around the whole service, rewrites those (400 becomes 422, FastAPI's convention). BentoML passes only an
exception's message on, so a message raised as ``"field: text"`` (see :func:`field_message`) names its
field.

Logs: a refused request (4xx) is one INFO line, with the route template and the fields at fault but never
the values sent; BentoML's own ERROR record with a traceback and the input values is dropped
(:class:`QuietClientErrors`). Server errors are still logged with their traceback.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from salespulse.analytics.errors import AnalyticsError
from salespulse.errors import Unavailable
from service.auth import API_KEY_HEADER, AuthError
from service.metrics import route_label

# Under "bentoml.", whose loggers BentoML shows at INFO (the service's own convention, see service.py).
log = logging.getLogger("bentoml.salespulse.requests")

TITLES = {
    400: "invalid request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request too large",
    415: "unsupported media type",
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


def error_response(
    status: int, error: str, problems: list[Problem], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, problems, error), status_code=status, headers=headers)


def field_message(field: str, message: str) -> str:
    """A message that names its field, for an exception whose message alone reaches the client."""
    return f"{field}: {message}"


def with_field(message: str, default: str) -> str:
    """``message`` as it is when it names its field ("horizon: ..."), else as the ``default`` field's."""
    return message if FIELD_PREFIX.match(message) else field_message(default, message)


def problem_from_message(message: str) -> Problem:
    match = FIELD_PREFIX.match(message)
    return {"field": match[1], "message": match[2]} if match else {"field": "", "message": message}


REQUEST_PARTS = ("body", "query", "path", "header", "cookie")
"""FastAPI's first location part: where in the request, not a name the client sent."""


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'lines', 17, 'quantity') -> 'lines[17].quantity'."""
    parts = list(location)
    if parts and parts[0] in REQUEST_PARTS:  # only the first: a body field may be called "path" or "query"
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_problems(errors: list[dict[str, Any]]) -> list[Problem]:
    problems = []
    for error in errors:
        if error.get("type") == "json_invalid":
            problems.append(_json_invalid(error))
            continue
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        problems.append({"field": field_path(error.get("loc", ())), "message": message})
    return problems


def _json_invalid(error: dict[str, Any]) -> Problem:
    """Malformed JSON is the body's problem, wherever it breaks: FastAPI puts the character position in the
    location (``("body", 11)``), pydantic (BentoML) the line and column in the message."""
    reason = str((error.get("ctx") or {}).get("error") or error.get("msg", "")).removeprefix("Invalid JSON: ")
    location = error.get("loc") or ()
    where = f" (at character {location[-1]})" if location and isinstance(location[-1], int) else ""
    return {"field": "body", "message": f"the body is not valid JSON: {reason}{where}"}


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
        # Its headers too: a 405 must say which methods the endpoint answers (Allow).
        return error_response(error.status_code, title(error.status_code), problems, error.headers)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, error: Unavailable) -> JSONResponse:
        # The registry or warehouse is not there or not answering (a new cluster's MLflow has no
        # champion yet): the operator can act on the one line, the client can retry later.
        return error_response(503, title(503), [{"field": "", "message": str(error)}])

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


class Unprocessable(BentoMLException):
    """A BentoML API method's refusal of a well-formed request (422, the service's one validation status)."""

    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


VALIDATION_STATUS = 422
"""What an invalid request is answered with everywhere (BentoML's own 400 is rewritten to it)."""


class UniformErrors:
    """Rewrite error responses (4xx, 5xx) that are not in the service's shape (a BentoML body, Starlette's
    plain-text 404) and BentoML's 400 to 422; log each refused request as one INFO line without values.
    Other responses pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        progress = {"started": False, "done": False}

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is known
                return
            if start is None or message["type"] != "http.response.body":
                await _sent(send, message, progress)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status, headers, body = _rewritten(start, b"".join(chunks))
            _log_refusal(scope, status, body)
            if scope.get("method") == "HEAD":  # the headers of the answer a GET would get, no body
                body = b""
            await _sent(send, {**start, "status": status, "headers": headers}, progress)
            await _sent(send, {"type": "http.response.body", "body": body}, progress)

        try:
            await self.app(scope, receive, rewrite)
        except Exception:
            # Starlette re-raises an error after its handler answered 500: answered and logged, it must not
            # reach the server, which would drop the client's (keep-alive) connection.
            if progress["done"]:
                return
            if progress["started"]:
                raise
            log.exception("%s %s failed", scope.get("method", ""), route_label(scope))
            body = json.dumps(error_body(500, [{"field": "", "message": "the error was logged"}])).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})


async def _sent(send: Any, message: dict[str, Any], progress: dict[str, bool]) -> None:
    await send(message)
    if message["type"] == "http.response.start":
        progress["started"] = True
    elif message["type"] == "http.response.body" and not message.get("more_body", False):
        progress["done"] = True


def _rewritten(start: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and body an error response leaves with."""
    status = VALIDATION_STATUS if start["status"] == HTTPStatus.BAD_REQUEST else start["status"]
    headers = [
        (k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")
    ]
    content_type = dict(start.get("headers", [])).get(b"content-type", b"application/json")
    try:
        shaped = uniform(status, json.loads(body))
    except ValueError:  # not JSON (Starlette's plain-text 404 and 405): in the shape, with its text
        shaped = error_body(status, [_plain_problem(status, body.decode("utf-8", "replace"))])
    if shaped is not None:
        body, content_type = json.dumps(shaped).encode(), b"application/json"
    headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    return status, headers, body


def _plain_problem(status: int, text: str) -> Problem:
    if status == HTTPStatus.NOT_FOUND:
        return {"field": "path", "message": "no such endpoint (see /docs for the API)"}
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        return {"field": "method", "message": "this endpoint does not answer that method"}
    return {"field": "", "message": text.strip()[:200] or title(status)}


def _log_refusal(scope: dict[str, Any], status: int, body: bytes) -> None:
    """One INFO line per refused request: route template, status, title and the fields at fault, never
    the values sent (nor the raw path, which may hold an id)."""
    if not 400 <= status < 500:
        return
    try:
        answer = json.loads(body)
        fields = sorted({p.get("field") or "-" for p in answer.get("detail", [])})
        error = answer.get("error", "")
    except (ValueError, AttributeError):
        fields, error = [], ""
    log.info(
        "%s %s -> %d %s (fields: %s)",
        scope.get("method", ""),
        route_label(scope),
        status,
        error,
        ", ".join(fields[:10]) or "-",
    )


CLIENT_ERROR_LOGGERS = ("bentoml._internal.server.http_app",)
"""Where BentoML logs the exception of every refused request at ERROR, with its traceback and input."""


class QuietClientErrors(logging.Filter):
    """Drop BentoML's record of a client error (invalid input, a 4xx raised by the service): UniformErrors
    logs one INFO line without values instead. Server errors (5xx, anything else) pass with their
    traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not is_client_error(error)


INPUT_MODEL = "Input"
"""The title of the model BentoML validates a request body with; a ValidationError of another model (one
the service built, its answer) is a server error."""


def is_client_error(error: BaseException | None) -> bool:
    if isinstance(error, ValidationError):
        return error.title == INPUT_MODEL
    if isinstance(error, BentoMLException):
        return int(error.error_code) < 500
    return False


def quiet_client_errors() -> None:
    """Install :class:`QuietClientErrors` on BentoML's request logger (idempotent)."""
    for name in CLIENT_ERROR_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietClientErrors) for f in logger.filters):
            logger.addFilter(QuietClientErrors())
