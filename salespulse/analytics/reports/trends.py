"""Trends: seasonality profiles, underperformers against their own trend and their peers, and which
members made revenue change between two periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from salespulse.analytics.compiler import Params, add_months
from salespulse.analytics.errors import Problem, QueryError
from salespulse.analytics.reports.base import Param, Report, described, register, with_change
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.reports.periods import month_end, month_start
from salespulse.analytics.semantic import DIMENSIONS, FILTER_DIMENSIONS, PUBLIC_DIMENSIONS, Dimension

SECTION_TRENDS = "Trends"


@dataclass(frozen=True)
class Profile:
    """A seasonality profile: a cyclic part of time, and how often each of its values occurs."""

    low: int
    high: int
    grain: Literal["day", "month"]
    """The periods its values are counted over: the months for a month of the year, else selling days."""
    occurs: str
    """The values one period of the grain covers, as SQL over its ``period``."""


def _profile(dimension: Dimension) -> Profile:
    assert dimension.cycle is not None
    low, high = dimension.cycle
    for grain in ("month", "day"):
        placeholder = "{" + grain + "}"
        if placeholder in dimension.sql:  # a part of the period itself (its month, its weekday)
            return Profile(low, high, grain, dimension.sql.replace(placeholder, "period"))
    # Finer than a day (the hour): every value occurs once on every selling day.
    return Profile(low, high, "day", f"unnest(range({low}, {high + 1}))")


PROFILES = {name: _profile(d) for name, d in DIMENSIONS.items() if d.cycle is not None}


def _seasonality(ctx: ReportContext) -> dict[str, Any]:
    profile = ctx["profile"]
    spec = PROFILES[profile]
    low, high, grain = spec.low, spec.high, spec.grain
    date_range = ctx.date_range()
    if grain == "month":
        date_range = _complete_months(ctx)
        if date_range is None:
            ctx.notes.append(
                "No complete month in the period: a month of the year needs a whole month of data."
            )
            return ctx.result([])
    by_part = ctx.query(
        measures=["revenue", "units"], dimensions=[profile], time_dimension={"date_range": date_range}
    )
    # How often each bucket occurs: months per month of year, selling days per weekday; every hour of the day
    # occurs once per selling day. The whole business's selling periods count, not only the filtered
    # sales', so a bucket in which a small product happened not to sell still counts (with 0).
    periods = ctx.engine.internal_query(
        measures=["lines"], time_dimension={"grain": grain, "date_range": date_range}
    )
    occurs = spec.occurs
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


def _complete_months(ctx: ReportContext) -> list[date] | None:
    """The whole months that both the period and the data cover, as a date range (None if there is none).

    A partial month (the running one, the first of the data, one cut by start or end) would count as a
    whole occurrence of its month of the year with only part of its revenue."""
    span = ctx.data_span()
    if span is None:
        return None
    first = max(span[0], ctx["start"] or span[0])
    last = min(span[1], ctx["end"] or span[1])
    whole_first = first if first.day == 1 else add_months(month_start(first), 1)
    whole_last = last if last == month_end(last) else month_start(last) - timedelta(days=1)
    if whole_last < whole_first:
        return None
    left_out = (
        [f"{first.isoformat()} to {(whole_first - timedelta(days=1)).isoformat()}"]
        if first < whole_first
        else []
    )
    if whole_last < last:
        left_out.append(f"{(whole_last + timedelta(days=1)).isoformat()} to {last.isoformat()}")
    if left_out:
        ctx.notes.append(
            f"Complete months only: {whole_first.isoformat()} to {whole_last.isoformat()} "
            f"(left out, as partial months: {'; '.join(left_out)})."
        )
    return [whole_first, whole_last]


register(
    Report(
        "seasonality",
        "Seasonality profile",
        SECTION_TRENDS,
        "Revenue by month of year, day of week or hour of day: share of revenue, and a seasonal index "
        "(average revenue per occurrence of the bucket against the overall average; 100 = average). Months "
        "of the year count complete months only (the running month and a month the data or the period cuts "
        "are left out, and named in the notes); weekdays and hours count the business's selling days (days "
        "with any sale, all regions and products). The index does not take growth out: with a strong "
        "trend, the months that occur most recently read higher (compare whole years with start and end).",
        _seasonality,
        (
            Param(
                "profile",
                Literal[tuple(PROFILES)],
                "month_of_year",
                "Which profile.",
                "day_of_week",
            ),
        ),
        columns=described(
            *PROFILES, "revenue", "units", "share_pct", occurrences="integer", seasonal_index="number"
        ),
    )
)

UNDERPERFORMER_LEVELS = tuple(FILTER_DIMENSIONS)
"""What can be judged: the members of any dimension the reports filter by."""


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
            Param("level", Literal[UNDERPERFORMER_LEVELS], "region", "What to judge.", "category"),
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
            **described(*UNDERPERFORMER_LEVELS),
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

EXPLAIN_DIMENSIONS = tuple(
    name
    for name, d in PUBLIC_DIMENSIONS.items()
    if d.type == "string" and "{period_start}" not in d.sql  # a member's revenue in both periods
)
"""What a change can be explained by: every dimension whose members are the same in both periods."""


def _change_explained(ctx: ReportContext) -> dict[str, Any]:
    member = ctx["dimension"]
    start = ctx["start"]
    # Without an end, the period ends on the last day with data, or on start when that is later (a period
    # with no sales yet, rather than an inverted one).
    end = ctx["end"] or (max(ctx.as_of, start) if start else ctx.as_of)
    start = start or end - timedelta(days=29)
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
                "dimension",
                Literal[EXPLAIN_DIMENSIONS],
                "category",
                "Explain the change by this dimension.",
                "region",
            ),
            Param(
                "compare",
                Literal["previous_period", "same_period_last_year"],
                "previous_period",
                "The baseline period, unless baseline_start/baseline_end are given.",
                "same_period_last_year",
            ),
            Param(
                "baseline_start",
                date | None,
                None,
                "Explicit baseline, first day. Give both baseline_start and baseline_end, or neither.",
                "2024-06-01",
            ),
            Param(
                "baseline_end",
                date | None,
                None,
                "Explicit baseline, last day. Not before `baseline_start`.",
                "2024-06-30",
            ),
        ),
        columns=described(
            *EXPLAIN_DIMENSIONS,
            *with_change("revenue"),
            "contribution_pct",
            *(label for d in EXPLAIN_DIMENSIONS if (label := DIMENSIONS[d].label)),
        ),
    )
)
