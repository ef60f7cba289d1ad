"""The named reports: thin, declared presets over the query layer.

A report is a name, its declared parameters (type, default, description, example) and a ``run`` function.
Most are one query template; the analyses that are not a plain group-by (ABC, affinity, RFM, churn, CLV,
consistency, seasonality, underperformers, change explained, the KPI cards) are one or two queries of the
same layer plus a parameterized SQL step over their results, so they inherit the router (rollups), the
filters and the validation. Every report takes the region, category and product filters, and a time filter:
``start``/``end``, or ``as_of`` for the cards that look at "this month" or "this week".
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from salespulse.analytics.compiler import Params, add_months
from salespulse.analytics.errors import Problem, QueryError, ReportNotFound
from salespulse.analytics.query import LIMITS, TIME_OUTPUT, Query, check_range
from salespulse.analytics.rollups import PAIRS
from salespulse.analytics.semantic import MEASURES, RFM_SEGMENT_RULES, rfm_scores_sql

if TYPE_CHECKING:
    from salespulse.analytics.engine import AnalyticsEngine

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


FILTER_PARAMS = (
    Param("region", list[str] | None, None, "Only sales to customers in these regions.", ["West"]),
    Param("category", list[str] | None, None, "Only these product categories.", ["Technology"]),
    Param("product", list[str] | None, None, "Only these product ids.", ["P-00001"]),
)
RANGE_PARAMS = (
    Param(
        "start", date | None, None, "First day, inclusive (default: the first day with data).", "2025-01-01"
    ),
    Param("end", date | None, None, "Last day, inclusive (default: the last day with data).", "2025-06-30"),
)
AS_OF_PARAM = Param(
    "as_of", date | None, None, "The day the card is for (default: the last day with data).", "2025-06-30"
)


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

    @property
    def all_params(self) -> tuple[Param, ...]:
        time = RANGE_PARAMS if self.time == "range" else (AS_OF_PARAM,)
        return (*FILTER_PARAMS, *time, *self.params)

    @property
    def example(self) -> dict[str, Any]:
        return {p.name: p.example for p in self.all_params if p.example is not None and p in self.params}


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("end", check_fields=False)
    @classmethod
    def _range_not_inverted(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if value is not None and start is not None:
            check_range((start, value), "start..end")
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
        fields[p.name] = (
            p.type,
            Field(p.default, description=p.description, examples=examples, **constraints),
        )
    name = "".join(part.title() for part in report.name.split("-")) + "Params"
    return create_model(name, __base__=ReportParams, **fields)


class ReportContext:
    """What a report's ``run`` works with: its validated parameters and the engine."""

    def __init__(
        self, engine: AnalyticsEngine, report: Report, params: ReportParams, raw_json: bool = False
    ) -> None:
        self.engine = engine
        self.raw_json = raw_json
        self.report = report
        self.values = params.model_dump()
        self.notes: list[str] = []
        self._as_of: date | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    # --- the common filters ---

    def filters(self) -> list[dict[str, Any]]:
        members = {"region": "region", "category": "category", "product": "product"}
        return [
            {"member": member, "operator": "in", "values": self.values[name]}
            for name, member in members.items()
            if self.values.get(name)
        ]

    @property
    def as_of(self) -> date:
        """The report's reference day: ``as_of`` or ``end`` when given, else the last day with sales."""
        if self._as_of is None:
            given = self.values.get("as_of") or self.values.get("end")
            self._as_of = given or self.engine.last_day() or date.today()
        return self._as_of

    def date_range(self, *, up_to_as_of: bool = False) -> list[date] | None:
        start, end = self.values.get("start"), self.values.get("end")
        if up_to_as_of:
            end = self.as_of
        if start is None and end is None:
            return None
        return [start or date(1900, 1, 1), end or date(2200, 12, 31)]

    def query(self, **spec: Any) -> Query:
        """A query of this report: the common filters are added, and it may use internal dimensions."""
        spec.setdefault("limit", LIMITS.max_rows)
        spec.setdefault("filters", [])
        spec["filters"] = [*spec["filters"], *self.filters()]
        return self.engine.internal_query(**spec)

    # --- running ---

    def rows(self, query: Query, *, labels: bool = True) -> Rows:
        compiled = self.engine.compile(query, unlimited=True, labels=labels)
        return self.engine.fetch(compiled.sql, compiled.params)

    def sql(self, build: Callable[[Params], str], **queries: Query) -> Rows:
        """Run ``WITH <name> AS (<query>), ... <build(params)>``.

        ``build`` binds its own values through ``params`` and may continue the WITH list (start with a
        comma) before its SELECT.
        """
        params = Params()
        ctes = [
            f"{name} AS ({self.engine.compile(q, unlimited=True, labels=False, params=params).sql})"
            for name, q in queries.items()
        ]
        return self.engine.fetch(f"WITH {', '.join(ctes)} {build(params)}", params.values)

    def result(self, rows: Rows, columns: dict[str, str] | None = None, **summary: Any) -> dict[str, Any]:
        formats = columns or self.report.columns
        names = list(rows[0]) if rows and isinstance(rows, list) else list(formats)
        return {
            "report": self.report.name,
            "title": self.report.title,
            "params": {k: v.isoformat() if isinstance(v, date) else v for k, v in self.values.items()},
            "columns": [{"name": n, "format": formats.get(n, _guess_format(n))} for n in names],
            "rows": rows,
            "summary": summary,
            "notes": self.notes,
        }

    def query_result(
        self, query: Query, post: Callable[[Rows], Rows] | None = None, **summary: Any
    ) -> dict[str, Any]:
        compiled = self.engine.compile(query)
        if self.raw_json and post is None:  # nothing to do with the rows in Python: DuckDB serializes them
            rows: Any = self.engine.fetch_json(compiled.sql, compiled.params)
            return self.result(rows, {c.name: c.format for c in compiled.columns}, **summary)
        rows = self.engine.fetch(compiled.sql, compiled.params)
        if len(rows) == LIMITS.max_rows:
            self.notes.append(f"Only the first {LIMITS.max_rows:,} rows; narrow the filters for the rest.")
        formats = {c.name: c.format for c in compiled.columns}
        if post is not None:
            rows = post(rows)
        return self.result(rows, {**formats, **self.report.columns}, **summary)


def _guess_format(name: str) -> str:
    if name.endswith("_pct"):
        return "percent"
    if name in MEASURES:
        return MEASURES[name].format
    return "number"


# --- small helpers over result rows ---


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


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=monthrange(day.year, day.month)[1])


REGISTRY: dict[str, Report] = {}


def register(report: Report) -> Report:
    if report.name in REGISTRY:
        raise ValueError(f"report {report.name!r} is declared twice")
    REGISTRY[report.name] = report
    return report


