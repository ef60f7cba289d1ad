"""A Python client of the salespulse service: forecasts, segments, customers, reports, queries and ingest.

    from salespulse.client import SalesPulseClient

    with SalesPulseClient() as client:               # http://127.0.0.1:3000 and the key of `make run`
        forecast = client.forecast(["Technology"], level="category", horizon=7)

:class:`SalesPulseClient` (blocking, ``httpx.Client``) and :class:`AsyncSalesPulseClient` (``async``,
``httpx.AsyncClient``) have the same methods. Both get their requests and parsers from :class:`_Calls`, so
the two classes hold only I/O: sending, retrying, sleeping. Answers are validated into the service's own
models (:mod:`salespulse.schemas`); a non-2xx answer raises a :class:`SalesPulseError` carrying the service's
error body, one subclass per family (:class:`NotFoundError`, :class:`AuthenticationError`, ...).

Retries: connection failures and 502/503/504 answers are retried ``retries`` times with exponential backoff
(a 4xx never is: it would fail the same way). Every endpoint is safe to repeat: predictions, reports and
queries only read, and ``POST /analytics/sales`` is idempotent by order id + line.

This module imports neither ``service`` nor ``training``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from salespulse import __version__
from salespulse.config import get_settings
from salespulse.schemas import (
    CustomerFeatures,
    CustomerSummary,
    CustomerValueResponse,
    ErrorBody,
    ForecastResponse,
    PlannedPromotion,
    Problem,
    QueryResult,
    ReportResult,
    SalesResult,
    SegmentResponse,
)

if TYPE_CHECKING:
    from salespulse.analytics.ingest import SaleLine, SalesBatch
    from salespulse.analytics.query import Query
    from salespulse.features.series import Level, ServingFreq

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)

API_KEY_HEADER = "X-API-Key"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 10.0
DEFAULT_INTERVALS: tuple[float, ...] = (80, 95)
# Answers of a proxy or a service that is starting or overloaded: the same request may well succeed later.
RETRY_STATUSES = frozenset({502, 503, 504})
# The request never reached the service, or the connection broke: safe to resend (see the module docstring).
# A read timeout is not retried: the service is busy with the request, and resending adds to its load.
RETRY_ERRORS = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


# ============================================================================================ errors


class SalesPulseError(Exception):
    """The service answered with an error: its status, the error title and the problems, each naming a
    field (``{"error": ..., "detail": [{"field": ..., "message": ...}]}``)."""

    def __init__(
        self, status: int | None, error: str, detail: Sequence[Problem] = (), *, request: str = ""
    ) -> None:
        self.status = status
        self.error = error
        self.detail = list(detail)
        self.request = request
        super().__init__(self._describe())

    @property
    def fields(self) -> list[str]:
        """The fields the problems name (``""`` for a problem of the request as a whole)."""
        return [problem.field for problem in self.detail]

    def _describe(self) -> str:
        problems = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in self.detail)
        status = f"{self.status} " if self.status is not None else ""
        where = f" ({self.request})" if self.request else ""
        return f"{status}{self.error}" + (f": {problems}" if problems else "") + where


class InvalidRequestError(SalesPulseError):
    """400, 413, 415 or 422: the request was refused as it is (the problems say which field and why)."""


class AuthenticationError(SalesPulseError):
    """401 or 403: the API key is missing or wrong, or the service has none configured."""


class NotFoundError(SalesPulseError):
    """404: an unknown customer id, series, report or route."""


class ServerError(SalesPulseError):
    """5xx: the service failed or is unavailable (after the retries, for 502/503/504)."""


class ServiceUnreachableError(SalesPulseError):
    """No answer at all: the connection failed on every attempt."""

    def __init__(self, base_url: str, attempts: int, cause: Exception) -> None:
        self.base_url = base_url
        self.attempts = attempts
        reason = str(cause) or type(cause).__name__
        message = f"cannot reach the salespulse service at {base_url} ({attempts} attempt(s))"
        super().__init__(None, message, [Problem(field="", message=reason)])


_ERROR_FAMILIES: dict[int, type[SalesPulseError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    413: InvalidRequestError,
    415: InvalidRequestError,  # a body that is not JSON (the service's request gate)
    422: InvalidRequestError,
}


def error_from_response(response: httpx.Response) -> SalesPulseError:
    """The exception for a non-2xx answer, with the service's error body (or the bare status if the body is
    not one, e.g. from a proxy)."""
    status = response.status_code
    family = _ERROR_FAMILIES.get(status, ServerError if status >= 500 else SalesPulseError)
    request = f"{response.request.method} {response.request.url}"
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        text = response.text.strip()[:200]
        problems = [Problem(field="", message=text)] if text else []
        return family(status, response.reason_phrase.lower() or "error", problems, request=request)
    return family(status, body.error, body.detail, request=request)


# ============================================================================================ settings


def default_base_url() -> str:
    """Where the service of this checkout listens: ``SALESPULSE_SERVICE_HOST`` and ``_PORT``."""
    settings = get_settings()
    host = settings.service_host
    # A service bound to every interface is reached on loopback.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.service_port}"


def default_api_key() -> str | None:
    """``SALESPULSE_API_KEY``, else the key file of `make run` (``SALESPULSE_API_KEY_FILE``), else none."""
    return get_settings().resolved_api_key()


# ============================================================================================ requests


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request to send and how to read a successful answer to it."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]


@dataclass(frozen=True)
class _Retry:
    delay: float


def _model(model: type[ModelT]) -> Callable[[httpx.Response], ModelT]:
    return lambda response: model.model_validate_json(response.content)


def _json(response: httpx.Response) -> Any:
    return response.json()


def _member(name: str) -> Callable[[httpx.Response], Any]:
    return lambda response: response.json()[name]


def _as_json(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A request body part: a model as the JSON it was built from (fields the caller set), a dict as is."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dict(value)


def _query_value(value: Any) -> Any:
    """A report parameter as httpx puts it in a query string (a list repeats the parameter)."""
    if isinstance(value, list | tuple | set):
        return [_query_value(item) for item in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


class _Calls:
    """Configuration, request building and answer parsing shared by the blocking and the async client."""

    _http: httpx.Client | httpx.AsyncClient

    def __init__(
        self, base_url: str | None, api_key: str | None, timeout: float, retries: int, backoff: float
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._api_key = api_key if api_key is not None else default_api_key()
        self._timeout = httpx.Timeout(timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _client_options(self) -> dict[str, Any]:
        headers = {"User-Agent": f"salespulse-client/{__version__}"}
        if self._api_key:
            headers[API_KEY_HEADER] = self._api_key
        return {"base_url": self.base_url, "headers": headers, "timeout": self._timeout}

    def _call(self, method: str, path: str, parse: Callable[[httpx.Response], T], **options: Any) -> _Call[T]:
        return _Call(self._http.build_request(method, path, **options), parse)

    # --- what each endpoint sends and answers

    def _health_call(self) -> _Call[dict[str, Any]]:
        return self._call("GET", "/health", _json)

    def _models_call(self) -> _Call[list[dict[str, Any]]]:
        return self._call("GET", "/models", _member("models"))

    def _forecast_call(
        self,
        series: str | Sequence[str],
        level: Level,
        horizon: int | None,
        intervals: Iterable[float],
        freq: ServingFreq = "D",
        promotions: Sequence[PlannedPromotion | Mapping[str, Any]] = (),
    ) -> _Call[ForecastResponse]:
        body: dict[str, Any] = {
            "series": [series] if isinstance(series, str) else list(series),
            "level": level,
            "freq": freq,
            "intervals": list(intervals),
            "promotions": [
                PlannedPromotion.model_validate(p).model_dump(mode="json", exclude_none=True)
                for p in promotions
            ],
        }
        if horizon is not None:  # else the service's default horizon
            body["horizon"] = horizon
        return self._call("POST", "/forecast", _model(ForecastResponse), json=body)

    def _segment_call(
        self,
        customer_ids: Sequence[str] | None,
        customers: Sequence[CustomerFeatures | Mapping[str, Any]] | None,
    ) -> _Call[SegmentResponse]:
        if (customer_ids is None) == (customers is None):
            raise ValueError("pass exactly one of customer_ids (warehouse ids) or customers (feature values)")
        if customer_ids is not None:
            body: dict[str, Any] = {"customer_ids": list(customer_ids)}
        else:
            # Dicts go as they are: the service validates them and names the bad field in its answer.
            body = {"customers": [_features_json(customer) for customer in customers or ()]}
        return self._call("POST", "/segment", _model(SegmentResponse), json=body)

    def _predict_customers_call(
        self,
        customer_ids: Sequence[str] | None,
        customers: Sequence[CustomerSummary | Mapping[str, Any]] | None,
        options: Mapping[str, Any],
    ) -> _Call[CustomerValueResponse]:
        if (customer_ids is None) == (customers is None):
            raise ValueError("pass exactly one of customer_ids (warehouse ids) or customers (summaries)")
        body = {key: value for key, value in options.items() if value is not None}  # else the service's
        if customer_ids is not None:
            body["customer_ids"] = list(customer_ids)
        else:
            body["customers"] = [_features_json(customer) for customer in customers or ()]
        return self._call("POST", "/predict/customers", _model(CustomerValueResponse), json=body)

    def _customer_call(self, customer_id: str) -> _Call[dict[str, Any]]:
        return self._call("GET", f"/customers/{quote(customer_id, safe='')}", _json)

    def _segments_call(self) -> _Call[dict[str, Any]]:
        return self._call("GET", "/segments", _json)

    def _reports_call(self) -> _Call[list[dict[str, Any]]]:
        return self._call("GET", "/analytics/reports", _member("reports"))

    def _report_call(self, name: str, params: Mapping[str, Any]) -> _Call[ReportResult]:
        query = {key: _query_value(value) for key, value in params.items() if value is not None}
        path = f"/analytics/reports/{quote(name, safe='')}"
        return self._call("GET", path, _model(ReportResult), params=query)

    def _reload_call(self) -> _Call[list[dict[str, Any]]]:
        return self._call("POST", "/admin/reload", _member("models"))

    def _warehouse_info_call(self) -> _Call[dict[str, Any]]:
        return self._call("GET", "/admin/warehouse", _json)

    def _import_file_call(self, file: str, mapping: str, skip_invalid: bool) -> _Call[dict[str, Any]]:
        body = {"file": file, "mapping": mapping, "skip_invalid": skip_invalid}
        return self._call("POST", "/admin/import", _json, json=body)

    def _import_goals_call(self, file: str, level: str | None) -> _Call[dict[str, Any]]:
        return self._call("POST", "/admin/import-goals", _json, json={"file": file, "level": level})

    def _snapshot_call(self, path: str) -> _Call[dict[str, Any]]:
        return self._call("POST", "/admin/snapshot", _json, json={"path": path})

    def _query_call(self, query: Query | Mapping[str, Any]) -> _Call[QueryResult]:
        return self._call("POST", "/analytics/query", _model(QueryResult), json=_as_json(query))

    def _ingest_call(
        self,
        lines: SalesBatch | Iterable[SaleLine | Mapping[str, Any]],
        customers: Iterable[BaseModel | Mapping[str, Any]],
        products: Iterable[BaseModel | Mapping[str, Any]],
    ) -> _Call[SalesResult]:
        if isinstance(lines, BaseModel):  # a whole SalesBatch
            body = _as_json(lines)
        else:
            body = {"lines": [_as_json(line) for line in lines]}
            if customers := [_as_json(customer) for customer in customers]:
                body["customers"] = customers
            if products := [_as_json(product) for product in products]:
                body["products"] = products
        return self._call("POST", "/analytics/sales", _model(SalesResult), json=body)

    # --- what to do after an attempt (the I/O wrappers only send and sleep)

    def _after_answer(self, call: _Call[T], response: httpx.Response, attempt: int) -> T | _Retry:
        if response.status_code in RETRY_STATUSES and attempt < self.retries:
            return _Retry(self._delay(attempt, response))
        if response.is_success:
            return call.parse(response)
        raise error_from_response(response)

    def _after_failure(self, error: httpx.TransportError, attempt: int) -> _Retry:
        if attempt < self.retries:
            return _Retry(self._delay(attempt))
        raise ServiceUnreachableError(self.base_url, attempt + 1, error) from error

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds before the next attempt: doubling from ``backoff``, or what a Retry-After header asks."""
        retry_after = response.headers.get("retry-after", "") if response is not None else ""
        if retry_after.isdigit():
            return min(float(retry_after), MAX_BACKOFF)
        return min(self.backoff * 2**attempt, MAX_BACKOFF)


