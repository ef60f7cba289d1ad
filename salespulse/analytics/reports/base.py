"""How a report is declared, and the registry that runs them.

A report is a name, its declared parameters (type, default, description, example) and a ``run`` function.
The filters every report takes are not listed here: they are the dimensions the semantic layer marks as
filters, with their examples and, for a closed list (channel, segment), their allowed values. The formats of
the output columns named after a measure or dimension come from those declarations too; a report declares
only the formats of the columns it computes itself.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MaxLen
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from salespulse.analytics.errors import Problem, ReportNotFound
from salespulse.analytics.query import TIME_OUTPUT, check_range
from salespulse.analytics.semantic import (
    ATTRIBUTE_FORMATS,
    DIMENSIONS,
    ENTITIES,
    FIELDS,
    FILTER_DIMENSIONS,
    MEASURES,
    Dimension,
)
from salespulse.bounds import SaneDate, plain_text

if TYPE_CHECKING:
    from salespulse.analytics.reports.context import ReportContext

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Param:
    name: str
    type: Any
    default: Any
    description: str
    example: Any = None
    ge: float | None = None
    le: float | None = None
    member: str | None = None
    """The dimension whose members the values are: each is checked to exist (422 naming the parameter)."""


def _filter_param(name: str, dimension: Dimension) -> Param:
    # A closed list becomes the parameter's type, so a wrong value is refused listing the right ones.
    member_type: Any = Literal[dimension.values] if dimension.values else str  # type: ignore[valid-type]
    return Param(
        name,
        list[member_type] | None,
        None,
        f"Only these {name} members. {dimension.description}",
        [dimension.example] if dimension.example is not None else None,
        member=name,
    )


FILTER_PARAMS = tuple(_filter_param(name, d) for name, d in FILTER_DIMENSIONS.items())
"""The filters a report takes (unless it declares fewer): the dimensions declared as filters
(semantic.DIMENSIONS). A value the data does not have matches nothing: the answer is empty, and a note says
which values the data has."""
FILTER_TEXT = plain_text(200)
"""A text parameter's value (a filter's member, a product id): one line, at most 200 characters."""
MAX_PARAM_VALUES = 100
"""The most values of one list parameter (region=West&region=East...): a URL must fit the HTTP server's
request line (uvicorn reads 64 KiB); a query (POST /query) takes up to LIMITS.max_values."""
RANGE_PARAMS = (
    Param(
        "start",
        date | None,
        None,
        "First day, inclusive (default: the first day with data). Not after `end`.",
        "2025-01-01",
    ),
    Param(
        "end",
        date | None,
        None,
        "Last day, inclusive (default: the last day with data). Not before `start`.",
        "2025-06-30",
    ),
)
AS_OF_PARAM = Param(
    "as_of", date | None, None, "The day the card is for (default: the last day with data).", "2025-06-30"
)


# --- output columns: formats derived from the declarations ---

ENTITY_ATTRIBUTES = frozenset(name for e in ENTITIES.values() for name in e.attributes)


def member_format(name: str) -> str:
    """The format of an output column named after a declared member: a measure (or its comparison columns),
    a dimension, a field or an entity's attribute; a percentage by its ``_pct`` suffix; else a number."""
    if name == TIME_OUTPUT:
        return "date"
    if name in MEASURES:
        return MEASURES[name].format
    for suffix in ("_previous", "_change"):
        measure = name.removesuffix(suffix)
        if name.endswith(suffix) and measure in MEASURES:
            # The change of a date is a number of days.
            return (
                "integer"
                if MEASURES[measure].format == "date" and suffix == "_change"
                else MEASURES[measure].format
            )
    if name.endswith("_pct"):
        return "percent"
    if name in DIMENSIONS:
        return "text" if DIMENSIONS[name].type == "string" else DIMENSIONS[name].type
    if name in ATTRIBUTE_FORMATS:
        return ATTRIBUTE_FORMATS[name]
    if name in FIELDS or name in ENTITY_ATTRIBUTES:
        return "text"
    return "number"


def described(*members: str, **formats: str) -> dict[str, str]:
    """Output columns in order: declared members by name (their formats derived), then the report's own
    columns with their formats."""
    return {**{name: member_format(name) for name in members}, **formats}


def with_change(*measures: str) -> dict[str, str]:
    """A measure's columns with its comparison: the value, previous, change and change %."""
    return described(*measures, *(f"{m}_{s}" for m in measures for s in ("previous", "change", "change_pct")))


# --- reports ---


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    section: str
    description: str
    run: Callable[[ReportContext], dict[str, Any]]
    params: tuple[Param, ...] = ()
    time: Literal["range", "as_of"] = "range"
    columns: dict[str, str] = field(default_factory=dict)
    """Formats of the output columns (those of a plain query report come from the query)."""
    template: Callable[[ReportContext], dict[str, Any]] | None = None
    """The query of a preset (without the common filters)."""
    filters: tuple[str, ...] | None = None
    """The filters the report answers, when not all of FILTER_PARAMS (a goal plan is split by few)."""
    example_filters: tuple[str, ...] | None = None
    """The filters whose examples go with the other parameters' examples in the OpenAPI document, when
    not all do (which filters a report answers may depend on another parameter): the examples make one
    request that the report answers."""

    @property
    def filter_params(self) -> tuple[Param, ...]:
        return tuple(p for p in FILTER_PARAMS if self.filters is None or p.name in self.filters)

    @property
    def all_params(self) -> tuple[Param, ...]:
        time = RANGE_PARAMS if self.time == "range" else (AS_OF_PARAM,)
        return (*self.filter_params, *time, *self.params)

    @property
    def example(self) -> dict[str, Any]:
        return {p.name: p.example for p in self.all_params if p.example is not None and p in self.params}


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("end", "baseline_end", check_fields=False)
    @classmethod
    def _range_not_inverted(cls, value: date | None, info: ValidationInfo) -> date | None:
        """start..end (and baseline_start..baseline_end) is a period: refused inverted, naming the end."""
        first = info.field_name.replace("end", "start") if info.field_name else "start"
        start = info.data.get(first)
        if value is not None and start is not None:
            check_range((start, value), f"{first}..{info.field_name}")
        return value


