"""The semantic layer: what can be asked of the sales data, declared once.

Everything a query can name is declared here and nowhere else; the compiler builds SQL only from these
fragments, and user input only ever reaches SQL as bound parameters.

Three levels:

* **fields** are the columns of one fixed, trusted join of the sales data: ``order_lines o`` with its
  ``customers c``, ``products p``, ``salesmen s`` and ``distributors d`` (and the RFM segment of the
  customer). A rollup table stores some fields itself and reaches others through the same lookups.
* **components** are aggregates over fields (``sum({revenue})``, ``count(DISTINCT {order_id})``), the
  pieces that rollups can store and that measures combine.
* **measures** and **dimensions** are the public vocabulary: a measure is an expression over components,
  a dimension an expression over fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Operator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    NOT_IN = "not_in"
    RANGE = "range"
    SET = "set"
    NOT_SET = "not_set"


class CompareTo(StrEnum):
    PREVIOUS_PERIOD = "previous_period"
    SAME_PERIOD_LAST_YEAR = "same_period_last_year"


Format = Literal["currency", "number", "integer", "percent", "date", "text"]
DataFlag = Literal["salesman", "distributor", "cost"]
"""Parts of the data an import may lack; a member that needs one says so instead of returning nothing."""

DATA_FLAG_MESSAGES: dict[str, str] = {
    "salesman": "no order line has a salesman (the data was imported without a salesman column)",
    "distributor": "no order line has a distributor (no trade-channel sales with a distributor)",
    "cost": "no order line has a cost, so profit and margin are unknown",
}


@dataclass(frozen=True)
class Lookup:
    """A dimension table joined to the order lines on a key field: part of the fixed, trusted join."""

    alias: str
    table: str
    key: str


LOOKUPS: dict[str, Lookup] = {
    "c": Lookup("c", "customers", "customer_id"),
    "p": Lookup("p", "products", "product_id"),
    "s": Lookup("s", "salesmen", "salesman_id"),
    "d": Lookup("d", "distributors", "distributor_id"),
    # The RFM segment of each customer, computed by the SEGMENTS_CTE below.
    "seg": Lookup("seg", "customer_segments", "customer_id"),
}


@dataclass(frozen=True)
class Field:
    name: str
    sql: str
    """The column in the base join, e.g. ``o.revenue`` or ``c.region``."""
    lookup: str | None = None
    """Alias of the lookup that provides the field; None when it is on the order line."""
    null_code: str = "''"
    """What a rollup stores for NULL in a key (so rows are found by plain equality): '' for text."""


def _line(*names: str) -> dict[str, Field]:
    return {n: Field(n, f"o.{n}") for n in names}


def _from(alias: str, **columns: str) -> dict[str, Field]:
    return {name: Field(name, f"{alias}.{column}", alias) for name, column in columns.items()}


NEVER = "CAST('-infinity' AS TIMESTAMP)"


FIELDS: dict[str, Field] = {
    **_line(
        "order_id",
        "customer_id",
        "product_id",
        "salesman_id",
        "distributor_id",
        "channel",
        "quantity",
        "revenue",
        "profit",
    ),
    **_from(
        "c",
        region="region",
        state="state",
        city="city",
        zip="zip",
        customer_name="customer_name",
    ),
    "first_purchase": Field("first_purchase", "c.first_purchase", "c", NEVER),
    **_from("p", category="category", subcategory="subcategory", product_name="product_name"),
    **_from("s", salesman_name="salesman_name", salesman_region="region"),
    **_from("d", distributor_name="distributor_name"),
    **_from("seg", customer_segment="segment"),
}

# Time fields form a chain: a source that stores the order timestamp derives the day from it, and a source
# that stores days derives months. A month rollup has no day, so it cannot answer a daily question.
TIME_FIELDS: tuple[str, ...] = ("at", "day", "month")
TIME_DERIVATIONS: dict[str, tuple[str, str]] = {
    "day": ("at", "CAST({at} AS DATE)"),
    "month": ("day", "CAST(date_trunc('month', {day}) AS DATE)"),
}

# Fields that are a function of the customer: rollup rows that differ only in these never share a customer.
CUSTOMER_FIELDS: frozenset[str] = frozenset(
    {"customer_id", "region", "state", "city", "zip", "customer_name", "first_purchase", "customer_segment"}
)


@dataclass(frozen=True)
class Component:
    """An aggregate over fields; rollups store components and measures combine them.

    ``merge`` says how stored values of several rollup rows combine (None: never stored). A distinct count
    (``entity`` set) can be summed over rollup rows only when the rows merged differ in fields that are a
    function of the entity counted; see :func:`constant_fields`. ``row_safe`` components give the same
    answer when evaluated over rollup rows as over order lines (count distinct, min, max).
    """

    name: str
    sql: str
    merge: Literal["sum", "min", "max"] | None = "sum"
    entity: str | None = None
    row_safe: bool = False
    zero_when_empty: bool = True


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("revenue", "sum({revenue})"),
        Component("units", "sum({quantity})"),
        Component("profit", "sum({profit})", zero_when_empty=False),
        Component("costed_revenue", "sum({revenue}) FILTER (WHERE {profit} IS NOT NULL)"),
        Component("lines", "count(*)"),
        Component("orders", "count(DISTINCT {order_id})", entity="order_id", row_safe=True),
        Component("customers", "count(DISTINCT {customer_id})", entity="customer_id", row_safe=True),
        Component(
            "new_customers",
            "count(DISTINCT {customer_id}) FILTER (WHERE {first_purchase} >= {period_start})",
            merge=None,
            row_safe=True,
        ),
        Component("purchase_days", "count(DISTINCT {day})", entity="day", row_safe=True),
        Component("first_sale", "min({day})", merge="min", row_safe=True, zero_when_empty=False),
        Component("last_sale", "max({day})", merge="max", row_safe=True, zero_when_empty=False),
        # The goal comes from the goal plan, not from order lines (see compiler.goal_relation).
        Component("goal", "", merge=None, zero_when_empty=False),
    )
}


@dataclass(frozen=True)
class Measure:
    name: str
    sql: str
    """Expression over components in braces."""
    format: Format
    description: str
    needs: tuple[DataFlag, ...] = ()

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(name for name in COMPONENTS if "{" + name + "}" in self.sql)


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure(
            "revenue",
            "{revenue}",
            "currency",
            "Sum of line revenue (quantity x unit price x (1 - discount)).",
        ),
        Measure("units", "{units}", "integer", "Units sold (sum of line quantities)."),
        Measure("orders", "{orders}", "integer", "Distinct orders."),
        Measure("lines", "{lines}", "integer", "Order lines."),
        Measure(
            "profit",
            "{profit}",
            "currency",
            "Sum of line profit (revenue - cost) where cost is known.",
            needs=("cost",),
        ),
        Measure(
            "margin_pct",
            "100.0 * {profit} / nullif({costed_revenue}, 0)",
            "percent",
            "Profit as % of the revenue of the lines whose cost is known.",
            needs=("cost",),
        ),
        Measure(
            "average_order_value",
            "{revenue} / nullif({orders}, 0)",
            "currency",
            "Revenue per distinct order.",
        ),
        Measure("customers", "{customers}", "integer", "Distinct customers who bought."),
        Measure(
            "new_customers",
            "{new_customers}",
            "integer",
            "Distinct customers whose first purchase ever falls in the period (the time bucket, "
            "else the date range; without either, every customer is new).",
        ),
        Measure(
            "repeat_customer_rate_pct",
            "100.0 * ({customers} - {new_customers}) / nullif({customers}, 0)",
            "percent",
            "Share of the period's customers who had bought before the period.",
        ),
        Measure("purchase_days", "{purchase_days}", "integer", "Distinct days with a purchase."),
        Measure("first_sale", "{first_sale}", "date", "Day of the first sale."),
        Measure("last_sale", "{last_sale}", "date", "Day of the latest sale."),
        Measure(
            "goal",
            "{goal}",
            "currency",
            "Revenue target of the goal plan (by region or salesman; each month overlapping the date "
            "range counts whole).",
        ),
        Measure(
            "goal_attainment_pct",
            "100.0 * {revenue} / nullif({goal}, 0)",
            "percent",
            "Revenue as % of the goal.",
        ),
    )
}

GOAL_MEASURES = frozenset({"goal", "goal_attainment_pct"})


@dataclass(frozen=True)
class Dimension:
    name: str
    sql: str
    """Expression over fields in braces (a plain ``{field}`` for most)."""
    description: str
    type: Literal["string", "integer"] = "string"
    label: str | None = None
    """A field shown beside the value (a name beside an id), joined after aggregation."""
    needs: DataFlag | None = None
    public: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name in (*FIELDS, *TIME_FIELDS) if "{" + name + "}" in self.sql)

    @property
    def plain_field(self) -> str | None:
        """The field when the dimension is exactly one field (rollup rows then split by it)."""
        inner = self.sql[1:-1]
        return inner if self.sql == "{" + inner + "}" and inner in FIELDS else None


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension("category", "{category}", "Product category."),
        Dimension("subcategory", "{subcategory}", "Product subcategory."),
        Dimension("product", "{product_id}", "Product id (with its name).", label="product_name"),
        Dimension("region", "{region}", "Sales region of the customer (the region of a sale)."),
        Dimension("state", "{state}", "Customer's state (two-letter code)."),
        Dimension("city", "{city}", "Customer's city."),
        Dimension("zip", "{zip}", "Customer's five-digit zip code."),
        Dimension(
            "distributor",
            "{distributor_id}",
            "Distributor of a trade-channel line (with its name).",
            label="distributor_name",
            needs="distributor",
        ),
        Dimension(
            "salesman",
            "{salesman_id}",
            "Salesman of the line (with his name).",
            label="salesman_name",
            needs="salesman",
        ),
        Dimension("channel", "{channel}", "'direct' or 'trade'."),
        Dimension("customer", "{customer_id}", "Customer id (with the name).", label="customer_name"),
        Dimension(
            "customer_segment",
            "{customer_segment}",
            "Rule-based RFM segment of the customer over all data (Champions, Loyal, At Risk, ...; "
            "see the rfm-segments report).",
        ),
        Dimension(
            "customer_type",
            "CASE WHEN {first_purchase} >= {period_start} THEN 'new' ELSE 'repeat' END",
            "'new' when the customer's first purchase ever falls in the period (time bucket, else "
            "date range), otherwise 'repeat'.",
        ),
        Dimension("month_of_year", "month({month})", "Month of the year, 1-12.", type="integer"),
        Dimension(
            "day_of_week", "isodow({day})", "ISO day of the week, 1 = Monday ... 7 = Sunday.", type="integer"
        ),
        Dimension("hour_of_day", "hour({at})", "Hour of the day of the order, 0-23.", type="integer"),
        # For reports only: a market basket is the set of products of one order.
        Dimension("order", "{order_id}", "Order id.", public=False),
    )
}

PUBLIC_DIMENSIONS = {name: d for name, d in DIMENSIONS.items() if d.public}


def constant_fields(entity: str, uniform: frozenset[str]) -> frozenset[str]:
    """Fields that are a function of ``entity``: rollup rows differing only in these share no entity.

    ``uniform`` names the line fields found constant within every order (checked on the data, since the
    schema does not promise it): when orders never span days, an order counted on one day is on no other.
    """
    if entity == "customer_id":
        return CUSTOMER_FIELDS
    if entity == "day":
        return frozenset({"day", "month"})
    if entity == "order_id":
        constant = set()
        if "customer_id" in uniform:
            constant |= CUSTOMER_FIELDS
        if "day" in uniform:
            constant |= {"day", "month"}
        constant |= uniform & {"channel", "salesman_id", "distributor_id"}
        return frozenset(constant)
    return frozenset()


ORDER_UNIFORM_FIELDS: dict[str, str] = {
    "customer_id": "o.customer_id",
    "day": "CAST(o.ordered_at AS DATE)",
    "channel": "o.channel",
    # An empty value counts as a value: rollups keep it apart ('') from every named one.
    "salesman_id": "coalesce(o.salesman_id, '')",
    "distributor_id": "coalesce(o.distributor_id, '')",
}
"""Line fields whose constancy within an order is checked, with their SQL over ``order_lines o``."""


@dataclass(frozen=True)
class Rollup:
    """A pre-aggregated table, exact and maintained in the same transaction as every ingest."""

    name: str
    time: Literal["day", "month"] | None
    fields: tuple[str, ...]
    components: tuple[str, ...] = ("revenue", "units", "profit", "costed_revenue", "lines")
    description: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        return (self.time, *self.fields) if self.time else self.fields


ADDITIVE = ("revenue", "units", "profit", "costed_revenue", "lines")

ROLLUPS: tuple[Rollup, ...] = (
    Rollup("agg_day_product", "day", ("product_id", "region"), description="Products by day."),
    Rollup(
        "agg_day_category",
        "day",
        ("category", "subcategory", "region", "channel"),
        description="Categories by day (the sales-by-category reports).",
    ),
    Rollup(
        "agg_day_salesman",
        "day",
        ("salesman_id", "region", "channel"),
        (*ADDITIVE, "orders"),
        "Sales force by day.",
    ),
    Rollup(
        "agg_month_product",
        "month",
        ("product_id", "region", "channel", "distributor_id"),
        (*ADDITIVE, "orders"),
        "Products, channels and distributors by month.",
    ),
    Rollup(
        "agg_month_state",
        "month",
        ("region", "state", "channel", "distributor_id"),
        (*ADDITIVE, "orders"),
        "States by month.",
    ),
    Rollup(
        "agg_month_geo",
        "month",
        ("region", "state", "city", "zip", "channel"),
        (*ADDITIVE, "orders"),
        "Zip codes by month.",
    ),
    Rollup(
        "agg_month_customer",
        "month",
        ("customer_id", "region", "first_purchase"),
        (*ADDITIVE, "orders", "customers"),
        "Customers by month: active, new and repeat customers.",
    ),
    Rollup(
        "agg_product",
        None,
        ("product_id", "region", "channel", "distributor_id"),
        (*ADDITIVE, "orders", "first_sale", "last_sale"),
        "Products over all time (the default view of product reports).",
    ),
    Rollup(
        "agg_geo",
        None,
        ("region", "state", "city", "zip", "channel"),
        (*ADDITIVE, "orders"),
        "Zip codes over all time.",
    ),
    Rollup(
        "agg_customer",
        None,
        ("customer_id", "region", "state", "city", "zip"),
        (*ADDITIVE, "orders", "purchase_days", "first_sale", "last_sale"),
        "Customers over all time (RFM, lifetime value, churn).",
    ),
)


# --- the RFM segments, shared by the customer_segment dimension and the rfm-segments report ---

RFM_SEGMENT_RULES: tuple[tuple[str, str, str], ...] = (
    ("Champions", "r_score >= 4 AND f_score >= 4", "Bought recently and often."),
    ("At Risk", "r_score <= 2 AND f_score >= 3", "Used to buy often, not lately."),
    ("Loyal", "f_score >= 3", "Buy often."),
    ("New", "r_score >= 4 AND frequency = 1", "First purchase was recent."),
    ("Promising", "r_score >= 4", "Recent buyers who buy rarely."),
    ("Lost", "r_score = 1", "Long gone, rarely bought."),
    ("Hibernating", "r_score = 2", "Not lately, rarely bought."),
    ("Need Attention", "TRUE", "Middling recency, rarely bought."),
)
"""First matching rule wins. Scores are quintiles 1-5 over the customers (5 = most recent, most frequent,
most spent), computed from the rank with ties sharing the lower score, so they are deterministic and the
many customers with a single order all score 1 on frequency."""


def rfm_scores_sql(stats: str, as_of: str) -> str:
    """Per customer: recency, frequency, monetary, their 1-5 scores and the segment.

    ``stats`` is a relation with customer_id, last_sale, orders and revenue; ``as_of`` an SQL date
    expression (a parameter or a subquery), never user text.
    """
    segment = " ".join(f"WHEN {rule} THEN '{name}'" for name, rule, _ in RFM_SEGMENT_RULES)
    # score = ceil(5 * rank / n), rank() giving ties the lowest rank: integer arithmetic, so a rank on a
    # quintile boundary is never pushed over by floating-point rounding.
    score = "CAST((5 * rank() OVER (ORDER BY {x}) + n - 1) // n AS INTEGER)"
    return f"""
        SELECT *, CASE {segment} END AS segment
        FROM (
            SELECT *,
                {score.format(x="recency_days DESC")} AS r_score,
                {score.format(x="frequency")} AS f_score,
                {score.format(x="monetary")} AS m_score
            FROM (
                SELECT customer_id, CAST(({as_of}) - last_sale AS INTEGER) AS recency_days,
                       orders AS frequency, revenue AS monetary, count(*) OVER () AS n
                FROM {stats}
                WHERE orders > 0
            )
        )
    """


CUSTOMER_STATS = (
    "(SELECT customer_id, max(last_sale) AS last_sale, sum(orders) AS orders, sum(revenue) AS revenue "
    "FROM agg_customer GROUP BY customer_id)"
)
SEGMENTS_CTE = (
    "customer_segments AS ("
    + rfm_scores_sql(CUSTOMER_STATS, "(SELECT max(last_sale) FROM agg_customer)")
    + ")"
)
"""The customer_segment lookup: RFM over all data, as of the last day with sales."""


@dataclass(frozen=True)
class Limits:
    max_rows: int = 50_000
    max_values: int = 1_000
    max_members: int = 20


META_NOTES: dict[str, list[str]] = {
    "filters": [
        "equals: one value; in / not_in: one or more values (not_in keeps rows where the member is empty); "
        "range: [low, high], inclusive, either may be null; set / not_set: no values.",
        "A filter on a measure applies to the result rows (like SQL HAVING).",
    ],
    "time": [
        "time_dimension.date_range is [start, end], both inclusive ISO dates.",
        "compare needs a date_range; previous_period is the equally long period just before (the same number "
        "of whole months or weeks when the range is aligned to the grain).",
    ],
}
