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

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from salespulse.warehouse.schema import GOAL_TABLES


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
    """The column in the base join, e.g. ``o.revenue``, ``o.ship_region`` or ``c.customer_name``."""
    lookup: str | None = None
    """Alias of the lookup that provides the field; None when it is on the order line."""
    null_code: str = "''"
    """What a rollup stores for NULL in a key (so rows are found by plain equality): '' for text."""

    @property
    def column(self) -> str:
        """The column of its table (``ship_region`` for the field ``region``)."""
        return self.sql.split(".", 1)[1]


def _line(*names: str) -> dict[str, Field]:
    return {n: Field(n, f"o.{n}") for n in names}


def _ship_to(*parts: str) -> dict[str, Field]:
    """Geography of the sale: where the line shipped, which an order line carries itself (``ship_<part>``)."""
    return {part: Field(part, f"o.ship_{part}") for part in parts}


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
    # A customer may order to several places, so the geography of a sale is the line's ship-to.
    **_ship_to("region", "country", "state", "city", "zip"),
    **_from("c", customer_name="customer_name"),
    "first_purchase": Field("first_purchase", "c.first_purchase", "c", NEVER),
    **_from("p", category="category", subcategory="subcategory", product_name="product_name"),
    **_from("s", salesman_name="salesman_name", salesman_region="region"),
    **_from("d", distributor_name="distributor_name"),
    **_from("seg", customer_segment="segment"),
    # Attributes of the dimension tables that no dimension groups by: what an entity listing shows (a
    # catalogue, a roster, a map; see ENTITIES). The customer's address is where the customer is, which
    # stays apart from the geography of a sale (region, state, city, zip above) even when a sale ships
    # elsewhere.
    **_from(
        "c",
        customer_country="country",
        customer_city="city",
        customer_state="state",
        customer_zip="zip",
        customer_latitude="latitude",
        customer_longitude="longitude",
    ),
    **_from(
        "d",
        distributor_city="city",
        distributor_state="state",
        distributor_zip="zip",
        distributor_latitude="latitude",
        distributor_longitude="longitude",
    ),
    **_from("p", launched_on="launched_on", discontinued_on="discontinued_on"),
    **_from("s", salesman_hire_date="hire_date"),
}

# Time fields form a chain: a source that stores the order timestamp derives the day from it, and a source
# that stores days derives months. A month rollup has no day, so it cannot answer a daily question.
TIME_FIELDS: tuple[str, ...] = ("at", "day", "month")
TIME_DERIVATIONS: dict[str, tuple[str, str]] = {
    "day": ("at", "CAST({at} AS DATE)"),
    "month": ("day", "CAST(date_trunc('month', {day}) AS DATE)"),
}

# Fields that are a function of the customer: rollup rows that differ only in these never share a customer.
# The geography of a sale is not (a customer orders to several places).
CUSTOMER_FIELDS: frozenset[str] = frozenset(
    {"customer_id", "customer_segment"} | {name for name, spec in FIELDS.items() if spec.lookup == "c"}
)
GEOGRAPHY_FIELDS: tuple[str, ...] = ("region", "country", "state", "city", "zip")
"""The ship-to fields that dimensions and rollups group by (an order ships to one place: see
ORDER_UNIFORM_FIELDS)."""


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
        # The goals come from the goal plan, not from order lines (see compiler.goal_sql): the whole months'
        # targets, and the same pro-rated to the selling days the period's revenue covers (GoalBasis).
        Component("goal", "", merge=None, zero_when_empty=False),
        Component("goal_to_date", "", merge=None, zero_when_empty=False),
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
            f"Revenue target of the goal plan (by {' or '.join(GOAL_TABLES)}, one plan at a time), of whole "
            "months: each month overlapping the date range counts whole.",
        ),
        Measure(
            "goal_to_date",
            "{goal_to_date}",
            "currency",
            "The goal the period's revenue is measured against: a month that the date range or the data "
            "cuts short (the running month) counts its target pro-rated to the selling days covered, a month "
            "after the last day with data counts nothing, the others count whole.",
        ),
        Measure(
            "goal_attainment_pct",
            "100.0 * {revenue} / nullif({goal_to_date}, 0)",
            "percent",
            "Revenue as % of goal_to_date (so a running month is judged on the selling days elapsed).",
        ),
    )
}

