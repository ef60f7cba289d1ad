"""The one write path for sales: a batch of order lines (and what is known of their customers, products,
salesmen and distributors) goes into the warehouse in one transaction.

Both the file import and the real-time sales endpoint call :func:`upsert_sales`, so a sale is stored the
same way whichever door it came through. A line's geography (schema.LINE_GEOGRAPHY) is the line's own; a
line with none at all takes its customer's address (:func:`complete_line_geography`). Everything is
set-based SQL whose cost grows with the batch, not with the warehouse, except where a batch replaces lines
it already had (see ``_refresh_first_purchase``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa

from salespulse.warehouse.schema import (
    ADDRESS_FIELDS,
    CUSTOMERS,
    DIMENSION_TABLES,
    LINE_GEOGRAPHY_COLUMNS,
    ORDER_LINES,
    Table,
)
from salespulse.warehouse.store import transaction

Batch = duckdb.DuckDBPyRelation | pd.DataFrame | pa.Table
Progress = Callable[[str], None]

# NOT NULL dimension columns that a bare key (seen only on an order line) cannot know yet: a new row gets
# these stand-ins, and the first batch that brings real values overwrites them.
PLACEHOLDERS: dict[str, str] = {
    "product_name": "product_id",
    "category": "'Unknown'",
    "subcategory": "'Unknown'",
}


@dataclass(frozen=True)
class Known:
    """What the caller knows of the warehouse before the write, so that the upsert skips statements that
    would change nothing. Each costs a scan of its table (milliseconds), which a real-time batch of a
    thousand lines feels; the analytics engine keeps these facts in memory. Claim only what is certain."""

    complete_tables: frozenset[str] = frozenset()
    """Dimension tables that already hold every key the lines refer to (and that get no rows described)."""
    first_purchases_stay: bool = False
    """No line is earlier than its customer's first purchase, and no stored line is replaced by another."""
    lines_are_new: bool = False
    """No line of the batch is stored yet (so none moves from one customer to another, and the lines are
    inserted without counting the table)."""
    prices_known: bool = False
    """Every product the lines refer to has a list price and a unit cost already (none is estimated)."""
    first_purchases: pa.Table | None = None
    """The customers whose first purchase the lines may move (customer_id), each with his earliest line
    (first_purchase): when no stored line is replaced, only these are updated (no pass over the lines)."""


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int
    """Order lines whose (order_id, line) was new."""
    updated: int
    """Order lines that replaced a stored line with the same (order_id, line)."""
    new_dimension_rows: dict[str, int]
    """Rows added per dimension table (customers, products, salesmen, distributors)."""


def upsert_sales(
    con: duckdb.DuckDBPyConnection,
    order_lines: Batch,
    *,
    customers: Batch | None = None,
    products: Batch | None = None,
    salesmen: Batch | None = None,
    distributors: Batch | None = None,
    progress: Progress | None = None,
    before_commit: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    known: Known = Known(),
    geography_from_customers: bool = False,
) -> UpsertCounts:
    """Insert or replace order lines, and add or complete the dimension rows they refer to, atomically.

    ``order_lines`` has the ORDER_LINES columns (optional ones may be left out: they are stored as NULL)
    and one row per (order_id, line). The dimension batches hold the key and any subset of the table's
    other columns, one row per key; a NULL there never wipes a value the warehouse already knows. Keys
    that lines refer to but no dimension batch describes get a row of their own. ``before_commit`` runs
    inside the transaction after the writes (the analytics rollups are kept in step there). ``known`` lets
    a caller that is sure of them skip the steps that would change nothing. With ``geography_from_customers``
    a line without any geography is stored with its customer's address (as this batch leaves it); the file
    import asks for it. The real-time path keeps its batch equal to what is stored, so it completes the
    batch first instead (from the engine's cache of the addresses: analytics.rollups.Lookups).
    """
    report = progress or (lambda _message: None)
    batches = {
        "order_lines": order_lines, "customers": customers, "products": products, "salesmen": salesmen,
        "distributors": distributors,
    }  # fmt: skip
    with _registered(con, batches) as views:
        lines = _with_all_order_line_columns(con, views["order_lines"], _batch_columns(order_lines))
        line_count = _batch_rows(order_lines)
        if line_count is None:
            line_count = _count(con, lines)
        with transaction(con):
            report(f"Writing {line_count:,} rows to the warehouse")
            new_rows = {
                table.name: _upsert_dimension(
                    con, table, views.get(table.name), lines, _batch_columns(batches[table.name])
                )
                if table.name in views or table.name not in known.complete_tables
                else 0
                for table in DIMENSION_TABLES
            }
            may_move = not (known.first_purchases_stay or known.lines_are_new)
            losing = _customers_losing(con, lines) if may_move else []
            with_geography = _with_customer_address(con, lines) if geography_from_customers else lines
            if known.lines_are_new:
                _insert_order_lines(con, with_geography)
                inserted = line_count
            else:
                inserted = _upsert_order_lines(con, with_geography)
            updated = line_count - inserted
            report("Updating customers' first purchase and products' prices")
            if not known.first_purchases_stay:
                _refresh_first_purchase(
                    con,
                    lines,
                    lines_were_replaced=updated > 0,
                    lost_lines=losing,
                    movers=known.first_purchases,
                )
            if not known.prices_known:
                _fill_unknown_product_prices(con, lines)
            if before_commit is not None:
                before_commit(con)
    return UpsertCounts(inserted=inserted, updated=updated, new_dimension_rows=new_rows)


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, batches: dict[str, Batch | None]) -> Iterator[dict[str, str]]:
    """Make each given DataFrame or relation queryable by name (upsert_<table>) for the upsert's duration."""
    names: dict[str, str] = {}
    try:
        for table_name, batch in batches.items():
            if batch is not None:
                names[table_name] = f"upsert_{table_name}"
                con.register(names[table_name], batch)
        yield names
    finally:
        for name in names.values():
            con.unregister(name)


