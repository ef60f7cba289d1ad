"""Query -> (SQL, parameters), built only from the declared fragments of the semantic layer.

User values (filter values, dates, limit, offset) only ever become ``$n`` parameters; the SQL text is made of
declared names and fragments alone. The router tries the rollups from the smallest up and takes the first
that can answer exactly (every field resolvable, every distinct count mergeable, the date range on its time
boundaries); the order lines themselves always can.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
    GOAL_COMPONENTS,
    GOAL_MEASURES,
    GOAL_PLANS,
    LOOKUPS,
    MEASURES,
    PUBLIC_DIMENSIONS,
    ROLLUPS,
    SEGMENTS_CTE,
    TIME_DERIVATIONS,
    CompareTo,
    Component,
    Entity,
    GoalPlan,
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
    relations: dict[str, str] = field(default_factory=dict)
    """What to read for a rollup instead of its table (its table with the lines not folded into it yet)."""


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
    notes: tuple[str, ...] = ()
    """What the answer's numbers mean where a column alone cannot say (the basis of the goal to date)."""


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
    relation: str | None = None
    """The SQL read for ``table`` when it is not the table itself (a rollup with its pending lines)."""


LINE_FIELDS = frozenset(name for name, spec in FIELDS.items() if spec.lookup is None)
BASE = Source(ORDER_LINES, "o", "at", LINE_FIELDS)


def rollup_source(rollup: Rollup, relation: str | None = None) -> Source:
    fields = frozenset(rollup.fields)
    return Source(rollup.name, "r", rollup.time, fields, coded=True, rollup=rollup, relation=relation)


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
        spec = FIELDS.get(name)
        if name in self.source.stored:
            if self.source.coded:
                return f"nullif({alias}.{name}, {FIELDS[name].null_code})"
            # Order lines hold a line field under its column (ship_region); fields joined onto a batch
            # beforehand (see lines_source) under their own name.
            return f"{alias}.{spec.column if spec is not None and spec.lookup is None else name}"
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
        relation = self.source.relation or self.source.table
        return " ".join([f"FROM {relation} {self.source.alias}", *self.joins.values()])


def bucket(grain: Grain, resolver: Resolver) -> str:
    source = resolver.field("day" if grain in (Grain.DAY, Grain.WEEK) else "month")
    return f"CAST(date_trunc({GRAIN_SQL[grain]}, {source}) AS DATE)"


GoalBasisOf = Callable[[tuple[date, date] | None], "GoalBasis"]
"""The goal basis of a period's date range (the engine's: it knows the last day with data and the selling
days)."""


@dataclass(frozen=True)
class Goals:
    """Where a query's goal measures come from: one plan, and each period's basis (None: whole months)."""

    plan: GoalPlan
    bases: tuple[GoalBasis | None, ...]


