"""ASGI middleware that refuses oversize request bodies with 413 before anything parses them.

The BentoML service and the analytics app (also served on its own by the benchmark) both use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

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
