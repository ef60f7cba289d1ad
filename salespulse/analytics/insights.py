"""Written insights: the few things a sales manager should know, as sentences with their figures.

Each insight is built by a deterministic rule over the named reports, and cites them: its ``report`` and
``params`` (``link``: ``/analytics/reports/<name>?<params>``) are what to run to see every figure of its
sentence, and ``sources`` lists each report used with the figures it backs. A sentence never goes without its
number: the figures are in the text, rounded, and in ``figures`` exactly as the reports give them (or as a
sum, share or ratio of them), with their formats in ``formats``.

The rules, over a window (the week or four weeks up to the as-of day, or ``start``..``end``) against the
window of the same length just before it:

* **revenue-change**: how revenue changed, and the member (region, else state or category when one region or
  state is filtered) that made most of it, with the member one level down that led it.
* **swing**: a member that moved against the total (a region that fell while revenue rose), by at least 10%
  and 2% of the baseline total, with what led it.
* **product-movers**: the product that lost most revenue and the one that gained most.
* **goal-pace**: revenue against the goal to date this month (the month of the as-of day), where the month
  ends at this pace, and the member furthest behind.
* **opportunities**: salesmen (and products, where a product plan exists) between 60% and 80% of their goal
  to date, the revenue that would bring them to goal, and how many entered the band since last month.
* **churn-risk**: customers overdue for their next order but not yet lost, and their value at risk (their
  yearly revenue, or with the customer-value model in service the year of spend expected to be lost).

Ranked by impact: the dollars at stake over a period as long as the window (a change in revenue as it is, a
month's goal gap or a year's value at risk pro-rated to the window's days; the heuristic's customers at risk
count half, as they are not lost yet). A forecast insight is not made here: the analytics layer has no
forecasting model (the run-rate projection of goal-pace stands in for it).

Reports are run through a :class:`ReportSource`: the engine in the service, or the service's own report
endpoints for a command-line client (cli/report.py), so both say the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlencode

from pydantic import BaseModel, Field, create_model

from salespulse.analytics.compiler import add_months, month_end, month_start
from salespulse.analytics.errors import DataUnavailable, Problem, QueryError
from salespulse.analytics.reports import run_report
from salespulse.analytics.reports.base import FILTER_PARAMS, ReportParams, query_parameter
from salespulse.analytics.reports.goals import GOAL_FILTERS
from salespulse.analytics.semantic import DIMENSIONS
from salespulse.bounds import date_bounds

if TYPE_CHECKING:
    from salespulse.analytics.engine import AnalyticsEngine

Row = dict[str, Any]
Period = Literal["week", "month"]
PERIOD_DAYS: dict[str, int] = {"week": 7, "month": 28}
"""The rolling windows: a week, or four weeks (same weekdays on both sides of the comparison)."""
STEADY_PCT = 0.5
"""A total change smaller than this (in %) is 'held steady'."""
SWING_MIN_PCT, SWING_MIN_SHARE = 10.0, 0.02
"""A swing moves by at least 10% and by at least 2% of the baseline total."""
MAX_SWINGS = 2
EXPLAIN_ORDER = ("region", "state", "category")
"""What a change is explained by: the first of these not filtered to one member."""
DRILL = {"region": "state", "state": "category", "category": "product"}
"""One level down, to name what led a member's change."""
OPPORTUNITY_LEVELS = ("salesman", "product")
GOAL_LEVELS = ("region", "salesman", "category", "product")
CHURN_LIMIT = 10_000
CHURN_THRESHOLD = 3.0
"""Overdue: at least three times the customer's usual gap between purchase days (the report's default)."""
CHURN_WEIGHT = 0.5
"""The share of the heuristic's value at risk (the customers' yearly revenue) that counts as at stake: an
overdue customer is not yet a lost one. The customer-value model's value at risk is the expected loss."""
DEFAULT_COUNT = 6


