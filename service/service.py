"""The salespulse BentoML service: forecasts for planners, segments for marketing systems, reports for sales
teams, and the model lifecycle behind them.

    bentoml serve service.service:SalesPulse        (or: salespulse serve)

Prediction endpoints are BentoML APIs (POST, pydantic bodies); read and admin endpoints are a FastAPI app
mounted at the root, and the analytics API is mounted under /analytics.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument, NotFound
from fastapi import FastAPI, Header, HTTPException
from pydantic import Field

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.config import get_settings
from salespulse.features.customers import FEATURE_NAMES, customer_features
from salespulse.features.series import Level
from salespulse.modeling.registry import forecaster_model_names
from salespulse.warehouse.store import connect
from service.analytics_api import create_analytics_app
from service.auth import AuthError, as_bentoml_error, require_key, require_read_access
from service.errors import UniformErrors, field_message, install_error_handlers
from service.middleware import BodySizeLimit
from service.models import ModelSlot, load_served
from service.schemas import (
    FORECAST_EXAMPLE,
    MAX_HORIZON_DAYS,
    SEGMENT_BY_FEATURES_EXAMPLE,
    CustomerFeatures,
    ForecastResponse,
    SegmentedCustomer,
    SegmentResponse,
    forecast_series_payload,
)
from service.warehouse import Warehouse

log = logging.getLogger(__name__)
settings = get_settings()
FORECASTERS = forecaster_model_names()

read_app = FastAPI(title="salespulse read and admin endpoints")
analytics_app = create_analytics_app()


install_error_handlers(read_app)


@bentoml.service(
    name="salespulse",
    workers=1,
    traffic={"timeout": 60},
    http={"host": settings.service_host, "port": settings.service_port},
    # Access logs and tracing cost more per request than a segment assignment; metrics stay on. Sampling 0
    # still runs the OpenTelemetry middleware (~25% of a one-customer /segment); excluded routes skip it.
    logging={"access": {"enabled": False}},
    tracing={"sample_rate": 0.0, "excluded_urls": ["/segment", "/forecast"]},
)
@bentoml.asgi_app(analytics_app, path="/analytics")
@bentoml.asgi_app(read_app, path="/")
class SalesPulse:
    # One daily forecaster per planning level (see salespulse.modeling.registry), and the segmenter. Declared
    # here so that `bentoml build` packs them into the Bento.
    forecaster_product_region = bentoml.models.BentoModel(f"{FORECASTERS['product_region']}:latest")
    forecaster_product = bentoml.models.BentoModel(f"{FORECASTERS['product']}:latest")
    forecaster_category = bentoml.models.BentoModel(f"{FORECASTERS['category']}:latest")
    forecaster_region = bentoml.models.BentoModel(f"{FORECASTERS['region']}:latest")
    forecaster_category_region = bentoml.models.BentoModel(f"{FORECASTERS['category_region']}:latest")
    forecaster_total = bentoml.models.BentoModel(f"{FORECASTERS['total']}:latest")
    segmenter_model = bentoml.models.BentoModel(f"{settings.segmenter_model_name}:latest")

    def __init__(self) -> None:
        self.warehouse = Warehouse(connect())
        self.forecasters = {
            level: ModelSlot(load_served(getattr(self, f"forecaster_{level}"))) for level in FORECASTERS
        }
        self.segmenter = ModelSlot(load_served(self.segmenter_model))
        # A mounted app's lifespan does not run, so the service hands the analytics app its engine, on the
        # same connection: reports see sales the moment an ingest commits.
        self.analytics = AnalyticsEngine.configured(self.warehouse.connection)
        self.analytics.start_housekeeping(settings.analytics_idle_seconds)
        analytics_app.state.engine = self.analytics
        self._start_watcher()
        # Long-lived objects (models, connection) never die: keep them out of every full GC pass.
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.warehouse.is_open() and all(slot.current is not None for slot in self._slots())

    # ---------------------------------------------------------------- predictions

    @bentoml.api(route="/forecast")
    def forecast(
        self,
        ctx: bentoml.Context,
        series: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=200)]],
            Field(
                min_length=1,
                max_length=settings.max_forecast_series,
                description="Series keys at the level: 'P-00012|West' (product_region), 'P-00012' (product), "
                "'Technology' (category), 'West' (region), 'Technology|West' (category_region), 'total'.",
                examples=[FORECAST_EXAMPLE["series"]],
            ),
        ],
        level: Annotated[Level, Field(description="The planning level of the series.")] = "product_region",
        horizon: Annotated[
            int,
            Field(ge=1, le=MAX_HORIZON_DAYS, description="Days ahead, starting after the last day of sales."),
        ] = settings.forecast_horizon_days,
        intervals: Annotated[
            list[Annotated[float, Field(gt=0, lt=100)]],
            Field(max_length=5, description="Prediction interval levels in percent."),
        ] = [80.0, 95.0],  # noqa: B006 - pydantic copies defaults
    ) -> ForecastResponse:
        """Daily revenue forecasts with prediction intervals for 1 to 500 series of one planning level,
        computed from the warehouse's latest sales (sales ingested a minute ago move the forecast)."""
        _check_read_key(ctx)
        served = self.forecasters[level].current
        forecaster = served.python_model.forecaster
        cursor = self.warehouse.cursor()
        try:
            frame = forecaster.forecast_series(cursor, series, h=horizon, levels=tuple(intervals))
        except KeyError as unknown:
            message = f"unknown series at level {level!r}: {unknown.args[0]}"
            raise NotFound(field_message("series", message)) from None
        except ValueError as invalid:
            raise InvalidArgument(str(invalid)) from None
        return ForecastResponse(
            level=level,
            freq="D",
            model=served.name,
            model_version=served.version,
            history_until=self.warehouse.last_sale_day(cursor),
            series=forecast_series_payload(frame, series),
        )

    @bentoml.api(route="/segment")
    def segment(
        self,
        ctx: bentoml.Context,
        customer_ids: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=128)]] | None,
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
            raise InvalidArgument(field_message("body", "send exactly one of 'customer_ids' or 'customers'"))
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
        features = customer_features(self.warehouse.cursor(), customer_ids)
        unknown = [i for i in dict.fromkeys(customer_ids) if i not in features.index]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            message = f"unknown customer id(s): {shown}{more} (no sales in the warehouse)"
            raise NotFound(field_message("customer_ids", message))
        return customer_ids, features.loc[customer_ids].to_numpy(dtype=np.float64)

    # ---------------------------------------------------------------- read endpoints

    @read_app.get("/models", tags=["models"], summary="The models in service")
    def models(self, x_api_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Name, registry version, alias, training time and backtest metrics of each model in service."""
        require_read_access(x_api_key)
        return {"models": [slot.current.describe() for slot in self._slots()]}

    @read_app.get("/segments", tags=["segments"], summary="Segment profiles")
    def segment_profiles(self, x_api_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Each segment's size, share of revenue, mean recency/frequency/monetary and recommended action."""
        require_read_access(x_api_key)
        served = self.segmenter.current
        profile = served.python_model.segmentation.profile.reset_index()
        return {"model_version": served.version, "segments": profile.to_dict(orient="records")}

    @read_app.get("/customers/{customer_id}", tags=["segments"], summary="One customer's profile")
    def customer_profile(
        self, customer_id: str, x_api_key: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """RFM features, segment and lifetime revenue of one customer known to the warehouse."""
        require_read_access(x_api_key)
        cursor = self.warehouse.cursor()
        features = customer_features(cursor, [customer_id])
        if features.empty:
            message = f"unknown customer id {customer_id!r} (no sales in the warehouse)"
            raise HTTPException(404, field_message("customer_id", message))
        details = self.warehouse.customer_details(cursor, customer_id)
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
        }

    @read_app.get("/health", tags=["health"], summary="Whether models and warehouse are loaded")
    def health(self) -> dict[str, Any]:
        """Liveness and readiness in one readable answer (BentoML's /livez and /readyz also answer)."""
        warehouse = self.warehouse.status()
        models = {slot.current.name: slot.current.version for slot in self._slots()}
        ready = warehouse["loaded"] and all(models.values())
        return {"status": "ready" if ready else "not ready", "warehouse": warehouse, "models": models}

    # ---------------------------------------------------------------- admin

    @read_app.post("/admin/reload", tags=["admin"], summary="Swap to the registry's current champions")
    def reload(self, x_api_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Load the models that now hold the champion alias; requests in flight finish on the old ones."""
        require_key(x_api_key)
        return {"models": [slot.reload_from_registry() for slot in self._slots()]}

    @bentoml.on_shutdown
    def _finish_housekeeping(self) -> None:
        """Let a running fold or checkpoint finish before the process goes."""
        self.analytics.stop_housekeeping()

    # ---------------------------------------------------------------- internals

    def _slots(self) -> list[ModelSlot]:
        return [*self.forecasters.values(), self.segmenter]

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


def _check_read_key(ctx: bentoml.Context) -> None:
    if settings.read_access == "open":
        return
    try:
        require_read_access(ctx.request.headers.get("x-api-key"))
    except AuthError as error:
        raise as_bentoml_error(error) from None


SalesPulse.add_asgi_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
SalesPulse.add_asgi_middleware(UniformErrors)
