"""The sales data model, declared once.

The DDL, the import validation and the README's data dictionary all come from these declarations, so a
column is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    required: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str = ""
    checks: tuple[str, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self) -> str:
        body = [f"{c.name} {c.sql_type}{' NOT NULL' if c.required else ''}" for c in self.columns]
        body.append(f"PRIMARY KEY ({', '.join(self.key)})")
        body.extend(f"CHECK ({check})" for check in self.checks)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    " + ",\n    ".join(body) + "\n)"


SCHEMA_VERSION = 2
"""The version of the schema these declarations describe; salespulse/warehouse/migrations.py brings an
older warehouse up to it (version 0 is the schema before versions were kept)."""

UNITED_STATES = "United States"
"""How a ``country`` column writes the US, whichever spelling the source used (US_SPELLINGS)."""
US_SPELLINGS: frozenset[str] = frozenset(
    {"US", "USA", "U.S.", "U.S.A.", "UNITED STATES", "UNITED STATES OF AMERICA", "AMERICA"}
)
"""Upper-cased ways exports write the US in a country column; other countries are kept as written."""

# Where an order line was shipped to: a sale's own geography. Exports write it per line (ship-to), and a
# customer who orders to several places has lines in several of them, so reports by region, state, city or
# zip read these columns, not the customer's address. All are optional: a line the source gives no
# geography takes its customer's address when written; state and zip mean something only in some
# countries. Named ship_* so that they never shadow the customer's city, state, ... in a join or a result.
# Columns added to order_lines later go after these (a migration appends them to a stored table).
LINE_GEOGRAPHY: tuple[Column, ...] = (
    Column("ship_city", "VARCHAR", required=False, doc="Ship-to city"),
    Column("ship_state", "VARCHAR", required=False, doc="Ship-to state: a two-letter code in the US"),
    Column("ship_zip", "VARCHAR", required=False, doc="Ship-to postal code; five digits in the US"),
    Column("ship_region", "VARCHAR", required=False, doc="Sales region (US: from the state if not given)"),
    Column("ship_country", "VARCHAR", required=False, doc=f"Ship-to country ('{UNITED_STATES}' for the US)"),
    Column("ship_latitude", "DOUBLE", required=False, doc="As given, else from the zip code in the US"),
    Column("ship_longitude", "DOUBLE", required=False, doc="As given, else from the zip code in the US"),
)
LINE_GEOGRAPHY_COLUMNS: tuple[str, ...] = tuple(c.name for c in LINE_GEOGRAPHY)
ADDRESS_FIELDS: tuple[str, ...] = tuple(name.removeprefix("ship_") for name in LINE_GEOGRAPHY_COLUMNS)
"""The parts of an address (city, state, zip, region, country, latitude, longitude): what an import mapping,
a customer row and a real-time line call them; ``ship_<part>`` on an order line."""

PRODUCTS = Table(
    "products",
    (
        Column("product_id", "VARCHAR"),
        Column("product_name", "VARCHAR"),
        Column("category", "VARCHAR"),
        Column("subcategory", "VARCHAR"),
        Column("list_price", "DOUBLE", required=False, doc="Catalogue price per unit"),
        Column("unit_cost", "DOUBLE", required=False, doc="Cost per unit; unknown for some imports"),
        Column("launched_on", "DATE", required=False),
        Column("discontinued_on", "DATE", required=False, doc="Set when the product stopped selling"),
    ),
    key=("product_id",),
    doc="Product catalogue with its category hierarchy.",
)

CUSTOMERS = Table(
    "customers",
    (
        Column("customer_id", "VARCHAR"),
        Column("customer_name", "VARCHAR", required=False),
        Column("city", "VARCHAR", required=False),
        Column("state", "VARCHAR", required=False, doc="Two-letter US state code"),
        Column("zip", "VARCHAR", required=False, doc="Five-digit US zip code"),
        Column("region", "VARCHAR", required=False, doc="Sales region (West, Central, South, East)"),
        Column("latitude", "DOUBLE", required=False),
        Column("longitude", "DOUBLE", required=False),
        Column("first_purchase", "TIMESTAMP", required=False, doc="Derived from order lines"),
        Column("country", "VARCHAR", required=False, doc=f"'{UNITED_STATES}' for the US"),
    ),
    key=("customer_id",),
    doc="Customers and where they are (their latest address: a sale's own geography is on its order line).",
)

SALESMEN = Table(
    "salesmen",
    (
        Column("salesman_id", "VARCHAR"),
        Column("salesman_name", "VARCHAR", required=False),
        Column("region", "VARCHAR", required=False),
        Column("hire_date", "DATE", required=False),
    ),
    key=("salesman_id",),
    doc="Sales force, one home region each.",
)

DISTRIBUTORS = Table(
    "distributors",
    (
        Column("distributor_id", "VARCHAR"),
        Column("distributor_name", "VARCHAR", required=False),
        Column("city", "VARCHAR", required=False),
        Column("state", "VARCHAR", required=False),
        Column("zip", "VARCHAR", required=False),
        Column("latitude", "DOUBLE", required=False),
        Column("longitude", "DOUBLE", required=False),
    ),
    key=("distributor_id",),
    doc="Trade-channel distributors.",
)

ORDER_LINES = Table(
    "order_lines",
    (
        Column("order_id", "VARCHAR"),
        Column("line", "INTEGER", doc="Line number within the order; with order_id, the key"),
        Column("ordered_at", "TIMESTAMP"),
        Column("customer_id", "VARCHAR"),
        Column("product_id", "VARCHAR"),
        Column("salesman_id", "VARCHAR", required=False, doc="Missing in exports without a sales force"),
        Column("distributor_id", "VARCHAR", required=False, doc="Set on trade-channel lines"),
        Column("channel", "VARCHAR", doc="'direct' or 'trade'"),
        Column("quantity", "INTEGER"),
        Column("unit_price", "DOUBLE"),
        Column("discount", "DOUBLE", doc="Fraction of the unit price taken off, 0 <= d < 1"),
        Column("revenue", "DOUBLE", doc="quantity x unit_price x (1 - discount)"),
        Column("cost", "DOUBLE", required=False, doc="Missing when the export has no cost"),
        Column("profit", "DOUBLE", required=False, doc="revenue - cost"),
        *LINE_GEOGRAPHY,
    ),
    key=("order_id", "line"),
    doc="The fact table: one row per order line, with where it was shipped to.",
    checks=(
        "channel IN ('direct', 'trade')",
        "quantity > 0",
        "discount >= 0 AND discount < 1",
    ),
)

REGION_GOALS = Table(
    "region_goals",
    (
        Column("month", "DATE", doc="First day of the month"),
        Column("region", "VARCHAR"),
        Column("revenue_target", "DOUBLE"),
    ),
    key=("month", "region"),
    doc="Revenue plan by month and region.",
)

SALESMAN_GOALS = Table(
    "salesman_goals",
    (
        Column("month", "DATE", doc="First day of the month"),
        Column("salesman_id", "VARCHAR"),
        Column("revenue_target", "DOUBLE"),
    ),
    key=("month", "salesman_id"),
    doc="Revenue plan by month and salesman.",
)

CATEGORY_GOALS = Table(
    "category_goals",
    (
        Column("month", "DATE", doc="First day of the month"),
        Column("category", "VARCHAR"),
        Column("revenue_target", "DOUBLE"),
    ),
    key=("month", "category"),
    doc="Revenue plan by month and product category (imported with `data import-goals`).",
)

PRODUCT_GOALS = Table(
    "product_goals",
    (
        Column("month", "DATE", doc="First day of the month"),
        Column("product_id", "VARCHAR"),
        Column("revenue_target", "DOUBLE"),
    ),
    key=("month", "product_id"),
    doc="Revenue plan by month and product (imported with `data import-goals`).",
)

GOAL_TABLES: dict[str, Table] = {
    "region": REGION_GOALS,
    "salesman": SALESMAN_GOALS,
    "category": CATEGORY_GOALS,
    "product": PRODUCT_GOALS,
}
"""The goal plan by level: each table's second key column is the member of that level."""