def preset(
    name: str,
    title: str,
    section: str,
    description: str,
    template: Callable[[ReportContext], dict[str, Any]],
    *,
    params: tuple[Param, ...] = (),
    post: Callable[[Rows], Rows] | None = None,
    columns: dict[str, str] | None = None,
) -> Report:
    """A report that is one query: ``template`` gives the query (without the common filters)."""

    def run(ctx: ReportContext) -> dict[str, Any]:
        spec = template(ctx)
        spec.setdefault("time_dimension", {})
        spec["time_dimension"] = {**spec["time_dimension"], "date_range": ctx.date_range()}
        return ctx.query_result(ctx.query(**spec), post)

    report = Report(name, title, section, description, run, params, columns=columns or {}, template=template)
    return register(report)


def get_report(name: str) -> Report:
    if name not in REGISTRY:
        raise ReportNotFound(
            Problem("name", f"no report {name!r}; reports are: {', '.join(sorted(REGISTRY))}")
        )
    return REGISTRY[name]


def run_report(
    engine: AnalyticsEngine, name: str, params: dict[str, Any] | ReportParams, *, raw_json: bool = False
) -> dict[str, Any]:
    report = get_report(name)
    model = params_model(report)
    validated = params if isinstance(params, model) else model.model_validate(params)
    return report.run(ReportContext(engine, report, validated, raw_json))


# ====================================================================================================
# Sales by category
# ====================================================================================================

SALES = ["revenue", "units"]
SECTION_CATEGORY = "Sales by category"

for _grain in ("day", "week", "month", "quarter"):
    _label = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly"}[_grain]
    preset(
        f"sales-by-category-{_label}",
        f"Sales by category, {_label}",
        SECTION_CATEGORY,
        f"Revenue and units of each product category per {_grain}.",
        lambda ctx, g=_grain: {"measures": SALES, "dimensions": ["category"], "time_dimension": {"grain": g}},
    )

# ====================================================================================================
# Totals by geography, distributor and product; top and bottom lists
# ====================================================================================================

SECTION_TOTALS = "Sales totals"
GEO = ["revenue", "units", "orders"]
TOP_N = Param("n", int, 10, "How many to list.", 10, ge=1, le=1000)
DISTRIBUTOR_SET = {"member": "distributor", "operator": "set"}
BY_REVENUE = [{"member": "revenue", "direction": "desc"}]

for _name, _title, _dims, _order in (
    ("sales-by-zip", "Total sales by zip code", ["zip"], BY_REVENUE),
    ("sales-by-state", "Total sales by state", ["state"], BY_REVENUE),
    (
        "sales-by-state-zip",
        "Total sales by state and zip code",
        ["state", "zip"],
        [{"member": "state"}, {"member": "revenue", "direction": "desc"}],
    ),
    ("sales-by-product", "Total sales by product", ["product", "category"], BY_REVENUE),
):
    preset(
        _name,
        _title,
        SECTION_TOTALS,
        f"Revenue, units and orders by {' and '.join(_dims)}.",
        lambda ctx, d=_dims, o=_order: {
            "measures": SALES if "product" in d else GEO,
            "dimensions": d,
            "order": o,
        },
    )

for _name, _title, _dims, _order in (
    ("sales-by-distributor", "Total sales by distributor", ["distributor"], BY_REVENUE),
    (
        "distributor-sales-by-state",
        "Distributor sales by state",
        ["distributor", "state"],
        [{"member": "distributor"}, {"member": "revenue", "direction": "desc"}],
    ),
    (
        "distributor-sales-by-product",
        "Distributor sales by product",
        ["distributor", "product"],
        [{"member": "distributor"}, {"member": "revenue", "direction": "desc"}],
    ),
):
    preset(
        _name,
        _title,
        SECTION_TOTALS,
        f"Trade-channel revenue and units by {' and '.join(_dims)} (the state is the customer's).",
        lambda ctx, d=_dims, o=_order: {
            "measures": SALES,
            "dimensions": d,
            "order": o,
            "filters": [DISTRIBUTOR_SET],
        },
    )

preset(
    "distributor-ranking",
    "Distributors by revenue",
    SECTION_TOTALS,
    "Distributors ranked by revenue, with their share of trade revenue.",
    lambda ctx: {
        "measures": ["revenue", "units", "orders"],
        "dimensions": ["distributor"],
        "order": BY_REVENUE,
        "filters": [DISTRIBUTOR_SET],
    },
    post=with_rank_and_share,
    columns={"rank": "integer", "share_pct": "percent"},
)

for _entity, _dims, _measures in (
    ("products", ["product"], ["revenue", "units"]),
    ("states", ["state"], ["revenue", "units", "orders"]),
    ("zips", ["zip"], ["revenue", "units", "orders"]),
    ("customers", ["customer"], ["revenue", "orders"]),
    ("salesmen", ["salesman"], ["revenue", "orders"]),
):
    for _direction in ("top", "bottom"):
        preset(
            f"{_direction}-{_entity}",
            f"{_direction.title()} {_entity} by revenue",
            SECTION_TOTALS,
            f"The n {_entity} with the {'highest' if _direction == 'top' else 'lowest'} revenue "
            "(among those with sales in the period).",
            lambda ctx, d=_dims, m=_measures, desc=_direction == "top": {
                "measures": m,
                "dimensions": d,
                "order": [{"member": "revenue", "direction": "desc" if desc else "asc"}],
                "filters": [{"member": d[0], "operator": "set"}],
                "limit": ctx["n"],
            },
            params=(TOP_N,),
            post=with_rank,
            columns={"rank": "integer"},
        )


# ====================================================================================================
# KPI cards
# ====================================================================================================

SECTION_KPI = "KPI cards"


def kpi(
    name: str,
    title: str,
    description: str,
    *,
    params: tuple[Param, ...] = (),
    time: str = "range",
    columns: dict[str, str] | None = None,
) -> Callable[[Callable[[ReportContext], dict[str, Any]]], Report]:
    def declare(run: Callable[[ReportContext], dict[str, Any]]) -> Report:
        return register(Report(name, title, SECTION_KPI, description, run, params, time, columns or {}))  # type: ignore[arg-type]

    return declare


def _compared(ctx: ReportContext, measures: list[str]) -> Query:
    date_range = ctx.date_range()
    compare = "previous_period" if ctx["start"] and ctx["end"] else None
    return ctx.query(measures=measures, time_dimension={"date_range": date_range}, compare=compare)


def _with_change(*measures: str) -> dict[str, str]:
    formats = {m: MEASURES[m].format for m in measures}
    for m in measures:
        formats |= {
            f"{m}_previous": MEASURES[m].format,
            f"{m}_change": MEASURES[m].format,
            f"{m}_change_pct": "percent",
        }
    return formats


