"""The service's wire contract: request and response models of the prediction endpoints and the analytics
API, and the error body every endpoint answers with.

They live in the shared package so that the service (which answers with them) and
:mod:`salespulse.client` (which parses answers into them) use one definition. This module imports neither
``service`` nor ``training``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from salespulse.bounds import SaneDate, StrictFloat, identifier
from salespulse.features.customers import FEATURE_DESCRIPTIONS, FEATURE_MINIMUMS, SUMMARY_DESCRIPTIONS
from salespulse.features.series import MAX_HORIZON, Level, ServingFreq

if TYPE_CHECKING:
    import pandas as pd

# Request values are strict (a JSON string "3" is refused, not coerced; numbers are finite) and ids are plain
# text on one line (salespulse.bounds).
CustomerId = identifier(128)
SeriesKey = identifier(200)
ProductOrCategory = identifier(64)

# ============================================================================================ errors


class Problem(BaseModel):
    field: str = Field(description="Where: a body path such as 'customers[0].recency_days', or ''.")
    message: str


class ErrorBody(BaseModel):
    """What every endpoint answers a 4xx or 5xx with."""

    error: str
    detail: list[Problem]


# ============================================================================================ segments

# Plausibility bounds of raw customer values (the models' answers stay finite within them): the supported
# calendar spans three centuries, a million purchases or orders, a trillion in money.
MAX_DAYS = 109_575.0
MAX_COUNT = 1_000_000.0
MAX_MONEY = 1e12


class CustomerFeatures(BaseModel):
    """Raw feature values of one customer, for systems that keep their own customer data.

    Whole numbers are welcome: counts (``frequency``) and day spans (``recency_days``, ``tenure_days``) are
    naturally integers and money often is; every value is held as a float, as the model takes it. Text
    ("12") is refused, not read as a number. The tenure covers the recency (tenure_days >= recency_days).
    """

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "example": {
                "customer_id": "crm-7781",
                "recency_days": 12,
                "frequency": 9,
                "monetary": 5120.5,
                "tenure_days": 640,
                "avg_order_value": 568.9,
            }
        },
    )

    customer_id: CustomerId | None = Field(None, description="Echoed back; optional.")
    recency_days: StrictFloat = Field(
        ge=FEATURE_MINIMUMS["recency_days"], le=MAX_DAYS, description=FEATURE_DESCRIPTIONS["recency_days"]
    )
    frequency: StrictFloat = Field(
        ge=FEATURE_MINIMUMS["frequency"], le=MAX_COUNT, description=FEATURE_DESCRIPTIONS["frequency"]
    )
    monetary: StrictFloat = Field(
        ge=FEATURE_MINIMUMS["monetary"], le=MAX_MONEY, description=FEATURE_DESCRIPTIONS["monetary"]
    )
    tenure_days: StrictFloat = Field(
        ge=FEATURE_MINIMUMS["tenure_days"], le=MAX_DAYS, description=FEATURE_DESCRIPTIONS["tenure_days"]
    )
    avg_order_value: StrictFloat = Field(
        ge=FEATURE_MINIMUMS["avg_order_value"],
        le=MAX_MONEY,
        description=FEATURE_DESCRIPTIONS["avg_order_value"],
    )

    @model_validator(mode="after")
    def _tenure_covers_recency(self) -> CustomerFeatures:
        if self.tenure_days < self.recency_days:
            raise ValueError("tenure_days must be >= recency_days (the first order is before the last one)")
        return self


class SegmentedCustomer(BaseModel):
    customer_id: str | None
    segment_id: int
    segment: str
    action: str
    distance: float = Field(description="Distance to the segment's centre in the model's scaled space.")


class SegmentResponse(BaseModel):
    model_version: str
    customers: list[SegmentedCustomer]


SEGMENT_BY_IDS_EXAMPLE = {"customer_ids": ["C-0000001", "C-0000002"]}
SEGMENT_BY_FEATURES_EXAMPLE = {"customers": [CustomerFeatures.model_config["json_schema_extra"]["example"]]}


# ============================================================================================ customer value


class CustomerSummary(BaseModel):
    """A customer's purchase history in the four numbers of the customer-value model, for systems that keep
    their own customer data. A purchase is a day with at least one order; whole numbers are welcome. The last
    purchase is not after the reference day (recency <= T)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "example": {
                "customer_id": "crm-7781",
                "frequency": 8,
                "recency": 610,
                "T": 640,
                "monetary_value": 568.9,
            }
        },
    )

    customer_id: CustomerId | None = Field(None, description="Echoed back; optional.")
    frequency: StrictFloat = Field(ge=0, le=MAX_COUNT, description=SUMMARY_DESCRIPTIONS["frequency"])
    recency: StrictFloat = Field(ge=0, le=MAX_DAYS, description=SUMMARY_DESCRIPTIONS["recency"])
    T: StrictFloat = Field(ge=0, le=MAX_DAYS, description=SUMMARY_DESCRIPTIONS["T"])
    monetary_value: StrictFloat = Field(
        ge=0, le=MAX_MONEY, description=SUMMARY_DESCRIPTIONS["monetary_value"]
    )

    @model_validator(mode="after")
    def _age_covers_recency(self) -> CustomerSummary:
        if self.recency > self.T:
            raise ValueError("recency must be <= T (the last purchase is not after the reference day)")
        return self


