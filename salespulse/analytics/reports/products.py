"""Product intelligence: ABC classes, product affinity (market baskets) and slow movers."""

from __future__ import annotations

from typing import Any

from salespulse.analytics.compiler import Params, entity_sql
from salespulse.analytics.query import Query
from salespulse.analytics.reports.base import BY_REVENUE, Param, Report, Rows, described, preset, register
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.rollups import PAIRS
from salespulse.analytics.semantic import ENTITIES

PAIRS_FILTERS = frozenset({"region"})
"""The filters the all-time pairs table can apply: it keeps the region of each order."""

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
    columns=described("share_pct", "cumulative_pct", **{"class": "text"}),
)


AFFINITY_STAGES = (
    ("min_orders", "in at least {min_orders} orders", "orders_together >= {min_orders}"),
    ("min_support_pct", "with support >= {min_support_pct}%", "support_pct >= {min_support_pct}"),
    ("min_confidence_pct", "confidence >= {min_confidence_pct}%", "confidence_pct >= {min_confidence_pct}"),
    ("min_lift", "lift > {min_lift}", "lift > {min_lift}"),
)
"""The thresholds a pair must pass, in the order the note reports how many pairs remain after each."""


def _affinity(ctx: ReportContext) -> dict[str, Any]:
    rows = _affinity_rows(ctx, diagnose=False)
    if not rows:
        _explain_no_pairs(ctx, _affinity_rows(ctx, diagnose=True)[0])
    return ctx.result(rows)


def _affinity_rows(ctx: ReportContext, *, diagnose: bool) -> Rows:
    """The pairs that pass; with ``diagnose``, one row counting the pairs left after each threshold."""
    stored = _pairs_table_answers(ctx)
    # Diagnosing needs every pair bought together, not only those in enough orders.
    floor = 1 if diagnose else ctx["min_orders"]

    def build(p: Params) -> str:
        pairs = _stored_pairs(ctx, p, floor) if stored else _basket_pairs(ctx, p, floor)
        prefix = "" if stored else _BASKET_COUNTS
        return (
            f"{prefix}, pairs AS ({pairs}), rules AS ({_rules_sql(ctx)}) {_affinity_select(ctx, p, diagnose)}"
        )

    if stored:
        return ctx.sql(build, **_order_counts(ctx))
    baskets = ctx.query(
        measures=["lines"], dimensions=["order", "product"], time_dimension={"date_range": ctx.date_range()}
    )
    return ctx.sql(build, baskets=baskets)


_BASKET_COUNTS = """, b AS (SELECT DISTINCT "order" AS order_id, product FROM baskets),
    total AS (SELECT count(DISTINCT order_id) AS orders FROM b),
    item AS (SELECT product, count(*) AS orders FROM b GROUP BY product)"""


def _rules_sql(ctx: ReportContext) -> str:
    """Each pair as a rule product -> with_product, with its support, confidence and lift.

    With for_product the product is that one. Otherwise a pair (stored once, product < with_product) is
    turned towards the product with fewer orders: the direction with the higher confidence, the one that
    says most (ties keep the order of the ids)."""
    flip = "FALSE" if ctx["for_product"] else "ix.orders > iy.orders"
    return f"""
        SELECT CASE WHEN {flip} THEN pairs.with_product ELSE pairs.product END AS product,
               CASE WHEN {flip} THEN pairs.product ELSE pairs.with_product END AS with_product,
               orders_together,
               100.0 * orders_together / total.orders AS support_pct,
               100.0 * orders_together / CASE WHEN {flip} THEN iy.orders ELSE ix.orders END AS confidence_pct,
               orders_together * total.orders / (ix.orders * iy.orders) AS lift
        FROM pairs CROSS JOIN total
        JOIN item ix ON ix.product = pairs.product JOIN item iy ON iy.product = pairs.with_product
    """