@kpi(
    "kpi-total-revenue",
    "Total revenue",
    "Revenue over the period; with both start and end, also the previous period of equal length and the "
    "change.",
    columns=_with_change("revenue"),
)
def _total_revenue(ctx: ReportContext) -> dict[str, Any]:
    return ctx.query_result(_compared(ctx, ["revenue"]))


@kpi(
    "kpi-average-order-value",
    "Average order value",
    "Revenue per order over the period (with the previous period when start and end are given).",
    columns=_with_change("average_order_value", "revenue", "orders"),
)
def _average_order_value(ctx: ReportContext) -> dict[str, Any]:
    return ctx.query_result(_compared(ctx, ["average_order_value", "revenue", "orders"]))


def _month_to_date(as_of: date) -> tuple[list[date], list[date]]:
    """This month up to ``as_of``, and the same days of the previous month (capped at its end)."""
    previous_start = add_months(month_start(as_of), -1)
    previous_end = min(previous_start + timedelta(days=as_of.day - 1), month_end(previous_start))
    return [month_start(as_of), as_of], [previous_start, previous_end]


@kpi(
    "kpi-mom-growth",
    "Month-over-month growth",
    "Revenue of this month to date against the same days of the previous month.",
    time="as_of",
    columns={
        "period_start": "date",
        "period_end": "date",
        "revenue": "currency",
        "previous_start": "date",
        "previous_end": "date",
        "revenue_previous": "currency",
        "growth_pct": "percent",
    },
)
def _mom_growth(ctx: ReportContext) -> dict[str, Any]:
    current, previous = _month_to_date(ctx.as_of)
    query = ctx.query(
        measures=["revenue"], time_dimension={"date_range": current}, compare_date_range=previous
    )
    row = ctx.rows(query)[0]
    rows = [
        {
            "period_start": current[0],
            "period_end": current[1],
            "revenue": row["revenue"],
            "previous_start": previous[0],
            "previous_end": previous[1],
            "revenue_previous": row["revenue_previous"],
            "growth_pct": row["revenue_change_pct"],
        }
    ]
    return ctx.result(_iso(rows))


@kpi(
    "kpi-retention-rate",
    "Customer retention rate",
    "Of the customers who bought in the previous month, the share who bought again this month (to date).",
    time="as_of",
    columns={
        "retention_rate_pct": "percent",
        "previous_customers": "integer",
        "retained_customers": "integer",
    },
)
def _retention(ctx: ReportContext) -> dict[str, Any]:
    previous_start = add_months(month_start(ctx.as_of), -1)
    buyers = {
        name: ctx.query(measures=["lines"], dimensions=["customer"], time_dimension={"date_range": period})
        for name, period in (
            ("previous", [previous_start, month_end(previous_start)]),
            ("current", [month_start(ctx.as_of), ctx.as_of]),
        )
    }
    rows = ctx.sql(
        lambda p: (
            "SELECT count(*) AS previous_customers, count(c.customer) AS retained_customers, "
            "100.0 * count(c.customer) / nullif(count(*), 0) AS retention_rate_pct "
            "FROM previous p LEFT JOIN current c ON c.customer = p.customer"
        ),
        **buyers,
    )
    return ctx.result(rows)


@kpi(
    "kpi-region-contribution",
    "Region contribution",
    "Each region's revenue and its share of the total.",
    columns={"region": "text", "revenue": "currency", "rank": "integer", "share_pct": "percent"},
)
def _region_contribution(ctx: ReportContext) -> dict[str, Any]:
    query = ctx.query(
        measures=["revenue"],
        dimensions=["region"],
        time_dimension={"date_range": ctx.date_range()},
        order=BY_REVENUE,
    )
    return ctx.query_result(query, with_rank_and_share)


@kpi(
    "kpi-revenue-run-rate",
    "Revenue run rate",
    "This month's revenue to date, projected to the whole month at the same daily pace.",
    time="as_of",
    columns={
        "month": "date",
        "month_to_date": "currency",
        "days_elapsed": "integer",
        "days_in_month": "integer",
        "run_rate": "currency",
    },
)
def _run_rate(ctx: ReportContext) -> dict[str, Any]:
    current, _ = _month_to_date(ctx.as_of)
    (row,) = ctx.rows(ctx.query(measures=["revenue"], time_dimension={"date_range": current}))
    days = monthrange(ctx.as_of.year, ctx.as_of.month)[1]
    revenue = row["revenue"] or 0.0
    rows = [
        {
            "month": month_start(ctx.as_of).isoformat(),
            "month_to_date": revenue,
            "days_elapsed": ctx.as_of.day,
            "days_in_month": days,
            "run_rate": revenue / ctx.as_of.day * days,
        }
    ]
    return ctx.result(rows)


@kpi(
    "kpi-active-salesmen",
    "Active salesmen",
    "Salesmen with a sale this week (Monday to as_of) among those employed (hired by then; in the region "
    "filter, by their home region).",
    time="as_of",
    columns={"salesmen": "integer", "active_salesmen": "integer", "active_pct": "percent"},
)
def _active_salesmen(ctx: ReportContext) -> dict[str, Any]:
    week = [ctx.as_of - timedelta(days=ctx.as_of.weekday()), ctx.as_of]
    active = ctx.query(measures=["lines"], dimensions=["salesman"], time_dimension={"date_range": week})

    def build(p: Params) -> str:
        regions = ctx["region"]
        in_region = f" AND s.region IN ({', '.join(p.add(r) for r in regions)})" if regions else ""
        return (
            "SELECT count(*) AS salesmen, count(a.salesman) AS active_salesmen, "
            "100.0 * count(a.salesman) / nullif(count(*), 0) AS active_pct "
            "FROM salesmen s LEFT JOIN active a ON a.salesman = s.salesman_id "
            f"WHERE (s.hire_date IS NULL OR s.hire_date <= {p.add(ctx.as_of)}){in_region}"
        )

    return ctx.result(ctx.sql(build, active=active), week_start=week[0].isoformat())


