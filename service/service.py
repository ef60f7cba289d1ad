"""The salespulse BentoML service: forecasts for planners, segments for marketing systems, reports for sales
teams, and the model lifecycle behind them.

    bentoml serve service.service:SalesPulse        (or: salespulse serve)

Prediction endpoints are BentoML APIs (POST, pydantic bodies); read and admin endpoints are a FastAPI app
mounted at the root, and the analytics API is mounted under /analytics.

The service is the one owner of the warehouse while it runs: it holds DuckDB's write lock, says so in an
owner record beside the file (salespulse.warehouse.owner), and offers keyed admin endpoints (info, file
import, consistent snapshot) through which the command line works meanwhile. With more than one worker
(SALESPULSE_SERVICE_WORKERS), the first worker owns the warehouse; the others answer only the requests that
need no warehouse (segments from raw features, model and segment descriptions) and refuse the rest with 503.

With a system of record (SALESPULSE_DATABASE_URL: PostgreSQL), every worker of every replica keeps its own
DuckDB file as an analytical copy of the record (salespulse.analytics.replica): ingest and imports write to
PostgreSQL, and each copy follows it within a notification; /readyz says ready once the copy has caught up.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
import numpy as np
from bentoml.exceptions import NotFound, ServiceUnavailable
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.errors import AnalyticsError, Problem
from salespulse.analytics.replica import Replica
from salespulse.bounds import StrictFloat, strict_int
from salespulse.config import get_settings
from salespulse.dataset.goals import import_goals_into
from salespulse.dataset.importing import ImportFailed, ImportRejected, ImportResult, import_into
from salespulse.features.customers import FEATURE_NAMES, SUMMARY_NAMES, customer_features, purchase_summary
from salespulse.features.series import MAX_HORIZON, Level, RecentHistory, ServingFreq
from salespulse.modeling.customer_value import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_LIFETIME_MONTHS,
    MAX_LIFETIME_MONTHS,
    CustomerPredictions,
)
from salespulse.modeling.customer_value import MAX_HORIZON_DAYS as MAX_VALUE_HORIZON_DAYS
from salespulse.modeling.forecaster import PlannedPromotion as ModelPromotion
from salespulse.modeling.registry import slot_specs
from salespulse.schemas import (
    FORECAST_EXAMPLE,
    MAX_HORIZON_DAYS,
    PREDICT_CUSTOMERS_BY_SUMMARY_EXAMPLE,
    SEGMENT_BY_FEATURES_EXAMPLE,
    CustomerFeatures,
    CustomerId,
    CustomerSummary,
    CustomerValuePrediction,
    CustomerValueResponse,
    ForecastResponse,
    PlannedPromotion,
    SegmentedCustomer,
    SegmentResponse,
    SeriesKey,
    forecast_series_payload,
)
from salespulse.warehouse import owner
from salespulse.warehouse.store import connect, sales_range, snapshot, table_counts
from service.analytics_api import create_analytics_app
from service.auth import (
    AuthError,
    access_of,
    as_bentoml_error,
    metrics_access,
    read_access,
    require_read_access,
    write_access,
)
from service.errors import (
    UniformErrors,
    Unprocessable,
    field_message,
    install_error_handlers,
    quiet_client_errors,
    with_field,
)
from service.exports import add_export_routes
from service.forecasting import CoherentForecasts, ForecastBatcher
from service.metrics import TrafficMetrics, metrics_response
from service.middleware import RequestGate
from service.models import ModelSlot, load_served, model_to_serve, packed_tag
from service.openapi import Examples, analytics_document, examples_from_warehouse, service_document
from service.pages import add_pages, product_version, serve_docs_offline
from service.warehouse import Warehouse

log = logging.getLogger("bentoml.salespulse")  # BentoML shows its own loggers at INFO
settings = get_settings()
SLOTS = slot_specs()
FORECASTER_SLOT = "forecaster_{}"
# /forecast reads the recent daily history of a level from memory, refreshed when the sales change: a
# statistical champion fits on half a year, LightGBM looks back 13 weeks.
_FORECAST_HISTORY = RecentHistory(periods=190)
_COHERENT = CoherentForecasts(_FORECAST_HISTORY, settings.forecast_reconciliation)
_BATCHER = ForecastBatcher(max_series=settings.max_forecast_series)
_FORECAST_DEFAULT_HORIZON = {
    "D": settings.forecast_horizon_days,
    "W": settings.forecast_horizon_weeks,
    "M": 3,
}
# One id for every worker of one start (scripts/service.sh sets it), so `make run` can tell its own new
# instance from the old one still draining.
INSTANCE = os.environ.get("SALESPULSE_INSTANCE_ID") or uuid.uuid4().hex[:12]

read_app = FastAPI(title="salespulse read and admin endpoints")
analytics_app = create_analytics_app(standalone=False)  # the owning worker hands it its engine
install_error_handlers(read_app)
# The root page, /dashboard, offline API docs (no CDN, no tracker) and CSV/Excel downloads of the analytics.
add_pages(read_app)
serve_docs_offline(analytics_app)
# The analytics app's own document at /analytics/openapi.json, made honest like the service's (/docs.json).
_analytics_raw_openapi = analytics_app.openapi
analytics_app.openapi = functools.cache(  # type: ignore[method-assign]
    lambda: analytics_document(_analytics_raw_openapi(), "/analytics", product_version())
)
add_export_routes(read_app, analytics_app)
# The access rule of each group of routes, declared once as a dependency (it runs before the body is read);
# /health and BentoML's probes stay open. (BentoML binds `self` only on routes of the app itself, not on an
# included router's, so the groups are dependency sets rather than APIRouters.)
READ_ROUTE: dict[str, Any] = {"dependencies": [Depends(read_access)]}
ADMIN_ROUTE: dict[str, Any] = {"dependencies": [Depends(write_access)], "tags": ["admin"]}
# A refused request is one INFO line without values, not BentoML's ERROR traceback with the input.
quiet_client_errors()


@read_app.get(
    "/metrics", dependencies=[Depends(metrics_access)], tags=["health"], summary="Prometheus metrics"
)
async def prometheus_metrics() -> Response:
    """Requests by route template and status, durations, requests in flight, of every worker
    (service/metrics.py). Keyed like a read, or by its own bearer token (SALESPULSE_METRICS_TOKEN)."""
    return await metrics_response()


ABSOLUTE_PATH = r"^/[^\x00]*$"


def _absolute_path(value: str) -> str:
    if re.match(ABSOLUTE_PATH, value) is None:
        raise PydanticCustomError(
            "absolute_path", "an absolute path on the service's machine (starting with /)"
        )
    return value


# The rule in words for the client, and as the schema's pattern for tools.
AbsolutePath = Annotated[
    str, AfterValidator(_absolute_path), Field(json_schema_extra={"pattern": ABSOLUTE_PATH})
]
ForecastHorizon = strict_int(ge=1, le=MAX_HORIZON_DAYS)
# The shipped samples: the admin examples of the API docs answer 200 (they import the sample's rows).
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data"


class ImportRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "file": str(EXAMPLES_DIR / "examples" / "superstore_sample.csv"),
                    "mapping": str(EXAMPLES_DIR / "mappings" / "superstore.yaml"),
                    "skip_invalid": False,
                }
            ]
        }
    )

    file: AbsolutePath = Field(
        description="Absolute path of the CSV or Parquet export on the service's machine."
    )
    mapping: AbsolutePath = Field(description="Absolute path of the YAML mapping on the service's machine.")
    skip_invalid: StrictBool = Field(
        False, description="Import the valid rows, write the invalid ones aside."
    )


class GoalImportRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"file": str(EXAMPLES_DIR / "examples" / "goal_plan_sample.csv")}]}
    )

    file: AbsolutePath = Field(
        description="Absolute path of the CSV or Parquet goal plan on the service's machine."
    )
    level: Literal["region", "salesman", "category", "product"] | None = Field(
        None, description="The level of every row, for a plan without a 'level' column."
    )


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"path": "/tmp/salespulse-snapshot.duckdb"}]})

    path: AbsolutePath = Field(
        description="Absolute path of a new file (nothing there yet; its folder is created if needed)."
    )


class SalesPulse:
    def __init__(self) -> None:
        worker = bentoml.server_context.worker_index or 1
        # The declared (packed) models are what a Bento serves; a checkout serves the registry's champions.
        self.slots = {
            spec.key: ModelSlot(load_served(model_to_serve(spec, getattr(self, spec.attribute))))
            for spec in SLOTS
        }
        for slot in self.slots.values():
            log.info("worker %s serves %s", worker, slot.current.describe_identity())
        self.warehouse: Warehouse | None = None
        self.analytics: AnalyticsEngine | None = None
        self.replica: Replica | None = None
        self.warehouse_file = _warehouse_file(worker)
        if worker == 1 or settings.database_url is not None:  # copies of the record: one per worker
            self._own_warehouse()
        self._start_watcher()
        # Long-lived objects (models, connection) never die: keep them out of every full GC pass.
        gc.collect()
        gc.freeze()

    def _own_warehouse(self) -> None:
        self.warehouse = Warehouse(connect(self.warehouse_file))
        # A mounted app's lifespan does not run, so the service hands the analytics app its engine, on the
        # same connection: reports see sales the moment an ingest commits.
        self.analytics = AnalyticsEngine.configured(self.warehouse.connection)
        # The customer reports predict with the customer-value champion in service (a function: a model
        # swapped later is used without calling this again).
        self.analytics.use_customer_model(lambda: self.customer_value.current.python_model.model.parameters)
        self.analytics.start_housekeeping(settings.analytics_idle_seconds)
        if settings.database_url is not None:  # the copy follows the record (caught up: ready)
            self.replica = Replica.configured(self.analytics)
            self.replica.start()
        analytics_app.state.engine = self.analytics
        host = "127.0.0.1" if settings.service_host in ("0.0.0.0", "::") else settings.service_host
        owner.claim(self.warehouse_file, url=f"http://{host}:{settings.service_port}", instance=INSTANCE)

    @property
    def segmenter(self) -> ModelSlot:
        return self.slots["segmenter"]

    @property
    def customer_value(self) -> ModelSlot:
        return self.slots["customer_value"]

    def forecaster(self, level: str) -> ModelSlot:
        return self.slots[FORECASTER_SLOT.format(level)]

    def _warehouse(self) -> Warehouse:
        if self.warehouse is None:
            raise ServiceUnavailable(
                field_message("warehouse", "this worker has no warehouse (only the first worker owns it)")
            )
        return self.warehouse

    def __is_ready__(self) -> bool:
        warehouse_ok = self.warehouse is None or self.warehouse.is_open()
        copy_ok = self.replica is None or self.replica.caught_up.is_set()
        return warehouse_ok and copy_ok and all(slot.current is not None for slot in self._slots())

    # ---------------------------------------------------------------- predictions

    @bentoml.api(route="/forecast")
    def forecast(
        self,
        ctx: bentoml.Context,
        series: Annotated[
            list[SeriesKey],
            Field(
                min_length=1,
                max_length=settings.max_forecast_series,
                description="Series keys at the level: 'P-00012|West' (product_region), 'P-00012' (product), "
                "'Technology' (category), 'West' (region), 'Technology|West' (category_region), 'total'.",
                examples=[FORECAST_EXAMPLE["series"]],
            ),
        ],
        level: Annotated[Level, Field(description="The planning level of the series.")] = "product_region",
        freq: Annotated[
            ServingFreq, Field(description="D (days), W (weeks, Monday to Sunday) or M (calendar months).")
        ] = "D",
        horizon: Annotated[
            ForecastHorizon | None,
            Field(
                description="Periods ahead from the first day after the last sale: at most "
                + ", ".join(f"{n} ({f})" for f, n in MAX_HORIZON.items())
                + "; default 28 days, 8 weeks or 3 months.",
            ),
        ] = None,
        intervals: Annotated[
            list[Annotated[StrictFloat, Field(gt=0, lt=100)]],
            Field(max_length=5, description="Prediction interval levels in percent."),
        ] = [80.0, 95.0],  # noqa: B006 - pydantic copies defaults
        promotions: Annotated[
            list[PlannedPromotion],
            Field(
                max_length=100, description="Planned price cuts (what-if); other days are at regular prices."
            ),
        ] = [],  # noqa: B006 - pydantic copies defaults
    ) -> ForecastResponse:
        """Revenue forecasts (expected revenue, the figure to add up) with prediction intervals for 1 to 500
        series of one planning level, by day, week or month, computed from the warehouse's latest sales
        (sales ingested a minute ago move the forecast) and any planned promotions."""
        _check_read_key(ctx)
        horizon = horizon or _FORECAST_DEFAULT_HORIZON[freq]
        if horizon > MAX_HORIZON[freq]:
            message = f"at most {MAX_HORIZON[freq]} periods ahead at freq {freq!r}, not {horizon}"
            raise Unprocessable(field_message("horizon", message))
        served = self.forecaster(level).current
        forecaster = served.python_model.forecaster
        try:
            history = _FORECAST_HISTORY.panel(self._warehouse().cursor(), level, series)
        except KeyError as unknown:
            message = f"unknown series at level {level!r}: {unknown.args[0]}"
            raise NotFound(field_message("series", message)) from None
        plans = [ModelPromotion(**p.model_dump()) for p in promotions]
        try:
            if _COHERENT.applies_to(level):  # total, regions, categories and their cross add up
                frame = _COHERENT.forecast(
                    self._warehouse().cursor(),
                    lambda other: self.forecaster(other).current.python_model.forecaster,
                    level, series, horizon, intervals, freq, plans,
                )  # fmt: skip
            elif plans:
                frame = forecaster.forecast_panel(
                    history, horizon, tuple(intervals), freq=freq, promotions=plans
                )
            else:  # concurrent requests of the same shape share one recursion
                frame = _BATCHER.forecast_panel(forecaster, history, horizon, intervals, freq)
        except ValueError as invalid:
            raise Unprocessable(with_field(str(invalid), "body")) from None
        return ForecastResponse(
            level=level,
            freq=freq,
            model=served.name,
            model_version=served.version,
            method=forecaster.method,
            history_until=history.last_date.date(),
            series=forecast_series_payload(frame, series),
        )

    @bentoml.api(route="/segment")
    def segment(
        self,
        ctx: bentoml.Context,
        customer_ids: Annotated[
            list[CustomerId] | None,
            Field(
                None,
                min_length=1,
                max_length=settings.max_batch_customers,
                description="Customers known to the warehouse; their features are computed from their sales.",
                examples=[["C-0000001", "C-0000002"]],
            ),
        ] = None,
        customers: Annotated[
            list[CustomerFeatures] | None,
            Field(
                None,
                min_length=1,
                max_length=settings.max_batch_customers,
                description="Raw feature values, for customers the warehouse does not know.",
                examples=[SEGMENT_BY_FEATURES_EXAMPLE["customers"]],
            ),
        ] = None,
    ) -> SegmentResponse:
        """Segment, name, recommended marketing action and distance to the segment centre of 1 to 10,000
        customers, given either as warehouse ids or as raw feature values (exactly one of the two)."""
        _check_read_key(ctx)
        if (customer_ids is None) == (customers is None):
            raise Unprocessable(field_message("body", "send exactly one of 'customer_ids' or 'customers'"))
        served = self.segmenter.current
        if customer_ids is not None:
            ids, matrix = self._features_of_known_customers(customer_ids)
        else:
            ids = [c.customer_id for c in customers]
            matrix = np.array(
                [[getattr(c, name) for name in FEATURE_NAMES] for c in customers], dtype=np.float64
            )
        assignment = served.python_model.segmentation.assign(matrix)
        return SegmentResponse(
            model_version=served.version,
            customers=[
                SegmentedCustomer(customer_id=i, segment_id=s, segment=n, action=a, distance=d)
                for i, s, n, a, d in zip(
                    ids,
                    assignment.segment_id.tolist(),
                    assignment.segment.tolist(),
                    assignment.action.tolist(),
                    assignment.distance.tolist(),
                    strict=True,
                )
            ],
        )

    def _features_of_known_customers(self, customer_ids: list[str]) -> tuple[list[str], np.ndarray]:
        features = customer_features(self._warehouse().cursor(), customer_ids)
        unknown = [i for i in dict.fromkeys(customer_ids) if i not in features.index]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            message = f"unknown customer id(s): {shown}{more} (no sales in the warehouse)"
            raise NotFound(field_message("customer_ids", message))
        return customer_ids, features.loc[customer_ids].to_numpy(dtype=np.float64)

    @bentoml.api(route="/predict/customers")
    def predict_customers(
        self,
        ctx: bentoml.Context,
        customer_ids: Annotated[
            list[CustomerId] | None,
            Field(
                None,
                min_length=1,
                max_length=settings.max_batch_customers,
                description="Customers known to the warehouse; their purchase summaries are computed from "
                "their sales up to the warehouse's last sale day.",
                examples=[["C-0000001", "C-0000002"]],
            ),
        ] = None,
        customers: Annotated[
            list[CustomerSummary] | None,
            Field(
                None,
                min_length=1,
                max_length=settings.max_batch_customers,
                description="Raw purchase summaries, for customers the warehouse does not know.",
                examples=[PREDICT_CUSTOMERS_BY_SUMMARY_EXAMPLE["customers"]],
            ),
        ] = None,
        horizon_days: Annotated[
            strict_int(ge=1, le=MAX_VALUE_HORIZON_DAYS),
            Field(description="Days ahead of expected purchases and spend."),
        ] = DEFAULT_HORIZON_DAYS,
        lifetime_months: Annotated[
            strict_int(ge=1, le=MAX_LIFETIME_MONTHS),
            Field(description="Months of 30 days the lifetime value covers."),
        ] = DEFAULT_LIFETIME_MONTHS,
        monthly_discount_rate: Annotated[
            StrictFloat,
            Field(ge=0, lt=1, description="Discount rate per month of the lifetime value (0.01 = 1%)."),
        ] = 0.0,
    ) -> CustomerValueResponse:
        """Expected purchases and spend in the next ``horizon_days``, probability still active and lifetime
        value of 1 to 10,000 customers (BG/NBD + Gamma-Gamma), given either as warehouse ids or as raw
        purchase summaries (exactly one of the two)."""
        _check_read_key(ctx)
        if (customer_ids is None) == (customers is None):
            raise Unprocessable(field_message("body", "send exactly one of 'customer_ids' or 'customers'"))
        served = self.customer_value.current
        as_of = None
        if customer_ids is not None:
            warehouse = self._warehouse()
            cursor = warehouse.cursor()
            summary = _known_customers(purchase_summary(cursor, customer_ids), customer_ids)
            ids, matrix = customer_ids, summary.to_numpy(dtype=np.float64)
            as_of = warehouse.last_sale_day(cursor)  # what the summaries were measured to
        else:
            ids = [c.customer_id for c in customers]
            matrix = np.array(
                [[getattr(c, name) for name in SUMMARY_NAMES] for c in customers], dtype=np.float64
            )
        options = {
            "horizon_days": horizon_days,
            "lifetime_months": lifetime_months,
            "monthly_discount_rate": monthly_discount_rate,
        }
        predictions = served.python_model.model.predict(matrix, **options)
        return CustomerValueResponse(
            model_version=served.version, as_of=as_of, **options, customers=_value_rows(ids, predictions)
        )

    # ---------------------------------------------------------------- read endpoints

    @read_app.get("/models", **READ_ROUTE, tags=["models"], summary="The models in service")
    def models(self) -> dict[str, Any]:
        """Name, registry version, alias, training time and backtest metrics of each model in service."""
        return {"models": [slot.current.describe() for slot in self._slots()]}

    @read_app.get("/segments", **READ_ROUTE, tags=["segments"], summary="Segment profiles")
    def segment_profiles(self) -> dict[str, Any]:
        """Each segment's size, share of revenue, mean recency/frequency/monetary and recommended action."""
        served = self.segmenter.current
        profile = served.python_model.segmentation.profile.reset_index()
        return {"model_version": served.version, "segments": profile.to_dict(orient="records")}

    @read_app.get(
        "/customers/{customer_id}", **READ_ROUTE, tags=["segments"], summary="One customer's profile"
    )
    def customer_profile(self, customer_id: CustomerId) -> dict[str, Any]:
        """RFM features, segment and lifetime revenue of one customer known to the warehouse."""
        warehouse = self._warehouse()
        cursor = warehouse.cursor()
        features = customer_features(cursor, [customer_id])
        if features.empty:
            message = f"unknown customer id {customer_id!r} (no sales in the warehouse)"
            raise HTTPException(404, field_message("customer_id", message))
        details = warehouse.customer_details(cursor, customer_id)
        prediction = self._prediction_block(purchase_summary(cursor, [customer_id]))
        served = self.segmenter.current
        assignment = served.python_model.segmentation.assign(features.to_numpy(dtype=np.float64))
        return {
            "customer_id": customer_id,
            **details,
            "features": {name: float(features.iloc[0][name]) for name in FEATURE_NAMES},
            "lifetime_revenue": float(features.iloc[0]["monetary"]),
            "segment": {
                "segment_id": int(assignment.segment_id[0]),
                "name": str(assignment.segment[0]),
                "action": str(assignment.action[0]),
                "distance": float(assignment.distance[0]),
                "model_version": served.version,
            },
            "prediction": prediction,
        }

    def _prediction_block(self, summary: Any) -> dict[str, Any]:
        """The customer-value model's answer for one customer, over its default horizon and lifetime."""
        served = self.customer_value.current
        row = served.python_model.model.predict_frame(summary).iloc[0]
        return {
            **{name: float(value) for name, value in row.items()},
            "horizon_days": DEFAULT_HORIZON_DAYS,
            "lifetime_months": DEFAULT_LIFETIME_MONTHS,
            "model_version": served.version,
        }

    @read_app.get("/docs.json", include_in_schema=False)
    def openapi_document(self) -> JSONResponse:
        """The service's OpenAPI 3.1 document (service/openapi.py), in place of BentoML's."""
        return JSONResponse(self._openapi_document())

    @functools.cached_property
    def _examples(self) -> Examples:
        if self.warehouse is None:
            return Examples()
        return examples_from_warehouse(self.warehouse.cursor())

    def _openapi_document(self) -> dict[str, Any]:
        if self._document is None:
            raw = SalesPulse.openapi_spec.asdict()
            inputs = {api.route: api.input_spec for api in SalesPulse.apis.values()}
            self._document = service_document(raw, self._examples, product_version(), inputs)
        return self._document

    _document: dict[str, Any] | None = None

    @read_app.get("/health", tags=["health"], summary="Whether models and warehouse are loaded")
    def health(self) -> dict[str, Any]:
        """Liveness and readiness in one readable answer (BentoML's /livez and /readyz also answer)."""
        warehouse = self.warehouse.status() if self.warehouse else {"loaded": False, "owned_by": "worker 1"}
        if self.replica is not None:
            warehouse["replica"] = self.replica.status()
        models = {slot.current.name: slot.current.version for slot in self._slots()}
        ready = (self.warehouse is None or warehouse["loaded"]) and all(models.values())
        ready = ready and (self.replica is None or self.replica.caught_up.is_set())
        return {
            "status": "ready" if ready else "not ready",
            "instance": INSTANCE,
            "warehouse": warehouse,
            "models": models,
        }

    # ---------------------------------------------------------------- admin

    @read_app.post("/admin/reload", **ADMIN_ROUTE, summary="Swap to the registry's current champions")
    def reload(self) -> dict[str, Any]:
        """Load the models that now hold the champion alias; requests in flight finish on the old ones."""
        return {"models": [slot.reload_from_registry() for slot in self._slots()]}

    @read_app.get(
        "/admin/warehouse", **ADMIN_ROUTE, summary="Where the warehouse is, its row counts and sales range"
    )
    def warehouse_info(self) -> dict[str, Any]:
        """What `salespulse data info` shows, read through the service while it owns the warehouse."""
        with self._engine().cursor() as cursor:
            first, last = sales_range(cursor)
            return {
                "path": str(self.warehouse_file),
                "tables": table_counts(cursor),
                "first_sale": first.isoformat() if first else None,
                "last_sale": last.isoformat() if last else None,
            }

    @read_app.post("/admin/import", **ADMIN_ROUTE, summary="Import an order-line export into the warehouse")
    def import_export(self, request: ImportRequest) -> dict[str, Any]:
        """`salespulse data import` through the running service: the same validation and one transaction,
        written on the service's own connection with ingest held off, then the rollups brought up to date."""
        file, mapping = _existing_file("file", request.file), _existing_file("mapping", request.mapping)

        def write(con: Any) -> ImportResult:
            return import_into(con, file, mapping, skip_invalid=request.skip_invalid)

        try:
            if self.replica is not None:  # staged on a connection of its own, written to the record
                with self._engine().cursor() as con:
                    result = import_into(
                        con,
                        file,
                        mapping,
                        skip_invalid=request.skip_invalid,
                        write_sales=self.replica.write_import,
                    )
            else:
                result = self._engine().write_exclusively(write)
        except ImportFailed as failed:
            raise HTTPException(422, field_message("file", str(failed))) from None
        except ImportRejected as rejected:
            raise FileRejected(rejected) from None
        return {
            "summary": result.describe(),
            "rows_read": result.rows_read,
            "inserted": result.inserted,
            "updated": result.updated,
            "rejected": result.rejected,
            "reject_file": str(result.reject_file) if result.reject_file else None,
        }

    @read_app.post("/admin/import-goals", **ADMIN_ROUTE, summary="Import a goal plan into the warehouse")
    def import_goal_plan(self, request: GoalImportRequest) -> dict[str, Any]:
        """`salespulse data import-goals` through the running service: checked row by row, one transaction."""
        file = _existing_file("file", request.file)
        try:
            if self.replica is not None:
                with self._engine().cursor() as con:
                    result = import_goals_into(
                        con, file, level=request.level, write_goals=self.replica.write_goals
                    )
            else:
                result = self._engine().write_exclusively(
                    lambda con: import_goals_into(con, file, level=request.level)
                )
        except ImportFailed as failed:
            raise HTTPException(422, field_message("file", str(failed))) from None
        except ImportRejected as rejected:
            raise FileRejected(rejected) from None
        return {
            "summary": result.describe(),
            "rows_read": result.rows_read,
            "targets": result.targets_by_level,
        }

    @read_app.post(
        "/admin/snapshot", **ADMIN_ROUTE, summary="Write a consistent copy of the warehouse to a new file"
    )
    def write_snapshot(self, request: SnapshotRequest) -> dict[str, Any]:
        """One consistent state even while sales are ingested: what training and `serve build` read."""
        target = Path(request.path)
        if target.exists() or target.is_symlink():
            # Never replaced: an admin typo must not overwrite a file (the warehouse least of all).
            message = f"{request.path!r} exists; name a new file"
            raise HTTPException(409, field_message("path", message))
        engine = self._engine()
        with self._snapshot_lock, engine.cursor() as cursor:
            started = time.perf_counter()
            snapshot(cursor, target)
        return {"path": str(target), "seconds": round(time.perf_counter() - started, 3)}

    @bentoml.on_shutdown
    def _release_warehouse(self) -> None:
        """Let a running fold or checkpoint finish before the process goes, and give up ownership."""
        if self.replica is not None:
            self.replica.stop()
        if self.analytics is not None:
            self.analytics.stop_housekeeping()
            owner.release(self.warehouse_file)

    # ---------------------------------------------------------------- internals

    _snapshot_lock = threading.Lock()

    def _engine(self) -> AnalyticsEngine:
        if self.analytics is None:
            raise HTTPException(503, field_message("warehouse", "this worker does not own the warehouse"))
        return self.analytics

    def _slots(self) -> list[ModelSlot]:
        return list(self.slots.values())

    def _start_watcher(self) -> None:
        interval = settings.model_watch_seconds
        if interval <= 0:
            return

        def watch() -> None:
            while True:
                time.sleep(interval)
                for slot in self._slots():
                    try:
                        slot.reload_from_registry()
                    except Exception:  # the registry may be briefly unreachable; keep serving
                        log.exception("champion check for %s failed", slot.current.name)

        threading.Thread(target=watch, name="champion-watcher", daemon=True).start()