def _affinity_select(ctx: ReportContext, p: Params, diagnose: bool) -> str:
    thresholds = {name: p.add(ctx[name]) for name, _, _ in AFFINITY_STAGES}
    passes = [condition.format(**thresholds) for _, _, condition in AFFINITY_STAGES]
    active = _active_products(ctx, p)
    if diagnose:
        stages = [" AND ".join(passes[: i + 1]) for i in range(len(passes))]
        counts = [f"count(*) FILTER (WHERE {stage}) AS stage_{i}" for i, stage in enumerate(stages)]
        counts.append(f"count(*) FILTER (WHERE {' AND '.join([*passes, *active])}) AS active")
        return f"""SELECT count(*) AS bought_together, {", ".join(counts)}
            {_names_of_pairs()}"""
    return f"""
        SELECT r.product, px.product_name, r.with_product, py.product_name AS with_product_name,
               orders_together, support_pct, confidence_pct, lift
        {_names_of_pairs()}
        WHERE {" AND ".join([*passes, *active])}
        ORDER BY lift DESC, orders_together DESC, r.product, r.with_product
        LIMIT {p.add(ctx["n"])}
    """


def _names_of_pairs() -> str:
    """The product catalogue joined to each side of a rule: px to the product, py to the other."""
    catalogue = entity_sql(ENTITIES["product"])
    return (
        f"FROM rules r LEFT JOIN ({catalogue}) px ON px.product = r.product "
        f"LEFT JOIN ({catalogue}) py ON py.product = r.with_product"
    )


def _active_products(ctx: ReportContext, p: Params) -> list[str]:
    """Conditions keeping pairs of products still sold on ``now`` (the product asked for may be any)."""
    if ctx["include_discontinued"]:
        return []
    now = p.add(ctx.now)
    aliases = ["py"] if ctx["for_product"] else ["px", "py"]
    return [f"({a}.discontinued_on IS NULL OR {a}.discontinued_on > {now})" for a in aliases]


def _explain_no_pairs(ctx: ReportContext, counts: dict[str, Any]) -> None:
    steps = [f"{counts['bought_together']:,} pairs were bought together"]
    for i, (_, words, _) in enumerate(AFFINITY_STAGES):
        steps.append(f"{counts[f'stage_{i}']:,} {words.format(**ctx.values)}")
    if not ctx["include_discontinued"]:
        steps.append(f"{counts['active']:,} of them of products still sold")
    ctx.notes.append(
        "No pair passes: "
        + ", ".join(steps)
        + ". Lower min_orders, min_support_pct or min_confidence_pct (or widen the period) to see more."
    )


def _basket_pairs(ctx: ReportContext, p: Params, floor: int) -> str:
    """Pairs counted from the baskets of the period: (for_product, other), else each pair once (a < b)."""
    focus = ctx["for_product"]
    match = f"x.product = {p.add(focus)} AND y.product <> x.product" if focus else "x.product < y.product"
    return f"""
        SELECT x.product AS product, y.product AS with_product, count(*) AS orders_together
        FROM b x JOIN b y ON x.order_id = y.order_id AND {match}
        GROUP BY 1, 2 HAVING count(*) >= {p.add(floor)}
    """


def _pairs_table_answers(ctx: ReportContext) -> bool:
    """The all-time pairs table answers when it stores every filter asked (the region), no narrower time
    range is asked, and every order ships to one region (so a pair has one region)."""
    state = ctx.engine.state
    if not ctx.engine.use_rollups or PAIRS not in state.rollups or set(ctx.filtered) - PAIRS_FILTERS:
        return False
    if state.relations:  # lines wait to be folded into the rollups: the baskets count them
        return False
    if "region" not in state.uniform:
        return False
    wanted, bounds = ctx.date_range(), state.bounds
    return wanted is None or bounds is None or (wanted[0] <= bounds[0] and wanted[1] >= bounds[1])


def _order_counts(ctx: ReportContext) -> dict[str, Query]:
    """Orders per product and in all (through the query layer: a rollup counts them)."""
    return {
        "item": ctx.query(measures=["orders"], dimensions=["product"]),
        "total": ctx.query(measures=["orders"]),
    }


