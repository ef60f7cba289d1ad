"""The query a client sends, validated against the semantic layer before any SQL exists.

Every name is checked against the declarations, and an error names the field and lists the valid names, so a
client can correct a request from the message alone.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from salespulse.analytics.semantic import (
    DIMENSIONS,
    MEASURES,
    PUBLIC_DIMENSIONS,
    CompareTo,
    Grain,
    Limits,
    Operator,
)
from salespulse.bounds import Documented, FiniteFloat, Int64, SaneDate, strict_int

LIMITS = Limits()
TIME_OUTPUT = "period"
"""Output column of the time bucket (the first day of each day, week, month, quarter or year)."""


def _listing(names: Any) -> str:
    return ", ".join(sorted(names))


def _known_measure(name: str) -> str:
    if name not in MEASURES:
        raise PydanticCustomError(
            "unknown_measure",
            "unknown measure '{name}'; valid measures are: {valid}",
            {"name": name, "valid": _listing(MEASURES)},
        )
    return name


INTERNAL = {"internal": True}
"""Validation context of the queries that reports build, which may use internal dimensions (the order)."""


def _known_dimension(name: str, info: ValidationInfo) -> str:
    internal = bool(info.context and info.context.get("internal"))
    if name not in PUBLIC_DIMENSIONS and not (internal and name in DIMENSIONS):
        raise PydanticCustomError(
            "unknown_dimension",
            "unknown dimension '{name}'; valid dimensions are: {valid}",
            {"name": name, "valid": _listing(PUBLIC_DIMENSIONS)},
        )
    return name


def _known_member(name: str) -> str:
    if name not in PUBLIC_DIMENSIONS and name not in MEASURES:
        raise PydanticCustomError(
            "unknown_member",
            "unknown member '{name}'; filters take a dimension ({dimensions}) or a measure ({measures})",
            {"name": name, "dimensions": _listing(PUBLIC_DIMENSIONS), "measures": _listing(MEASURES)},
        )
    return name


# The names are checked by validators (whose messages list the valid names) and declared as enums in the
# JSON schema, so the OpenAPI document lists what is accepted.
MeasureName = Annotated[str, AfterValidator(_known_measure), Documented({"enum": sorted(MEASURES)})]
DimensionName = Annotated[
    str, AfterValidator(_known_dimension), Documented({"enum": sorted(PUBLIC_DIMENSIONS)})
]
MemberName = Annotated[
    str, AfterValidator(_known_member), Documented({"enum": sorted([*PUBLIC_DIMENSIONS, *MEASURES])})
]
FilterValue = str | Int64 | FiniteFloat | None  # NaN and infinities would silently match nothing


def check_range(value: tuple[date, date] | None, field: str = "date_range") -> tuple[date, date] | None:
    if value is not None and value[0] > value[1]:
        raise PydanticCustomError(
            "inverted_range",
            "{field} is inverted: the start {start} is after the end {end}",
            {"field": field, "start": value[0].isoformat(), "end": value[1].isoformat()},
        )
    return value


# Each day within the supported dates (salespulse.bounds); a report's own queries (INTERNAL) are exempt.
DateRange = Annotated[tuple[SaneDate, SaneDate], AfterValidator(check_range)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeDimension(Strict):
    dimension: Literal["ordered_at"] = Field("ordered_at", description="The only time dimension: order time.")
    grain: Grain | None = Field(
        None,
        description="Bucket size; none for totals over the date range. Goal measures are monthly: with one, "
        "month, quarter or year (or none).",
    )
    date_range: DateRange | None = Field(
        None,
        description="[start, end], inclusive YYYY-MM-DD days within the supported dates; start not after "
        "end.",
        examples=[["2025-01-01", "2025-03-31"]],
    )


class Filter(Strict):
    member: MemberName = Field(
        description="A dimension, or a measure (a measure's filter applies to the result rows, and the "
        "measure "
        "must be in the query's measures)."
    )
    operator: Operator
    values: list[FilterValue] = Field(
        default_factory=list,
        max_length=LIMITS.max_values,
        description="equals: one value; in / not_in: one or more; range: [low, high], either may be null "
        "(not "
        "both); set / not_set: none. Numbers for a measure or a whole-number dimension (year, month_of_year, "
        "...), text for the others; null only as an open end of a range. A value the data does not have "
        "matches nothing (a note names it).",
    )

    @model_validator(mode="after")
    def _check_values(self) -> Self:
        arity = {
            Operator.EQUALS: (1, 1),
            Operator.RANGE: (2, 2),
            Operator.SET: (0, 0),
            Operator.NOT_SET: (0, 0),
        }.get(self.operator, (1, LIMITS.max_values))
        if not arity[0] <= len(self.values) <= arity[1]:
            wanted = f"exactly {arity[0]}" if arity[0] == arity[1] else "at least 1"
            raise PydanticCustomError(
                "filter_values",
                "operator '{operator}' takes {wanted} value(s), got {count}",
                {"operator": self.operator.value, "wanted": wanted, "count": len(self.values)},
            )
        if self.operator is not Operator.RANGE and any(v is None for v in self.values):
            raise PydanticCustomError(
                "filter_values", "null is only allowed as an open end of a range (use not_set)", {}
            )
        if self.operator is Operator.RANGE and all(v is None for v in self.values):
            raise PydanticCustomError("filter_values", "a range needs a low or a high end", {})
        numeric = self.member in MEASURES or PUBLIC_DIMENSIONS[self.member].type == "integer"
        for value in self.values:
            if value is None:
                continue
            if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise PydanticCustomError(
                    "filter_values",
                    "'{member}' is a number: '{value}' is not",
                    {"member": self.member, "value": value},
                )
            if not numeric and not isinstance(value, str):
                raise PydanticCustomError(
                    "filter_values",
                    "'{member}' takes text values: '{value}' is not text (quote it)",
                    {"member": self.member, "value": value},
                )
        return self

    @property
    def is_measure(self) -> bool:
        return self.member in MEASURES


COMPARE_SUFFIXES = ("previous", "change", "change_pct")
OUTPUT_NAMES = sorted(
    {TIME_OUTPUT, *PUBLIC_DIMENSIONS, *MEASURES, *(f"{m}_{x}" for m in MEASURES for x in COMPARE_SUFFIXES)}
)
"""Every column a query can answer with; which ones a query has depends on the query (output_names)."""


class OrderBy(Strict):
    member: Annotated[str, Documented({"enum": OUTPUT_NAMES})] = Field(
        description="A column of this query's result: 'period' (with a grain), one of its dimensions or "
        "measures, or a comparison column of a measure (<measure>_previous, _change, _change_pct) when it "
        "compares."
    )
    direction: Literal["asc", "desc"] = "asc"


class Query(Strict):
    """A question in the spirit of Cube's REST query."""

    measures: list[MeasureName] = Field(
        min_length=1,
        max_length=LIMITS.max_members,
        json_schema_extra={"uniqueItems": True},
        description="Each at most once.",
        examples=[["revenue"]],
    )
    dimensions: list[DimensionName] = Field(
        default_factory=list,
        max_length=LIMITS.max_members,
        json_schema_extra={"uniqueItems": True},
        description="Each at most once. With a goal measure, only what the goal plan is split by (see "
        "GET /meta).",
        examples=[["category"]],
    )
    time_dimension: TimeDimension | None = None
    filters: list[Filter] = Field(default_factory=list, max_length=LIMITS.max_members)
    order: list[OrderBy] = Field(default_factory=list, max_length=LIMITS.max_members)
    # Strict: a JSON number without a fraction; "100" (text), 100.5 and true are refused, not coerced.
    limit: strict_int(ge=1, le=LIMITS.max_rows) = Field(  # type: ignore[valid-type]
        1_000, description="Rows returned (at most 50,000)."
    )
    offset: strict_int(ge=0, le=10_000_000) = Field(  # type: ignore[valid-type]
        0, description="Rows skipped first (at most 10,000,000)."
    )
    compare: CompareTo | None = Field(
        None,
        description="Add the same measures for a comparison period, with change and % change. Needs "
        "time_dimension.date_range; not with compare_date_range.",
    )
    compare_date_range: DateRange | None = Field(
        None,
        description="An explicit comparison period instead of `compare`: [start, end], inclusive YYYY-MM-DD "
        "days; start not after end. Needs time_dimension.date_range.",
    )

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "measures": ["revenue", "orders"],
                    "dimensions": ["category"],
                    "time_dimension": {"grain": "month", "date_range": ["2025-01-01", "2025-06-30"]},
                    "filters": [{"member": "region", "operator": "in", "values": ["West", "East"]}],
                    "order": [{"member": "revenue", "direction": "desc"}],
                    "limit": 100,
                    "compare": "same_period_last_year",
                }
            ]
        },
    )

    @model_validator(mode="after")
    def _check_query(self) -> Self:
        for kind, names in (("measure", self.measures), ("dimension", self.dimensions)):
            if len(set(names)) != len(names):
                raise PydanticCustomError("duplicate", "a {kind} is listed twice", {"kind": kind})
        if self.compare is not None or self.compare_date_range is not None:
            if self.date_range is None:
                raise PydanticCustomError(
                    "compare_without_range",
                    "compare needs time_dimension.date_range (the current period)",
                    {},
                )
            if self.compare is not None and self.compare_date_range is not None:
                raise PydanticCustomError(
                    "compare_twice", "give either compare or compare_date_range, not both", {}
                )
        outputs = self.output_names
        for item in self.order:
            if item.member not in outputs:
                raise PydanticCustomError(
                    "unknown_order",
                    "cannot order by '{name}': it is not in the result; order by one of: {valid}",
                    {"name": item.member, "valid": ", ".join(outputs)},
                )
        return self

    @property
    def grain(self) -> Grain | None:
        return self.time_dimension.grain if self.time_dimension else None

    @property
    def date_range(self) -> tuple[date, date] | None:
        return self.time_dimension.date_range if self.time_dimension else None

    @property
    def compares(self) -> bool:
        return self.compare is not None or self.compare_date_range is not None

    @property
    def output_names(self) -> list[str]:
        names = [TIME_OUTPUT] if self.grain else []
        names += self.dimensions + self.measures
        if self.compares:
            names += [f"{m}_{suffix}" for m in self.measures for suffix in COMPARE_SUFFIXES]
        return names