def _batch_rows(batch: Batch) -> int | None:
    """The rows of an Arrow table or DataFrame (a relation's are counted by a query)."""
    return None if isinstance(batch, duckdb.DuckDBPyRelation) else len(batch)


def _batch_columns(batch: Batch | None) -> list[str]:
    """The columns of a batch, known without a query (none for an absent batch)."""
    if batch is None:
        return []
    if isinstance(batch, pa.Table):
        return batch.column_names
    return [str(c) for c in batch.columns]


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    (count,) = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0]
    return count


def _upsert_dimension(
    con: duckdb.DuckDBPyConnection, table: Table, batch: str | None, lines: str, columns: list[str]
) -> int:
    """Complete known rows with the batch's non-null values (``columns``: the batch's), then add the keys
    not stored yet.

    Returns the number of rows added.
    """
    (key,) = table.key
    attributes = [c for c in columns if c != key and c in table.column_names] if batch else []
    if attributes:
        assignments = ", ".join(f"{c} = coalesce(b.{c}, {table.name}.{c})" for c in attributes)
        con.execute(
            f"UPDATE {table.name} SET {assignments} FROM {batch} b WHERE {table.name}.{key} = b.{key}"
        )

    candidates = []
    if batch:
        candidates.append(f"SELECT {', '.join([key, *attributes])} FROM {batch}")
    if key in ORDER_LINES.column_names:
        only_in_lines = f"ANTI JOIN {batch} b USING ({key})" if batch else ""
        candidates.append(f"SELECT DISTINCT l.{key} FROM {lines} l {only_in_lines} WHERE l.{key} IS NOT NULL")
    if not candidates:
        return 0
    filled = [c for c in table.column_names if c != key and (c in attributes or c in PLACEHOLDERS)]
    values = [_value_for_new_row(c, known=c in attributes) for c in filled]
    # Filtering out known keys first is cheaper than letting the insert find each conflict in the index.
    (added,) = con.execute(
        f"INSERT INTO {table.name} ({', '.join([key, *filled])}) "
        f"SELECT {', '.join([key, *values])} FROM ({' UNION ALL BY NAME '.join(candidates)}) "
        f"ANTI JOIN {table.name} USING ({key})"
    ).fetchall()[0]
    return added


def _value_for_new_row(column: str, *, known: bool) -> str:
    if column not in PLACEHOLDERS:
        return column
    return f"coalesce({column}, {PLACEHOLDERS[column]})" if known else PLACEHOLDERS[column]


def _with_all_order_line_columns(con: duckdb.DuckDBPyConnection, batch: str, columns: list[str]) -> str:
    """The batch (with ``columns``) as a subquery with every ORDER_LINES column, NULL for optional ones it
    leaves out."""
    available = set(columns)
    missing = [c.name for c in ORDER_LINES.columns if c.required and c.name not in available]
    if missing:
        raise ValueError(f"the order lines lack required column(s): {', '.join(missing)}")
    selected = [
        c.name if c.name in available else f"CAST(NULL AS {c.sql_type}) AS {c.name}"
        for c in ORDER_LINES.columns
    ]
    return f"(SELECT {', '.join(selected)} FROM {batch})"


def complete_line_geography(con: duckdb.DuckDBPyConnection, lines: pa.Table) -> pa.Table:
    """The order lines (an Arrow table with the ORDER_LINES columns), those without any geography given
    their customer's stored address; the same table when every line has some (no join is paid then). The
    engine answers the same from its cache (rollups.Lookups.complete_geography; a test holds them equal)."""
    con.register("complete_geography_lines", lines.append_column("__position", pa.array(range(len(lines)))))
    try:
        completed = _with_customer_address(con, "complete_geography_lines")
        if completed == "complete_geography_lines":
            return lines
        return (
            con.sql(f"SELECT * EXCLUDE (__position) FROM {completed} ORDER BY __position")
            .to_arrow_table()
            .cast(lines.schema)
        )
    finally:
        con.unregister("complete_geography_lines")


