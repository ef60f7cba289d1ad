"""The analytics HTTP API: an ASGI app the service mounts under /analytics.

    engine = AnalyticsEngine(connect(), use_rollups=settings.analytics_rollups)   # once, at start-up
    app = create_analytics_app(engine)        # then @bentoml.asgi_app(app, path="/analytics")

Routes (relative to the mount): ``POST /query``, ``GET /meta``, ``GET /reports`` and one ``GET
/reports/<name>`` per named report, and ``POST /sales`` (API key). Every bad input gets a 4xx JSON body
``{"error": ..., "detail": [{"field": ..., "message": ...}]}`` naming the field; never a stack trace.

Annotations here are real objects, not strings (no ``from __future__ import annotations``): the report routes
are built in a loop with per-report parameter models that FastAPI must see at run time.
"""

import inspect
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from salespulse.analytics.engine import AnalyticsEngine, RawJSON
from salespulse.analytics.ingest import SalesBatch
from salespulse.analytics.meta import describe_report, example_response
from salespulse.analytics.query import Query as AnalyticsQuery
from salespulse.analytics.reports import REGISTRY, Report, params_model
from salespulse.config import get_settings
from salespulse.warehouse.store import connect
from service.auth import require_key, require_read_access
from service.errors import install_error_handlers
from service.middleware import BodySizeLimit

log = logging.getLogger(__name__)


# --- response models (for the documentation; responses are built as plain JSON for speed) ---


class ColumnInfo(BaseModel):
    name: str
    format: str = Field(description="currency, number, integer, percent, date, text or boolean")


class QueryResult(BaseModel):
    columns: list[ColumnInfo]
    rows: list[dict[str, Any]]
    source: str = Field(description="The table that answered: a rollup (agg_*) or order_lines.")
    elapsed_ms: float


class ReportResult(BaseModel):
    report: str
    title: str
    params: dict[str, Any]
    columns: list[ColumnInfo]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: list[str]
    elapsed_ms: float


class Problem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    detail: list[Problem]


class SalesResult(BaseModel):
    lines: int = Field(description="Lines in the batch.")
    inserted: int = Field(description="Lines whose order_id + line was new.")
    updated: int = Field(description="Stored lines replaced by different values.")
    unchanged: int = Field(description="Lines already stored exactly so (a re-sent batch).")
    rollups_rebuilt: bool
    seconds: float
    batches_in_transaction: int = Field(description="Batches written together (group commit) with this one.")


ERRORS = {status: {"model": ErrorBody} for status in (401, 403, 404, 413, 422)}


# --- the app ---


def _engine(request: Request) -> AnalyticsEngine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise StarletteHTTPException(503, "Analytics engine not started")
    return engine


def _write_access(x_api_key: Annotated[str | None, Header()] = None) -> None:
    require_key(x_api_key)


def _respond(content: dict[str, Any]) -> Response:
    """JSON; rows that DuckDB already serialized (RawJSON) are spliced in as they are."""
    rows = content.get("rows")
    if not isinstance(rows, RawJSON):
        return JSONResponse(content)
    rest = {key: value for key, value in content.items() if key != "rows"}
    head = json.dumps(rest, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(f'{head[:-1]},"rows":{rows}}}'.encode(), media_type="application/json")


def create_analytics_app(engine: AnalyticsEngine | None = None) -> FastAPI:
    """The analytics ASGI app over ``engine``; without one, its lifespan opens the configured warehouse.

    A mounted app's lifespan may not run (Starlette does not run the lifespans of mounts), so a service that
    mounts this app should create the engine itself and pass it in.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = None
        if getattr(app.state, "engine", None) is None:
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
    app.add_middleware(BodySizeLimit, max_bytes=lambda: get_settings().max_body_bytes)

    @app.post("/query", response_model=QueryResult, responses=ERRORS, tags=["query"])
    def run_query(
        request: Request, query: AnalyticsQuery, x_api_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        """Ask a question of the semantic layer (see GET /meta for the names)."""
        require_read_access(x_api_key)
        return _respond(_engine(request).run_query(query, raw_json=True))

    @app.get("/meta", responses=ERRORS, tags=["query"])
    def meta(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        """Measures, dimensions, grains, filter operators, comparison options and the reports."""
        require_read_access(x_api_key)
        return _respond(_engine(request).meta())

    @app.get("/reports", tags=["reports"])
    def reports() -> JSONResponse:
        """The named reports, their routes and parameters."""
        return _respond({"reports": [describe_report(r) for r in REGISTRY.values()]})

    for report in REGISTRY.values():
        _add_report_route(app, report)

    @app.post(
        "/sales",
        response_model=SalesResult,
        responses=ERRORS,
        tags=["ingest"],
        # A dependency runs before the body is validated: without the key, the answer is 401/403.
        dependencies=[Depends(_write_access)],
    )
    def post_sales(request: Request, batch: SalesBatch) -> JSONResponse:
        """Append (or replace, by order_id + line) a batch of order lines, atomically: a batch with any bad
        line is rejected whole, naming the line index and field. Re-sending a batch changes nothing."""
        result = _engine(request).ingest(batch)
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

    return app


def _add_report_route(app: FastAPI, report: Report) -> None:
    """One GET route per report, so each has its own documented parameters and example."""
    model = params_model(report)

    def endpoint(request: Request, params: Any, x_api_key: str | None = None) -> JSONResponse:
        require_read_access(x_api_key)
        return _respond(_engine(request).run_report(report.name, params, raw_json=True))

    # FastAPI reads the parameters from the signature: give it this report's model as query parameters.
    endpoint.__signature__ = inspect.Signature(
        [  # type: ignore[attr-defined]
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
            inspect.Parameter(
                "params", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[model, Query()]
            ),
            inspect.Parameter(
                "x_api_key",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[str | None, Header()],
            ),
        ]
    )
    example = example_response(report)
    app.add_api_route(
        f"/reports/{report.name}",
        endpoint,
        methods=["GET"],
        response_model=ReportResult,
        summary=report.title,
        description=report.description,
        tags=[f"reports: {report.section}"],
        operation_id=f"report_{report.name.replace('-', '_')}",
        responses={200: {"content": {"application/json": {"example": example}}}, **ERRORS},
    )