@kpi(
    "kpi-top-product-mover",
    "Top product movers",
    "Products whose sales velocity (units per day) rose most: this month to date against the whole "
    "previous month.",
    time="as_of",
    params=(Param("n", int, 5, "How many products.", 5, ge=1, le=100),),
    columns={
        "product": "text",
        "product_name": "text",
        "units_now": "integer",
        "units_before": "integer",
        "velocity_now": "number",
        "velocity_before": "number",
        "velocity_change": "number",
        "velocity_change_pct": "percent",
    },
)
def _top_mover(ctx: ReportContext) -> dict[str, Any]:
    current, _ = _month_to_date(ctx.as_of)
    previous_start = add_months(current[0], -1)
    previous = [previous_start, month_end(previous_start)]
    queries = {
        name: ctx.query(measures=["units"], dimensions=["product"], time_dimension={"date_range": period})
        for name, period in (("now", current), ("before", previous))
    }

    def build(p: Params) -> str:
        now_days, before_days = p.add(float(ctx.as_of.day)), p.add(float(previous[1].day))
        return f"""
            SELECT coalesce(n.product, b.product) AS product, pr.product_name,
                   coalesce(n.units, 0) AS units_now, coalesce(b.units, 0) AS units_before,
                   coalesce(n.units, 0) / {now_days} AS velocity_now,
                   coalesce(b.units, 0) / {before_days} AS velocity_before,
                   coalesce(n.units, 0) / {now_days} - coalesce(b.units, 0) / {before_days}
                       AS velocity_change,
                   100.0 * (coalesce(n.units, 0) / {now_days} - coalesce(b.units, 0) / {before_days})
                         / nullif(coalesce(b.units, 0) / {before_days}, 0) AS velocity_change_pct
            FROM now n FULL JOIN before b ON n.product = b.product
            LEFT JOIN products pr ON pr.product_id = coalesce(n.product, b.product)
            ORDER BY velocity_change DESC, product LIMIT {p.add(ctx["n"])}
        """

    return ctx.result(ctx.sql(build, **queries))


@kpi(
    "kpi-product-profitability",
    "Product profitability",
    "Products by profit, with revenue and margin.",
    params=(
        TOP_N,
        Param("direction", Literal["most", "least"], "most", "Most or least profitable first.", "most"),
    ),
    columns={
        "product": "text",
        "profit": "currency",
        "margin_pct": "percent",
        "revenue": "currency",
        "product_name": "text",
    },
)
def _profitability(ctx: ReportContext) -> dict[str, Any]:
    direction = "desc" if ctx["direction"] == "most" else "asc"
    query = ctx.query(
        measures=["profit", "margin_pct", "revenue"],
        dimensions=["product"],
        time_dimension={"date_range": ctx.date_range()},
        order=[{"member": "profit", "direction": direction}],
        limit=ctx["n"],
    )
    return ctx.query_result(query)


# ====================================================================================================
# Goal plan
# ====================================================================================================

SECTION_GOALS = "Goal plan"
ATTAINMENT = ["revenue", "goal", "goal_attainment_pct"]

for _member in ("region", "salesman"):
    preset(
        f"goal-attainment-by-{_member}",
        f"Goal attainment by {_member}",
        SECTION_GOALS,
        f"Revenue against the goal plan per {_member} and month. The goal plan has no product dimension, so "
        "the category and product filters cannot apply to it.",
        lambda ctx, m=_member: {
            "measures": ATTAINMENT,
            "dimensions": [m],
            "time_dimension": {"grain": "month"},
        },
    )

OPPORTUNITY_PARAMS = (
    Param("level", Literal["region", "salesman"], "region", "Goals by region or by salesman.", "region"),
    Param("low_pct", float, 60.0, "Lowest attainment %, inclusive.", 60, ge=0, le=1000),
    Param("high_pct", float, 80.0, "Highest attainment %, inclusive.", 80, ge=0, le=1000),
)


def _opportunity_gap(rows: Rows) -> Rows:
    for row in rows:
        row["gap_to_goal"] = (row["goal"] or 0) - (row["revenue"] or 0)
    return rows


preset(
    "sales-opportunities",
    "Sales opportunities",
    SECTION_GOALS,
    "Region- (or salesman-) months whose sales are between 60% and 80% of goal: close enough to reach it. "
    "The goal plan is by region and salesman only; products have no goal of their own.",
    lambda ctx: {
        "measures": ATTAINMENT,
        "dimensions": [ctx["level"]],
        "time_dimension": {"grain": "month"},
        "filters": [
            {
                "member": "goal_attainment_pct",
                "operator": "range",
                "values": [ctx["low_pct"], ctx["high_pct"]],
            }
        ],
        "order": [{"member": "goal_attainment_pct", "direction": "desc"}],
    },
    params=OPPORTUNITY_PARAMS,
    post=_opportunity_gap,
    columns={"gap_to_goal": "currency"},
)

# ====================================================================================================
# Product intelligence
# ====================================================================================================

SECTION_PRODUCTS = "Product intelligence"


def _abc(rows: Rows) -> Rows:
    total = sum(r["revenue"] for r in rows)
    before = 0.0
    for row in rows:
        share_before = before / total if total else 0.0
        row["share_pct"] = 100.0 * row["revenue"] / total if total else None
        before += row["revenue"]
        row["cumulative_pct"] = 100.0 * before / total if total else None
        row["class"] = "A" if share_before < 0.80 else "B" if share_before < 0.95 else "C"
    return rows


preset(
    "abc-classification",
    "ABC classification of products",
    SECTION_PRODUCTS,
    "Products by revenue: A = the top products making 80% of revenue, B = the next 15%, C = the rest (a "
    "product is in the class where its revenue starts).",
    lambda ctx: {
        "measures": ["revenue", "units"],
        "dimensions": ["product", "category"],
        "order": BY_REVENUE,
        "filters": [{"member": "revenue", "operator": "range", "values": [0.0, None]}],
    },
    post=_abc,
    columns={"share_pct": "percent", "cumulative_pct": "percent", "class": "text"},
)


def _affinity(ctx: ReportContext) -> dict[str, Any]:
    focus = ctx["for_product"]

    def build(p: Params, pairs_sql: str) -> str:
        keep = "" if focus else "WHERE pairs.product < pairs.with_product"
        return f"""
            , pairs AS ({pairs_sql})
            SELECT pairs.product, px.product_name, pairs.with_product, py.product_name AS with_product_name,
                   orders_together,
                   100.0 * orders_together / total.orders AS support_pct,
                   100.0 * orders_together / ix.orders AS confidence_pct,
                   orders_together * total.orders / (ix.orders * iy.orders) AS lift
            FROM pairs CROSS JOIN total
            JOIN item ix ON ix.product = pairs.product JOIN item iy ON iy.product = pairs.with_product
            LEFT JOIN products px ON px.product_id = pairs.product
            LEFT JOIN products py ON py.product_id = pairs.with_product
            {keep}
            ORDER BY {"lift DESC, " if focus else ""}orders_together DESC, pairs.product, pairs.with_product
            LIMIT {p.add(ctx["n"])}
        """

    if _pairs_table_answers(ctx):
        return ctx.result(ctx.sql(lambda p: build(p, _stored_pairs(ctx, p)), **_order_counts(ctx)))
    baskets = ctx.query(
        measures=["lines"], dimensions=["order", "product"], time_dimension={"date_range": ctx.date_range()}
    )

    def from_baskets(p: Params) -> str:
        pairs = f"""
            SELECT x.product AS product, y.product AS with_product, count(*) AS orders_together
            FROM b x JOIN b y ON x.order_id = y.order_id AND x.product <> y.product
            {"WHERE x.product = " + p.add(focus) if focus else ""}
            GROUP BY 1, 2 HAVING count(*) >= {p.add(ctx["min_orders"])}
        """
        return """, b AS (SELECT DISTINCT "order" AS order_id, product FROM baskets),
            total AS (SELECT count(DISTINCT order_id) AS orders FROM b),
            item AS (SELECT product, count(*) AS orders FROM b GROUP BY product)
            """ + build(p, pairs)

    return ctx.result(ctx.sql(from_baskets, baskets=baskets))