class Compiler:
    """Compiles one query for the warehouse state it is given.

    ``goal_basis`` pro-rates the goals of months cut short (see GoalBasis); without it (documentation only)
    goal_to_date counts whole months.
    """

    def __init__(
        self, state: WarehouseState, *, use_rollups: bool = True, goal_basis: GoalBasisOf | None = None
    ) -> None:
        self.state = state
        self.use_rollups = use_rollups
        self.goal_basis = goal_basis

    def compile(
        self, query: Query, *, unlimited: bool = False, labels: bool = True, params: Params | None = None
    ) -> Compiled:
        """``params`` lets a report put several compiled queries (and its own values) in one statement."""
        self._check_data(query)
        periods = self._periods(query)
        goals = self._goals(query, periods)
        shared = params or Params()
        for source in [*self._candidates(), BASE]:
            mark = len(shared.values)
            try:
                compiled = self._compile(query, source, periods, goals, unlimited, labels, shared)
            except Unresolvable:
                del shared.values[mark:]  # the next, larger source; the order lines answer everything
                continue
            return replace(compiled, notes=tuple(goal_notes(query, periods, goals)))
        raise AssertionError("the order lines answer every query")

    def _candidates(self) -> list[Source]:
        if not self.use_rollups:
            return []
        usable = [r for r in ROLLUPS if r.name in self.state.rollups]
        usable.sort(key=lambda r: self.state.rollups[r.name])
        return [rollup_source(r, self.state.relations.get(r.name)) for r in usable]

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

    def _goals(self, query: Query, periods: list[Period]) -> Goals | None:
        """The plan and bases of the query's goal measures (None when it asks for none)."""
        if not GOAL_MEASURES & set(query.measures):
            return None
        plan = choose_goal_plan(query)
        to_date = any("goal_to_date" in MEASURES[m].components for m in query.measures)
        if self.goal_basis is None or not to_date:  # the whole months' goal needs no calendar
            return Goals(plan, tuple(None for _ in periods))
        return Goals(plan, tuple(self.goal_basis(p.range) for p in periods))

    # --- compiling against one source ---

    def _compile(
        self,
        query: Query,
        source: Source,
        periods: list[Period],
        goals: Goals | None,
        unlimited: bool,
        labels: bool,
        params: Params,
    ) -> Compiled:
        keys = ([TIME_OUTPUT] if query.grain else []) + list(query.dimensions)
        components = sorted({c for m in query.measures for c in MEASURES[m].components})
        ctes: list[str] = []
        sides = []
        for index, period in enumerate(periods):
            name = "cur" if index == 0 else "cmp"
            plan_side = (goals.plan, goals.bases[index]) if goals else None
            body, uses_segments = self._period_sql(query, source, period, components, plan_side, params)
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
        goals: tuple[GoalPlan, GoalBasis | None] | None,
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
                conditions.append(filter_sql(resolver.render(DIMENSIONS[f.member].sql), f, params))
        selected = [f"{sql} AS {_quote(name)}" for name, sql in keys]
        fact_components = [c for c in components if c not in GOAL_COMPONENTS]
        merged = self._merged_fields(query, source.rollup)
        selected += [
            f"{self._component_sql(COMPONENTS[c], source.rollup, resolver, merged)} AS __{c}"
            for c in fact_components
        ]
        if not selected:  # only goal measures and no split: the facts side is one row joined to the plan
            selected = ["count(*) AS __lines"]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
        facts = f"SELECT {', '.join(selected)} {resolver.from_clause()}{where}{group}"
        uses_segments = "seg" in resolver.joins
        if goals is None:
            return facts, uses_segments
        plan_sql = goal_sql(query, *goals, period, params)
        return _full_join("f", facts, "g", plan_sql, [name for name, _ in keys]), uses_segments

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
            changes.append(f"{now} - {before} AS {_quote(m + '_change')}")  # of a day: a number of days
            # A percentage of a day (first_sale) means nothing (and abs(DATE) does not exist): null.
            pct = (
                "CAST(NULL AS DOUBLE)"
                if MEASURES[m].format == "date"
                else f"100.0 * ({now} - {before}) / nullif(abs({before}), 0)"
            )
            changes.append(f"{pct} AS {_quote(m + '_change_pct')}")
        return f"SELECT *, {', '.join(changes)} FROM joined"

    def _measure_filters(self, query: Query, params: Params) -> str:
        conditions = [
            filter_sql(f"result.{_quote(f.member)}", f, params) for f in query.filters if f.is_measure
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
            if DIMENSIONS[name].label is None:
                continue
            join, column = label_join(name, f"q.{_quote(name)}", f"l_{name}")
            joins.append(join)
            columns += f", {column}"
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


# --- running periods: selling days, and the goal a period's revenue is measured against ---

PATTERN_DAYS = 56
"""Eight weeks of history decide which weekdays the business sells on."""

SELLING_DAYS_RULE = (
    "Selling days: a day up to now (the as-of day or end, at most the last day with data) is a selling day "
    "when the business sold anything on it (all regions and products); a later day is one when its weekday "
    "had sales on at least half of its days in the 8 weeks up to now."
)


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=monthrange(day.year, day.month)[1])


def running_now(as_of: date | None, last_day: date | None) -> date:
    """'Now' for a running period: the as-of day (default: the last day with data, else today), never later
    than the last day with data, since later days have no data yet."""
    day = as_of or last_day or date.today()
    return min(day, last_day) if last_day else day