class CustomerValuePrediction(BaseModel):
    customer_id: str | None
    expected_purchases: float = Field(description="Expected purchases (days with an order) in the horizon.")
    expected_purchase_value: float = Field(description="Expected revenue of one future purchase.")
    expected_spend: float = Field(description="Expected revenue in the horizon (purchases x value).")
    probability_alive: float = Field(description="Probability the customer is still active (0 to 1).")
    lifetime_value: float = Field(description="Expected revenue over the lifetime, discounted if asked.")


class CustomerValueResponse(BaseModel):
    model_version: str
    as_of: date | None = Field(
        description="The day the summaries were measured to (the warehouse's last sale day); null for raw "
        "summaries, which are measured to the caller's own reference day."
    )
    horizon_days: int
    lifetime_months: int
    monthly_discount_rate: float
    customers: list[CustomerValuePrediction]


PREDICT_CUSTOMERS_BY_IDS_EXAMPLE = {"customer_ids": ["C-0000001", "C-0000002"], "horizon_days": 90}
PREDICT_CUSTOMERS_BY_SUMMARY_EXAMPLE = {
    "customers": [CustomerSummary.model_config["json_schema_extra"]["example"]],
    "horizon_days": 90,
}


# ============================================================================================ forecasts

MAX_HORIZON_DAYS = MAX_HORIZON["D"]


class ForecastPoint(BaseModel):
    """One period, labelled by its first ``date`` (a Monday for weeks, the 1st for months): the forecast
    (expected revenue), the median (daily only), and ``lo_<level>`` / ``hi_<level>`` for each requested
    interval (e.g. ``lo_80``, ``hi_80``)."""

    model_config = ConfigDict(extra="allow")

    date: date
    forecast: float = Field(
        description="Expected revenue of the period: unbiased, the figure to add up across periods or "
        "series. A week or month under way includes the sales already made in it."
    )
    mean: float = Field(description="The same figure as forecast (its earlier name).")
    median: float | None = Field(
        None, description="Median revenue of the day (daily only): the likeliest value of a sparse day."
    )


class SeriesForecast(BaseModel):
    series: str
    points: list[ForecastPoint]


class ForecastResponse(BaseModel):
    level: Level
    freq: ServingFreq
    model: str
    model_version: str
    method: str | None = Field(None, description="The champion method: lightgbm, autoets, combination, ...")
    history_until: date | None = Field(description="Last day of sales the forecast starts from.")
    series: list[SeriesForecast]


class PlannedPromotion(BaseModel):
    """A planned price cut (what-if): one product or every product of a category, on the days start..end."""

    # The one-target rule, in the schema too (end >= start is said in its description).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("product_id", "category")
            ]
        },
    )

    product_id: ProductOrCategory | None = Field(None, examples=["P-00012"])
    category: ProductOrCategory | None = Field(None, examples=["Technology"])
    discount: StrictFloat = Field(gt=0, lt=0.95, description="Price cut as a fraction: 0.2 is 20% off.")
    start: SaneDate = Field(description="First day of the cut.")
    end: SaneDate = Field(description="Last day of the cut: on or after start.")

    @model_validator(mode="after")
    def _one_target_and_ordered_days(self) -> PlannedPromotion:
        if (self.product_id is None) == (self.category is None):
            raise ValueError("name exactly one of product_id or category")
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


FORECAST_EXAMPLE = {
    "level": "category",
    "series": ["Technology", "Furniture"],
    "freq": "D",
    "horizon": 28,
    "intervals": [80, 95],
}


def forecast_series_payload(frame: pd.DataFrame, order: list[str]) -> list[SeriesForecast]:
    """The forecaster's long frame (unique_id, ds, forecast, mean, lo-80, ...) as one entry per series,
    in the order the series were asked for."""
    frame = frame.rename(columns=lambda c: c.replace("-", "_").replace(".", "_"))
    value_columns = [c for c in frame.columns if c not in ("unique_id", "ds")]
    by_series = {
        series_id: [
            ForecastPoint(date=ds.date(), **dict(zip(value_columns, values, strict=True)))
            for ds, *values in group[["ds", *value_columns]].itertuples(index=False, name=None)
        ]
        for series_id, group in frame.groupby("unique_id", sort=False)
    }
    return [
        SeriesForecast(series=series_id, points=by_series[series_id]) for series_id in dict.fromkeys(order)
    ]


# ============================================================================================ analytics
# The analytics API builds its answers as plain JSON for speed; these models document them (OpenAPI) and
# give the client typed results.


class ColumnInfo(BaseModel):
    name: str
    format: str = Field(description="currency, number, integer, percent, date, text or boolean")


class QueryResult(BaseModel):
    columns: list[ColumnInfo]
    rows: list[dict[str, Any]]
    source: str = Field(description="The table that answered: a rollup (agg_*) or order_lines.")
    elapsed_ms: float
    notes: list[str] = Field(
        default_factory=list, description="How the answer was made (e.g. which goal plan, pro-rated months)."
    )


class ReportResult(BaseModel):
    report: str
    title: str
    params: dict[str, Any]
    columns: list[ColumnInfo]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: list[str]
    elapsed_ms: float


class SalesResult(BaseModel):
    lines: int = Field(description="Lines in the batch.")
    inserted: int = Field(description="Lines whose order_id + line was new.")
    updated: int = Field(description="Stored lines replaced by different values.")
    unchanged: int = Field(description="Lines already stored exactly so (a re-sent batch).")
    rollups_rebuilt: bool
    seconds: float
    batches_in_transaction: int = Field(description="Batches written together (group commit) with this one.")