def _pairs_table_answers(ctx: ReportContext) -> bool:
    """The all-time pairs table answers when no product filter and no narrower time range is asked, and
    every order has one customer (so a pair has one region)."""
    state = ctx.engine.state
    if not ctx.engine.use_rollups or PAIRS not in state.rollups or ctx["category"] or ctx["product"]:
        return False
    if "customer_id" not in state.uniform:
        return False
    wanted, bounds = ctx.date_range(), state.bounds
    return wanted is None or bounds is None or (wanted[0] <= bounds[0] and wanted[1] >= bounds[1])


def _order_counts(ctx: ReportContext) -> dict[str, Query]:
    """Orders per product and in all (through the query layer: a rollup counts them)."""
    return {
        "item": ctx.query(measures=["orders"], dimensions=["product"]),
        "total": ctx.query(measures=["orders"]),
    }


def _stored_pairs(ctx: ReportContext, p: Params) -> str:
    regions = ctx["region"]
    where = f"WHERE region IN ({', '.join(p.add(r) for r in regions)})" if regions else ""
    pairs = (
        f"SELECT product_id AS product, with_product, sum(orders) AS orders_together FROM {PAIRS} {where} "
        f"GROUP BY 1, 2 HAVING sum(orders) >= {p.add(ctx['min_orders'])}"
    )
    if not ctx["for_product"]:
        return pairs
    # Stored once per pair (product < with_product): both orientations, then the one for the product.
    return (
        f"SELECT * FROM (SELECT * FROM ({pairs}) UNION ALL SELECT with_product, product, orders_together "
        f"FROM ({pairs})) WHERE product = {p.add(ctx['for_product'])}"
    )


register(
    Report(
        "product-affinity",
        "Product affinity",
        SECTION_PRODUCTS,
        "Products bought in the same order: support (% of orders with both), confidence (% of the orders "
        "with the product that also have the other) and lift (how much more often than chance). With "
        "for_product, the products most associated with it.",
        _affinity,
        (
            Param("for_product", str | None, None, "List the pairs of this product only.", "P-00001"),
            Param("min_orders", int, 3, "Pairs bought together in fewer orders are left out.", 3, ge=1),
            Param("n", int, 20, "How many pairs.", 20, ge=1, le=1000),
        ),
        columns={
            "product": "text",
            "product_name": "text",
            "with_product": "text",
            "with_product_name": "text",
            "orders_together": "integer",
            "support_pct": "percent",
            "confidence_pct": "percent",
            "lift": "number",
        },
    )
)


def _slow_movers(ctx: ReportContext) -> dict[str, Any]:
    sales = ctx.query(
        measures=["last_sale", "units"],
        dimensions=["product"],
        time_dimension={"date_range": ctx.date_range(up_to_as_of=True)},
    )

    def build(p: Params) -> str:
        as_of, days = p.add(ctx.as_of), p.add(ctx["days"])
        conditions = [
            f"(q.last_sale IS NULL OR q.last_sale <= {as_of} - {days})",
            f"(pr.launched_on IS NULL OR pr.launched_on <= {as_of})",
        ]
        if not ctx["include_discontinued"]:
            conditions.append(f"(pr.discontinued_on IS NULL OR pr.discontinued_on > {as_of})")
        for param, column in (("category", "pr.category"), ("product", "pr.product_id")):
            if ctx[param]:
                conditions.append(f"{column} IN ({', '.join(p.add(v) for v in ctx[param])})")
        return f"""
            SELECT pr.product_id AS product, pr.product_name, pr.category, pr.launched_on, pr.discontinued_on,
                   q.last_sale, {as_of} - q.last_sale AS days_without_sales,
                   CASE WHEN q.last_sale IS NULL THEN 'no sales'
                        WHEN {as_of} - q.last_sale >= 90 THEN '90+ days'
                        WHEN {as_of} - q.last_sale >= 60 THEN '60+ days'
                        WHEN {as_of} - q.last_sale >= 30 THEN '30+ days'
                        ELSE 'under 30 days' END AS idle
            FROM products pr LEFT JOIN sales q ON q.product = pr.product_id
            WHERE {" AND ".join(conditions)}
            ORDER BY days_without_sales DESC NULLS FIRST, product
        """

    return ctx.result(ctx.sql(build, sales=sales))


register(
    Report(
        "slow-movers",
        "Slow movers",
        SECTION_PRODUCTS,
        "Products with no sales (within the filters) in the last `days` days before as_of, including those "
        "that never sold; the band says 30+, 60+ or 90+ days.",
        _slow_movers,
        (
            Param("days", int, 30, "No sales in this many days (30, 60, 90, ...).", 60, ge=1, le=3650),
            Param("include_discontinued", bool, False, "Also list products discontinued by as_of.", False),
        ),
        time="as_of",
        columns={
            "product": "text",
            "product_name": "text",
            "category": "text",
            "launched_on": "date",
            "discontinued_on": "date",
            "last_sale": "date",
            "days_without_sales": "integer",
            "idle": "text",
        },
    )
)

# ====================================================================================================
# Customer insights
# ====================================================================================================

SECTION_CUSTOMERS = "Customer insights"


def _customer_stats(ctx: ReportContext, measures: list[str]) -> Query:
    return ctx.query(
        measures=measures,
        dimensions=["customer"],
        time_dimension={"date_range": ctx.date_range(up_to_as_of=True)},
    )