def _stored_pairs(ctx: ReportContext, p: Params, floor: int) -> str:
    regions = ctx.filtered.get("region")
    where = f"WHERE region IN ({', '.join(p.add(r) for r in regions)})" if regions else ""
    pairs = (
        f"SELECT product_id AS product, with_product, sum(orders) AS orders_together FROM {PAIRS} {where} "
        f"GROUP BY 1, 2 HAVING sum(orders) >= {p.add(floor)}"
    )
    focus = ctx["for_product"]
    if not focus:
        return pairs
    # Stored once per pair (product < with_product): the product asked for first.
    asked = p.add(focus)
    return (
        f"SELECT {asked} AS product, CASE WHEN product = {asked} THEN with_product ELSE product END "
        f"AS with_product, orders_together FROM ({pairs}) WHERE {asked} IN (product, with_product)"
    )


register(
    Report(
        "product-affinity",
        "Product affinity",
        SECTION_PRODUCTS,
        "Products bought in the same order, strongest association first (lift: how many times more often "
        "than chance), as rules product -> with_product: support (% of orders with both), confidence (% of "
        "the orders with the product that also have the other) and lift. Each pair is listed once, turned "
        "towards the direction with the higher confidence; with for_product, the products associated with "
        "it. Only pairs above every threshold, of products still sold (unless include_discontinued); a note "
        "says how many pairs each threshold left when none passes.",
        _affinity,
        (
            Param(
                "for_product",
                str | None,
                None,
                "List the pairs of this product only.",
                "P-00001",
                member="product",
            ),
            Param("min_orders", int, 2, "Pairs bought together in fewer orders are left out.", 2, ge=1),
            Param(
                "min_support_pct",
                float,
                0.01,
                "Leave out pairs in fewer than this % of the orders.",
                0.01,
                ge=0,
                le=100,
            ),
            Param(
                "min_confidence_pct",
                float,
                5.0,
                "Leave out rules whose confidence is below this %.",
                5.0,
                ge=0,
                le=100,
            ),
            Param(
                "min_lift",
                float,
                1.0,
                "Only pairs with a lift above this (1 = bought together exactly as often as chance).",
                1.0,
                ge=0,
            ),
            Param(
                "include_discontinued",
                bool,
                False,
                "Also pair products discontinued by the end of the period.",
                False,
            ),
            Param("n", int, 20, "How many pairs.", 20, ge=1, le=1000),
        ),
        columns=described(
            "product",
            "product_name",
            "support_pct",
            "confidence_pct",
            with_product="text",
            with_product_name="text",
            orders_together="integer",
            lift="number",
        ),
    )
)


def _slow_movers(ctx: ReportContext) -> dict[str, Any]:
    sales = ctx.query(
        measures=["last_sale", "units"],
        dimensions=["product"],
        time_dimension={"date_range": ctx.date_range(up_to_as_of=True)},
    )

    def build(p: Params) -> str:
        # The catalogue, cut by the filters on products (category, product, ...); the other filters decide
        # which sales count.
        catalogue = ctx.entity_sql("product", p)
        as_of, days = p.add(ctx.as_of), p.add(ctx["days"])
        conditions = [
            f"(q.last_sale IS NULL OR q.last_sale <= {as_of} - {days})",
            f"(pr.launched_on IS NULL OR pr.launched_on <= {as_of})",
        ]
        if not ctx["include_discontinued"]:
            conditions.append(f"(pr.discontinued_on IS NULL OR pr.discontinued_on > {as_of})")
        return f"""
            SELECT pr.product, pr.product_name, pr.category, pr.launched_on, pr.discontinued_on,
                   q.last_sale, {as_of} - q.last_sale AS days_without_sales,
                   CASE WHEN q.last_sale IS NULL THEN 'no sales'
                        WHEN {as_of} - q.last_sale >= 90 THEN '90+ days'
                        WHEN {as_of} - q.last_sale >= 60 THEN '60+ days'
                        WHEN {as_of} - q.last_sale >= 30 THEN '30+ days'
                        ELSE 'under 30 days' END AS idle
            FROM ({catalogue}) pr LEFT JOIN sales q ON q.product = pr.product
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
        columns=described(
            "product",
            "product_name",
            "category",
            "launched_on",
            "discontinued_on",
            "last_sale",
            days_without_sales="integer",
            idle="text",
        ),
    )
)