GOAL_COMPONENTS = ("goal", "goal_to_date")
GOAL_MEASURES = frozenset(name for name, m in MEASURES.items() if set(GOAL_COMPONENTS) & set(m.components))


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
    example: str | int | None = None
    """A typical member (documentation, and the example of a report's filter parameter)."""
    filter: bool = False
    """Every report takes it as a filter parameter: a list of members, each checked to exist."""
    values: tuple[str, ...] | None = None
    """The members when they are a closed list; otherwise they are what the warehouse holds."""
    cycle: tuple[int, int] | None = None
    """A part of time that repeats (month of year, weekday, hour): its first and last value."""

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
        Dimension(
            "region",
            "{region}",
            "Sales region of the line's ship-to address (in the US, from its state unless given).",
            example="West",
            filter=True,
        ),
        Dimension(
            "country",
            "{country}",
            "Ship-to country of the line ('United States', 'Canada', ...).",
            example="United States",
            filter=True,
        ),
        Dimension(
            "state",
            "{state}",
            "Ship-to state or province of the line (a two-letter code in the US).",
            example="CA",
            filter=True,
        ),
        # A city name alone is not a place: ten Springfields in ten states are ten cities.
        Dimension(
            "city",
            "{city} || coalesce(', ' || {state}, '')",
            "Ship-to city of the line with its state ('Springfield, IL'): namesakes in other states stay "
            "apart.",
            example="San Francisco, CA",
        ),
        Dimension(
            "zip", "{zip}", "Ship-to postal code of the line (five digits in the US).", example="94105"
        ),
        Dimension("category", "{category}", "Product category.", example="Technology", filter=True),
        Dimension("subcategory", "{subcategory}", "Product subcategory.", example="Phones", filter=True),
        Dimension(
            "product",
            "{product_id}",
            "Product id (with its name).",
            label="product_name",
            example="P-00001",
            filter=True,
        ),
        Dimension(
            "channel",
            "{channel}",
            "'direct' or 'trade'.",
            example="direct",
            filter=True,
            values=("direct", "trade"),
        ),
        Dimension(
            "salesman",
            "{salesman_id}",
            "Salesman of the line (with his name).",
            label="salesman_name",
            needs="salesman",
            example="S-0003",
            filter=True,
        ),
        Dimension(
            "distributor",
            "{distributor_id}",
            "Distributor of a trade-channel line (with its name).",
            label="distributor_name",
            needs="distributor",
            example="D-0001",
            filter=True,
        ),
        Dimension(
            "customer",
            "{customer_id}",
            "Customer id (with the name).",
            label="customer_name",
            example="C-0000042",
        ),
        Dimension(
            "customer_segment",
            "{customer_segment}",
            "Rule-based RFM segment of the customer over all data (Champions, Loyal, At Risk, ...; "
            "see the rfm-segments report).",
            example="Champions",
            filter=True,
            values=tuple(name for name, _, _ in RFM_SEGMENT_RULES),
        ),
        Dimension(
            "customer_type",
            "CASE WHEN {first_purchase} >= {period_start} THEN 'new' ELSE 'repeat' END",
            "'new' when the customer's first purchase ever falls in the period (time bucket, else "
            "date range), otherwise 'repeat'.",
            example="new",
            values=("new", "repeat"),
        ),
        Dimension(
            "month_of_year",
            "month({month})",
            "Month of the year, 1-12.",
            type="integer",
            example=12,
            cycle=(1, 12),
        ),
        Dimension(
            "day_of_week",
            "isodow({day})",
            "ISO day of the week, 1 = Monday ... 7 = Sunday.",
            type="integer",
            example=1,
            cycle=(1, 7),
        ),
        Dimension(
            "hour_of_day",
            "hour({at})",
            "Hour of the day of the order, 0-23.",
            type="integer",
            example=10,
            cycle=(0, 23),
        ),
        # For reports only: a market basket is the set of products of one order.
        Dimension("order", "{order_id}", "Order id.", public=False),
    )
}

PUBLIC_DIMENSIONS = {name: d for name, d in DIMENSIONS.items() if d.public}
FILTER_DIMENSIONS = {name: d for name, d in DIMENSIONS.items() if d.filter}


@dataclass(frozen=True)
class Entity:
    """A dimension table listed in its own right, one row per key: a catalogue, a roster, a map.

    Reports list an entity beside what it sold (a map of distributors shows those without sales too, a slow
    movers list the products that never sold); its SQL is built from these declarations and the fields'.
    """

    dimension: str
    """The dimension of its key (the output column of the key)."""
    lookup: str
    attributes: dict[str, str]
    """Output column -> field of the lookup."""

    @property
    def table(self) -> Lookup:
        return LOOKUPS[self.lookup]