@dataclass(frozen=True)
class SellingCalendar:
    """Which days the business sells on, as seen on ``now``: known days from the data, later ones from the
    weekday pattern (so a report as of a past day says what it would have said then)."""

    now: date
    sale_days: frozenset[date]
    weekdays: frozenset[int]
    """Selling weekdays (0 = Monday) for days after ``now``."""

    def is_selling(self, day: date) -> bool:
        return day in self.sale_days if day <= self.now else day.weekday() in self.weekdays

    def count(self, first: date, last: date) -> int:
        """Selling days in [first, last] (0 when last is before first)."""
        return sum(self.is_selling(first + timedelta(days=i)) for i in range((last - first).days + 1))

    def elapsed(self, first: date, last: date) -> int:
        """Selling days in [first, last] that have passed by ``now`` (a period "to date")."""
        return self.count(first, min(last, self.now))


def selling_weekdays(sale_days: frozenset[date], now: date) -> frozenset[int]:
    """Weekdays with a sale on at least half of their days in the 8 weeks up to ``now`` (counting from the
    first day with data when the history is shorter; every weekday when there is none)."""
    if not sale_days:
        return frozenset(range(7))
    first = max(now - timedelta(days=PATTERN_DAYS - 1), min(sale_days))
    window = [first + timedelta(days=i) for i in range((now - first).days + 1)]
    days_of = {weekday: [d for d in window if d.weekday() == weekday] for weekday in range(7)}
    return frozenset(
        weekday for weekday, days in days_of.items() if 2 * sum(d in sale_days for d in days) >= len(days)
    )


class GoalBasis:
    """How one period's revenue is measured against the goal plan, one rule for the query layer and the
    reports: a month that the period or the data cuts short, the running month above all, counts its goal
    pro-rated to the selling days its revenue covers; a month after now counts none (it can have no revenue
    yet); every other month counts whole.

    ``calendar`` reads the selling calendar from a day on; it is called only when a month is cut short.
    """

    def __init__(
        self, period: tuple[date, date] | None, now: date, calendar: Callable[[date], SellingCalendar]
    ) -> None:
        self.start, self.end = period if period is not None else (None, None)
        self.now = now
        self._read_calendar = calendar
        self._calendar: SellingCalendar | None = None

    def covered(self, month: date) -> tuple[date, date]:
        """The days of ``month`` the period's revenue covers: cut by its start, its end and now."""
        last = month_end(month)
        return max(month, self.start or month), min(last, self.end or last, self.now)

    def is_whole(self, month: date) -> bool:
        return self.covered(month) == (month, month_end(month))

    def cut_months(self) -> list[date]:
        """The months up to now's that are cut short: at most the first (by the start) and now's."""
        now_month = month_start(self.now)
        candidates = {month_start(self.start) if self.start else now_month, now_month}
        return sorted(m for m in candidates if m <= now_month and not self.is_whole(m))

    @property
    def calendar(self) -> SellingCalendar:
        if self._calendar is None:
            self._calendar = self._read_calendar(min(self.cut_months(), default=month_start(self.now)))
        return self._calendar

    def selling_days(self, month: date) -> tuple[int, int]:
        """Selling days of ``month`` covered, and in the whole month."""
        first, last = self.covered(month)
        return self.calendar.count(first, last), self.calendar.count(month, month_end(month))

    def share(self, month: date) -> float:
        """The share of the month's goal that counts."""
        if self.is_whole(month):
            return 1.0
        covered, in_month = self.selling_days(month)
        return covered / in_month if in_month else 0.0

    def label(self, month: date) -> str:
        if self.is_whole(month):
            return "whole month"
        covered, in_month = self.selling_days(month)
        return f"pro-rated: {covered} of {in_month} selling days"

    def share_sql(self, month: str, params: Params) -> str:
        """SQL of the share of the goal of ``month`` (SQL of a month's first day) that counts."""
        cases = [f"WHEN {month} > {params.add(month_start(self.now))} THEN 0.0"]
        for cut in self.cut_months():
            cases.append(f"WHEN {month} = {params.add(cut)} THEN {params.add(self.share(cut))}")
        return f"CAST(CASE {' '.join(cases)} ELSE 1.0 END AS DOUBLE)"

    def note(self) -> str:
        cut = [f"{m:%Y-%m} ({self.label(m)})" for m in self.cut_months()]
        counted = f"whole, except {', '.join(cut)}," if cut else "whole"
        note = (
            f"goal_to_date (and goal_attainment_pct, revenue / goal_to_date) counts each month's goal "
            f"{counted} up to now ({self.now.isoformat()}: the end of the range, at most the last day with "
            "data), and none of a later month's."
        )
        return f"{note} {SELLING_DAYS_RULE}" if cut else note


