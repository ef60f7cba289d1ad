"""Query -> (SQL, parameters), built only from the declared fragments of the semantic layer.

User values (filter values, dates, limit, offset) only ever become ``$n`` parameters; the SQL text is made of
declared names and fragments alone. The router tries the rollups from the smallest up and takes the first
that can answer exactly (every field resolvable, every distinct count mergeable, the date range on its time
boundaries); the order lines themselves always can.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from salespulse.analytics.errors import DataUnavailable, Problem, QueryError
from salespulse.analytics.query import TIME_OUTPUT, Query
from salespulse.analytics.semantic import (
    COMPONENTS,
    CUSTOMER_FIELDS,
    DATA_FLAG_MESSAGES,
    DIMENSIONS,
    FIELDS,
    GOAL_MEASURES,
    LOOKUPS,
    MEASURES,
    ROLLUPS,
    SEGMENTS_CTE,
    TIME_DERIVATIONS,
    CompareTo,
    Component,
    Grain,
    Operator,
    Rollup,
    constant_fields,
)

PLACEHOLDER = re.compile(r"\{(\w+)\}")
GRAIN_SQL = {g: f"'{g.value}'" for g in Grain}  # our own constants, never the client's text
ORDER_LINES = "order_lines"


class Unresolvable(Exception):
    """This source cannot answer the query exactly; the router tries the next one."""


@dataclass(frozen=True)
class WarehouseState:
    """What the compiler needs to know about the data, kept by the engine."""

    rollups: dict[str, int] = field(default_factory=dict)
    """Usable rollup tables and their row counts (the router prefers the smallest)."""
    uniform: frozenset[str] = frozenset()
    """Line fields found constant within every order (see semantic.constant_fields)."""
    bounds: tuple[date, date] | None = None
    """No sale is before bounds[0] or after bounds[1] (conservative: maybe wider than the data)."""
    flags: frozenset[str] = frozenset()
    """Optional parts the data has: 'salesman', 'distributor', 'cost'."""


class Params:
    """Collects bound values; ``add`` returns the placeholder to put in the SQL text."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True)
class Shift:
    """How far a comparison period is moved onto the current one."""

    months: int = 0
    days: int = 0

    def apply(self, expression: str, params: Params) -> str:
        if self.months:
            expression = f"({expression} + to_months({params.add(self.months)}))"
        if self.days:
            expression = f"({expression} + to_days({params.add(self.days)}))"
        return expression

    def undo(self, expression: str, params: Params) -> str:
        return Shift(-self.months, -self.days).apply(expression, params)


@dataclass(frozen=True)
class Period:
    """One side of a query: its date range (None: all time) and the shift onto the current period."""

    range: tuple[date, date] | None
    shift: Shift = Shift()


@dataclass(frozen=True)
class Column:
    name: str
    format: str


@dataclass(frozen=True)
class Compiled:
    sql: str
    params: list[Any]
    columns: list[Column]
    source: str


@dataclass(frozen=True)
class Source:
    """A relation the compiler reads: the order lines, a rollup, or order lines that carry customer fields."""

    table: str
    alias: str
    time: str | None
    """The finest time field stored: 'at' (the order timestamp), 'day', 'month' or None."""
    stored: frozenset[str]
    coded: bool = False
    """Stored text fields hold '' for NULL: rollup keys, so that merging into them is a plain equi-join."""
    rollup: Rollup | None = None


LINE_FIELDS = frozenset(name for name, spec in FIELDS.items() if spec.lookup is None)
BASE = Source(ORDER_LINES, "o", "at", LINE_FIELDS)


def rollup_source(rollup: Rollup) -> Source:
    return Source(rollup.name, "r", rollup.time, frozenset(rollup.fields), coded=True, rollup=rollup)


def lines_source(relation: str, extra: frozenset[str] = frozenset()) -> Source:
    """Order lines in another relation (a batch), possibly with some lookup fields already joined."""
    return Source(relation, "o", "at", LINE_FIELDS | extra)


