"""Running a report: its validated parameters, its queries through the semantic layer, its result.

Every query a report makes goes through :meth:`ReportContext.query`, which adds the report's filters, so a
report inherits the router (rollups), the filters and the validation of the query layer. A step the query
layer cannot express (a ranking, a regression, a market basket) is parameterized SQL over the compiled
queries' results (:meth:`ReportContext.sql`); dimension tables are read through their declarations
(labels, entities), never by table name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from salespulse.analytics.compiler import Params, dimension_on_entity, entity_sql, filter_sql
from salespulse.analytics.errors import Problem, QueryError
from salespulse.analytics.query import LIMITS, Filter, Query
from salespulse.analytics.reports.base import (
    FILTER_PARAMS,
    Report,
    ReportParams,
    Rows,
    get_report,
    member_format,
    params_model,
)
from salespulse.analytics.reports.periods import GoalBasis, SellingCalendar, running_now
from salespulse.analytics.semantic import DIMENSIONS, ENTITIES, FIELDS
from salespulse.bounds import date_bounds

if TYPE_CHECKING:
    from salespulse.analytics.engine import AnalyticsEngine


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
        self._span: tuple[date, date] | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    # --- the filters every report takes ---

    @property
    def filtered(self) -> dict[str, list[Any]]:
        """The filters given: dimension -> members."""
        return {p.member: self.values[p.name] for p in FILTER_PARAMS if p.member and self.values.get(p.name)}

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"member": member, "operator": "in", "values": values} for member, values in self.filtered.items()
        ]

    def entity_conditions(self, entity: str, params: Params, *, also: Mapping[str, str] = {}) -> list[str]:
        """The filters that apply to the members of ``entity`` themselves (a product's category on the
        product catalogue), as SQL over its table. ``also`` maps a filter to an attribute field the report
        judges it by (a salesman's home region for the region filter)."""
        declared = ENTITIES[entity]
        conditions = []
        for member, values in self.filtered.items():
            expression = dimension_on_entity(member, declared)
            if expression is None and member in also:
                expression = FIELDS[also[member]].sql
            if expression is not None:
                condition = Filter(member=member, operator="in", values=values)
                conditions.append(filter_sql(expression, condition, params))
        return conditions

    def entity_sql(self, entity: str, params: Params, **also: str) -> str:
        """Every member of ``entity`` (with its attributes) that the report's filters on it let through."""
        return entity_sql(ENTITIES[entity], self.entity_conditions(entity, params, also=also))

    # --- time ---

    @property
    def as_of(self) -> date:
        """The report's reference day: ``as_of`` or ``end`` when given, else the last day with sales."""
        if self._as_of is None:
            given = self.values.get("as_of") or self.values.get("end")
            self._as_of = given or self.engine.last_day() or date.today()
        return self._as_of

    def data_span(self) -> tuple[date, date] | None:
        """The first and last day with a sale in the whole warehouse (no filter): what the data covers."""
        if self._span is None:
            query = self.engine.internal_query(measures=["first_sale", "last_sale"])
            (row,) = self.rows(query, labels=False)
            if row["first_sale"] is not None:
                self._span = (date.fromisoformat(row["first_sale"]), date.fromisoformat(row["last_sale"]))
        return self._span

    @property
    def now(self) -> date:
        """'Now' for a running period: the as-of day (or ``end``), but never after the last day with sales,
        since later days have no data yet."""
        span = self.data_span()
        return running_now(self.as_of, span[1] if span else None)

    def selling_calendar(self, since: date) -> SellingCalendar:
        """The business's selling days from ``since`` on, as seen on ``now`` (periods.SELLING_DAYS_RULE)."""
        return self.engine.selling_calendar(since, self.now)

    def goal_basis(self) -> GoalBasis:
        """What each month's goal counts for the report's revenue: the same basis as its queries'."""
        range_ = self.date_range()
        return self.engine.goal_basis((range_[0], range_[1]) if range_ else None)

    def date_range(self, *, up_to_as_of: bool = False) -> list[date] | None:
        start, end = self.values.get("start"), self.values.get("end")
        if up_to_as_of:
            end = self.as_of
            if start is not None and start > end:
                if self.values.get("as_of") or self.values.get("end"):
                    message = f"start {start.isoformat()} is after the as-of day {end.isoformat()}"
                    raise QueryError([Problem("start", message)])
                end = start  # after the data: an empty period, not an inverted one
        if start is None and end is None:
            return None
        earliest, latest = date_bounds()  # an open end: the supported dates' (salespulse.bounds)
        return [start or earliest, end or latest]

    def query(self, **spec: Any) -> Query:
        """A query of this report: the report's filters are added, and it may use internal dimensions."""
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
        return self.engine.fetch(*self._statement(build, queries))

    def frame(self, build: Callable[[Params], str], **queries: Query) -> pd.DataFrame:
        """:meth:`sql`'s statement, its result as a DataFrame: for a step the SQL cannot do (a model's
        closed forms) over every customer, without a Python dict per row."""
        sql, values = self._statement(build, queries)
        return self.engine.fetch_frame(sql, values)

    def _statement(self, build: Callable[[Params], str], queries: dict[str, Query]) -> tuple[str, list[Any]]:
        params = Params()
        ctes = [
            f"{name} AS ({self.engine.compile(q, unlimited=True, labels=False, params=params).sql})"
            for name, q in queries.items()
        ]
        return f"WITH {', '.join(ctes)} {build(params)}", params.values

    def result(self, rows: Rows, columns: dict[str, str] | None = None, **summary: Any) -> dict[str, Any]:
        formats = columns or self.report.columns
        names = list(rows[0]) if rows and isinstance(rows, list) else list(formats)
        if self.filtered and (not rows or rows == "[]") and not self.notes:  # unless the report says why
            self._note_nothing_matches()
        return {
            "report": self.report.name,
            "title": self.report.title,
            "params": {k: v.isoformat() if isinstance(v, date) else v for k, v in self.values.items()},
            "columns": [{"name": n, "format": formats.get(n, member_format(n))} for n in names],
            "rows": rows,
            "summary": summary,
            "notes": self.notes,
        }

    def _note_nothing_matches(self) -> None:
        given = "; ".join(
            f"{member}: {', '.join(map(str, values))}" for member, values in self.filtered.items()
        )
        self.notes.append(f"No sales match the filters ({given}) in the period.")

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


def run_report(
    engine: AnalyticsEngine,
    name: str,
    params: dict[str, Any] | ReportParams | None = None,
    *,
    raw_json: bool = False,
) -> dict[str, Any]:
    """A named report; with ``raw_json`` a plain report's rows may come as one RawJSON text (for HTTP)."""
    started = time.perf_counter()
    report = get_report(name)
    model = params_model(report)
    validated = params if isinstance(params, model) else model.model_validate(params or {})
    ctx = ReportContext(engine, report, validated, raw_json)
    ctx.notes.extend(unknown_members(engine, report, validated))
    result = report.run(ctx)
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


# --- members: a value the warehouse does not have matches nothing, and a note says so ---


def unknown_members(engine: AnalyticsEngine, report: Report, params: ReportParams) -> list[str]:
    """Notes naming the parameters' member values the warehouse does not have (engine.unknown_members).
    Closed lists are checked by the parameters' types already."""
    wanted = []
    for param in report.all_params:
        value = getattr(params, param.name)
        if param.member is None or value is None or DIMENSIONS[param.member].values is not None:
            continue
        wanted.append((param.name, param.member, value if isinstance(value, list) else [value]))
    return engine.unknown_members(wanted)