def _rfm(ctx: ReportContext) -> dict[str, Any]:
    stats = _customer_stats(ctx, ["revenue", "orders", "last_sale"])

    def build(p: Params) -> str:
        scored = rfm_scores_sql(
            "(SELECT customer AS customer_id, last_sale, orders, revenue FROM stats)", p.add(ctx.as_of)
        )
        return f"""
            SELECT segment, count(*) AS customers, sum(monetary) AS revenue,
                   100.0 * sum(monetary) / sum(sum(monetary)) OVER () AS revenue_share_pct,
                   avg(recency_days) AS average_recency_days, avg(frequency) AS average_orders,
                   avg(monetary) AS average_revenue
            FROM ({scored}) GROUP BY segment
        """

    found = {row["segment"]: row for row in ctx.sql(build, stats=stats)}
    rows = []
    for name, rule, meaning in RFM_SEGMENT_RULES:
        row = found.get(
            name,
            {
                "segment": name,
                "customers": 0,
                "revenue": 0.0,
                "revenue_share_pct": 0.0,
                "average_recency_days": None,
                "average_orders": None,
                "average_revenue": None,
            },
        )
        rows.append({**row, "rule": rule, "meaning": meaning})
    return ctx.result(rows, as_of=ctx.as_of.isoformat())


register(
    Report(
        "rfm-segments",
        "RFM segments",
        SECTION_CUSTOMERS,
        "Customers scored 1-5 on recency, frequency (orders) and monetary value (quintiles), put in "
        "rule-based segments (first matching rule wins), with counts and revenue. The same segments as the "
        "customer_segment dimension (which is computed over all data). `end` is the as-of day.",
        _rfm,
        columns={
            "segment": "text",
            "customers": "integer",
            "revenue": "currency",
            "revenue_share_pct": "percent",
            "average_recency_days": "number",
            "average_orders": "number",
            "average_revenue": "currency",
            "rule": "text",
            "meaning": "text",
        },
    )
)

preset(
    "new-vs-repeat-customers",
    "New vs repeat customers",
    SECTION_CUSTOMERS,
    "Per period: customers whose first purchase ever falls in the period (new) and the others (repeat), "
    "their orders, revenue and average order value.",
    lambda ctx: {
        "measures": ["customers", "orders", "revenue", "average_order_value"],
        "dimensions": ["customer_type"],
        "time_dimension": {"grain": ctx["grain"]},
    },
    params=(Param("grain", Literal["week", "month", "quarter", "year"], "month", "Period length.", "month"),),
)


def _churn_risk(ctx: ReportContext) -> dict[str, Any]:
    stats = _customer_stats(ctx, ["revenue", "orders", "purchase_days", "first_sale", "last_sale"])

    def build(p: Params) -> str:
        as_of = p.add(ctx.as_of)
        # The names are joined to the listed customers only, after the limit.
        return f"""
            SELECT s.*, c.customer_name FROM (
                SELECT * FROM (
                    SELECT customer, revenue, orders, purchase_days, first_sale, last_sale,
                           (last_sale - first_sale) / (purchase_days - 1) AS usual_gap_days,
                           {as_of} - last_sale AS days_since_last_purchase,
                           ({as_of} - last_sale) / ((last_sale - first_sale) / (purchase_days - 1))
                               AS gap_ratio
                    FROM stats
                    WHERE purchase_days >= {p.add(ctx["min_purchase_days"])} AND last_sale > first_sale
                ) WHERE gap_ratio >= {p.add(ctx["threshold"])}
                ORDER BY gap_ratio DESC, revenue DESC, customer LIMIT {p.add(ctx["n"])}
            ) s LEFT JOIN customers c ON c.customer_id = s.customer
            ORDER BY gap_ratio DESC, revenue DESC, customer
        """

    return ctx.result(ctx.sql(build, stats=stats))


register(
    Report(
        "churn-risk",
        "Churn risk",
        SECTION_CUSTOMERS,
        "Customers whose time since their last purchase is far above their own usual gap between purchase "
        "days (gap_ratio = days since last purchase / usual gap). `end` is the as-of day.",
        _churn_risk,
        (
            Param("threshold", float, 3.0, "Flag customers whose gap ratio is at least this.", 3.0, ge=1),
            Param(
                "min_purchase_days", int, 3, "Only customers with at least this many purchase days.", 3, ge=2
            ),
            Param("n", int, 100, "How many customers.", 100, ge=1, le=10_000),
        ),
        columns={
            "customer": "text",
            "revenue": "currency",
            "orders": "integer",
            "purchase_days": "integer",
            "first_sale": "date",
            "last_sale": "date",
            "usual_gap_days": "number",
            "days_since_last_purchase": "integer",
            "gap_ratio": "number",
            "customer_name": "text",
        },
    )
)


def _lifetime_value(ctx: ReportContext) -> dict[str, Any]:
    with_cost = "cost" in ctx.engine.state.flags
    measures = [
        "revenue",
        "orders",
        "first_sale",
        "last_sale",
        *(["profit", "margin_pct"] if with_cost else []),
    ]
    stats = _customer_stats(ctx, measures)
    if not with_cost:
        ctx.notes.append("The data has no cost, so the value is revenue, not margin.")

    def build(p: Params) -> str:
        as_of = p.add(ctx.as_of)
        margin = "coalesce(margin_pct, 100.0) / 100.0" if with_cost else "1.0"
        # value = average order value x orders per year x margin x years; the names are joined to the
        # listed customers only, after the limit.
        return f"""
            , valued AS (
                SELECT *, average_order_value * orders_per_year * margin * {p.add(ctx["lifetime_years"])}
                              AS lifetime_value
                FROM (
                    SELECT customer, revenue, orders, first_sale, last_sale,
                           revenue / orders AS average_order_value,
                           greatest(({as_of} - first_sale + 1) / 365.25, 1.0 / 12) AS tenure_years,
                           orders / greatest(({as_of} - first_sale + 1) / 365.25, 1.0 / 12)
                               AS orders_per_year,
                           {margin} AS margin
                    FROM stats WHERE orders > 0
                )
            ),
            overall AS (
                SELECT avg(lifetime_value) AS average_lifetime_value, count(*) AS customers FROM valued
            )
            SELECT v.*, c.customer_name, overall.* FROM (
                SELECT * FROM valued ORDER BY lifetime_value DESC, customer LIMIT {p.add(ctx["n"])}
            ) v CROSS JOIN overall LEFT JOIN customers c ON c.customer_id = v.customer
            ORDER BY lifetime_value DESC, customer
        """

    rows = ctx.sql(build, stats=stats)
    average = rows[0]["average_lifetime_value"] if rows else None
    customers = rows[0]["customers"] if rows else 0
    for row in rows:
        del row["average_lifetime_value"], row["customers"]
    return ctx.result(rows, average_lifetime_value=average, customers=customers)