ENTITIES: dict[str, Entity] = {
    e.dimension: e
    for e in (
        Entity(
            "customer",
            "c",
            {
                "customer_name": "customer_name",
                "city": "customer_city",
                "state": "customer_state",
                "zip": "customer_zip",
                "latitude": "customer_latitude",
                "longitude": "customer_longitude",
            },
        ),
        Entity(
            "distributor",
            "d",
            {
                "distributor_name": "distributor_name",
                "city": "distributor_city",
                "state": "distributor_state",
                "zip": "distributor_zip",
                "latitude": "distributor_latitude",
                "longitude": "distributor_longitude",
            },
        ),
        Entity(
            "product",
            "p",
            {
                "product_name": "product_name",
                "category": "category",
                "subcategory": "subcategory",
                "launched_on": "launched_on",
                "discontinued_on": "discontinued_on",
            },
        ),
        Entity(
            "salesman",
            "s",
            {
                "salesman_name": "salesman_name",
                "home_region": "salesman_region",
                "hire_date": "salesman_hire_date",
            },
        ),
    )
}
ATTRIBUTE_FORMATS: dict[str, Format] = {
    "latitude": "number",
    "longitude": "number",
    "launched_on": "date",
    "discontinued_on": "date",
    "hire_date": "date",
}
"""Entity attributes that are not text."""


@dataclass(frozen=True)
class GoalPlan:
    """One table of the goal plan: monthly revenue targets for the members of one dimension (its level).

    Goal measures come from one plan at a time, split and filtered by the plan's level or by an attribute of
    the level's entity (a product's category and subcategory), never by what only a sale has (its region).
    """

    level: str
    """The dimension planned (region, salesman, category, product)."""
    table: str
    member: str
    """The table's column holding the member: the level dimension's own field (product_id, ...)."""
    judged_by: dict[str, str] = field(default_factory=dict)
    """Dimension -> a field of the level's entity that stands for it in the plan: a salesman's goal counts
    toward his home region, which the sales' region (the ship-to's) is not."""

    @property
    def entity(self) -> Entity | None:
        return ENTITIES.get(self.level)


def _goal_plan(level: str, judged_by: dict[str, str] | None = None) -> GoalPlan:
    table = GOAL_TABLES[level]
    member = table.key[1]
    # The plan's member column must be the dimension's field, or the goals and the sales would not join.
    assert DIMENSIONS[level].plain_field == member, f"{table.name}.{member} is not the {level} dimension"
    return GoalPlan(level, table.name, member, judged_by or {})


GOAL_PLANS: dict[str, GoalPlan] = {
    level: _goal_plan(level, {"region": "salesman_region"} if level == "salesman" else None)
    for level in GOAL_TABLES
}
"""The goal plan by level, from the warehouse's declaration (the region plan first: a total without any
dimension compares with it)."""


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
        constant |= uniform & {"channel", "salesman_id", "distributor_id", *GEOGRAPHY_FIELDS}
        return frozenset(constant)
    return frozenset()


ORDER_UNIFORM_FIELDS: dict[str, str] = {
    "customer_id": "o.customer_id",
    "day": "CAST(o.ordered_at AS DATE)",
    "channel": "o.channel",
    # An empty value counts as a value: rollups keep it apart ('') from every named one.
    "salesman_id": "coalesce(o.salesman_id, '')",
    "distributor_id": "coalesce(o.distributor_id, '')",
    # An order ships to one place in the data seen so far, but nothing forces it: checked like the others.
    **{name: f"coalesce({FIELDS[name].sql}, '')" for name in GEOGRAPHY_FIELDS},
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
        ("region", "country", "state", "channel", "distributor_id"),
        (*ADDITIVE, "orders"),
        "States by month.",
    ),
    Rollup(
        "agg_month_geo",
        "month",
        ("region", "country", "state", "city", "zip", "channel"),
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
        "agg_month_buyer",
        "month",
        ("customer_id", "first_purchase"),
        (*ADDITIVE, "orders", "customers"),
        # One row per customer and month, whatever places he shipped to: summing its customer counts is
        # exact, where agg_month_customer (by region too) needs a distinct count over 1.6M rows at 10M lines
        # (new vs repeat customers: 150 ms -> 25 ms).
        "Customers by month, all places together: active, new and repeat customers without a geography.",
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
        ("region", "country", "state", "city", "zip", "channel"),
        (*ADDITIVE, "orders"),
        "Zip codes over all time.",
    ),
    Rollup(
        "agg_customer",
        None,
        # Keyed by the customer alone: with geography on the order line, one customer's rows per ship-to
        # could not answer his distinct counts (purchase days) and churn, RFM and lifetime value would read
        # the order lines. A report filtered by geography reads agg_month_customer or the lines instead.
        ("customer_id",),
        (*ADDITIVE, "orders", "purchase_days", "first_sale", "last_sale"),
        "Customers over all time (RFM, lifetime value, churn).",
    ),
)


# --- the RFM segments, shared by the customer_segment dimension and the rfm-segments report ---


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