def _features_json(customer: CustomerFeatures | CustomerSummary | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(customer, CustomerFeatures | CustomerSummary):
        return customer.model_dump(mode="json", exclude_none=True)
    return dict(customer)


def _value_options(
    horizon_days: int | None, lifetime_months: int | None, monthly_discount_rate: float | None
) -> dict[str, Any]:
    return {
        "horizon_days": horizon_days,
        "lifetime_months": lifetime_months,
        "monthly_discount_rate": monthly_discount_rate,
    }


# ============================================================================================ clients


class SalesPulseClient(_Calls):
    """Blocking client of the salespulse service.

    ``base_url`` defaults to ``http://SALESPULSE_SERVICE_HOST:SALESPULSE_SERVICE_PORT``, ``api_key`` to
    ``SALESPULSE_API_KEY`` or the key file of `make run` (the key is needed for :meth:`ingest`, and for
    everything when the service's read access is keyed). ``timeout`` is in seconds per request. Connection
    failures and 502/503/504 are retried ``retries`` times, waiting ``backoff`` seconds, then twice as long
    each time. ``transport`` replaces httpx's (e.g. an ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(transport=transport, **self._client_options())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.send(call.request)
            except RETRY_ERRORS as error:
                step: T | _Retry = self._after_failure(error, attempt)
            else:
                step = self._after_answer(call, response, attempt)
            if not isinstance(step, _Retry):
                return step
            time.sleep(step.delay)
            attempt += 1

    def health(self) -> dict[str, Any]:
        """Whether the models and the warehouse are loaded (``status``: ``ready`` or ``not ready``)."""
        return self._send(self._health_call())

    def models(self) -> list[dict[str, Any]]:
        """The models in service: name, registry version, alias, training time, backtest metrics."""
        return self._send(self._models_call())

    def forecast(
        self,
        series: str | Sequence[str],
        *,
        level: Level = "product_region",
        horizon: int | None = None,
        intervals: Iterable[float] = DEFAULT_INTERVALS,
        freq: ServingFreq = "D",
        promotions: Sequence[PlannedPromotion | Mapping[str, Any]] = (),
    ) -> ForecastResponse:
        """Revenue forecasts of ``series`` (keys at ``level``) for ``horizon`` periods of ``freq`` (D days, W
        weeks, M months; default horizon: the service's), with ``lo_<p>``/``hi_<p>`` prediction intervals
        for each percentage in ``intervals``; ``promotions`` are planned price cuts (what-if)."""
        return self._send(self._forecast_call(series, level, horizon, intervals, freq, promotions))

    def segment(
        self,
        customer_ids: Sequence[str] | None = None,
        customers: Sequence[CustomerFeatures | Mapping[str, Any]] | None = None,
    ) -> SegmentResponse:
        """Segment, action and distance of customers given by warehouse id, or by raw feature values
        (:class:`CustomerFeatures` or dicts of the same fields; whole numbers are fine)."""
        return self._send(self._segment_call(customer_ids, customers))

    def predict_customers(
        self,
        customer_ids: Sequence[str] | None = None,
        customers: Sequence[CustomerSummary | Mapping[str, Any]] | None = None,
        *,
        horizon_days: int | None = None,
        lifetime_months: int | None = None,
        monthly_discount_rate: float | None = None,
    ) -> CustomerValueResponse:
        """Expected purchases and spend in the next ``horizon_days``, probability still active and lifetime
        value of customers given by warehouse id, or by raw purchase summaries (:class:`CustomerSummary` or
        dicts of the same fields). Options left out take the service's defaults (90 days, 36 months, 0)."""
        options = _value_options(horizon_days, lifetime_months, monthly_discount_rate)
        return self._send(self._predict_customers_call(customer_ids, customers, options))

    def customer(self, customer_id: str) -> dict[str, Any]:
        """One customer's details, features, lifetime revenue, segment and customer-value prediction."""
        return self._send(self._customer_call(customer_id))

    def segments(self) -> dict[str, Any]:
        """The segment profiles of the model in service (``model_version`` and ``segments``)."""
        return self._send(self._segments_call())

    def reports(self) -> list[dict[str, Any]]:
        """The named reports: name, title, route and parameters of each."""
        return self._send(self._reports_call())

    def report(self, name: str, **params: Any) -> ReportResult:
        """Run the named report; ``params`` are its parameters (``region=["West"]``, ``top=5``, dates...)."""
        return self._send(self._report_call(name, params))

    def query(self, query: Query | Mapping[str, Any]) -> QueryResult:
        """Ask the semantic layer (a :class:`salespulse.analytics.query.Query` or the same as a dict)."""
        return self._send(self._query_call(query))

    def ingest(
        self,
        lines: SalesBatch | Iterable[SaleLine | Mapping[str, Any]],
        *,
        customers: Iterable[BaseModel | Mapping[str, Any]] = (),
        products: Iterable[BaseModel | Mapping[str, Any]] = (),
    ) -> SalesResult:
        """Append (or replace, by order id + line) order lines, all or none; needs the API key. ``lines``
        is a :class:`salespulse.analytics.ingest.SalesBatch` or its lines (models or dicts)."""
        return self._send(self._ingest_call(lines, customers, products))

    # --- admin (API key): what the command line uses while the service owns the warehouse

    def reload(self) -> list[dict[str, Any]]:
        """Swap to the registry's current champions; each model says whether it changed."""
        return self._send(self._reload_call())

    def warehouse_info(self) -> dict[str, Any]:
        """Where the warehouse is, its table row counts and its first and last sale."""
        return self._send(self._warehouse_info_call())

    def import_file(self, file: str, mapping: str, *, skip_invalid: bool = False) -> dict[str, Any]:
        """Import an export (absolute paths on the service's machine) through the service; ``summary``."""
        return self._send(self._import_file_call(file, mapping, skip_invalid))

    def import_goals(self, file: str, *, level: str | None = None) -> dict[str, Any]:
        """Import a goal plan (absolute path on the service's machine) through the service; ``summary``."""
        return self._send(self._import_goals_call(file, level))

    def snapshot(self, path: str) -> dict[str, Any]:
        """Have the service write a consistent copy of the warehouse to ``path`` (absolute, new)."""
        return self._send(self._snapshot_call(path))


class AsyncSalesPulseClient(_Calls):
    """The async twin of :class:`SalesPulseClient`: the same constructor and methods, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(transport=transport, **self._client_options())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.send(call.request)
            except RETRY_ERRORS as error:
                step: T | _Retry = self._after_failure(error, attempt)
            else:
                step = self._after_answer(call, response, attempt)
            if not isinstance(step, _Retry):
                return step
            await asyncio.sleep(step.delay)
            attempt += 1

    async def health(self) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.health`."""
        return await self._send(self._health_call())

    async def models(self) -> list[dict[str, Any]]:
        """See :meth:`SalesPulseClient.models`."""
        return await self._send(self._models_call())

    async def forecast(
        self,
        series: str | Sequence[str],
        *,
        level: Level = "product_region",
        horizon: int | None = None,
        intervals: Iterable[float] = DEFAULT_INTERVALS,
        freq: ServingFreq = "D",
        promotions: Sequence[PlannedPromotion | Mapping[str, Any]] = (),
    ) -> ForecastResponse:
        """See :meth:`SalesPulseClient.forecast`."""
        return await self._send(self._forecast_call(series, level, horizon, intervals, freq, promotions))

    async def segment(
        self,
        customer_ids: Sequence[str] | None = None,
        customers: Sequence[CustomerFeatures | Mapping[str, Any]] | None = None,
    ) -> SegmentResponse:
        """See :meth:`SalesPulseClient.segment`."""
        return await self._send(self._segment_call(customer_ids, customers))

    async def predict_customers(
        self,
        customer_ids: Sequence[str] | None = None,
        customers: Sequence[CustomerSummary | Mapping[str, Any]] | None = None,
        *,
        horizon_days: int | None = None,
        lifetime_months: int | None = None,
        monthly_discount_rate: float | None = None,
    ) -> CustomerValueResponse:
        """See :meth:`SalesPulseClient.predict_customers`."""
        options = _value_options(horizon_days, lifetime_months, monthly_discount_rate)
        return await self._send(self._predict_customers_call(customer_ids, customers, options))

    async def customer(self, customer_id: str) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.customer`."""
        return await self._send(self._customer_call(customer_id))

    async def segments(self) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.segments`."""
        return await self._send(self._segments_call())

    async def reports(self) -> list[dict[str, Any]]:
        """See :meth:`SalesPulseClient.reports`."""
        return await self._send(self._reports_call())

    async def report(self, name: str, **params: Any) -> ReportResult:
        """See :meth:`SalesPulseClient.report`."""
        return await self._send(self._report_call(name, params))

    async def query(self, query: Query | Mapping[str, Any]) -> QueryResult:
        """See :meth:`SalesPulseClient.query`."""
        return await self._send(self._query_call(query))

    async def ingest(
        self,
        lines: SalesBatch | Iterable[SaleLine | Mapping[str, Any]],
        *,
        customers: Iterable[BaseModel | Mapping[str, Any]] = (),
        products: Iterable[BaseModel | Mapping[str, Any]] = (),
    ) -> SalesResult:
        """See :meth:`SalesPulseClient.ingest`."""
        return await self._send(self._ingest_call(lines, customers, products))

    async def reload(self) -> list[dict[str, Any]]:
        """See :meth:`SalesPulseClient.reload`."""
        return await self._send(self._reload_call())

    async def warehouse_info(self) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.warehouse_info`."""
        return await self._send(self._warehouse_info_call())

    async def import_file(self, file: str, mapping: str, *, skip_invalid: bool = False) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.import_file`."""
        return await self._send(self._import_file_call(file, mapping, skip_invalid))

    async def import_goals(self, file: str, *, level: str | None = None) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.import_goals`."""
        return await self._send(self._import_goals_call(file, level))

    async def snapshot(self, path: str) -> dict[str, Any]:
        """See :meth:`SalesPulseClient.snapshot`."""
        return await self._send(self._snapshot_call(path))
