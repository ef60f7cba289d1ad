"""Customer insights: RFM segments, new vs repeat customers, churn risk and lifetime value.

Each starts from the customers' statistics over the period, a query of the semantic layer (a rollup answers
the all-time ones); the scoring is a step over those rows.

Lifetime value and churn risk predict with the customer-value model (BG/NBD + Gamma-Gamma, its closed forms
in ``salespulse.modeling.customer_value``) when the engine has been given one (``AnalyticsEngine.
use_customer_model``: the service does, with the model it serves); without one they fall back to
heuristics and say so (``summary.method`` and a note). The model's inputs are the purchase summaries of the
customers (``salespulse.features.customers.purchase_summary_sql``), computed from the days with a purchase
in the sales the report's filters and range select: the one definition the model is trained on.
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from salespulse.analytics.compiler import Params, label_join
from salespulse.analytics.query import TIME_OUTPUT, Query
from salespulse.analytics.reports.base import Param, Report, Rows, described, preset, register
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.reports.periods import period_end
from salespulse.analytics.semantic import RFM_SEGMENT_RULES, rfm_scores_sql
from salespulse.features.customers import SUMMARY_NAMES, purchase_summary_sql

if TYPE_CHECKING:
    from salespulse.modeling.customer_value import CustomerValueParameters

SECTION_CUSTOMERS = "Customer insights"
MODEL_METHOD = "customer-value model (BG/NBD + Gamma-Gamma)"
HEURISTIC_METHOD = "heuristic"
# The model's lifetime value is summed month by month (30 days); its longest lifetime.
MAX_MODEL_LIFETIME_MONTHS = 120
DAYS_PER_YEAR = 365.25


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
        "customer_segment dimension (which is computed over all data). `end` is the as-of day. These are "
        "not the segmentation model's segments (POST /segment, GET /segments): that is a KMeans model whose "
        "segments are chosen and named by what their customers spend next, with names of its own (VIP "
        "Regulars, Rising Regulars, ...) that no rule-based segment uses, so a name always says which "
        "segmentation it comes from.",
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


# --- the customer-value model's inputs and outputs ---


def _purchase_days(ctx: ReportContext) -> Query:
    """Revenue per customer and day with a purchase, in the report's range up to the as-of day."""
    return ctx.query(
        measures=["revenue"],
        dimensions=["customer"],
        time_dimension={"grain": "day", "date_range": ctx.date_range(up_to_as_of=True)},
    )


def _summary_sql(ctx: ReportContext, p: Params, customers: str | None = None) -> str:
    """The purchase summary of the customers in ``days`` (of those in the relation ``customers`` only,
    when given), as the model is trained on it, measured to the as-of day."""
    only = f" WHERE customer IN (SELECT customer FROM {customers})" if customers else ""
    days = f"(SELECT customer AS customer_id, {TIME_OUTPUT} AS day, revenue FROM days{only})"
    return purchase_summary_sql(days, p.add(ctx.as_of))


def _model_result(ctx: ReportContext, rows: Rows, **summary: Any) -> dict[str, Any]:
    """The result of the model's way, saying how it was made."""
    result = ctx.result(rows, method=MODEL_METHOD, **summary)
    if ctx.filtered or ctx["start"]:  # after the result: a note of how, not of why nothing matched
        result["notes"].append(
            "The model sees each customer's purchases in the sales the filters and range select (a customer "
            "who bought elsewhere or earlier looks newer or rarer than they are); it was fitted on whole "
            "customers' histories."
        )
    return result


def _heuristic_result(ctx: ReportContext, rows: Rows, what: str, **summary: Any) -> dict[str, Any]:
    """The result of the heuristic, saying that no model was there to use."""
    result = ctx.result(rows, method=HEURISTIC_METHOD, **summary)
    result["notes"].append(
        f"No customer-value model in service: {what} (heuristic). Train one with `salespulse train "
        "customer-value`; the service uses its champion."
    )
    return result


def _records(frame: pd.DataFrame) -> Rows:
    """JSON-ready rows: dates as ISO text, NaN as null, NumPy scalars as Python's."""
    rows = []
    for row in frame.to_dict(orient="records"):
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.date().isoformat()
            elif isinstance(value, float) and not math.isfinite(value):
                row[key] = None
            elif hasattr(value, "item"):
                row[key] = value.item()
        rows.append(row)
    return rows


def _with_names(ctx: ReportContext, frame: pd.DataFrame) -> Rows:
    """``frame``'s rows (a ``customer`` column) with the customers' names, joined to the listed ones only."""
    rows = _records(frame)
    if not rows:
        return rows
    join, column = label_join("customer", "t.customer", "c")
    found = ctx.engine.fetch(
        f"SELECT t.customer, {column} FROM (SELECT unnest($1::VARCHAR[]) AS customer) t {join}",
        [[row["customer"] for row in rows]],
    )
    names = {row["customer"]: row["customer_name"] for row in found}
    return [{**row, "customer_name": names.get(row["customer"])} for row in rows]


