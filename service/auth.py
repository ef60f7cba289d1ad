"""API-key checks: write and admin endpoints always need the key; read endpoints when configured so."""

from __future__ import annotations

import hmac
from http import HTTPStatus
from typing import Annotated

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


class _Unauthorized(BentoMLException):
    error_code = HTTPStatus.UNAUTHORIZED


class _Forbidden(BentoMLException):
    error_code = HTTPStatus.FORBIDDEN


def as_bentoml_error(error: AuthError) -> BentoMLException:
    """The same refusal for a BentoML API method, which answers with the exception's status code."""
    return (_Unauthorized if error.status == HTTPStatus.UNAUTHORIZED else _Forbidden)(error.message)
