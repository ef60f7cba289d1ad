"""Sales force: salesmen ranked by revenue, and how steadily each sells day to day."""

from __future__ import annotations

from typing import Any

from salespulse.analytics.compiler import label_join
from salespulse.analytics.reports.base import (
    BY_REVENUE,
    Report,
    described,
    preset,
    register,
    with_rank_and_share,
)
from salespulse.analytics.reports.context import ReportContext

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
    columns=described("share_pct", rank="integer"),
)


def _consistency(ctx: ReportContext) -> dict[str, Any]:
    daily = ctx.query(
        measures=["revenue"],
        dimensions=["salesman"],
        time_dimension={"grain": "day", "date_range": ctx.date_range()},
        filters=[{"member": "salesman", "operator": "set"}],
    )
    name_join, salesman_name = label_join("salesman", "s.salesman", "sm")
    sql = f"""
        SELECT s.salesman, {salesman_name}, s.* EXCLUDE (salesman) FROM (
            SELECT f.salesman, count(*) AS selling_days,
                   avg(coalesce(d.revenue, 0)) AS daily_mean,
                   stddev_samp(coalesce(d.revenue, 0)) AS daily_std_dev,
                   stddev_samp(coalesce(d.revenue, 0)) / nullif(avg(coalesce(d.revenue, 0)), 0)
                       AS coefficient_of_variation,
                   100.0 / (1 + stddev_samp(coalesce(d.revenue, 0)) / nullif(avg(coalesce(d.revenue, 0)), 0))
                       AS consistency_score
            FROM (SELECT salesman, min(period) AS first_day FROM daily GROUP BY salesman) f
            JOIN (SELECT DISTINCT period FROM daily) c ON c.period >= f.first_day
            LEFT JOIN daily d ON d.salesman = f.salesman AND d.period = c.period
            GROUP BY f.salesman
        ) s {name_join}
        ORDER BY s.coefficient_of_variation ASC NULLS LAST, s.salesman
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
        columns=described(
            "salesman",
            "salesman_name",
            selling_days="integer",
            daily_mean="currency",
            daily_std_dev="currency",
            coefficient_of_variation="number",
            consistency_score="number",
        ),
    )
)