SYNC_STATE = Table(
    "sync_state",
    (
        Column("source", "VARCHAR", doc="host:port/database and table or query; no user or password"),
        Column("watermark_column", "VARCHAR"),
        Column("key_columns", "VARCHAR[]", doc="Tiebreak among rows of one watermark value"),
        Column("last_watermark", "VARCHAR", doc="Watermark of the last row synced, as the source writes it"),
        Column("last_key", "VARCHAR[]", doc="Key of the last row synced, as the source writes it"),
        Column("rows_synced", "BIGINT", doc="Rows committed over all runs (skipped invalid ones too)"),
        Column("date_order", "VARCHAR", required=False, doc="'month first' or 'day first' once settled"),
        Column("synced_at", "TIMESTAMP", doc="When the last chunk was committed"),
    ),
    key=("source",),
    doc="Where each `salespulse data sync` source stands: written in the transaction of each chunk it syncs.",
)

DIMENSION_TABLES: tuple[Table, ...] = (PRODUCTS, CUSTOMERS, SALESMEN, DISTRIBUTORS)
ALL_TABLES: tuple[Table, ...] = (*DIMENSION_TABLES, ORDER_LINES, *GOAL_TABLES.values(), SYNC_STATE)
TABLES_BY_NAME = {t.name: t for t in ALL_TABLES}