def _warehouse_file(worker: int) -> Path:
    """The worker's DuckDB file: the configured one, and with a system of record (where every worker keeps
    a copy of its own) ``warehouse.worker<N>.duckdb`` beside it for the workers after the first."""
    path = settings.warehouse_path
    if worker == 1 or settings.database_url is None:
        return path
    return path.with_name(f"{path.stem}.worker{worker}{path.suffix}")


class FileRejected(AnalyticsError):
    """A file import with invalid rows: nothing was imported; each problem names its row and column."""

    title = "file rejected"

    def __init__(self, rejected: ImportRejected) -> None:
        problems = [Problem("file", f"{rejected.summary()}; nothing was imported")]
        problems += [Problem(e.column, f"row {e.row}: {e.message}") for e in rejected.errors]
        super().__init__(problems)


def _existing_file(field: str, path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise HTTPException(404, field_message(field, f"no file at {path!r} on the service's machine"))
    return file


def _known_customers(summary: Any, customer_ids: list[str]) -> Any:
    """``summary`` in the order (and with the repeats) of ``customer_ids``; 404 naming the unknown ids."""
    unknown = [i for i in dict.fromkeys(customer_ids) if i not in summary.index]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        message = f"unknown customer id(s): {shown}{more} (no sales in the warehouse)"
        raise NotFound(field_message("customer_ids", message))
    return summary.loc[customer_ids]


def _value_rows(ids: list[str | None], predictions: CustomerPredictions) -> list[CustomerValuePrediction]:
    columns = [column.tolist() for column in predictions]
    return [
        CustomerValuePrediction(
            customer_id=customer_id, **dict(zip(predictions._fields, values, strict=True))
        )
        for customer_id, *values in zip(ids, *columns, strict=True)
    ]


def _check_read_key(ctx: bentoml.Context) -> None:
    if settings.read_access == "open":
        return
    try:
        require_read_access(ctx.request.headers.get("x-api-key"))
    except AuthError as error:
        raise as_bentoml_error(error) from None


# The models, from the one declaration; `bentoml build` packs what the class declares.
for _spec in SLOTS:
    setattr(SalesPulse, _spec.attribute, bentoml.models.BentoModel(packed_tag(_spec.model_name)))
# Decorated last, so that the declared models are in place when BentoML collects them.
SalesPulse = bentoml.service(  # type: ignore[misc]
    name="salespulse",
    workers=settings.service_workers,
    traffic={"timeout": 60},
    http={"host": settings.service_host, "port": settings.service_port},
    # Access logs and tracing cost more per request than a segment assignment. Sampling 0 still runs the
    # OpenTelemetry middleware (~25% of a one-customer /segment); excluded routes skip it.
    logging={"access": {"enabled": False}},
    tracing={"sample_rate": 0.0, "excluded_urls": ["/segment", "/forecast", "/predict/customers"]},
    # BentoML's traffic metrics label by raw path (a series per customer id asked for); the service counts
    # by route template instead (service/metrics.py) and serves /metrics itself, under its access rules.
    metrics={"enabled": False},
)(bentoml.asgi_app(analytics_app, path="/analytics")(bentoml.asgi_app(read_app, path="/")(SalesPulse)))
# A prediction body with a field the API does not know is refused (422 naming it), as the analytics bodies
# are: a typo ("customer_id" for "customer_ids") must not be dropped in silence.
for _api in SalesPulse.apis.values():
    _api.input_spec.model_config["extra"] = "forbid"
    _api.input_spec.model_rebuild(force=True)
# Outermost first: metrics see every answer as it leaves; errors are put in the one shape (and 400 becomes
# 422); the gate checks access, size, media type and JSON sanity before any app reads the body.
SalesPulse.add_asgi_middleware(TrafficMetrics)
SalesPulse.add_asgi_middleware(UniformErrors)
SalesPulse.add_asgi_middleware(RequestGate, max_bytes=settings.max_body_bytes, access=access_of)