_MODELS: dict[str, type[ReportParams]] = {}


def params_model(report: Report) -> type[ReportParams]:
    """The pydantic model of a report's parameters (also its OpenAPI query parameters); one per report."""
    if report.name not in _MODELS:
        _MODELS[report.name] = _build_params_model(report)
    return _MODELS[report.name]


def _build_params_model(report: Report) -> type[ReportParams]:
    fields: dict[str, Any] = {}
    for p in report.all_params:
        constraints = {k: v for k, v in (("ge", p.ge), ("le", p.le)) if v is not None}
        examples = [p.example] if p.example is not None else None
        if p in FILTER_PARAMS and report.example_filters is not None and p.name not in report.example_filters:
            examples = None
        fields[p.name] = (
            query_parameter(p.type),
            Field(p.default, description=p.description, examples=examples, **constraints),
        )
    name = "".join(part.title() for part in report.name.split("-")) + "Params"
    return create_model(name, __base__=ReportParams, **fields)


class QueryParameter:
    """A parameter of the query string as its JSON schema: without the null a ``X | None`` type adds, since
    a query string cannot say null (an absent parameter is the default) and the document must not offer
    what no client can send."""

    @staticmethod
    def __get_pydantic_json_schema__(
        core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
        if "anyOf" in schema and len(branches) == 1:
            del schema["anyOf"]
            schema.update(branches[0])
        return schema


def query_parameter(annotation: Any) -> Any:
    """A report's (or the insights') parameter type: constrained, and documented as a query parameter."""
    return Annotated[constrained(annotation), QueryParameter]


def constrained(annotation: Any) -> Any:
    """A parameter's declared type with the sanity bounds of salespulse.bounds, wherever it occurs (alone,
    in a union, in a list), whichever module declares it: a ``date`` is a YYYY-MM-DD day within the
    supported dates (refused, 422 naming it, before a report's date arithmetic could overflow), a ``str``
    is text on one line (FILTER_TEXT), a list holds at most MAX_PARAM_VALUES values. The OpenAPI document
    says each (format, pattern, maxLength, maxItems)."""
    if annotation is date:
        return SaneDate
    if annotation is str:
        return FILTER_TEXT
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return Union[tuple(constrained(member) for member in get_args(annotation))]  # noqa: UP007
    if origin is list:
        (item,) = get_args(annotation)
        return Annotated[list[constrained(item)], MaxLen(MAX_PARAM_VALUES)]  # type: ignore[misc]
    return annotation


REGISTRY: dict[str, Report] = {}


def register(report: Report) -> Report:
    if report.name in REGISTRY:
        raise ValueError(f"report {report.name!r} is declared twice")
    REGISTRY[report.name] = report
    return report


def get_report(name: str) -> Report:
    if name not in REGISTRY:
        raise ReportNotFound(
            Problem("name", f"no report {name!r}; reports are: {', '.join(sorted(REGISTRY))}")
        )
    return REGISTRY[name]


def preset(
    name: str,
    title: str,
    section: str,
    description: str,
    template: Callable[[ReportContext], dict[str, Any]],
    *,
    params: tuple[Param, ...] = (),
    post: Callable[[Rows], Rows] | None = None,
    adjust: Callable[[ReportContext, Rows], Rows] | None = None,
    columns: dict[str, str] | None = None,
    filters: tuple[str, ...] | None = None,
    example_filters: tuple[str, ...] | None = None,
) -> Report:
    """A report that is one query: ``template`` gives the query (without the report's filters).

    ``post`` is a step over the result rows; ``adjust`` one that also needs the report's context (its
    period, the data's span)."""

    def run(ctx: ReportContext) -> dict[str, Any]:
        spec = template(ctx)
        spec.setdefault("time_dimension", {})
        spec["time_dimension"] = {**spec["time_dimension"], "date_range": ctx.date_range()}
        step = post if adjust is None else lambda rows: adjust(ctx, rows)
        return ctx.query_result(ctx.query(**spec), step)

    report = Report(
        name,
        title,
        section,
        description,
        run,
        params,
        columns=columns or {},
        template=template,
        filters=filters,
        example_filters=example_filters,
    )
    return register(report)


# --- small steps over result rows ---


def with_rank(rows: Rows) -> Rows:
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def with_rank_and_share(rows: Rows, measure: str = "revenue") -> Rows:
    total = sum(r[measure] or 0 for r in rows)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
        row["share_pct"] = 100.0 * (row[measure] or 0) / total if total else None
    return rows


def iso_dates(rows: Rows) -> Rows:
    for row in rows:
        for key, value in row.items():
            if isinstance(value, date):
                row[key] = value.isoformat()
    return rows


BY_REVENUE = [{"member": "revenue", "direction": "desc"}]
TOP_N = Param("n", int, 10, "How many to list.", 10, ge=1, le=1000)