# --- the goal plan ---


def goal_dimension_sql(plan: GoalPlan, dimension: str) -> tuple[str, str | None] | None:
    """``dimension`` as SQL over the plan's table ``g``, with the join it needs; None when the plan cannot be
    split by it. A plan is split by its level, or by an attribute of the level's entity (a product's
    category) or the field that stands for a dimension (a salesman's home region for region)."""
    if dimension == plan.level:
        return f"g.{plan.member}", None
    entity = plan.entity
    if entity is None:
        return None
    field_name = plan.judged_by.get(dimension)
    sql = FIELDS[field_name].sql if field_name else dimension_on_entity(dimension, entity)
    if sql is None:
        return None
    lookup = entity.table
    return sql, f"LEFT JOIN {lookup.table} {lookup.alias} ON {lookup.alias}.{lookup.key} = g.{plan.member}"


def goal_dimensions(plan: GoalPlan) -> list[str]:
    """The public dimensions the plan can be split and filtered by."""
    return [name for name in PUBLIC_DIMENSIONS if goal_dimension_sql(plan, name) is not None]


def choose_goal_plan(query: Query) -> GoalPlan:
    """The plan a query's goal measures come from: one that every dimension the query splits or filters by
    can be read from, preferably the plan of one of them (by category: the category plan, not the product
    plan summed by category), else the first (a total compares with the region plan). QueryError when none
    can answer, or the grain is finer than the plan's months."""
    named = list(dict.fromkeys([*query.dimensions, *(f.member for f in query.filters if not f.is_measure)]))
    fitting = [p for p in GOAL_PLANS.values() if all(goal_dimension_sql(p, d) for d in named)]
    plan = next((p for p in fitting if p.level in named), fitting[0] if fitting else None)
    problems = [] if plan is not None else _no_goal_plan(query, named)
    if query.grain in (Grain.DAY, Grain.WEEK):
        problems.append(
            Problem("time_dimension.grain", "goals are monthly: use month, quarter or year (or none)")
        )
    if problems:
        raise QueryError(problems)
    assert plan is not None
    return plan


def _no_goal_plan(query: Query, named: list[str]) -> list[Problem]:
    """Why no plan answers, told from the plan the query most likely means: that of a dimension it names."""
    meant = next((GOAL_PLANS[d] for d in named if d in GOAL_PLANS), next(iter(GOAL_PLANS.values())))
    allowed = goal_dimensions(meant)
    readable = " or ".join(map(repr, allowed))
    problems = []
    extra = [d for d in query.dimensions if d not in allowed]
    if extra:
        problems.append(
            Problem(
                "dimensions",
                f"the goal plan is by {', '.join(GOAL_PLANS)} (one plan at a time); goals by "
                f"{meant.level} can be split by {readable} only: {', '.join(map(repr, extra))} cannot be "
                "combined with a goal measure",
            )
        )
    for f in query.filters:
        if not f.is_measure and f.member not in allowed:
            problems.append(
                Problem(
                    "filters",
                    f"the goal plan by {meant.level} has no {f.member!r}: filter goal measures by "
                    f"{readable} only",
                )
            )
    return problems


def goal_sql(query: Query, plan: GoalPlan, basis: GoalBasis | None, period: Period, params: Params) -> str:
    """The plan's targets grouped like the facts (by time bucket and the query's dimensions), whole and to
    date (pro-rated by ``basis``)."""
    joins: dict[str, None] = {}

    def member(dimension: str) -> str:
        resolved = goal_dimension_sql(plan, dimension)
        assert resolved is not None, "choose_goal_plan checked every dimension"
        sql, join = resolved
        if join:
            joins[join] = None
        return sql

    keys = []
    if query.grain:
        month = period.shift.apply("g.month", params)
        keys.append((TIME_OUTPUT, f"CAST(date_trunc({GRAIN_SQL[query.grain]}, {month}) AS DATE)"))
    keys += [(d, member(d)) for d in query.dimensions]
    conditions = [filter_sql(member(f.member), f, params) for f in query.filters if not f.is_measure]
    if period.range is not None:
        start, end = (d.replace(day=1) for d in period.range)
        conditions.append(f"g.month BETWEEN {params.add(start)} AND {params.add(end)}")
    share = basis.share_sql("g.month", params) if basis is not None else "1.0"
    selected = [f"{sql} AS {_quote(name)}" for name, sql in keys]
    selected += ["sum(g.revenue_target) AS __goal", f"sum(g.revenue_target * {share}) AS __goal_to_date"]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else ""
    return f"SELECT {', '.join(selected)} FROM {plan.table} g {' '.join(joins)}{where}{group}"