def _with_customer_address(con: duckdb.DuckDBPyConnection, lines: str) -> str:
    """``lines`` with the customer's address on each line that has no geography at all (a line with any
    is kept as it is: a line that names only its country must not get a city of another). Returns
    ``lines`` itself when no line needs it."""
    silent = " AND ".join(f"l.{c} IS NULL" for c in LINE_GEOGRAPHY_COLUMNS)
    ((any_silent,),) = con.execute(
        f"SELECT count(*) > 0 FROM (FROM {lines} l WHERE {silent} LIMIT 1)"
    ).fetchall()
    if not any_silent:
        return lines
    taken = ", ".join(
        f"CASE WHEN {silent} THEN c.{part} ELSE l.{column} END AS {column}"
        for part, column in zip(ADDRESS_FIELDS, LINE_GEOGRAPHY_COLUMNS, strict=True)
        if part in CUSTOMERS.column_names
    )
    return (
        f"(SELECT l.* REPLACE ({taken}) FROM {lines} l "
        f"LEFT JOIN {CUSTOMERS.name} c ON c.customer_id = l.customer_id)"
    )


def _insert_order_lines(con: duckdb.DuckDBPyConnection, lines: str) -> None:
    """Insert lines of which none is stored yet (the caller knows): no counting of the table."""
    columns = ", ".join(ORDER_LINES.column_names)
    con.execute(f"INSERT INTO {ORDER_LINES.name} ({columns}) SELECT {columns} FROM {lines}")


def _upsert_order_lines(con: duckdb.DuckDBPyConnection, lines: str) -> int:
    """Insert new lines and replace stored ones with the same key; returns how many were new."""
    columns = ", ".join(ORDER_LINES.column_names)
    replaced = ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_LINES.column_names if c not in ORDER_LINES.key)
    before = _count(con, ORDER_LINES.name)
    con.execute(
        f"INSERT INTO {ORDER_LINES.name} ({columns}) SELECT {columns} FROM {lines} "
        f"ON CONFLICT ({', '.join(ORDER_LINES.key)}) DO UPDATE SET {replaced}"
    )
    return _count(con, ORDER_LINES.name) - before


def _customers_losing(con: duckdb.DuckDBPyConnection, lines: str) -> list[str]:
    """Customers of stored lines that the batch gives to another customer (read before the write)."""
    rows = con.execute(
        f"SELECT DISTINCT o.customer_id FROM order_lines o JOIN {lines} b USING (order_id, line) "
        "WHERE o.customer_id IS DISTINCT FROM b.customer_id"
    ).fetchall()
    return [row[0] for row in rows]


def _refresh_first_purchase(
    con: duckdb.DuckDBPyConnection,
    lines: str,
    *,
    lines_were_replaced: bool,
    lost_lines: list[str],
    movers: pa.Table | None = None,
) -> None:
    """Keep customers.first_purchase = min(ordered_at) of their lines, for the customers in the batch and
    those who lost a line to another customer (``lost_lines``; with no line left, it becomes NULL).

    New lines can only move a first purchase earlier, which the batch alone tells. A replaced line may
    have been a customer's earliest, so then the customers are recomputed from all their lines: a scan of
    order_lines, paid only by batches that replace lines.
    """
    if lines_were_replaced:
        con.execute(
            f"""
            UPDATE customers SET first_purchase = f.first_purchase
            FROM (
                SELECT c.customer_id, min(o.ordered_at) AS first_purchase
                FROM (SELECT customer_id FROM {lines} UNION SELECT unnest(?::VARCHAR[])) c
                LEFT JOIN order_lines o USING (customer_id)
                GROUP BY c.customer_id
            ) f
            WHERE customers.customer_id = f.customer_id
            """,
            [lost_lines],
        )
        return
    if movers is None:
        _move_first_purchases(
            con, f"(SELECT customer_id, min(ordered_at) AS first_purchase FROM {lines} GROUP BY 1)"
        )
        return
    con.register("upsert_first_purchases", movers)  # the caller knows whose may move, and to when
    try:
        _move_first_purchases(con, "upsert_first_purchases")
    finally:
        con.unregister("upsert_first_purchases")


def _move_first_purchases(con: duckdb.DuckDBPyConnection, earliest: str) -> None:
    """Move first purchases earlier to ``earliest`` (customer_id, first_purchase) where it is earlier."""
    con.execute(
        f"""
        UPDATE customers SET first_purchase = f.first_purchase
        FROM {earliest} f
        WHERE customers.customer_id = f.customer_id
          AND (customers.first_purchase IS NULL OR f.first_purchase < customers.first_purchase)
        """
    )


def _fill_unknown_product_prices(con: duckdb.DuckDBPyConnection, lines: str) -> None:
    """Estimate a product's list price and unit cost from its lines when the catalogue does not say."""
    con.execute(
        f"""
        UPDATE products SET
            list_price = coalesce(products.list_price, b.list_price),
            unit_cost = coalesce(products.unit_cost, b.unit_cost)
        FROM (
            SELECT product_id,
                   max(unit_price) AS list_price,
                   sum(cost) / sum(quantity) FILTER (WHERE cost IS NOT NULL) AS unit_cost
            FROM {lines} GROUP BY product_id
        ) b
        WHERE products.product_id = b.product_id
          AND (products.list_price IS NULL OR products.unit_cost IS NULL)
        """
    )
