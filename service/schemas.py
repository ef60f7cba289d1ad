"""Request and response models of the prediction endpoints, with the examples shown in OpenAPI."""

from __future__ import annotations

from datetime import date
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from salespulse.features.customers import FEATURE_DESCRIPTIONS, FEATURE_MINIMUMS
from salespulse.features.series import Level

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class CustomerFeatures(BaseModel):
    """Raw feature values of one customer, for systems that keep their own customer data."""

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

    customer_id: str | None = Field(None, max_length=128, description="Echoed back; optional.")
    recency_days: float = Field(
        ge=FEATURE_MINIMUMS["recency_days"], description=FEATURE_DESCRIPTIONS["recency_days"]
    )
    frequency: float = Field(ge=FEATURE_MINIMUMS["frequency"], description=FEATURE_DESCRIPTIONS["frequency"])
    monetary: float = Field(ge=FEATURE_MINIMUMS["monetary"], description=FEATURE_DESCRIPTIONS["monetary"])
    tenure_days: float = Field(
        ge=FEATURE_MINIMUMS["tenure_days"], description=FEATURE_DESCRIPTIONS["tenure_days"]
    )
    avg_order_value: float = Field(
        ge=FEATURE_MINIMUMS["avg_order_value"], description=FEATURE_DESCRIPTIONS["avg_order_value"]
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


MAX_HORIZON_DAYS = 366


class ForecastPoint(BaseModel):
    """One day: the point forecast, the expected value, and ``lo_<level>`` / ``hi_<level>`` for each
    requested interval (e.g. ``lo_80``, ``hi_80``)."""

    model_config = ConfigDict(extra="allow")

    date: date
    forecast: float = Field(description="Point forecast: the median revenue of the day.")
    mean: float = Field(
        description="Expected revenue of the day: the figure to add up across days or series."
    )


class SeriesForecast(BaseModel):
    series: str
    points: list[ForecastPoint]


class ForecastResponse(BaseModel):
    level: Level
    freq: Literal["D"]
    model: str
    model_version: str
    history_until: date | None = Field(description="Last day of sales the forecast starts from.")
    series: list[SeriesForecast]


FORECAST_EXAMPLE = {
    "level": "category",
    "series": ["Technology", "Furniture"],
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