def goal_notes(query: Query, periods: list[Period], goals: Goals | None) -> list[str]:
    """Which plan answered, and each period's basis of the goal to date."""
    if goals is None:
        return []
    notes = [f"Goals from the goal plan by {goals.plan.level} ({goals.plan.table})."]
    sides = ("", "Comparison period: ") if len(periods) > 1 else ("",)
    for prefix, basis in zip(sides, goals.bases, strict=True):
        if basis is not None:
            notes.append(prefix + basis.note())
    return notes


def label_join(dimension: str, key: str, alias: str, output: str | None = None) -> tuple[str, str]:
    """The join that puts a dimension's label (a name beside an id) beside ``key``, and the label column.

    Joined after aggregation, to the rows listed only: ``key`` is an SQL expression of the result holding
    the dimension's value; ``output`` names the label column (default: the label field's name).
    """
    label_field = DIMENSIONS[dimension].label
    assert label_field is not None, f"{dimension} has no label"
    label = FIELDS[label_field]
    lookup = LOOKUPS[label.lookup or ""]
    column = label.sql.split(".", 1)[1]
    join = f"LEFT JOIN {lookup.table} {alias} ON {alias}.{lookup.key} = {key}"
    return join, f"{alias}.{column} AS {_quote(output or label_field)}"


# --- entities: a dimension table listed in its own right (see semantic.ENTITIES) ---


def entity_sql(entity: Entity, conditions: Sequence[str] = ()) -> str:
    """Every member of ``entity`` with its attributes, under ``conditions`` (SQL over the lookup's alias)."""
    lookup = entity.table
    columns = [f"{lookup.alias}.{lookup.key} AS {_quote(entity.dimension)}"]
    columns += [f"{FIELDS[name].sql} AS {_quote(output)}" for output, name in entity.attributes.items()]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {', '.join(columns)} FROM {lookup.table} {lookup.alias}{where}"


def dimension_on_entity(dimension: str, entity: Entity) -> str | None:
    """The dimension as SQL over the entity's own table, when every field it needs is there (the product's
    category on the products table); None when it needs the order lines (a product's region)."""
    lookup = entity.table

    def field_sql(name: str) -> str:
        if name == lookup.key:
            return f"{lookup.alias}.{lookup.key}"
        spec = FIELDS.get(name)
        if spec is None or spec.lookup != entity.lookup:
            raise Unresolvable(name)
        return spec.sql

    try:
        return PLACEHOLDER.sub(lambda match: field_sql(match.group(1)), DIMENSIONS[dimension].sql)
    except Unresolvable:
        return None


def lookup_members_sql(dimension: str) -> str | None:
    """SQL listing the members of a dimension that is one field of a dimension table (or its key), read from
    that table: small, and complete (members without sales count too). None for the others, which the query
    layer lists from the sales."""
    field_name = DIMENSIONS[dimension].plain_field
    if field_name is None:
        return None
    for lookup in LOOKUPS.values():
        if lookup.key == field_name and lookup.alias != "seg":
            return f"SELECT {lookup.key} AS member FROM {lookup.table}"
    spec = FIELDS[field_name]
    if spec.lookup is None or spec.lookup == "seg":  # the segments are a computed relation, not a table
        return None
    lookup = LOOKUPS[spec.lookup]
    source = f"{lookup.table} {lookup.alias}"
    return f"SELECT DISTINCT {spec.sql} AS member FROM {source} WHERE {spec.sql} IS NOT NULL"


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


def filter_sql(expression: str, f: Any, params: Params) -> str:
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


__all__ = [
    "Compiled",
    "Compiler",
    "Params",
    "WarehouseState",
    "dimension_on_entity",
    "entity_sql",
    "filter_sql",
    "label_join",
    "lookup_members_sql",
]
