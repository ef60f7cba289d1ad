"""API-key checks: write and admin endpoints always need the key; read endpoints when configured so.

The rule of every path is declared once, here (:func:`access_of`), and enforced before anything reads the
request body (service.middleware.RequestGate): a request without the key is answered 401/403 whatever its
body. The routes also declare their rule as a FastAPI dependency (:func:`read_access`, :func:`write_access`),
which documents the header in the API description and guards the analytics app when it is served alone.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Literal

from bentoml.exceptions import BentoMLException
from fastapi import Header

from salespulse.config import get_settings

API_KEY_HEADER = "x-api-key"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def require_key(presented: str | None) -> None:
    """Raise AuthError unless ``presented`` is the configured key (compared in constant time)."""
    configured = get_settings().api_key
    if configured is None:
        raise AuthError(403, "This endpoint is disabled: the service has no SALESPULSE_API_KEY configured.")
    if not presented:
        raise AuthError(401, f"Missing API key: send it in the {API_KEY_HEADER!r} header.")
    if not hmac.compare_digest(presented.encode(), configured.get_secret_value().encode()):
        raise AuthError(403, "Invalid API key.")


def require_read_access(presented: str | None) -> None:
    if get_settings().read_access == "keyed":
        require_key(presented)


def require_metrics_access(authorization: str | None, presented: str | None) -> None:
    """/metrics: with SALESPULSE_METRICS_TOKEN, that bearer token (or the API key); else like a read."""
    token = get_settings().metrics_token
    if token is None:
        require_read_access(presented)
        return
    scheme, _, credentials = (authorization or "").partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" else ""
    if bearer and hmac.compare_digest(bearer.encode(), token.get_secret_value().encode()):
        return
    if presented:
        require_key(presented)
        return
    raise AuthError(
        401, f"Missing metrics token: send 'Authorization: Bearer <token>' or the {API_KEY_HEADER!r} header."
    )


# --- the rule of every path ---

Access = Literal["open", "read", "write", "metrics"]

# Pages and API descriptions: no data in them (the dashboard's figures come from the keyed read endpoints).
OPEN_PATHS = frozenset(
    {"/", "/health", "/livez", "/healthz", "/readyz", "/docs", "/redoc", "/docs.json", "/schema.json",
     "/openapi.json", "/docs/oauth2-redirect", "/dashboard"}
)  # fmt: skip
OPEN_PREFIXES = ("/dashboard/", "/static_content/", "/assets/")
WRITE_PREFIXES = ("/admin/",)
ANALYTICS_MOUNT = "/analytics"
ANALYTICS_OPEN_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
ANALYTICS_WRITE_PATHS = frozenset({"/sales"})


def access_of(path: str) -> Access:
    """The access rule of a path of the service. Anything not declared open, write or metrics is a read, so
    an unknown path in keyed read mode is a 401 (no probing for what exists) and a new route is keyed by
    default."""
    if path == ANALYTICS_MOUNT or path.startswith(ANALYTICS_MOUNT + "/"):
        return analytics_access_of(path.removeprefix(ANALYTICS_MOUNT) or "/")
    if path == "/metrics":
        return "metrics"
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return "open"
    if path.startswith(WRITE_PREFIXES):
        return "write"
    return "read"


def analytics_access_of(path: str) -> Access:
    """The access rule of a path of the analytics app (relative to its mount)."""
    if path in ANALYTICS_OPEN_PATHS:
        return "open"
    return "write" if path in ANALYTICS_WRITE_PATHS else "read"


def check_access(access: Access, headers: Mapping[str, str]) -> None:
    """Raise AuthError unless ``headers`` satisfy ``access`` (header names in lower case)."""
    presented = headers.get(API_KEY_HEADER)
    if access == "write":
        require_key(presented)
    elif access == "read":
        require_read_access(presented)
    elif access == "metrics":
        require_metrics_access(headers.get("authorization"), presented)


# FastAPI dependencies: routers declare them once for all their routes. A dependency runs before the body is
# parsed, so a request without the key is answered 401/403 whatever its body.
ApiKeyHeader = Annotated[
    str | None, Header(alias=API_KEY_HEADER, description="The API key (SALESPULSE_API_KEY).")
]


def read_access(x_api_key: ApiKeyHeader = None) -> None:
    """Read endpoints: open, or keyed when SALESPULSE_READ_ACCESS=keyed."""
    require_read_access(x_api_key)


def write_access(x_api_key: ApiKeyHeader = None) -> None:
    """Write and admin endpoints: always keyed."""
    require_key(x_api_key)


def metrics_access(
    authorization: Annotated[
        str | None, Header(description="'Bearer <SALESPULSE_METRICS_TOKEN>', when a metrics token is set.")
    ] = None,
    x_api_key: ApiKeyHeader = None,
) -> None:
    """/metrics: its own bearer token when one is set, else the rule of a read."""
    require_metrics_access(authorization, x_api_key)


class _Unauthorized(BentoMLException):
    error_code = HTTPStatus.UNAUTHORIZED


class _Forbidden(BentoMLException):
    error_code = HTTPStatus.FORBIDDEN


def as_bentoml_error(error: AuthError) -> BentoMLException:
    """The same refusal for a BentoML API method, which answers with the exception's status code."""
    return (_Unauthorized if error.status == HTTPStatus.UNAUTHORIZED else _Forbidden)(error.message)
