"""ASGI middleware in front of every app of the service: the body size limit (413) and the request gate
(access, size, media type and JSON sanity), before anything parses a body; and the route label that metrics
and logs use instead of the raw path.

The BentoML service and the analytics app (also served on its own by the benchmark) both use them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from service.auth import API_KEY_HEADER, Access, AuthError, check_access
from service.errors import error_body

Scope = dict[str, Any]
Message = dict[str, Any]


class BodySizeLimit:
    """``max_bytes`` is a number, or a function read per request (so a changed setting applies at once)."""

    def __init__(self, app: Any, max_bytes: int | Callable[[], int]) -> None:
        self.app = app
        self.limit = max_bytes if callable(max_bytes) else lambda: max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _refuse(send, limit)
                return
            await self.app(scope, receive, send)
            return
        # A chunked body has no declared length: read it up to the limit, then replay it to the app.
        body, within_limit = await _read_up_to(receive, limit)
        if not within_limit:
            await _refuse(send, limit)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_up_to(receive: Any, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _refuse(send: Any, limit: int) -> None:
    """413 in the analytics error shape: what went wrong, then where."""
    message = f"the body is larger than {limit:,} bytes (SALESPULSE_MAX_BODY_BYTES); send smaller batches"
    problem = {"field": "body", "message": message}
    body = json.dumps({"error": "request too large", "detail": [problem]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Any) -> Any:
    """The buffered body first; after it, the real receive(), which reports a real disconnect only."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# --- the request gate: access, size, media type and JSON sanity, before any app parses the body ---

GATED = "salespulse.gated"
"""Scope key set once a request has passed a gate, so that a gate of a mounted app does not check it again."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A JSON body is parsed in full (with the standard library) only when something suspect appears in it: a
# NaN or Infinity token, a large exponent (a number that overflows a float), an escaped UTF-16 surrogate.
# Most bodies have none and are handed on untouched; the searches start with a literal, so they scan a
# 10,000-line batch (2.3 MB) in a few milliseconds.
SUSPECT_TOKENS = (b"NaN", b"Infinity")
LARGE_EXPONENTS = (re.compile(rb"e\+?[0-9]{3}"), re.compile(rb"E\+?[0-9]{3}"))
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB]")
SURROGATE = re.compile(r"[\ud800-\udfff]")


# The methods some endpoint answers. Any other (PUT, DELETE, TRACE...) goes on to the routing, which answers
# 405 with the path's Allow header, or 404: nothing answers it, so there is nothing to guard, and a key
# checked first would hide the 405 behind a 401.
ANSWERED_METHODS = frozenset({"GET", "HEAD", "POST"})


class RequestGate:
    """The service's front door, in order: the access rule of the path (401/403 before the body is read),
    the size of the body (413), its media type (415: JSON or nothing) and JSON's own sanity (422 naming the
    field): valid UTF-8, no NaN or infinite number (which the standard library would accept) and no lone
    UTF-16 surrogate (which no database or encoder can store).

    ``access`` gives a path's rule (service.auth.access_of); without it the gate checks no key."""

    def __init__(
        self,
        app: Any,
        max_bytes: int | Callable[[], int],
        access: Callable[[str], Access] | None = None,
    ) -> None:
        self.app = app
        self.limit = max_bytes if callable(max_bytes) else lambda: max_bytes
        self.access = access

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get(GATED):
            await self.app(scope, receive, send)
            return
        scope[GATED] = True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        if self.access is not None and scope["method"] in ANSWERED_METHODS:
            try:
                check_access(self.access(scope["path"]), headers)
            except AuthError as refused:
                await _answer(send, refused.status, {"field": API_KEY_HEADER, "message": refused.message})
                return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit, declared = self.limit(), headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
            await _refuse(send, limit)
            return
        body, within_limit = await _read_up_to(receive, limit)
        if not within_limit:
            await _refuse(send, limit)
            return
        problem = _media_type_problem(headers.get("content-type"), body)
        if problem is not None:
            await _answer(send, 415, problem)
            return
        problem = json_problem(body)
        if problem is not None:
            await _answer(send, 422, problem)
            return
        await self.app(scope, _replay(body, receive), send)


def _media_type_problem(content_type: str | None, body: bytes) -> dict[str, str] | None:
    """Bodies are JSON: a non-empty body of another type, or any multipart one (whose parser would fail on
    a missing boundary), is refused. No content type at all is read as JSON, as FastAPI and BentoML do."""
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return None
    if not body and not media_type.startswith("multipart/"):
        return None
    return {
        "field": "content-type",
        "message": f"expected application/json, not {media_type}: send a JSON body with the header "
        "'Content-Type: application/json'",
    }


def json_problem(body: bytes) -> dict[str, str] | None:
    """What makes a JSON body unacceptable before any model sees it, naming where; None when nothing does
    (a malformed body is left to the app, whose message says where the syntax breaks)."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            return {"field": "body", "message": f"the body is not valid UTF-8 (byte {error.start})"}
    if not _suspect(body):
        return None
    try:
        document = json.loads(
            body, parse_constant=NonFinite, parse_float=_finite_or_as_written, parse_int=_int_or_as_written
        )
    except (ValueError, RecursionError):  # malformed or absurdly deep: the app's parser says so
        return None
    try:
        return _first_bad_value(document, "")
    except RecursionError:
        return {"field": "body", "message": "the body is nested too deeply"}


def _suspect(body: bytes) -> bool:
    return (
        any(token in body for token in SUSPECT_TOKENS)
        or any(pattern.search(body) for pattern in LARGE_EXPONENTS)
        or (b"\\u" in body and SURROGATE_ESCAPE.search(body) is not None)
    )


class NonFinite(str):
    """A number of the body that no finite float holds (NaN, Infinity, 1e309), as it was written."""

    problem = "is not a finite number"


class TooLarge(str):
    """A whole number of the body beyond 64 bits (no database column or model takes it), as written."""

    problem = "is too large (beyond 64 bits)"


def _finite_or_as_written(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def _int_or_as_written(text: str) -> int | TooLarge:
    value = int(text)
    return value if -(2**63) <= value < 2**63 else TooLarge(text)


def _first_bad_value(value: Any, path: str) -> dict[str, str] | None:
    if isinstance(value, NonFinite | TooLarge):
        shown = value if len(value) <= 24 else f"{value[:12]}...{value[-8:]}"
        return {"field": path or "body", "message": f"{shown} {value.problem}"}
    if isinstance(value, str) and SURROGATE.search(value):
        return {
            "field": path or "body",
            "message": "contains a lone UTF-16 surrogate (such as \\ud800), which is no character: send "
            "valid Unicode",
        }
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_bad_value(item, f"{path}[{index}]")
            if found is not None:
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if SURROGATE.search(key):
                return _first_bad_value(key, path)
            found = _first_bad_value(item, inner)
            if found is not None:
                return found
    return None


async def _answer(send: Any, status: int, problem: dict[str, str]) -> None:
    """A refusal in the service's error shape."""
    body = json.dumps(error_body(status, [problem])).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
