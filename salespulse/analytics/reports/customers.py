"""Customer insights: RFM segments, new vs repeat customers, churn risk and lifetime value.

Each starts from the customers' statistics over the period, a query of the semantic layer (a rollup answers
the all-time ones); the scoring is a step over those rows.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from salespulse.analytics.compiler import Params, label_join
from salespulse.analytics.query import TIME_OUTPUT, Query
from salespulse.analytics.reports.base import Param, Report, Rows, described, preset, register
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.reports.periods import period_end
from salespulse.analytics.semantic import RFM_SEGMENT_RULES, rfm_scores_sql

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
        columns=described(
            "customers",
            "revenue",
            "revenue_share_pct",
            segment="text",
            average_recency_days="number",
            average_orders="number",
            average_revenue="currency",
            rule="text",
            meaning="text",
        ),
    )
)


def _mark_complete_periods(ctx: ReportContext, rows: Rows) -> Rows:
    """complete_period: whether the data and the range cover every day of the row's period. A partial one
    (the running period, the first of the data) has fewer customers and orders than a whole one."""
    span = ctx.data_span()
    if span is None:
        return rows
    first, last = max(span[0], ctx["start"] or span[0]), ctx.now
    partial = set()
    for row in rows:
        start = date.fromisoformat(row[TIME_OUTPUT])
        row["complete_period"] = first <= start and period_end(start, ctx["grain"]) <= last
        if not row["complete_period"]:
            partial.add(row[TIME_OUTPUT])
    if partial:
        ctx.notes.append(
            f"Partial periods (complete_period = false: {', '.join(sorted(partial))}) cover only days from "
            f"{first.isoformat()} to {last.isoformat()}: their counts are smaller than a whole period's."
        )
    if rows and date.fromisoformat(rows[0][TIME_OUTPUT]) <= span[0]:
        ctx.notes.append(
            f"The data starts on {span[0].isoformat()}: a customer counts as new in the period of his first "
            "purchase in the data, so the first periods also count customers who bought before it as new."
        )
    return rows


preset(
    "new-vs-repeat-customers",
    "New vs repeat customers",
    SECTION_CUSTOMERS,
    "Per period: customers whose first purchase ever falls in the period (new) and the others (repeat), "
    "their orders, revenue and average order value. complete_period is false for a period the data or the "
    "range covers only in part (the running one).",
    lambda ctx: {
        "measures": ["customers", "orders", "revenue", "average_order_value"],
        "dimensions": ["customer_type"],
        "time_dimension": {"grain": ctx["grain"]},
    },
    params=(Param("grain", Literal["week", "month", "quarter", "year"], "month", "Period length.", "month"),),
    adjust=_mark_complete_periods,
    columns={"complete_period": "boolean"},
)


def _churn_risk(ctx: ReportContext) -> dict[str, Any]:
    stats = _customer_stats(ctx, ["revenue", "orders", "purchase_days", "first_sale", "last_sale"])

    name_join, customer_name = label_join("customer", "s.customer", "c")

    def build(p: Params) -> str:
        as_of = p.add(ctx.as_of)
        # usual gap = the customer's span of purchase days / the gaps in it. Value at risk = his yearly
        # revenue while active; the active span (first purchase to one usual gap after the last) counts at
        # least a year, so a burst of a few purchases is not extrapolated to a year. The names are joined to
        # the listed customers only, after the limit.
        return f"""
            SELECT s.*, {customer_name} FROM (
                SELECT * FROM (
                    SELECT customer, revenue, orders, purchase_days, first_sale, last_sale,
                           (last_sale - first_sale) / (purchase_days - 1) AS usual_gap_days,
                           {as_of} - last_sale AS days_since_last_purchase,
                           ({as_of} - last_sale) / ((last_sale - first_sale) / (purchase_days - 1))
                               AS gap_ratio,
                           revenue * 365.25 / greatest(
                               (last_sale - first_sale) * purchase_days / (purchase_days - 1), 365.25
                           ) AS value_at_risk
                    FROM stats
                    WHERE purchase_days >= {p.add(ctx["min_purchase_days"])} AND last_sale > first_sale
                ) WHERE gap_ratio >= {p.add(ctx["threshold"])}
                    AND days_since_last_purchase <= {p.add(ctx["lost_after_days"])}
                ORDER BY value_at_risk DESC, customer LIMIT {p.add(ctx["n"])}
            ) s {name_join}
            ORDER BY value_at_risk DESC, customer
        """

    return ctx.result(ctx.sql(build, stats=stats))


register(
    Report(
        "churn-risk",
        "Churn risk",
        SECTION_CUSTOMERS,
        "Customers overdue but not yet lost: the time since their last purchase is at least `threshold` "
        "times their own usual gap between purchase days (gap_ratio = days since last purchase / usual "
        "gap), and at most `lost_after_days` (beyond that a customer counts as lost, not at risk). Ranked "
        "by value at risk: the customer's yearly revenue while active (revenue x 365.25 / days from the "
        "first purchase to one usual gap after the last, counted as at least a year). `end` is the as-of "
        "day.",
        _churn_risk,
        (
            Param("threshold", float, 3.0, "Flag customers whose gap ratio is at least this.", 3.0, ge=1),
            Param(
                "lost_after_days",
                int,
                365,
                "Customers without a purchase for longer than this are lost, not at risk.",
                365,
                ge=1,
                le=3650,
            ),
            Param(
                "min_purchase_days", int, 3, "Only customers with at least this many purchase days.", 3, ge=2
            ),
            Param("n", int, 100, "How many customers.", 100, ge=1, le=10_000),
        ),
        columns=described(
            "customer",
            "revenue",
            "orders",
            "purchase_days",
            "first_sale",
            "last_sale",
            "customer_name",
            usual_gap_days="number",
            days_since_last_purchase="integer",
            gap_ratio="number",
            value_at_risk="currency",
        ),
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

    name_join, customer_name = label_join("customer", "v.customer", "c")

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
            SELECT v.*, {customer_name}, overall.* FROM (
                SELECT * FROM valued ORDER BY lifetime_value DESC, customer LIMIT {p.add(ctx["n"])}
            ) v CROSS JOIN overall {name_join}
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
        columns=described(
            "customer",
            "revenue",
            "orders",
            "first_sale",
            "last_sale",
            "average_order_value",
            "customer_name",
            tenure_years="number",
            orders_per_year="number",
            margin="number",
            lifetime_value="currency",
        ),
    )
)