register(
    Report(
        "customer-lifetime-value",
        "Customer lifetime value",
        SECTION_CUSTOMERS,
        "An estimate per customer: average order value x orders per year (over the customer's tenure, at "
        "least a month) x margin x expected lifetime in years; the summary has the average over all "
        "customers.",
        _lifetime_value,
        (
            Param("lifetime_years", float, 3.0, "Expected customer lifetime, in years.", 3.0, ge=0.1, le=50),
            Param("n", int, 100, "How many customers (highest value first).", 100, ge=1, le=10_000),
        ),
        columns={
            "customer": "text",
            "revenue": "currency",
            "orders": "integer",
            "first_sale": "date",
            "last_sale": "date",
            "average_order_value": "currency",
            "tenure_years": "number",
            "orders_per_year": "number",
            "margin": "number",
            "lifetime_value": "currency",
            "customer_name": "text",
        },
    )
)

# ====================================================================================================
# Sales force
# ====================================================================================================

SECTION_SALES_FORCE = "Sales force"

preset(
    "salesman-ranking",
    "Salesmen by revenue",
    SECTION_SALES_FORCE,
    "Salesmen ranked by revenue, with orders, units, average order value and share. Goal attainment per "
    "salesman is the goal-attainment-by-salesman report.",
    lambda ctx: {
        "measures": ["revenue", "orders", "units", "average_order_value"],
        "dimensions": ["salesman"],
        "order": BY_REVENUE,
        "filters": [{"member": "salesman", "operator": "set"}],
    },
    post=with_rank_and_share,
    columns={"rank": "integer", "share_pct": "percent"},
)


def _consistency(ctx: ReportContext) -> dict[str, Any]:
    daily = ctx.query(
        measures=["revenue"],
        dimensions=["salesman"],
        time_dimension={"grain": "day", "date_range": ctx.date_range()},
        filters=[{"member": "salesman", "operator": "set"}],
    )
    sql = """
        SELECT f.salesman, sm.salesman_name, count(*) AS selling_days,
               avg(coalesce(d.revenue, 0)) AS daily_mean,
               stddev_samp(coalesce(d.revenue, 0)) AS daily_std_dev,
               stddev_samp(coalesce(d.revenue, 0)) / nullif(avg(coalesce(d.revenue, 0)), 0)
                   AS coefficient_of_variation,
               100.0 / (1 + stddev_samp(coalesce(d.revenue, 0)) / nullif(avg(coalesce(d.revenue, 0)), 0))
                   AS consistency_score
        FROM (SELECT salesman, min(period) AS first_day FROM daily GROUP BY salesman) f
        JOIN (SELECT DISTINCT period FROM daily) c ON c.period >= f.first_day
        LEFT JOIN daily d ON d.salesman = f.salesman AND d.period = c.period
        LEFT JOIN salesmen sm ON sm.salesman_id = f.salesman
        GROUP BY f.salesman, sm.salesman_name
        ORDER BY coefficient_of_variation ASC NULLS LAST, f.salesman
    """
    return ctx.result(ctx.sql(lambda p: sql, daily=daily))


register(
    Report(
        "salesman-consistency",
        "Salesman consistency",
        SECTION_SALES_FORCE,
        "Day-to-day steadiness of each salesman's sales: mean, standard deviation and coefficient of "
        "variation (CV) of daily revenue over the days anyone sold, from his first sale on (days without a "
        "sale count as 0); consistency_score = 100 / (1 + CV), most consistent first.",
        _consistency,
        columns={
            "salesman": "text",
            "salesman_name": "text",
            "selling_days": "integer",
            "daily_mean": "currency",
            "daily_std_dev": "currency",
            "coefficient_of_variation": "number",
            "consistency_score": "number",
        },
    )
)

# ====================================================================================================
# Trends
# ====================================================================================================

SECTION_TRENDS = "Trends"
PROFILES = {"month_of_year": (1, 12, "month"), "day_of_week": (1, 7, "day"), "hour_of_day": (0, 23, "day")}


def _seasonality(ctx: ReportContext) -> dict[str, Any]:
    profile = ctx["profile"]
    low, high, grain = PROFILES[profile]
    date_range = ctx.date_range()
    by_part = ctx.query(
        measures=["revenue", "units"], dimensions=[profile], time_dimension={"date_range": date_range}
    )
    periods = ctx.query(measures=["lines"], time_dimension={"grain": grain, "date_range": date_range})
    # How often each bucket occurs in the data: months per month of year, selling days per weekday; every
    # hour of the day occurs once per selling day.
    occurs = {
        "month_of_year": "month(period)",
        "day_of_week": "isodow(period)",
        "hour_of_day": "unnest(range(0, 24))",
    }[profile]
    sql = f"""
        , occurrences AS (
            SELECT part, count(*) AS n FROM (SELECT {occurs} AS part FROM periods) GROUP BY part
        ),
        buckets AS (SELECT unnest(range({low}, {high + 1})) AS part)
        SELECT b.part AS {profile}, coalesce(s.revenue, 0) AS revenue, coalesce(s.units, 0) AS units,
               coalesce(o.n, 0) AS occurrences,
               100.0 * coalesce(s.revenue, 0) / sum(coalesce(s.revenue, 0)) OVER () AS share_pct,
               100.0 * (coalesce(s.revenue, 0) / nullif(o.n, 0))
                     / (sum(coalesce(s.revenue, 0)) OVER () / nullif(sum(o.n) OVER (), 0)) AS seasonal_index
        FROM buckets b LEFT JOIN by_part s ON s.{profile} = b.part LEFT JOIN occurrences o ON o.part = b.part
        ORDER BY b.part
    """
    return ctx.result(ctx.sql(lambda p: sql, by_part=by_part, periods=periods))


register(
    Report(
        "seasonality",
        "Seasonality profile",
        SECTION_TRENDS,
        "Revenue by month of year, day of week or hour of day: share of revenue, and a seasonal index "
        "(average revenue per occurrence of the bucket against the overall average; 100 = average).",
        _seasonality,
        (
            Param(
                "profile",
                Literal["month_of_year", "day_of_week", "hour_of_day"],
                "month_of_year",
                "Which profile.",
                "day_of_week",
            ),
        ),
        columns={
            "month_of_year": "integer",
            "day_of_week": "integer",
            "hour_of_day": "integer",
            "revenue": "currency",
            "units": "integer",
            "occurrences": "integer",
            "share_pct": "percent",
            "seasonal_index": "number",
        },
    )
)

UNDERPERFORMER_LEVELS = Literal["region", "state", "category", "subcategory", "product", "salesman"]