def _top(frame: pd.DataFrame, by: str, n: int) -> pd.DataFrame:
    """The ``n`` rows highest by ``by``, ties by customer id (as the SQL reports order)."""
    return frame.sort_values([by, "customer"], ascending=[False, True], kind="stable").head(n)


# --- churn risk ---


def _overdue_sql(ctx: ReportContext, p: Params) -> str:
    """The customers overdue but not lost (the documented window), with their usual gap and heuristic yearly
    value. usual gap = the customer's span of purchase days / the gaps in it; yearly value = revenue while
    active, the active span (first purchase to one usual gap after the last) counted as at least a year, so a
    burst of a few purchases is not extrapolated to a year."""
    as_of = p.add(ctx.as_of)
    return f"""
        SELECT * FROM (
            SELECT customer, revenue, orders, purchase_days, first_sale, last_sale,
                   (last_sale - first_sale) / (purchase_days - 1) AS usual_gap_days,
                   {as_of} - last_sale AS days_since_last_purchase,
                   ({as_of} - last_sale) / ((last_sale - first_sale) / (purchase_days - 1)) AS gap_ratio,
                   revenue * 365.25 / greatest(
                       (last_sale - first_sale) * purchase_days / (purchase_days - 1), 365.25
                   ) AS value_at_risk
            FROM stats
            WHERE purchase_days >= {p.add(ctx["min_purchase_days"])} AND last_sale > first_sale
        ) WHERE gap_ratio >= {p.add(ctx["threshold"])}
            AND days_since_last_purchase <= {p.add(ctx["lost_after_days"])}
    """


def _churn_stats(ctx: ReportContext) -> Query:
    return _customer_stats(ctx, ["revenue", "orders", "purchase_days", "first_sale", "last_sale"])


def _churn_risk(ctx: ReportContext) -> dict[str, Any]:
    parameters = ctx.engine.customer_model()
    if parameters is not None:
        return _churn_risk_by_model(ctx, parameters)
    name_join, customer_name = label_join("customer", "s.customer", "c")

    def build(p: Params) -> str:
        # The names are joined to the listed customers only, after the limit.
        return f"""
            SELECT s.*, {customer_name} FROM (
                {_overdue_sql(ctx, p)}
                ORDER BY value_at_risk DESC, customer LIMIT {p.add(ctx["n"])}
            ) s {name_join}
            ORDER BY value_at_risk DESC, customer
        """

    rows = ctx.sql(build, stats=_churn_stats(ctx))
    return _heuristic_result(ctx, rows, "value at risk is the customer's yearly revenue while active")


def _churn_risk_by_model(ctx: ReportContext, parameters: CustomerValueParameters) -> dict[str, Any]:
    from salespulse.modeling.customer_value import (
        expected_purchase_value,
        expected_purchases_if_alive,
        probability_alive,
    )

    def build(p: Params) -> str:
        return f"""
            , overdue AS ({_overdue_sql(ctx, p)}),
            summary AS ({_summary_sql(ctx, p, customers="overdue")})
            SELECT o.* EXCLUDE (value_at_risk) REPLACE (o.orders::BIGINT AS orders,
                                                         o.purchase_days::BIGINT AS purchase_days),
                   m.frequency, m.recency, m."T", m.monetary_value
            FROM overdue o JOIN summary m ON m.customer_id = o.customer
        """

    frame = ctx.frame(build, stats=_churn_stats(ctx), days=_purchase_days(ctx))
    frequency, recency, T, monetary_value = (frame[name].to_numpy(float) for name in SUMMARY_NAMES)
    alive = probability_alive(parameters.purchases, frequency, recency, T)
    per_purchase = expected_purchase_value(parameters.spend, frequency, monetary_value)
    yearly = expected_purchases_if_alive(parameters.purchases, frequency, T, DAYS_PER_YEAR) * per_purchase
    frame = frame.drop(columns=list(SUMMARY_NAMES)).assign(
        probability_alive=alive, yearly_value_if_active=yearly, value_at_risk=(1 - alive) * yearly
    )
    return _model_result(ctx, _with_names(ctx, _top(frame, "value_at_risk", ctx["n"])))


