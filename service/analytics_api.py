"""The analytics HTTP API: an ASGI app the service mounts under /analytics.

    engine = AnalyticsEngine(connect(), use_rollups=settings.analytics_rollups)   # once, at start-up
    app = create_analytics_app(engine)        # then @bentoml.asgi_app(app, path="/analytics")

Routes (relative to the mount): ``POST /query``, ``GET /meta``, ``GET /reports`` and one ``GET
/reports/<name>`` per named report, ``GET /insights`` (sentences over the reports), and ``POST /sales``
(API key). Every bad input gets a 4xx JSON body ``{"error": ..., "detail": [{"field": ..., "message":
...}]}`` naming the field; never a stack trace.

Annotations here are real objects, not strings (no ``from __future__ import annotations``): the report routes
are built in a loop with per-report parameter models that FastAPI must see at run time.
"""

import inspect
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from salespulse.analytics.engine import AnalyticsEngine, RawJSON
from salespulse.analytics.ingest import SalesBatch
from salespulse.analytics.insights import InsightParams, InsightsResult, insights_of
from salespulse.analytics.meta import describe, describe_report, example_response
from salespulse.analytics.query import Query as AnalyticsQuery
from salespulse.analytics.reports import REGISTRY, Report, params_model, run_report
from salespulse.config import get_settings
from salespulse.schemas import ErrorBody, QueryResult, ReportResult, SalesResult
from salespulse.warehouse.store import connect
from service.auth import analytics_access_of, read_access, write_access
from service.errors import install_error_handlers
from service.middleware import RequestGate

log = logging.getLogger(__name__)


# Response models (for the documentation; responses are built as plain JSON for speed) are shared with
# the client: salespulse.schemas.
ERRORS = {status: {"model": ErrorBody} for status in (401, 403, 404, 413, 422)}


# --- the app ---


def engine_of(request: Request) -> AnalyticsEngine:
    """The engine the app was given (a service worker that does not own the warehouse has none: 503)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise StarletteHTTPException(503, "Analytics engine not started")
    return engine


Engine = Annotated[AnalyticsEngine, Depends(engine_of)]


def _respond(content: dict[str, Any]) -> Response:
    """JSON; rows that DuckDB already serialized (RawJSON) are spliced in as they are."""
    rows = content.get("rows")
    if not isinstance(rows, RawJSON):
        # orjson: a report whose rows Python post-processed can hold tens of thousands of rows (goal
        # attainment by product and month), which the standard library serializes in ~35 ms.
        return Response(orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
    rest = {key: value for key, value in content.items() if key != "rows"}
    head = json.dumps(rest, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(f'{head[:-1]},"rows":{rows}}}'.encode(), media_type="application/json")


def create_analytics_app(engine: AnalyticsEngine | None = None, *, standalone: bool = True) -> FastAPI:
    """The analytics ASGI app over ``engine``; standalone and without one, its lifespan opens the configured
    warehouse.

    A service that mounts this app gives it the engine itself (``standalone=False``): only the worker that
    owns the warehouse has one, and a mounted app's lifespan may or may not run (BentoML runs it, Starlette
    does not), so it must never open the warehouse on its own there.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = None
        if standalone and getattr(app.state, "engine", None) is None:
            own = connect()
            app.state.engine = AnalyticsEngine.configured(own)
            app.state.engine.start_housekeeping(get_settings().analytics_idle_seconds)
        yield
        if own is not None:
            app.state.engine.stop_housekeeping()
            own.close()

    app = FastAPI(
        title="salespulse analytics",
        version="1.0",
        description=(
            "A semantic sales layer: ask with POST /query (measures, dimensions, a time grain, filters, "
            "comparison periods) or use a named report under /reports. GET /meta lists what can be asked. "
            "POST /sales appends order lines in real time; the next query includes them."
        ),
        lifespan=lifespan,
    )
    app.state.engine = engine
    install_error_handlers(app)
    # Access, size, media type and JSON sanity before any route reads the body (mounted in the service, its
    # own gate has checked the request already).
    app.add_middleware(
        RequestGate, max_bytes=lambda: get_settings().max_body_bytes, access=analytics_access_of
    )

    # Each router declares its access rule once; the dependency runs before the body is read, so a request
    # without the key is answered 401/403 whatever its body.
    reads = APIRouter(dependencies=[Depends(read_access)], responses=ERRORS)
    writes = APIRouter(dependencies=[Depends(write_access)], responses=ERRORS)

    @reads.post("/query", response_model=QueryResult, tags=["query"])
    def run_query(engine: Engine, query: AnalyticsQuery) -> JSONResponse:
        """Ask a question of the semantic layer (see GET /meta for the names)."""
        return _respond(engine.run_query(query, raw_json=True))

    @reads.get("/meta", tags=["query"])
    def meta(engine: Engine) -> JSONResponse:
        """Measures, dimensions, grains, filter operators, comparison options and the reports."""
        return _respond(describe(engine.state))

    @reads.get("/reports", tags=["reports"])
    def reports() -> JSONResponse:
        """The named reports, their routes and parameters."""
        return _respond({"reports": [describe_report(r) for r in REGISTRY.values()]})

    for report in REGISTRY.values():
        _add_report_route(reads, report)

    @reads.get("/insights", response_model=InsightsResult, tags=["insights"])
    def insights(engine: Engine, params: Annotated[InsightParams, Query()]) -> JSONResponse:
        """The few things a sales manager should know, ranked by impact: each a sentence with its figures
        and the reports that give them (salespulse/analytics/insights.py has the rules)."""
        return _respond(insights_of(engine, params))

    @writes.post("/sales", response_model=SalesResult, tags=["ingest"])
    def post_sales(engine: Engine, batch: SalesBatch) -> JSONResponse:
        """Append (or replace, by order_id + line) a batch of order lines, atomically: a batch with any bad
        line is rejected whole, naming the line index and field. Re-sending a batch changes nothing."""
        result = engine.ingest(batch)
        return _respond(
            {
                "lines": len(batch.lines),
                "inserted": result.inserted,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "rollups_rebuilt": result.rollups_rebuilt,
                "seconds": round(result.seconds, 4),
                "batches_in_transaction": result.group,
            }
        )

    app.include_router(reads)
    app.include_router(writes)
    return app


def _add_report_route(router: APIRouter, report: Report) -> None:
    """One GET route per report, so each has its own documented parameters and example."""
    model = params_model(report)

    def endpoint(engine: AnalyticsEngine, params: Any) -> JSONResponse:
        return _respond(run_report(engine, report.name, params, raw_json=True))

    # FastAPI reads the parameters from the signature: give it this report's model as query parameters.
    endpoint.__signature__ = inspect.Signature(
        [  # type: ignore[attr-defined]
            inspect.Parameter("engine", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Engine),
            inspect.Parameter(
                "params", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[model, Query()]
            ),
        ]
    )
    example = example_response(report)
    router.add_api_route(
        f"/reports/{report.name}",
        endpoint,
        methods=["GET"],
        response_model=ReportResult,
        summary=report.title,
        description=report.description,
        tags=[f"reports: {report.section}"],
        operation_id=f"report_{report.name.replace('-', '_')}",
        responses={200: {"content": {"application/json": {"example": example}}}},
    )