def _underperformers(ctx: ReportContext) -> dict[str, Any]:
    level = ctx["level"]
    month = month_start(ctx["month"]) if ctx["month"] else _last_complete_month(ctx)
    first = add_months(month, -12)
    dimensions = [level, "category"] if level == "product" else [level]
    monthly = ctx.query(
        measures=["revenue"],
        dimensions=dimensions,
        time_dimension={"grain": "month", "date_range": [first, month_end(month)]},
        filters=[{"member": level, "operator": "set"}],
    )
    peer = "category" if level == "product" else "'all'"

    def build(p: Params) -> str:
        evaluated, start, tolerance = p.add(month), p.add(first), p.add(ctx["tolerance_pct"] / 100.0)
        return f"""
            , months AS (SELECT CAST(unnest(generate_series(CAST({start} AS DATE), CAST({evaluated} AS DATE),
                                INTERVAL 1 MONTH)) AS DATE) AS period),
            members AS (SELECT {level} AS member, any_value({peer}) AS peer_group FROM monthly GROUP BY 1),
            grid AS (
                SELECT m.member, m.peer_group, t.period, coalesce(q.revenue, 0) AS revenue,
                       datediff('month', CAST({start} AS DATE), t.period) AS x
                FROM members m CROSS JOIN months t
                LEFT JOIN monthly q ON q.{level} = m.member AND q.period = t.period
            ),
            scored AS (
                SELECT member, peer_group,
                       max(revenue) FILTER (WHERE x = 12) AS actual,
                       regr_intercept(revenue, x) FILTER (WHERE x < 12)
                         + 12 * regr_slope(revenue, x) FILTER (WHERE x < 12) AS expected_by_trend,
                       max(revenue) FILTER (WHERE x = 0) AS same_month_last_year
                FROM grid GROUP BY member, peer_group
            ),
            growth AS (
                SELECT *, 100.0 * (actual / nullif(same_month_last_year, 0) - 1) AS growth_pct FROM scored
            ),
            judged AS (
                SELECT *, median(growth_pct) OVER (PARTITION BY peer_group) AS peer_median_growth_pct
                FROM growth
            )
            SELECT member AS {level}, peer_group, actual, expected_by_trend,
                   actual - expected_by_trend AS gap_to_trend,
                   same_month_last_year, growth_pct, peer_median_growth_pct,
                   coalesce(actual < expected_by_trend * (1 - {tolerance}), false) AS below_trend,
                   coalesce(growth_pct < peer_median_growth_pct - 100 * {tolerance}, false) AS below_peers
            FROM judged
            WHERE actual < expected_by_trend * (1 - {tolerance})
               OR growth_pct < peer_median_growth_pct - 100 * {tolerance}
            ORDER BY gap_to_trend ASC, {level}
        """

    rows = ctx.sql(build, monthly=monthly)
    return ctx.result(rows, month=month.isoformat())


def _last_complete_month(ctx: ReportContext) -> date:
    last = ctx.engine.last_day() or date.today()
    return month_start(last) if last == month_end(last) else add_months(month_start(last), -1)


register(
    Report(
        "underperformers",
        "Underperforming regions and products",
        SECTION_TRENDS,
        "Members of a level whose revenue in the evaluated month is below their own trend (a straight line "
        "fitted to the 12 months before, extrapolated) or whose growth on the same month last year is "
        "below their peers' median (peers: the same category for products, all members otherwise), by more "
        "than the tolerance.",
        _underperformers,
        (
            Param("level", UNDERPERFORMER_LEVELS, "region", "What to judge.", "category"),
            Param(
                "month",
                date | None,
                None,
                "The month evaluated (any day of it; default: the last complete month).",
                "2025-05-01",
            ),
            Param(
                "tolerance_pct",
                float,
                10.0,
                "How far below (in %, or % points of growth) counts.",
                10,
                ge=0,
                le=100,
            ),
        ),
        columns={
            **{level: "text" for level in UNDERPERFORMER_LEVELS.__args__},
            "peer_group": "text",
            "actual": "currency",
            "expected_by_trend": "currency",
            "gap_to_trend": "currency",
            "same_month_last_year": "currency",
            "growth_pct": "percent",
            "peer_median_growth_pct": "percent",
            "below_trend": "boolean",
            "below_peers": "boolean",
        },
    )
)

EXPLAIN_DIMENSIONS = Literal[
    "region",
    "state",
    "city",
    "zip",
    "category",
    "subcategory",
    "product",
    "channel",
    "salesman",
    "distributor",
    "customer",
    "customer_segment",
]


def _change_explained(ctx: ReportContext) -> dict[str, Any]:
    member = ctx["dimension"]
    end = ctx["end"] or ctx.as_of
    start = ctx["start"] or end - timedelta(days=29)
    spec: dict[str, Any] = {
        "measures": ["revenue"],
        "dimensions": [member],
        "time_dimension": {"date_range": [start, end]},
    }
    if ctx["baseline_start"] or ctx["baseline_end"]:
        if not (ctx["baseline_start"] and ctx["baseline_end"]):
            raise QueryError(
                Problem("baseline_start", "give both baseline_start and baseline_end, or neither")
            )
        spec["compare_date_range"] = [ctx["baseline_start"], ctx["baseline_end"]]
    else:
        spec["compare"] = ctx["compare"]
    rows = ctx.rows(ctx.query(**spec))
    current = sum(r["revenue"] for r in rows)
    baseline = sum(r["revenue_previous"] for r in rows)
    change = current - baseline
    for row in rows:
        row["contribution_pct"] = 100.0 * row["revenue_change"] / change if change else None
    rows.sort(key=lambda r: (-abs(r["revenue_change"]), str(r[member])))
    return ctx.result(
        rows,
        current_revenue=current,
        baseline_revenue=baseline,
        change=change,
        current_period=[start.isoformat(), end.isoformat()],
    )


register(
    Report(
        "revenue-change-explained",
        "Revenue change explained",
        SECTION_TRENDS,
        "Which members of a dimension made revenue change between two periods: each member's change and "
        "its share of the total change. The members' changes add up exactly to the total change. Default: "
        "the last 30 days against the 30 before.",
        _change_explained,
        (
            Param(
                "dimension", EXPLAIN_DIMENSIONS, "category", "Explain the change by this dimension.", "region"
            ),
            Param(
                "compare",
                Literal["previous_period", "same_period_last_year"],
                "previous_period",
                "The baseline period, unless baseline_start/baseline_end are given.",
                "same_period_last_year",
            ),
            Param("baseline_start", date | None, None, "Explicit baseline, first day.", "2024-06-01"),
            Param("baseline_end", date | None, None, "Explicit baseline, last day.", "2024-06-30"),
        ),
        columns={
            **{d: "text" for d in EXPLAIN_DIMENSIONS.__args__},
            **_with_change("revenue"),
            "contribution_pct": "percent",
            "product_name": "text",
            "customer_name": "text",
            "salesman_name": "text",
            "distributor_name": "text",
        },
    )
)


def _iso(rows: Rows) -> Rows:
    for row in rows:
        for key, value in row.items():
            if isinstance(value, date):
                row[key] = value.isoformat()
    return rows


__all__ = ["LIMITS", "REGISTRY", "TIME_OUTPUT", "Report", "get_report", "params_model", "run_report"]