register(
    Report(
        "churn-risk",
        "Churn risk",
        SECTION_CUSTOMERS,
        "Customers overdue but not yet lost: the time since their last purchase is at least `threshold` "
        "times their own usual gap between purchase days (gap_ratio = days since last purchase / usual "
        "gap), and at most `lost_after_days` (beyond that a customer counts as lost, not at risk). Ranked "
        "by value at risk. With the customer-value model in service (summary.method says which): "
        "probability_alive is the model's probability that the customer is still active, "
        "yearly_value_if_active what they would spend in the next 365 days if they are, and value at risk "
        "= (1 - probability_alive) x yearly_value_if_active, the year of spend expected to be lost. Without "
        "it (heuristic): value at risk is the customer's yearly revenue while active (revenue x 365.25 / "
        "days from the first purchase to one usual gap after the last, counted as at least a year). `end` "
        "is the as-of day.",
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
            probability_alive="number",
            yearly_value_if_active="currency",
            value_at_risk="currency",
        ),
    )
)


# --- lifetime value ---


def _lifetime_value(ctx: ReportContext) -> dict[str, Any]:
    parameters = ctx.engine.customer_model()
    if parameters is not None:
        return _lifetime_value_by_model(ctx, parameters)
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
    what = "the value is average order value x orders per year x margin x lifetime"
    return _heuristic_result(ctx, rows, what, average_lifetime_value=average, customers=customers)


def _lifetime_value_by_model(ctx: ReportContext, parameters: CustomerValueParameters) -> dict[str, Any]:
    from salespulse.modeling.customer_value import DAYS_PER_MONTH, customer_value_frame

    months = max(1, round(12 * ctx["lifetime_years"]))
    if months > MAX_MODEL_LIFETIME_MONTHS:
        ctx.notes.append(
            f"The model sums lifetime value over at most {MAX_MODEL_LIFETIME_MONTHS} months "
            f"({MAX_MODEL_LIFETIME_MONTHS // 12} years), not {ctx['lifetime_years']:g} years."
        )
        months = MAX_MODEL_LIFETIME_MONTHS
    stats = _customer_stats(ctx, ["revenue", "orders", "purchase_days", "first_sale", "last_sale"])

    def build(p: Params) -> str:
        return f"""
            , summary AS ({_summary_sql(ctx, p)})
            SELECT s.customer, s.revenue, s.orders::BIGINT AS orders,
                   s.purchase_days::BIGINT AS purchase_days, s.first_sale, s.last_sale,
                   m.frequency, m.recency, m."T", m.monetary_value
            FROM stats s JOIN summary m ON m.customer_id = s.customer
            WHERE s.orders > 0
        """

    frame = ctx.frame(build, stats=stats, days=_purchase_days(ctx))
    predicted = customer_value_frame(
        parameters,
        frame[list(SUMMARY_NAMES)],
        horizon_days=months * DAYS_PER_MONTH,
        lifetime_months=months,
        monthly_discount_rate=ctx["monthly_discount_rate"],
    )
    frame = frame.drop(columns=list(SUMMARY_NAMES)).assign(
        probability_alive=predicted["probability_alive"],
        expected_purchases=predicted["expected_purchases"],
        expected_purchase_value=predicted["expected_purchase_value"],
        lifetime_value=predicted["lifetime_value"],
    )
    rows = _with_names(ctx, _top(frame, "lifetime_value", ctx["n"]))
    average = float(frame["lifetime_value"].mean()) if len(frame) else None
    return _model_result(
        ctx,
        rows,
        average_lifetime_value=average,
        customers=len(frame),
        lifetime_months=months,
        monthly_discount_rate=ctx["monthly_discount_rate"],
    )


register(
    Report(
        "customer-lifetime-value",
        "Customer lifetime value",
        SECTION_CUSTOMERS,
        "An estimate per customer, highest first; the summary has the average over all customers and "
        "summary.method says how it was made. With the customer-value model in service: the spend the "
        "model expects from the customer over the next `lifetime_years` (in months of 30 days, at most ten "
        "years), each month discounted by `monthly_discount_rate`, with the probability that the customer is "
        "still active, the purchases (days with an order) and the spend per purchase it expects. Without "
        "it (heuristic): average order value x orders per year (over the customer's tenure, at least a "
        "month) x margin x `lifetime_years`.",
        _lifetime_value,
        (
            Param("lifetime_years", float, 3.0, "Expected customer lifetime, in years.", 3.0, ge=0.1, le=50),
            Param(
                "monthly_discount_rate",
                float,
                0.01,
                "Discount rate per month of the model's lifetime value (0.01 = 1%, about 12.7% a year); "
                "the heuristic does not discount.",
                0.01,
                ge=0,
                le=0.5,
            ),
            Param("n", int, 100, "How many customers (highest value first).", 100, ge=1, le=10_000),
        ),
        columns=described(
            "customer",
            "revenue",
            "orders",
            "purchase_days",
            "first_sale",
            "last_sale",
            "average_order_value",
            "customer_name",
            tenure_years="number",
            orders_per_year="number",
            margin="number",
            probability_alive="number",
            expected_purchases="number",
            expected_purchase_value="currency",
            lifetime_value="currency",
        ),
    )
)
