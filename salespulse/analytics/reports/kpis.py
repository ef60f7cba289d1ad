"""KPI cards: totals with their previous period, month-over-month growth, retention, run rate, the active
sales force, top product movers and profitability.

The cards of a running month ("this month", "this week") take ``as_of``; amounts of periods with different
numbers of selling days are compared per selling day (see periods.SELLING_DAYS_RULE).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from salespulse.analytics.compiler import Params, add_months, label_join
from salespulse.analytics.query import Query
from salespulse.analytics.reports.base import (
    BY_REVENUE,
    TOP_N,
    Param,
    Report,
    described,
    iso_dates,
    register,
    with_change,
    with_rank_and_share,
)
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.reports.periods import SELLING_DAYS_RULE, month_end, month_start, month_to_date

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
    span = ctx.data_span() if compare else None
    if span is not None and ctx["end"] > span[1]:
        ctx.notes.append(
            f"The period runs past the last day with data ({span[1].isoformat()}): it is compared, partial, "
            "with a whole previous period. End it on that day, or use kpi-mom-growth for a running month."
        )
    return ctx.query(measures=measures, time_dimension={"date_range": date_range}, compare=compare)


@kpi(
    "kpi-total-revenue",
    "Total revenue",
    "Revenue over the period; with both start and end, also the previous period of equal length and the "
    "change.",
    columns=with_change("revenue"),
)
def _total_revenue(ctx: ReportContext) -> dict[str, Any]:
    return ctx.query_result(_compared(ctx, ["revenue"]))


@kpi(
    "kpi-average-order-value",
    "Average order value",
    "Revenue per order over the period (with the previous period when start and end are given).",
    columns=with_change("average_order_value", "revenue", "orders"),
)
def _average_order_value(ctx: ReportContext) -> dict[str, Any]:
    return ctx.query_result(_compared(ctx, ["average_order_value", "revenue", "orders"]))


@kpi(
    "kpi-mom-growth",
    "Month-over-month growth",
    "Revenue of this month to date against the same days of the previous month; growth_pct compares revenue "
    "per selling day, so periods with different numbers of selling days (a closed holiday, a 31st with no "
    f"counterpart) compare fairly. {SELLING_DAYS_RULE}",
    time="as_of",
    columns=described(
        "revenue",
        "revenue_previous",
        "growth_pct",
        period_start="date",
        period_end="date",
        selling_days="integer",
        previous_start="date",
        previous_end="date",
        previous_selling_days="integer",
    ),
)
def _mom_growth(ctx: ReportContext) -> dict[str, Any]:
    current, previous = month_to_date(ctx.as_of)
    query = ctx.query(
        measures=["revenue"], time_dimension={"date_range": current}, compare_date_range=previous
    )
    row = ctx.rows(query)[0]
    calendar = ctx.selling_calendar(previous[0])
    days_now, days_before = calendar.elapsed(*current), calendar.elapsed(*previous)
    rows = [
        {
            "period_start": current[0],
            "period_end": current[1],
            "revenue": row["revenue"],
            "selling_days": days_now,
            "previous_start": previous[0],
            "previous_end": previous[1],
            "revenue_previous": row["revenue_previous"],
            "previous_selling_days": days_before,
            "growth_pct": _pace_change_pct(row["revenue"], days_now, row["revenue_previous"], days_before),
        }
    ]
    return ctx.result(iso_dates(rows))


def _pace_change_pct(
    now: float | None, days_now: int, before: float | None, days_before: int
) -> float | None:
    """Change in % of the amount per selling day (None when either period has no selling day or no sales);
    like every change_pct, relative to the absolute earlier amount, so a negative one keeps its sign."""
    if not days_now or not days_before or not before:
        return None
    pace_now, pace_before = (now or 0.0) / days_now, before / days_before
    return 100.0 * (pace_now - pace_before) / abs(pace_before)


@kpi(
    "kpi-retention-rate",
    "Customer retention rate",
    "Of the customers who bought in the previous month, the share who bought again this month (to date).",
    time="as_of",
    columns=described("retention_rate_pct", previous_customers="integer", retained_customers="integer"),
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
    columns=described("region", "revenue", "share_pct", rank="integer"),
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
    "This month's revenue to date, projected to the whole month at the same pace per selling day: "
    f"run_rate = month_to_date / selling_days_elapsed x selling_days_in_month. {SELLING_DAYS_RULE}",
    time="as_of",
    columns=described(
        month="date",
        month_to_date="currency",
        days_elapsed="integer",
        days_in_month="integer",
        selling_days_elapsed="integer",
        selling_days_in_month="integer",
        run_rate="currency",
    ),
)
def _run_rate(ctx: ReportContext) -> dict[str, Any]:
    current, _ = month_to_date(ctx.as_of)
    (row,) = ctx.rows(ctx.query(measures=["revenue"], time_dimension={"date_range": current}))
    calendar = ctx.selling_calendar(current[0])
    elapsed, in_month = calendar.elapsed(*current), calendar.count(current[0], month_end(current[0]))
    revenue = row["revenue"] or 0.0
    rows = [
        {
            "month": current[0].isoformat(),
            "month_to_date": revenue,
            "days_elapsed": ctx.as_of.day,
            "days_in_month": month_end(current[0]).day,
            "selling_days_elapsed": elapsed,
            "selling_days_in_month": in_month,
            "run_rate": revenue / elapsed * in_month if elapsed else None,
        }
    ]
    return ctx.result(rows)


@kpi(
    "kpi-active-salesmen",
    "Active salesmen",
    "Salesmen with a sale this week (Monday to as_of) among those employed (hired by then; in the region "
    "filter, by their home region).",
    time="as_of",
    columns=described("active_pct", salesmen="integer", active_salesmen="integer"),
)
def _active_salesmen(ctx: ReportContext) -> dict[str, Any]:
    week = [ctx.as_of - timedelta(days=ctx.as_of.weekday()), ctx.as_of]
    active = ctx.query(measures=["lines"], dimensions=["salesman"], time_dimension={"date_range": week})

    def build(p: Params) -> str:
        # The roster: the salesman and region filters pick salesmen (the region by their home region); the
        # other filters only decide which sales make a salesman active.
        roster = ctx.entity_sql("salesman", p, region="salesman_region")
        return (
            "SELECT count(*) AS salesmen, count(a.salesman) AS active_salesmen, "
            "100.0 * count(a.salesman) / nullif(count(*), 0) AS active_pct "
            f"FROM ({roster}) s LEFT JOIN active a ON a.salesman = s.salesman "
            f"WHERE s.hire_date IS NULL OR s.hire_date <= {p.add(ctx.as_of)}"
        )

    return ctx.result(ctx.sql(build, active=active), week_start=week[0].isoformat())


@kpi(
    "kpi-top-product-mover",
    "Top product movers",
    "Products whose sales velocity (units per selling day) rose most: this month to date against the whole "
    f"previous month. {SELLING_DAYS_RULE}",
    time="as_of",
    params=(Param("n", int, 5, "How many products.", 5, ge=1, le=100),),
    columns=described(
        "product",
        "product_name",
        "velocity_change_pct",
        units_now="integer",
        units_before="integer",
        velocity_now="number",
        velocity_before="number",
        velocity_change="number",
    ),
)
def _top_mover(ctx: ReportContext) -> dict[str, Any]:
    current, _ = month_to_date(ctx.as_of)
    previous_start = add_months(current[0], -1)
    previous = [previous_start, month_end(previous_start)]
    queries = {
        name: ctx.query(measures=["units"], dimensions=["product"], time_dimension={"date_range": period})
        for name, period in (("now", current), ("before", previous))
    }

    calendar = ctx.selling_calendar(previous[0])
    # A period without a selling day has no velocity (NULL), rather than a division by zero.
    selling_now, selling_before = calendar.elapsed(*current), calendar.elapsed(*previous)

    name_join, product_name = label_join("product", "coalesce(n.product, b.product)", "pr")

    def build(p: Params) -> str:
        now_days = p.add(float(selling_now) if selling_now else None)
        before_days = p.add(float(selling_before) if selling_before else None)
        return f"""
            SELECT coalesce(n.product, b.product) AS product, {product_name},
                   coalesce(n.units, 0) AS units_now, coalesce(b.units, 0) AS units_before,
                   coalesce(n.units, 0) / {now_days} AS velocity_now,
                   coalesce(b.units, 0) / {before_days} AS velocity_before,
                   coalesce(n.units, 0) / {now_days} - coalesce(b.units, 0) / {before_days}
                       AS velocity_change,
                   100.0 * (coalesce(n.units, 0) / {now_days} - coalesce(b.units, 0) / {before_days})
                         / nullif(coalesce(b.units, 0) / {before_days}, 0) AS velocity_change_pct
            FROM now n FULL JOIN before b ON n.product = b.product
            {name_join}
            ORDER BY velocity_change DESC, product LIMIT {p.add(ctx["n"])}
        """

    return ctx.result(
        ctx.sql(build, **queries), selling_days_now=selling_now, selling_days_before=selling_before
    )


@kpi(
    "kpi-product-profitability",
    "Product profitability",
    "Products by profit, with revenue and margin.",
    params=(
        TOP_N,
        Param("direction", Literal["most", "least"], "most", "Most or least profitable first.", "most"),
    ),
    columns=described("product", "profit", "margin_pct", "revenue", "product_name"),
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