class Resolver:
    """Turns field names into SQL over one source and records the lookups it has to join."""

    def __init__(self, source: Source, params: Params, period: Period) -> None:
        self.source = source
        self.params = params
        self.period = period
        self.joins: dict[str, str] = {}
        # Built when first used, so that its parameters exist only when the SQL refers to them.
        self.period_start: Callable[[], str] = lambda: "CAST('-infinity' AS TIMESTAMP)"

    def field(self, name: str) -> str:
        if name in ("at", "day", "month"):
            return self._time(name)
        alias = self.source.alias
        if name in self.source.stored:
            return (
                f"nullif({alias}.{name}, {FIELDS[name].null_code})"
                if self.source.coded
                else f"{alias}.{name}"
            )
        spec = FIELDS.get(name)
        if spec is None or spec.lookup is None:
            raise Unresolvable(name)
        self._join(spec.lookup)
        return spec.sql

    def _join(self, alias: str) -> None:
        if alias in self.joins:
            return
        lookup = LOOKUPS[alias]
        key = self.field(lookup.key)
        self.joins[alias] = f"LEFT JOIN {lookup.table} {alias} ON {alias}.{lookup.key} = {key}"

    def _time(self, name: str) -> str:
        stored = self.source.time
        if stored is None:
            raise Unresolvable(name)
        if name == stored:
            if stored == "month" and self.period.shift.days:
                raise Unresolvable("a month rollup cannot move by days")
            shifted = self.period.shift.apply(self.time_column, self.params)
            return shifted if name == "at" else f"CAST({shifted} AS DATE)"
        if name not in TIME_DERIVATIONS:
            raise Unresolvable(name)  # finer than what the source stores
        parent, template = TIME_DERIVATIONS[name]
        return template.format(**{parent: self._time(parent)})

    @property
    def time_column(self) -> str:
        """The stored time column, unshifted (what a date range filters on)."""
        column = "ordered_at" if self.source.time == "at" else self.source.time
        return f"{self.source.alias}.{column}"

    def render(self, template: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return self.period_start() if name == "period_start" else self.field(name)

        return PLACEHOLDER.sub(replace, template)

    def from_clause(self) -> str:
        return " ".join([f"FROM {self.source.table} {self.source.alias}", *self.joins.values()])


def bucket(grain: Grain, resolver: Resolver) -> str:
    source = resolver.field("day" if grain in (Grain.DAY, Grain.WEEK) else "month")
    return f"CAST(date_trunc({GRAIN_SQL[grain]}, {source}) AS DATE)"


class Compiler:
    """Compiles one query for the warehouse state it is given."""

    def __init__(self, state: WarehouseState, *, use_rollups: bool = True) -> None:
        self.state = state
        self.use_rollups = use_rollups

    def compile(
        self, query: Query, *, unlimited: bool = False, labels: bool = True, params: Params | None = None
    ) -> Compiled:
        """``params`` lets a report put several compiled queries (and its own values) in one statement."""
        self._check_data(query)
        goal_kind = self._goal_kind(query)
        shared = params or Params()
        for source in [*self._candidates(), BASE]:
            mark = len(shared.values)
            try:
                return self._compile(query, source, goal_kind, unlimited, labels, shared)
            except Unresolvable:
                del shared.values[mark:]  # the next, larger source; the order lines answer everything
        raise AssertionError("the order lines answer every query")

    def _candidates(self) -> list[Source]:
        if not self.use_rollups:
            return []
        usable = [r for r in ROLLUPS if r.name in self.state.rollups]
        return [rollup_source(r) for r in sorted(usable, key=lambda r: self.state.rollups[r.name])]

    # --- checks that do not depend on the source ---

    def _check_data(self, query: Query) -> None:
        problems = []
        members = [
            *(("measures", name, MEASURES[name].needs) for name in query.measures),
            *(("dimensions", name, _dimension_needs(name)) for name in query.dimensions),
            *(("filters", f.member, _member_needs(f.member)) for f in query.filters),
        ]
        for where, name, needs in members:
            for flag in needs:
                if flag not in self.state.flags:
                    problems.append(Problem(where, f"{name!r} is unavailable: {DATA_FLAG_MESSAGES[flag]}"))
        if problems:
            raise DataUnavailable(problems)

    def _goal_kind(self, query: Query) -> str | None:
        """'region' or 'salesman' goals when the query asks for a goal measure; checks it can be answered."""
        if not GOAL_MEASURES & set(query.measures):
            return None
        kind = "salesman" if "salesman" in query.dimensions else "region"
        allowed = {"region": {"region"}, "salesman": {"salesman", "region"}}[kind]
        if kind == "region" and any(f.member == "salesman" for f in query.filters):
            kind, allowed = "salesman", {"salesman", "region"}
        problems = []
        extra = [d for d in query.dimensions if d != kind]
        if extra:
            problems.append(
                Problem(
                    "dimensions",
                    f"the goal plan is by region or by salesman (one at a time); "
                    f"{', '.join(map(repr, extra))} cannot be combined with a goal measure",
                )
            )
        if query.grain in (Grain.DAY, Grain.WEEK):
            problems.append(
                Problem("time_dimension.grain", "goals are monthly: use month, quarter or year (or none)")
            )
        for f in query.filters:
            if f.member not in MEASURES and f.member not in allowed:
                problems.append(
                    Problem(
                        "filters",
                        f"the goal plan has no {f.member!r}: filter goal measures by "
                        f"{' or '.join(sorted(allowed))} only",
                    )
                )
        if problems:
            raise QueryError(problems)
        return kind

    # --- compiling against one source ---

    def _compile(
        self,
        query: Query,
        source: Source,
        goal_kind: str | None,
        unlimited: bool,
        labels: bool,
        params: Params,
    ) -> Compiled:
        periods = self._periods(query)
        keys = ([TIME_OUTPUT] if query.grain else []) + list(query.dimensions)
        components = sorted({c for m in query.measures for c in MEASURES[m].components})
        ctes: list[str] = []
        sides = []
        for index, period in enumerate(periods):
            name = "cur" if index == 0 else "cmp"
            body, uses_segments = self._period_sql(query, source, period, components, goal_kind, params)
            if uses_segments and SEGMENTS_CTE not in ctes:
                ctes.append(SEGMENTS_CTE)
            ctes.append(f"{name} AS ({body})")
            sides.append(name)
        ctes.append(f"joined AS ({self._joined_sql(query, keys, sides)})")
        ctes.append(f"result AS ({self._result_sql(query)})")
        where = self._measure_filters(query, params)
        label_joins, label_columns = self._labels(query) if labels else ("", "")
        if unlimited and not labels:
            # A part of a bigger statement (a report's step): its rows need no order.
            sql = f"WITH {', '.join(ctes)} SELECT * FROM result{where}"
            return Compiled(sql, params.values, self._columns(query, labels), source.table)
        order = self._order_by(query, keys)
        limit = "" if unlimited else f" LIMIT {params.add(query.limit)} OFFSET {params.add(query.offset)}"
        sql = (
            f"WITH {', '.join(ctes)} "
            f"SELECT q.*{label_columns} FROM (SELECT * FROM result{where} ORDER BY {order}{limit}) q "
            f"{label_joins} ORDER BY {order.replace('result.', 'q.')}"
        )
        return Compiled(sql, params.values, self._columns(query, labels), source.table)

    def _periods(self, query: Query) -> list[Period]:
        current = Period(query.date_range)
        if not query.compares:
            return [current]
        assert query.date_range is not None  # checked by the Query model
        if query.compare_date_range is not None:
            return [current, explicit_comparison(query.date_range, query.compare_date_range, query.grain)]
        return [current, comparison_period(query.date_range, query.compare, query.grain)]

    def _period_sql(
        self,
        query: Query,
        source: Source,
        period: Period,
        components: list[str],
        goal_kind: str | None,
        params: Params,
    ) -> tuple[str, bool]:
        resolver = Resolver(source, params, period)
        keys: list[tuple[str, str]] = []
        if query.grain:
            time_bucket = bucket(query.grain, resolver)
            keys.append((TIME_OUTPUT, time_bucket))
            resolver.period_start = lambda: period.shift.undo(time_bucket, params)
        elif period.range is not None:
            first_day = datetime.combine(period.range[0], datetime.min.time())
            resolver.period_start = lambda: params.add(first_day)
        keys += [(name, resolver.render(DIMENSIONS[name].sql)) for name in query.dimensions]
        conditions = self._range_conditions(resolver, period, params)
        for f in query.filters:
            if f.member in DIMENSIONS:
                conditions.append(_filter_sql(resolver.render(DIMENSIONS[f.member].sql), f, params))
        selected = [f"{sql} AS {_quote(name)}" for name, sql in keys]
        fact_components = [c for c in components if c != "goal"]
        merged = self._merged_fields(query, source.rollup)
        selected += [
            f"{self._component_sql(COMPONENTS[c], source.rollup, resolver, merged)} AS __{c}"
            for c in fact_components
        ]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
        facts = f"SELECT {', '.join(selected)} {resolver.from_clause()}{where}{group}"
        uses_segments = "seg" in resolver.joins
        if goal_kind is None:
            return facts, uses_segments
        goals = goal_sql(query, goal_kind, period, params)
        return _full_join("f", facts, "g", goals, [name for name, _ in keys]), uses_segments

    def _range_conditions(self, resolver: Resolver, period: Period, params: Params) -> list[str]:
        if period.range is None:
            return []
        start, end = period.range
        stored = resolver.source.time
        column = resolver.time_column
        if stored == "at":
            low = params.add(datetime.combine(start, datetime.min.time()))
            high = params.add(datetime.combine(end + timedelta(days=1), datetime.min.time()))
            return [f"{column} >= {low}", f"{column} < {high}"]
        covers_start = self.state.bounds is None or start <= self.state.bounds[0]
        covers_end = self.state.bounds is None or end >= self.state.bounds[1]
        if stored is None:
            if covers_start and covers_end:
                return []
            raise Unresolvable("an all-time rollup cannot answer a date range")
        if stored == "month":
            whole_start = covers_start or start.day == 1
            whole_end = covers_end or end.day == monthrange(end.year, end.month)[1]
            if not (whole_start and whole_end):
                raise Unresolvable("a month rollup needs whole months")
            start, end = start.replace(day=1), end.replace(day=1)
        return [f"{column} BETWEEN {params.add(start)} AND {params.add(end)}"]

    def _merged_fields(self, query: Query, rollup: Rollup | None) -> frozenset[str]:
        """Stored key fields whose different values end up in one result row."""
        if rollup is None:
            return frozenset()
        kept = {DIMENSIONS[d].plain_field for d in query.dimensions}
        if "customer_id" in kept:
            kept |= CUSTOMER_FIELDS  # one customer's rows never differ in his own attributes
        if rollup.time is not None and query.grain is not None and query.grain.value == rollup.time:
            kept.add(rollup.time)
        return frozenset(set(rollup.key) - kept)

    def _component_sql(
        self, component: Component, rollup: Rollup | None, resolver: Resolver, merged: frozenset[str]
    ) -> str:
        if rollup is None:
            return resolver.render(component.sql)
        stored = component.name in rollup.components and component.merge is not None
        entity = component.entity
        if stored and (entity is None or merged <= constant_fields(entity, self.state.uniform)):
            return f"{component.merge}(r.{component.name})"
        if component.row_safe:
            return resolver.render(component.sql)
        raise Unresolvable(f"{component.name} is not exact on {rollup.name}")

    def _joined_sql(self, query: Query, keys: list[str], sides: list[str]) -> str:
        measures = [f"{_measure_sql(m, 'cur')} AS {_quote(m)}" for m in query.measures]
        if len(sides) == 1:
            return f"SELECT {', '.join([*(_quote(k) for k in keys), *measures])} FROM cur"
        previous = [f"{_measure_sql(m, 'cmp')} AS {_quote(m + '_previous')}" for m in query.measures]
        merged_keys = [f"coalesce(cur.{_quote(k)}, cmp.{_quote(k)}) AS {_quote(k)}" for k in keys]
        on = " AND ".join(f"cur.{_quote(k)} IS NOT DISTINCT FROM cmp.{_quote(k)}" for k in keys) or "TRUE"
        return f"SELECT {', '.join([*merged_keys, *measures, *previous])} FROM cur FULL JOIN cmp ON {on}"

    def _result_sql(self, query: Query) -> str:
        if not query.compares:
            return "SELECT * FROM joined"
        changes = []
        for m in query.measures:
            now, before = _quote(m), _quote(m + "_previous")
            changes.append(f"{now} - {before} AS {_quote(m + '_change')}")
            changes.append(
                f"100.0 * ({now} - {before}) / nullif(abs({before}), 0) AS {_quote(m + '_change_pct')}"
            )
        return f"SELECT *, {', '.join(changes)} FROM joined"

    def _measure_filters(self, query: Query, params: Params) -> str:
        conditions = [
            _filter_sql(f"result.{_quote(f.member)}", f, params) for f in query.filters if f.is_measure
        ]
        for f in query.filters:
            if f.is_measure and f.member not in query.measures:
                raise QueryError(Problem("filters", f"filter on measure {f.member!r} needs it in measures"))
        return f" WHERE {' AND '.join(conditions)}" if conditions else ""

    def _order_by(self, query: Query, keys: list[str]) -> str:
        terms = [f"result.{_quote(o.member)} {o.direction.upper()} NULLS LAST" for o in query.order]
        ordered = {o.member for o in query.order}
        # The keys break ties, so LIMIT and OFFSET page through the same order every time.
        terms += [f"result.{_quote(k)} ASC NULLS LAST" for k in keys if k not in ordered]
        return ", ".join(terms) or "1"

    def _labels(self, query: Query) -> tuple[str, str]:
        joins, columns = [], ""
        for name in query.dimensions:
            dimension = DIMENSIONS[name]
            if dimension.label is None:
                continue
            label = FIELDS[dimension.label]
            lookup = LOOKUPS[label.lookup or ""]
            column = label.sql.split(".", 1)[1]
            alias = f"l_{name}"
            joins.append(f"LEFT JOIN {lookup.table} {alias} ON {alias}.{lookup.key} = q.{_quote(name)}")
            columns += f", {alias}.{column} AS {_quote(dimension.label)}"
        return " ".join(joins), columns

    def _columns(self, query: Query, labels: bool) -> list[Column]:
        columns = [Column(TIME_OUTPUT, "date")] if query.grain else []
        for name in query.dimensions:
            dimension = DIMENSIONS[name]
            columns.append(Column(name, "integer" if dimension.type == "integer" else "text"))
        columns += [Column(m, MEASURES[m].format) for m in query.measures]
        if query.compares:
            for m in query.measures:
                fmt = MEASURES[m].format
                columns += [
                    Column(f"{m}_previous", fmt),
                    Column(f"{m}_change", fmt if fmt != "date" else "integer"),
                    Column(f"{m}_change_pct", "percent"),
                ]
        if labels:
            columns += [
                Column(d.label, "text") for d in map(DIMENSIONS.get, query.dimensions) if d and d.label
            ]
        return columns


def comparison_period(current: tuple[date, date], compare: CompareTo | None, grain: Grain | None) -> Period:
    """The period a comparison looks at, and the shift that lays it over the current one.

    Same period last year moves by 12 calendar months. The previous period of a range of whole months is the
    same number of months before it (unless buckets are days or weeks, which months cannot map one to one);
    otherwise it is the equally long run of days just before.
    """
    start, end = current
    if compare is CompareTo.SAME_PERIOD_LAST_YEAR:
        return Period((add_months(start, -12), add_months(end, -12)), Shift(months=12))
    months = _whole_months(start, end)
    if months is not None and grain not in (Grain.DAY, Grain.WEEK):
        return Period((add_months(start, -months), start - timedelta(days=1)), Shift(months=months))
    length = (end - start).days + 1
    return Period((start - timedelta(days=length), start - timedelta(days=1)), Shift(days=length))


def explicit_comparison(current: tuple[date, date], other: tuple[date, date], grain: Grain | None) -> Period:
    """A comparison period given by the client: moved by whole months when it can be, else by days."""
    months = _months_between(other[0], current[0])
    if months is not None and grain not in (Grain.DAY, Grain.WEEK):
        return Period(other, Shift(months=months))
    return Period(other, Shift(days=(current[0] - other[0]).days))


def _whole_months(start: date, end: date) -> int | None:
    """The number of calendar months when [start, end] is exactly whole months, else None."""
    if start.day != 1 or end.day != monthrange(end.year, end.month)[1]:
        return None
    return (end.year - start.year) * 12 + end.month - start.month + 1


def _months_between(earlier: date, later: date) -> int | None:
    if earlier.day != later.day:
        return None
    return (later.year - earlier.year) * 12 + later.month - earlier.month


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def goal_sql(query: Query, kind: str, period: Period, params: Params) -> str:
    """The goal plan grouped like the facts: by region or salesman, and by time bucket."""
    table = "region_goals" if kind == "region" else "salesman_goals"
    member_sql = {"region": "g.region", "salesman": "g.salesman_id"}
    join = ""
    if kind == "salesman":
        member_sql["region"] = "gs.region"  # a salesman's home region
        join = " LEFT JOIN salesmen gs ON gs.salesman_id = g.salesman_id"
    keys = []
    if query.grain:
        month = period.shift.apply("g.month", params)
        keys.append((TIME_OUTPUT, f"CAST(date_trunc({GRAIN_SQL[query.grain]}, {month}) AS DATE)"))
    keys += [(d, member_sql[d]) for d in query.dimensions]
    conditions = [
        _filter_sql(member_sql[f.member], f, params) for f in query.filters if f.member in member_sql
    ]
    if period.range is not None:
        start, end = (d.replace(day=1) for d in period.range)
        conditions.append(f"g.month BETWEEN {params.add(start)} AND {params.add(end)}")
    selected = [f"{sql} AS {_quote(name)}" for name, sql in keys] + ["sum(g.revenue_target) AS __goal"]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
    return f"SELECT {', '.join(selected)} FROM {table} g{join}{where}{group}"


def _full_join(left: str, left_sql: str, right: str, right_sql: str, keys: list[str]) -> str:
    if not keys:
        return f"SELECT * FROM ({left_sql}) {left} CROSS JOIN ({right_sql}) {right}"
    merged = ", ".join(f"coalesce({left}.{_quote(k)}, {right}.{_quote(k)}) AS {_quote(k)}" for k in keys)
    on = " AND ".join(f"{left}.{_quote(k)} IS NOT DISTINCT FROM {right}.{_quote(k)}" for k in keys)
    excluded = ", ".join(map(_quote, keys))
    rest = f"{left}.* EXCLUDE ({excluded}), {right}.* EXCLUDE ({excluded})"
    return f"SELECT {merged}, {rest} FROM ({left_sql}) {left} FULL JOIN ({right_sql}) {right} ON {on}"


def _measure_sql(name: str, side: str) -> str:
    def component(match: re.Match[str]) -> str:
        spec = COMPONENTS[match.group(1)]
        column = f"{side}.__{spec.name}"
        return f"coalesce({column}, 0)" if spec.zero_when_empty else column

    return PLACEHOLDER.sub(component, MEASURES[name].sql)


def _filter_sql(expression: str, f: Any, params: Params) -> str:
    operator, values = f.operator, f.values
    if operator is Operator.EQUALS:
        return f"{expression} = {params.add(values[0])}"
    if operator is Operator.SET:
        return f"{expression} IS NOT NULL"
    if operator is Operator.NOT_SET:
        return f"{expression} IS NULL"
    if operator is Operator.RANGE:
        low, high = values
        parts = []
        if low is not None:
            parts.append(f"{expression} >= {params.add(low)}")
        if high is not None:
            parts.append(f"{expression} <= {params.add(high)}")
        return "(" + " AND ".join(parts) + ")"
    listed = ", ".join(params.add(v) for v in values)
    if operator is Operator.IN:
        return f"{expression} IN ({listed})"
    # Rows where the member is empty are kept: they are "not one of these".
    return f"({expression} IS NULL OR {expression} NOT IN ({listed}))"


def _dimension_needs(name: str) -> tuple[str, ...]:
    needs = DIMENSIONS[name].needs
    return (needs,) if needs else ()


def _member_needs(name: str) -> tuple[str, ...]:
    return MEASURES[name].needs if name in MEASURES else _dimension_needs(name)


def _quote(name: str) -> str:
    # Names come from the declarations (and their fixed suffixes), never from the client.
    return f'"{name}"'


__all__ = ["Compiled", "Compiler", "Params", "WarehouseState"]