# --- where the reports come from ---


class ReportSource(Protocol):
    """Runs named reports (their JSON answer as a dict) and knows the last day with a sale."""

    def report(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def last_day(self) -> date | None: ...


class EngineSource:
    """The reports of an analytics engine, in process."""

    def __init__(self, engine: AnalyticsEngine) -> None:
        self.engine = engine

    def report(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return run_report(self.engine, name, dict(params))

    def last_day(self) -> date | None:
        return self.engine.last_day()


# --- parameters ---

BASELINE_RULE = (
    "The window and the as many days before it (the baseline) must be within the supported dates "
    "(SALESPULSE_EARLIEST_DATE, default 1900-01-01): a baseline beginning earlier is refused (422)."
)


def _params_model() -> type[ReportParams]:
    fields: dict[str, Any] = {}
    for p in FILTER_PARAMS:
        examples = [p.example] if p.example is not None else None
        fields[p.name] = (
            query_parameter(p.type),
            Field(p.default, description=p.description, examples=examples),
        )
    day = query_parameter(date | None)  # YYYY-MM-DD within the supported dates (salespulse.bounds)
    fields["start"] = (
        day,
        Field(
            None,
            description="First day of the window, compared with as many days just before it (default: "
            "the week or the four weeks up to the as-of day, see period). Not after the as-of day (`end`, "
            "else `as_of`). " + BASELINE_RULE,
            examples=["2025-04-01"],
        ),
    )
    fields["end"] = (
        day,
        Field(
            None,
            description="Last day of the window; also the as-of day. Not before `start`.",
            examples=["2025-06-30"],
        ),
    )
    fields["as_of"] = (
        day,
        Field(
            None,
            description="The day the insights are for (default: the last complete day with data: the "
            "last day with a sale, or yesterday while today's sales are still coming in, or `start` when "
            "that is later). `end` wins. Not before `start`. " + BASELINE_RULE,
            examples=["2025-06-30"],
        ),
    )
    fields["period"] = (
        query_parameter(Period),
        Field(
            "month",
            description="The window compared with the one before it: the week, or the four weeks, up to "
            "the as-of day (unless start and end are given).",
            examples=["week"],
        ),
    )
    fields["n"] = (
        query_parameter(int),
        Field(DEFAULT_COUNT, ge=1, le=20, description="How many insights, at most."),
    )
    return create_model("InsightParams", __base__=ReportParams, **fields)


InsightParams = _params_model()
"""The insights' parameters: the reports' filters, start/end or as_of, the period and how many."""


# --- the answer ---


class Source(BaseModel):
    report: str
    params: dict[str, Any]
    link: str
    figures: list[str] = Field(description="The figures of the insight this report backs.")


class Insight(BaseModel):
    id: str = Field(description="Stable for the same finding: the kind and what it is about.")
    kind: str
    headline: str
    figures: dict[str, Any] = Field(description="Every figure in the headline, unrounded.")
    formats: dict[str, str] = Field(description="Each figure's format (currency, percent, integer, ...).")
    report: str = Field(description="The report behind the headline (the first source).")
    params: dict[str, Any]
    link: str
    sources: list[Source]
    impact: float = Field(description="Dollars at stake over a period as long as the window: the ranking.")


class InsightsResult(BaseModel):
    as_of: date
    period: str
    current_period: list[date]
    baseline_period: list[date]
    params: dict[str, Any]
    insights: list[Insight]
    notes: list[str]
    elapsed_ms: float


# --- formats: one way to write each kind of figure, shared by the headlines and their readers ---


def render(value: Any, fmt: str) -> str:
    """A figure as its headline writes it (unsigned: the sentence says up or down in words)."""
    if fmt == "currency":
        return money(abs(value))
    if fmt == "percent":
        return f"{number(abs(value))}%"
    if fmt == "integer":
        return f"{abs(int(value)):,}"
    if fmt == "number":
        return number(abs(value))
    if fmt == "date":
        return date.fromisoformat(value).strftime("%-d %b %Y")
    if fmt == "month":
        return date.fromisoformat(value).strftime("%B %Y")
    return str(value)


def number(value: float) -> str:
    """One decimal, without a trailing .0 (60%, 8.2%)."""
    text = f"{value:,.1f}"
    return text[:-2] if text.endswith(".0") else text


def money(value: float) -> str:
    """Three significant digits: $950, $84.2K, $1.23M."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= limit * 0.9995:
            scaled = value / limit
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            text = f"{scaled:.{digits}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return f"${text}{suffix}"
    return f"${value:,.0f}"


def _sign(value: float) -> str:
    return "-" if value < 0 else "+"


# --- building one insight ---


def report_link(name: str, params: Mapping[str, Any]) -> str:
    given = {k: v for k, v in params.items() if v is not None and v != []}
    query = urlencode(given, doseq=True)
    return f"/analytics/reports/{name}" + (f"?{query}" if query else "")


@dataclass
class Draft:
    """An insight being written: each figure is added with its format and the source that backs it."""

    kind: str
    key: str
    parts: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    impact: float = 0.0

    def cite(self, name: str, params: Mapping[str, Any]) -> int:
        self.sources.append(
            Source(report=name, params=dict(params), link=report_link(name, params), figures=[])
        )
        return len(self.sources) - 1

    def fig(self, name: str, value: Any, fmt: str, source: int = 0, *, signed: bool = False) -> str:
        """Record a figure and give its text (``signed``: with + or - in front)."""
        self.figures[name] = value
        self.formats[name] = fmt
        if source >= 0:
            self.sources[source].figures.append(name)
        text = render(value, fmt)
        return f"{_sign(value)}{text}" if signed else text

    def say(self, text: str) -> None:
        self.parts.append(text)

    def done(self) -> Insight:
        headline = "".join(self.parts)
        headline = headline[0].upper() + headline[1:] + ("" if headline.endswith(".") else ".")
        first = self.sources[0]
        return Insight(
            id=f"{self.kind}:{self.key}" if self.key else self.kind,
            kind=self.kind,
            headline=headline,
            figures=self.figures,
            formats=self.formats,
            report=first.report,
            params=first.params,
            link=first.link,
            sources=self.sources,
            impact=round(self.impact, 2),
        )


# --- the window and the context of the rules ---


@dataclass(frozen=True)
class Window:
    start: date
    end: date
    baseline_start: date
    baseline_end: date
    rolling: Period | None
    """week or month for a rolling window; None for start..end given."""

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def report_params(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "baseline_start": self.baseline_start.isoformat(),
            "baseline_end": self.baseline_end.isoformat(),
        }

    def describe(self, draft: Draft, source: int = 0) -> tuple[str, str]:
        """'in the four weeks to 30 Jun 2025' and 'the four weeks before', their dates as figures."""
        end = draft.fig("period_end", self.end.isoformat(), "date", source)
        if self.rolling == "week":
            return f"in the week to {end}", "the week before"
        if self.rolling == "month":
            return f"in the four weeks to {end}", "the four weeks before"
        start = draft.fig("period_start", self.start.isoformat(), "date", source)
        return f"from {start} to {end}", "the same number of days before"


def window_of(params: ReportParams, as_of: date) -> Window:
    """The window up to ``as_of`` and its baseline, the as many days just before it; QueryError (naming the
    parameter that placed the window) when the baseline would begin before the supported dates, where no
    report may look."""
    if params.start is not None:
        start, rolling = params.start, None
    else:
        start, rolling = as_of - timedelta(days=PERIOD_DAYS[params.period] - 1), params.period
    days = (as_of - start).days + 1
    earliest = date_bounds()[0]
    if start - timedelta(days=days) < earliest:
        where = "start" if params.start is not None else "end" if params.end is not None else "as_of"
        raise QueryError(
            Problem(
                where,
                f"the window {start.isoformat()} to {as_of.isoformat()} is compared with the {days} days "
                f"before it, which begin before the earliest supported date {earliest.isoformat()}",
            )
        )
    return Window(start, as_of, start - timedelta(days=days), start - timedelta(days=1), rolling)


def default_as_of(last_day: date | None, today: date) -> date:
    """The last complete day: the last day with a sale, unless that is today (its sales still come in)."""
    if last_day is None:
        return today
    return last_day - timedelta(days=1) if last_day == today else last_day


@dataclass
class Context:
    source: ReportSource
    filters: dict[str, list[Any]]
    as_of: date
    window: Window
    notes: list[str]
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    def params(self, **extra: Any) -> dict[str, Any]:
        """A report's parameters: the filters, then ``extra`` (dates as ISO text, so they read as a link)."""
        plain = {k: v.isoformat() if isinstance(v, date) else v for k, v in extra.items()}
        return {**self.filters, **plain}

    def report(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run a report once per parameters (rules share some)."""
        key = report_link(name, params)
        if key not in self._cache:
            self._cache[key] = self.source.report(name, params)
        return self._cache[key]


def member_text(dimension: str, row: Row) -> str:
    """How a member reads in a sentence: a region as 'the South region', others by name."""
    value = row.get(dimension)
    label = DIMENSIONS[dimension].label
    name = row.get(label) if label else None
    if dimension == "region":
        return f"the {value} region"
    return str(name or value)


def _direction(change: float) -> tuple[str, str]:
    """('rose', 'rise') or ('fell', 'fall')."""
    return ("rose", "rise") if change >= 0 else ("fell", "fall")


# --- the rules ---


def explain_dimension(filters: Mapping[str, list[Any]]) -> str | None:
    for dimension in EXPLAIN_ORDER:
        if len(filters.get(dimension) or []) != 1:
            return dimension
    return None


def _explained(ctx: Context, dimension: str, **filters: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    params = {**ctx.params(dimension=dimension, **ctx.window.report_params()), **filters}
    return params, ctx.report("revenue-change-explained", params)


def _leader(rows: list[Row], change: float) -> Row | None:
    """The member whose change went the same way as ``change`` and counted most (rows come by size)."""
    return next((r for r in rows if r["revenue_change"] and (r["revenue_change"] > 0) == (change > 0)), None)


def _led_by(ctx: Context, draft: Draft, dimension: str, row: Row, prefix: str) -> str:
    """', led by Texas (-$30K)': the member one level down whose change led ``row``'s, as a second source."""
    below = DRILL.get(dimension)
    # Lines without the member (no region recorded) are a row too, but no filter can ask for "none".
    if below is None or len(ctx.filters.get(below) or []) == 1 or row[dimension] is None:
        return ""
    params, result = _explained(ctx, below, **{dimension: [row[dimension]]})
    sub = _leader(result["rows"], row["revenue_change"])
    if sub is None:
        return ""
    source = draft.cite("revenue-change-explained", params)
    name = draft.fig(f"{prefix}_led_by", member_text(below, sub), "text", source)
    change = draft.fig(f"{prefix}_led_by_change", sub["revenue_change"], "currency", source, signed=True)
    return f", led by {name} ({change})"


def revenue_change(ctx: Context) -> list[Insight]:
    dimension = explain_dimension(ctx.filters)
    if dimension is None:
        return []
    params, result = _explained(ctx, dimension)
    summary = result["summary"]
    current, baseline, change = summary["current_revenue"], summary["baseline_revenue"], summary["change"]
    if not current and not baseline:
        return []
    draft = Draft("revenue-change", "", impact=abs(change))
    draft.cite("revenue-change-explained", params)
    period, before = ctx.window.describe(draft)
    now_text = draft.fig("current_revenue", current, "currency")
    if not baseline:
        draft.say(f"revenue was {now_text} {period}, with no sales in {before}")
        return [draft.done()]
    pct = 100.0 * change / baseline
    was = draft.fig("baseline_revenue", baseline, "currency")
    pct_text = draft.fig("change_pct", pct, "percent", signed=abs(pct) < STEADY_PCT)
    if abs(pct) < STEADY_PCT:
        draft.say(f"revenue held steady at {now_text} {period} ({pct_text} versus {before}: {was})")
        return [draft.done()]
    moved, movement = _direction(change)
    draft.say(f"revenue {moved} {pct_text} to {now_text} {period} versus {before} ({was})")
    leader = _leader(result["rows"], change)
    if leader is not None:
        who = draft.fig("driver", member_text(dimension, leader), "text")
        amount = draft.fig("driver_change", leader["revenue_change"], "currency", signed=True)
        share = leader["contribution_pct"]
        if share <= 100:
            share_text = draft.fig("driver_share_pct", share, "percent")
            draft.say(f"; {share_text} of the {movement} came from {who} ({amount})")
        else:
            alone = render(leader["revenue_change"], "currency")
            draft.say(f"; {who} alone {moved} by {alone}, more than the whole {movement}")
        draft.say(_led_by(ctx, draft, dimension, leader, "driver"))
    return [draft.done()]


def swings(ctx: Context) -> list[Insight]:
    """Members that moved against the total (or moved a lot while it held steady)."""
    dimension = explain_dimension(ctx.filters)
    if dimension is None:
        return []
    params, result = _explained(ctx, dimension)
    summary = result["summary"]
    change, baseline = summary["change"], summary["baseline_revenue"]
    if not baseline:
        return []
    steady = abs(100.0 * change / baseline) < STEADY_PCT
    leader = None if steady else _leader(result["rows"], change)
    found = []
    for row in result["rows"]:
        moved = row["revenue_change"] or 0.0
        against = steady or (moved > 0) != (change > 0)
        big = (
            abs(moved) >= SWING_MIN_SHARE * baseline and abs(row["revenue_change_pct"] or 0) >= SWING_MIN_PCT
        )
        if row is leader or not (against and big and row["revenue_change_pct"] is not None):
            continue
        draft = Draft("swing", f"{dimension}={row[dimension]}", impact=abs(moved))
        draft.cite("revenue-change-explained", params)
        period, _ = ctx.window.describe(draft)
        who = draft.fig("member", member_text(dimension, row), "text")
        verb, _ = _direction(moved)
        pct = draft.fig("member_change_pct", row["revenue_change_pct"], "percent")
        amount = draft.fig("member_change", moved, "currency", signed=True)
        overall = "held steady" if steady else _direction(change)[0]
        draft.say(f"{who} {verb} {pct} ({amount}) {period} while revenue overall {overall}")
        draft.say(_led_by(ctx, draft, dimension, row, "member"))
        found.append(draft.done())
        if len(found) == MAX_SWINGS:
            break
    return found


def product_movers(ctx: Context) -> list[Insight]:
    if len(ctx.filters.get("product") or []) == 1:
        return []
    params, result = _explained(ctx, "product")
    rows = [r for r in result["rows"] if r["revenue_change"]]
    if not rows:
        return []
    fall = min(rows, key=lambda r: (r["revenue_change"], r["product"]))
    rise = max(rows, key=lambda r: (r["revenue_change"], r["product"]))
    draft = Draft("product-movers", "")
    draft.cite("revenue-change-explained", params)
    period, before = ctx.window.describe(draft)
    said = []
    for role, row in (("fall", fall), ("rise", rise)):
        if (row["revenue_change"] > 0) != (role == "rise"):
            continue
        name = draft.fig(f"{role}_product", member_text("product", row), "text")
        amount = draft.fig(f"{role}_change", row["revenue_change"], "currency", signed=True)
        pct = row["revenue_change_pct"]
        pct_text = (
            f" ({draft.fig(f'{role}_change_pct', pct, 'percent', signed=True)})" if pct is not None else ""
        )
        said.append(f"{name} {amount}{pct_text}")
        draft.impact = max(draft.impact, abs(row["revenue_change"]))
    draft.say(f"biggest product {'swings' if len(said) > 1 else 'swing'} {period} versus {before}: ")
    draft.say("; ".join(said))
    return [draft.done()]


def _goal_rows(
    ctx: Context, name: str, refused: list[str], *, by: str, **extra: Any
) -> tuple[dict[str, Any], list[Row]] | None:
    """A goal report's rows by the level ``by``, or None when no plan answers the filters (the report does
    not take them, or refuses them: why is added to ``refused``)."""
    answered = GOAL_FILTERS[by]
    others = [given for given in ctx.filters if given not in answered]
    if others:
        refused.append(
            f"the goal plan by {by} has no {others[0]!r}: goals by {by} are filtered by "
            f"{' or '.join(map(repr, answered))} only"
        )
        return None
    params = ctx.params(**extra)
    try:
        return params, ctx.report(name, params)["rows"]
    except (QueryError, DataUnavailable) as refusal:
        refused.append(refusal.problems[0].message)
        return None


def goal_pace(ctx: Context) -> list[Insight]:
    month = month_start(ctx.as_of)
    start = max(month, date_bounds()[0])  # no report looks before the supported dates
    refused: list[str] = []
    for level in GOAL_LEVELS:
        found = _goal_rows(ctx, f"goal-attainment-by-{level}", refused, by=level, start=start, end=ctx.as_of)
        if found is None:
            continue
        params, rows = found
        rows = [r for r in rows if r["period"] == month.isoformat() and r["goal_to_date"]]
        if rows:
            return [_goal_insight(ctx, level, params, rows, month)]
    if refused:
        ctx.notes.append(f"No goal insight: no goal plan answers these filters ({refused[0]}).")
    return []


def _goal_insight(ctx: Context, level: str, params: dict[str, Any], rows: list[Row], month: date) -> Insight:
    revenue = sum(r["revenue"] or 0.0 for r in rows)
    to_date = sum(r["goal_to_date"] for r in rows)
    goal = sum(r["goal"] for r in rows)
    complete = all(r["goal_basis"] == "whole month" for r in rows)
    draft = Draft("goal-pace", level)
    draft.cite(f"goal-attainment-by-{level}", params)
    attainment = draft.fig("attainment_pct", 100.0 * revenue / to_date, "percent")
    month_text = draft.fig("month", month.isoformat(), "month")
    revenue_text = draft.fig("revenue", revenue, "currency")
    days_in_month = (month_end(month) - month).days + 1
    if complete:
        goal_text = draft.fig("goal", goal, "currency")
        draft.say(
            f"revenue reached {attainment} of goal in {month_text} ({revenue_text} against {goal_text})"
        )
        draft.impact = abs(goal - revenue) * ctx.window.days / days_in_month
    else:
        # Pro-rated by selling days, revenue / goal to date is also where the month ends at this pace.
        projected = revenue * goal / to_date
        to_date_text = draft.fig("goal_to_date", to_date, "currency")
        gap_text = draft.fig("projected_gap", goal - projected, "currency")
        goal_text = draft.fig("goal", goal, "currency")
        side = "short of" if projected < goal else "over"
        draft.say(
            f"revenue is at {attainment} of goal to date in {month_text} ({revenue_text} against "
            f"{to_date_text}); at this pace the month ends {gap_text} {side} its {goal_text} goal"
        )
        draft.impact = abs(goal - projected) * ctx.window.days / days_in_month
    judged = [r for r in rows if r["goal_attainment_pct"] is not None]
    if len(judged) > 1:
        behind = min(judged, key=lambda r: (r["goal_attainment_pct"], str(r[level])))
        who = draft.fig("behind", member_text(level, behind), "text")
        how = draft.fig("behind_attainment_pct", behind["goal_attainment_pct"], "percent")
        draft.say(f"; furthest behind: {who} at {how}")
    return draft.done()


def opportunities(ctx: Context) -> list[Insight]:
    month = month_start(ctx.as_of)
    before = add_months(month, -1)
    if before < date_bounds()[0]:  # no month before to compare with: nothing was sold before the dates
        return []
    found = []
    for level in OPPORTUNITY_LEVELS:
        band = {"low_pct": 60.0, "high_pct": 80.0}  # the report's default, stated so that the link says it
        answer = _goal_rows(
            ctx, "sales-opportunities", [], by=level, level=level, **band, start=before, end=ctx.as_of
        )
        if answer is None:
            continue
        params, rows = answer
        now = [r for r in rows if r["period"] == month.isoformat()]
        if now:
            earlier = {r[level] for r in rows if r["period"] == before.isoformat()}
            found.append(_opportunity_insight(ctx, level, params, now, earlier, month, before))
    return found


def _opportunity_insight(
    ctx: Context,
    level: str,
    params: dict[str, Any],
    now: list[Row],
    earlier: set[Any],
    month: date,
    before: date,
) -> Insight:
    draft = Draft("opportunities", level)
    draft.cite("sales-opportunities", params)
    gap = sum(r["gap_to_goal"] for r in now)
    top = max(now, key=lambda r: (r["gap_to_goal"], str(r[level])))
    entered = len([r for r in now if r[level] not in earlier])
    many = len(now) > 1
    plural = {"salesman": "salesmen", "product": "products"}[level] if many else level
    count = draft.fig("count", len(now), "integer")
    month_text = draft.fig("month", month.isoformat(), "month")
    low = draft.fig("low_pct", params["low_pct"], "percent")
    high = draft.fig("high_pct", params["high_pct"], "percent")
    gap_text = draft.fig("gap_to_goal", gap, "currency")
    them, are = ("them", "are") if many else ("it", "is")
    draft.say(
        f"{count} {plural} {are} within reach of goal in {month_text} (between {low} and {high} of goal to "
        f"date): {gap_text} more would bring {them} to goal"
    )
    if many:
        who = draft.fig("largest_gap_member", member_text(level, top), "text")
        draft.say(f", {who} the most ({draft.fig('largest_gap', top['gap_to_goal'], 'currency')})")
    before_text = draft.fig("previous_month", before.isoformat(), "month")
    if many:
        entered_text = draft.fig("entered", entered, "integer")
        draft.say(f"; {entered_text} of them entered the band since {before_text}")
    else:
        draft.say(f"; {'it entered the band since' if entered else 'it was in the band in'} {before_text}")
    draft.impact = gap * ctx.window.days / max(1, (ctx.as_of - month).days + 1)
    return draft.done()


def churn_risk(ctx: Context) -> list[Insight]:
    params = ctx.params(end=ctx.as_of, threshold=CHURN_THRESHOLD, n=CHURN_LIMIT)
    result = ctx.report("churn-risk", params)
    rows = result["rows"]
    if not rows:
        return []
    # With the customer-value model in service the value at risk is the year of spend expected to be lost;
    # without it (the heuristic), the customers' whole yearly revenue, of which only a part will be lost.
    by_model = result["summary"].get("method", "heuristic") != "heuristic"
    value = sum(r["value_at_risk"] for r in rows)
    draft = Draft("churn-risk", "")
    draft.cite("churn-risk", params)
    count = draft.fig("customers", len(rows), "integer")
    worth = draft.fig("value_at_risk", value, "currency")
    threshold = draft.fig("threshold", params["threshold"], "number")
    top = rows[0]
    name = draft.fig("top_customer", top.get("customer_name") or top["customer"], "text")
    top_value = draft.fig("top_value_at_risk", top["value_at_risk"], "currency")
    overdue = f"overdue for their next order ({threshold} times their usual gap between purchases or more"
    capped = (
        len(rows) == CHURN_LIMIT
    )  # the report lists the most at stake up to its limit: the value is theirs
    if by_model:
        who = f"at least {count} customers are" if capped else f"{count} customers are"
        whom = f"the {count} most at stake" if capped else "them"
        draft.say(f"{who} {overdue}): {worth} of spend in the next year is expected to be lost with {whom}")
        draft.say(f"; the most at stake: {name} ({top_value})")
    else:
        if capped:
            draft.say(
                f"at least {count} customers are {overdue}, not yet lost); the {count} most valuable of "
            )
            draft.say(f"them are worth {worth} a year")
        else:
            draft.say(f"{count} customers worth {worth} a year are {overdue}, not yet lost)")
        draft.say(f"; the most valuable: {name} ({top_value} a year)")
    draft.impact = (1.0 if by_model else CHURN_WEIGHT) * value * ctx.window.days / 365.25
    return [draft.done()]


RULES: dict[str, Callable[[Context], list[Insight]]] = {
    "revenue-change": revenue_change,
    "swing": swings,
    "product-movers": product_movers,
    "goal-pace": goal_pace,
    "opportunities": opportunities,
    "churn-risk": churn_risk,
}
"""Each kind of insight and its rule; on equal impact, the earlier kind comes first."""


# --- all together ---


def build_insights(
    source: ReportSource, params: ReportParams | Mapping[str, Any] | None = None, *, today: date | None = None
) -> dict[str, Any]:
    """The insights for ``params`` (InsightParams or a dict of them), ranked by impact, as JSON-ready data."""
    started = time.perf_counter()
    given = params if isinstance(params, InsightParams) else InsightParams.model_validate(params or {})
    notes: list[str] = []
    as_of = given.end or given.as_of
    if as_of is None:
        last = source.last_day()
        as_of = default_as_of(last, today or date.today())
        if given.start is not None and given.start > as_of:  # a window after the data: nothing to say yet
            as_of = given.start
        elif last is not None and as_of != last:
            notes.append(f"Today ({last.isoformat()}) is not over: the insights are as of the day before.")
    if given.start is not None and given.start > as_of:
        raise QueryError(Problem("start", f"{given.start} is after the day the insights are for ({as_of})"))
    filters = {p.name: getattr(given, p.name) for p in FILTER_PARAMS if getattr(given, p.name)}
    window = window_of(given, as_of)
    ctx = Context(source, filters, as_of, window, notes)
    insights = [insight for rule in RULES.values() for insight in rule(ctx)]
    notes.extend(_unknown_members(ctx))
    order = {kind: i for i, kind in enumerate(RULES)}
    insights.sort(key=lambda i: (-i.impact, order.get(i.kind, 99), i.id))
    result = InsightsResult(
        as_of=as_of,
        period=given.period if window.rolling else "range",
        current_period=[window.start, window.end],
        baseline_period=[window.baseline_start, window.baseline_end],
        params=given.model_dump(mode="json"),
        insights=insights[: given.n],
        notes=notes,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return result.model_dump(mode="json")


def _unknown_members(ctx: Context) -> list[str]:
    """The reports' notes on filter values the data does not have (as "region: no region 'Atlantis' in the
    data; ..."), once each: said rather than refused, as by the reports (see engine.unknown_members)."""
    prefixes = tuple(f"{name}: no {name} " for name in ctx.filters)
    found = (note for result in ctx._cache.values() for note in result.get("notes", []))
    return list(dict.fromkeys(note for note in found if prefixes and note.startswith(prefixes)))


def insights_of(
    engine: AnalyticsEngine, params: ReportParams | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The insights over an engine's reports (what GET /analytics/insights answers)."""
    return build_insights(EngineSource(engine), params)
