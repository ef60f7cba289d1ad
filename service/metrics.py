"""Prometheus metrics of the service's traffic, labelled by route template, and the /metrics answer.

BentoML's own traffic metrics label each request by its raw path: every customer id asked for and every
probed path added about twenty series (3,000 requests to /customers/X<i> grew /metrics from 135 KB to
12.2 MB, and listed the ids that were asked for). The service turns them off (``metrics.enabled: false``
in its BentoML config, which also drops BentoML's /metrics route) and counts here instead, under the same
metric names, with the label ``endpoint`` set to the route that answered (``/customers/{customer_id}``);
requests no route answered (unknown paths, refusals of the request gate) share the label ``other``. The
series are a fixed set: routes x status codes. /metrics itself is served by the read app, under the
service's access rules (service.auth).

The metrics live in BentoML's Prometheus client, which keeps the values of every worker process
(multiprocess mode), so one scrape sees the whole service.
"""

from __future__ import annotations

from timeit import default_timer
from typing import Any

import anyio
from starlette.responses import Response

Scope = dict[str, Any]

UNROUTED = "other"
"""The label of a request no route answered: an unknown path, or one refused before routing."""


def route_label(scope: Scope) -> str:
    """The template of the route that answered (``/customers/{customer_id}``, ``/analytics/query``), never
    the raw path: a label or log line per customer id or probed path would grow without bound (and tell
    who asked for what). Starlette and FastAPI record the matched route in the scope while routing, and a
    mount its prefix as the root path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return UNROUTED
    return scope.get("root_path", "") + template


class TrafficMetrics:
    """ASGI middleware: requests by route template and status (count and duration), requests in flight and
    the time of the last request, in BentoML's metric names (namespace ``bentoml_service``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._metrics: dict[str, Any] | None = None

    def _setup(self) -> dict[str, Any]:
        # BentoML's container is configured by the time the first request arrives (not at import).
        from bentoml._internal.configuration.containers import BentoMLContainer
        from bentoml._internal.context import server_context

        client = BentoMLContainer.metrics_client.get()
        namespace = BentoMLContainer.api_server_config.metrics.namespace.get()
        labels = ["endpoint", "service_name", "service_version", "http_response_code", "runner_name"]
        process = ["service_name", "service_version", "runner_name"]
        self._identity = {
            "service_name": server_context.bento_name,
            "service_version": server_context.bento_version,
            "runner_name": server_context.service_name,
        }
        return {
            "duration": client.Histogram(
                namespace=namespace,
                name="request_duration_seconds",
                documentation="Request duration in seconds, by route template and status",
                labelnames=labels,
                buckets=BentoMLContainer.duration_buckets.get(),
            ),
            "total": client.Counter(
                namespace=namespace,
                name="request_total",
                documentation="Requests, by route template and status",
                labelnames=labels,
            ),
            "in_progress": client.Gauge(
                namespace=namespace,
                name="request_in_progress",
                documentation="Requests in progress",
                labelnames=process,
                multiprocess_mode="livesum",
            ),
            "last": client.Gauge(
                namespace=namespace,
                name="last_request_timestamp_seconds",
                documentation="Timestamp of the last request",
                labelnames=process,
                multiprocess_mode="mostrecent",
            ),
        }

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        if self._metrics is None:
            self._metrics = self._setup()
        metrics, identity = self._metrics, self._identity
        metrics["last"].labels(**identity).set_to_current_time()
        started = default_timer()
        status = 0

        async def counted(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # The route is known now: routing happened on the way in.
                labels = {**identity, "endpoint": route_label(scope), "http_response_code": status}
                metrics["total"].labels(**labels).inc()
                metrics["duration"].labels(**labels).observe(max(default_timer() - started, 0))
            await send(message)

        with metrics["in_progress"].labels(**identity).track_inprogress():
            await self.app(scope, receive, counted)


async def metrics_response() -> Response:
    """The Prometheus exposition of every worker's metrics (read from BentoML's multiprocess store)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    client = BentoMLContainer.metrics_client.get()
    content = await anyio.to_thread.run_sync(client.generate_latest)
    return Response(content, media_type=client.CONTENT_TYPE_LATEST)
