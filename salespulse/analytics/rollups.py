"""Exact rollups: built from the order lines, and kept exact through every ingest.

A rollup row holds components (sums, min/max, distinct counts) for one key (time bucket + fields). Keeping
them exact on ingest takes three paths:

* **new lines** (the real-time case) append delta rows: sums add, min/max widen, and a distinct count grows
  by the (key, entity) pairs the new lines bring that no stored line had. Reads aggregate rows anyway, so a
  key may have several rows until :func:`compact` folds them (an append costs DuckDB far less than an
  update). A batch of new orders appends nothing itself: its lines wait in UNFOLDED, reads add their delta
  (:func:`with_unfolded`), and :func:`fold` appends it for many batches at once;
* **replaced lines that changed** make their rollup rows (under the old and the new values) be recomputed
  from the order lines; replacing a line with an identical one changes nothing;
* **a known product whose category or subcategory changed** moves all its lines between rows: the rollups are
  rebuilt (rare, and still inside the transaction). A customer who moves does not: the geography of a sale
  is the line's ship-to, which stays where the line went.

A fingerprint of the folded order lines (count and hash sum, updated by difference) is kept beside the
rollups, and at start-up the customers' fields in the rollups are compared with the customers table, so a
warehouse changed by another door (``salespulse data import`` while the service is down) is detected and
the rollups rebuilt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from salespulse.analytics.compiler import BASE, Params, Period, Resolver, Source, lines_source
from salespulse.analytics.semantic import (
    COMPONENTS,
    FIELDS,
    GEOGRAPHY_FIELDS,
    ORDER_UNIFORM_FIELDS,
    ROLLUPS,
    Rollup,
)
from salespulse.warehouse.schema import ADDRESS_FIELDS, CUSTOMERS, LINE_GEOGRAPHY_COLUMNS, ORDER_LINES

ROLLUP_BY_NAME = {r.name: r for r in ROLLUPS}

STATE_TABLE = "agg_state"
LINE_HASH = (
    "hash(o.order_id, o.line, o.ordered_at, o.customer_id, o.product_id, o.salesman_id, o.distributor_id, "
    "o.channel, o.quantity, o.revenue, o.profit, "
    + ", ".join(FIELDS[name].sql for name in GEOGRAPHY_FIELDS)
    + ")"
)

# Names under which a batch is visible to the maintenance SQL (registered on the ingest cursor only).
BATCH = "analytics_batch"
CHANGED_OLD = "analytics_changed_old"


@dataclass(frozen=True)
class Fingerprint:
    """Count and hash sum of the order lines: an order-independent digest, updated per batch by difference."""

    lines: int
    line_hash: int

    def encode(self) -> str:
        return f"{self.lines}:{self.line_hash}"


def fingerprint(con: duckdb.DuckDBPyConnection) -> Fingerprint:
    lines, line_hash = con.execute(
        f"SELECT count(*), coalesce(sum({LINE_HASH}), 0)::VARCHAR FROM order_lines o"
    ).fetchall()[0]
    return Fingerprint(lines, int(line_hash))


# --- SQL of a rollup over some order lines ---

STORED_FIELDS = {
    alias: frozenset(n for r in ROLLUPS for n in r.fields if FIELDS.get(n) and FIELDS[n].lookup == alias)
    for alias in ("c", "p")
}
"""Customer and product fields that rollups store: put on a batch's lines once, so no delta needs a join."""
CUSTOMER_LOOKUP_FIELDS = STORED_FIELDS["c"]
ENRICHED_FIELDS = STORED_FIELDS["c"] | STORED_FIELDS["p"]
PRODUCT_HASH = (
    "SELECT coalesce(sum(hash(product_id, "
    + ", ".join(sorted(STORED_FIELDS["p"]))
    + ")), 0)::VARCHAR FROM products"
)
"""A digest of the product fields stored in rollups: checked at start-up, kept after every batch."""


def _key_sql(rollup: Rollup, resolver: Resolver) -> list[tuple[str, str]]:
    keys = [(rollup.time, resolver.field(rollup.time))] if rollup.time else []
    # NULL is stored as '' (see compiler.Source.coded) so rows are found by plain equality.
    return keys + [
        (name, f"coalesce({resolver.field(name)}, {FIELDS[name].null_code})") for name in rollup.fields
    ]


def rollup_select(rollup: Rollup, source: Source = BASE, where: str = "") -> str:
    """SELECT the key and components of ``rollup`` over the order lines of ``source`` (aliased ``o``)."""
    resolver = Resolver(source, Params(), Period(None))
    keys = _key_sql(rollup, resolver)
    components = [f"{resolver.render(COMPONENTS[c].sql)} AS {c}" for c in rollup.components]
    selected = [f"{sql} AS {name}" for name, sql in keys] + components
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    return f"SELECT {', '.join(selected)} {resolver.from_clause()} {where} GROUP BY {group}"


def _pairs_select(rollup: Rollup, source: Source, entity: str) -> str:
    """Distinct (key, entity) pairs of ``source``: what a distinct count of ``entity`` counts."""
    resolver = Resolver(source, Params(), Period(None))
    keys = _key_sql(rollup, resolver)
    selected = [f"{sql} AS {name}" for name, sql in keys] + [f"{resolver.field(entity)} AS __entity"]
    return f"SELECT DISTINCT {', '.join(selected)} {resolver.from_clause()}"


def _matches(left: str, right: str, columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{left}.{c} = {right}.{c}" for c in columns)


def build(con: duckdb.DuckDBPyConnection) -> None:
    """Every rollup (and the product pairs) from the order lines, replacing what was there (nothing is
    left unfolded)."""
    for rollup in ROLLUPS:
        order = f" ORDER BY {rollup.time}" if rollup.time else ""
        con.execute(f"CREATE OR REPLACE TABLE {rollup.name} AS {rollup_select(rollup)}{order}")
    build_pairs(con)
    create_unfolded(con, replace=True)


def uniform_fields(con: duckdb.DuckDBPyConnection, relation: str = "order_lines") -> frozenset[str]:
    """The fields that no order of ``relation`` (all the lines of some orders) varies in."""
    checks = ", ".join(f"max(n_{name}) <= 1" for name in ORDER_UNIFORM_FIELDS)
    counts = ", ".join(f"count(DISTINCT {sql}) AS n_{name}" for name, sql in ORDER_UNIFORM_FIELDS.items())
    row = con.execute(
        f"SELECT {checks} FROM (SELECT {counts} FROM {relation} o GROUP BY o.order_id)"
    ).fetchall()[0]
    return frozenset(name for name, ok in zip(ORDER_UNIFORM_FIELDS, row, strict=True) if ok is not False)


def uniform_in(lines: pa.Table) -> frozenset[str]:
    """uniform_fields for the lines of a few orders (all their lines), computed in Arrow: no query. The
    lines sorted by order, a field varies within an order where two neighbours of one order differ in it
    (a NULL being a value of its own)."""
    if lines.num_rows < 2:
        return frozenset(ORDER_UNIFORM_FIELDS)
    ordered = lines.take(pc.sort_indices(lines.column("order_id")))
    ids = ordered.column("order_id")
    same_order = pc.equal(ids[1:], ids[:-1])
    uniform = set()
    for name in ORDER_UNIFORM_FIELDS:
        column = ordered.column("ordered_at" if name == "day" else FIELDS[name].column)
        if name == "day":
            column = pc.cast(column, pa.date32())
        before, after = column[:-1], column[1:]
        nulls_differ = pc.not_equal(pc.is_null(before), pc.is_null(after))
        differs = pc.or_(pc.fill_null(pc.not_equal(before, after), False), nulls_differ)
        if not pc.any(pc.and_(same_order, differs)).as_py():
            uniform.add(name)
    return frozenset(uniform)


# --- the state kept beside the rollups ---


def read_state(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    con.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)")
    return dict(con.execute(f"SELECT key, value FROM {STATE_TABLE}").fetchall())


def write_state(con: duckdb.DuckDBPyConnection, values: dict[str, str]) -> None:
    rows = ", ".join("(?, ?)" for _ in values)
    con.execute(
        f"INSERT OR REPLACE INTO {STATE_TABLE} VALUES {rows}", [x for item in values.items() for x in item]
    )


def definitions_digest() -> str:
    """A digest of the rollups' declarations: rollups built by other declarations are rebuilt on start."""
    return hashlib.md5(repr(ROLLUPS).encode()).hexdigest()


def rollups_exist(con: duckdb.DuckDBPyConnection) -> bool:
    names = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    return all(name in names for name in ALL_TABLES)


def customers_agree(con: duckdb.DuckDBPyConnection) -> bool:
    """Do the rollups hold each customer's current fields (his first purchase)? The rollups keyed by
    customer store them; a customer's address is not among them (the sale's geography is the line's)."""
    checks = []
    for rollup in ROLLUPS:
        stored = [f for f in sorted(CUSTOMER_LOOKUP_FIELDS) if f in rollup.fields]
        if "customer_id" not in rollup.fields or not stored:
            continue
        differs = " OR ".join(f"a.{f} <> coalesce({FIELDS[f].sql}, {FIELDS[f].null_code})" for f in stored)
        checks.append(
            f"(SELECT count(*) FROM {rollup.name} a JOIN customers c USING (customer_id) WHERE {differs})"
        )
    if not checks:
        return True
    (count,) = con.execute(f"SELECT {' + '.join(checks)}").fetchall()[0]
    return count == 0


def row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {name: con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0] for name in ALL_TABLES}


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **relations: Any) -> Iterator[None]:
    for name, relation in relations.items():
        con.register(name, relation)
    try:
        yield
    finally:
        for name in relations:
            con.unregister(name)


# --- product pairs (market baskets): one all-time table, for the affinity report ---

PAIRS = "agg_pairs"
ALL_TABLES = (*(r.name for r in ROLLUPS), PAIRS)


def pairs_select(lines: str) -> str:
    """Orders containing both products of each (region, product, with_product) pair, product < with_product.

    ``lines`` (aliased ``o``) are order lines. Used only while every order ships to one region (see
    semantic.ORDER_UNIFORM_FIELDS), so a pair has one region.
    """
    region = FIELDS["region"].sql
    return f"""
        WITH b AS (SELECT DISTINCT o.order_id, o.product_id, coalesce({region}, '') AS region FROM {lines})
        SELECT x.region, x.product_id, y.product_id AS with_product, count(*) AS orders
        FROM b x JOIN b y ON x.order_id = y.order_id AND x.product_id < y.product_id
        GROUP BY 1, 2, 3
    """


def build_pairs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {PAIRS} AS {pairs_select('order_lines o')}")


def _add_pairs(con: duckdb.DuckDBPyConnection, before: pa.Table, after: pa.Table) -> int:
    """Append the change in pair counts of the batch's orders: their pairs after minus their pairs before."""
    if after.num_rows == 0 and before.num_rows == 0:
        return 0
    with registered(con, analytics_orders_after=after, analytics_orders_before=before):
        (count,) = con.execute(f"""
            INSERT INTO {PAIRS}
            SELECT region, product_id, with_product, sum(orders) FROM (
                SELECT * FROM ({pairs_select("analytics_orders_after o")})
                UNION ALL
                SELECT region, product_id, with_product, -orders
                FROM ({pairs_select("analytics_orders_before o")})
            ) GROUP BY 1, 2, 3 HAVING sum(orders) <> 0
        """).fetchall()[0]
    return count


def compact_pairs(con: duckdb.DuckDBPyConnection) -> None:
    folded = con.sql(
        f"SELECT region, product_id, with_product, sum(orders) AS orders FROM {PAIRS} GROUP BY 1, 2, 3 "
        "HAVING sum(orders) <> 0"
    ).to_arrow_table()
    with registered(con, analytics_folded=folded):
        con.execute(f"DELETE FROM {PAIRS}")
        con.execute(f"INSERT INTO {PAIRS} SELECT * FROM analytics_folded")


# --- the customer and product fields of a batch, without joining their tables ---


class LookupCache:
    """key -> the fields of one dimension table that the rollups store, as committed.

    Joining the customers table costs several milliseconds per statement however small the batch, so the
    engine keeps the fields in memory (Arrow columns behind a hashed index) and re-reads only the rows a
    batch adds, describes, or (for customers) may have given an earlier first purchase. Re-read rows are
    kept in a small overlay (Arrow too) that wins over the loaded columns until the next full load.
    """

    OVERLAY_LIMIT = 5_000
    """Re-read rows kept apart before the whole table is loaded again."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, key: str, fields: frozenset[str]) -> None:
        self.table, self.key, self.fields = table, key, sorted(fields)
        self.load(con)

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        table = con.sql(f"SELECT {self.key}, {', '.join(self.fields)} FROM {self.table}").to_arrow_table()
        self._index, self._columns = self._indexed(table)
        self._recent: dict[str, tuple[Any, ...]] = {}
        self._overlay_index, self._overlay = self._indexed(table.slice(0, 0))

    def _indexed(self, table: pa.Table) -> tuple[pd.Index, dict[str, pa.Array]]:
        index = pd.Index(table.column(self.key).to_numpy(zero_copy_only=False))
        return index, {name: table.column(name).combine_chunks() for name in self.fields}

    def columns_for(self, ids: list[str] | np.ndarray, names: list[str]) -> list[pa.Array]:
        """The fields for each id (null where unknown): the overlay's value, else the loaded one."""
        positions = self._index.get_indexer(ids)
        columns = [pc.take(self._columns[name], pa.array(positions, mask=positions < 0)) for name in names]
        if not self._recent:
            return columns
        recent = self._overlay_index.get_indexer(ids)
        found = recent >= 0
        if not found.any():
            return columns
        taken = pa.array(recent, mask=~found)
        return [
            pc.if_else(pa.array(found), pc.take(self._overlay[name], taken), column)
            for name, column in zip(names, columns, strict=True)
        ]

    def unknown(self, ids: list[str]) -> list[str]:
        known = self._index.get_indexer(ids) >= 0
        return [i for i, k in zip(ids, known, strict=True) if not k and i not in self._recent]

    def values(self, ids: list[str], name: str) -> list[Any]:
        return self.columns_for(ids, [name])[0].to_pylist()

    def rows(self, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        columns = [column.to_pylist() for column in self.columns_for(ids, self.fields)]
        return dict(zip(ids, zip(*columns, strict=True), strict=True))

    def read(self, con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        rows = con.execute(
            f"SELECT {self.key}, {', '.join(self.fields)} FROM {self.table} WHERE {self.key} = ANY(?)", [ids]
        ).fetchall()
        return {row[0]: tuple(row[1:]) for row in rows}

    def update(self, con: duckdb.DuckDBPyConnection, values: dict[str, tuple[Any, ...]]) -> None:
        if not values:
            return
        self._recent.update(values)
        if len(self._recent) > self.OVERLAY_LIMIT:
            self.load(con)
            return
        keys = list(self._recent)
        overlay = {self.key: pa.array(keys, pa.string())} | {
            name: pa.array([self._recent[k][n] for k in keys], type=self._columns[name].type)
            for n, name in enumerate(self.fields)
        }
        self._overlay_index, self._overlay = self._indexed(pa.table(overlay))

    def enrich(self, lines: pa.Table) -> pa.Table:
        """``lines`` with this table's fields appended."""
        ids = lines.column(self.key).to_numpy(zero_copy_only=False)
        for name, column in zip(self.fields, self.columns_for(ids, self.fields), strict=True):
            lines = lines.append_column(name, column)
        return lines


KEYS_ONLY = {"salesmen": "salesman_id", "distributors": "distributor_id"}
"""Dimension tables of which the engine keeps only the keys (to know when a batch brings a new one)."""
PRICED = "list_price IS NOT NULL AND unit_cost IS NOT NULL"
ADDRESS_PARTS = {
    part: column
    for part, column in zip(ADDRESS_FIELDS, LINE_GEOGRAPHY_COLUMNS, strict=True)
    if part in CUSTOMERS.column_names
}
"""A customer's address part -> the order line's ship-to column it fills (see complete_geography)."""


class Lookups:
    """The customer and product caches; ``enrich`` gives order lines every field the rollups store."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.customers = LookupCache(con, "customers", "customer_id", STORED_FIELDS["c"])
        self.products = LookupCache(con, "products", "product_id", STORED_FIELDS["p"])
        # Apart from the rollup fields: an address is no rollup field (a line carries its own ship-to).
        self.addresses = LookupCache(con, "customers", "customer_id", frozenset(ADDRESS_PARTS))
        self._load_keys(con)

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        self.customers.load(con)
        self.products.load(con)
        self.addresses.load(con)
        self._load_keys(con)

    def complete_geography(self, lines: pa.Table) -> pa.Table:
        """The lines, those without any geography given their customer's stored address (as committed; an
        unknown customer has none): what warehouse.load.complete_line_geography answers, without a query."""
        silent = pc.is_null(lines.column(LINE_GEOGRAPHY_COLUMNS[0]))
        for column in LINE_GEOGRAPHY_COLUMNS[1:]:
            silent = pc.and_(silent, pc.is_null(lines.column(column)))
        if not pc.any(silent).as_py():
            return lines
        ids = lines.column("customer_id").to_numpy(zero_copy_only=False)
        parts = list(ADDRESS_PARTS)
        for part, address in zip(parts, self.addresses.columns_for(ids, parts), strict=True):
            index = lines.schema.get_field_index(ADDRESS_PARTS[part])
            field = lines.schema.field(index)
            filled = pc.if_else(silent, address.cast(field.type), lines.column(index))
            lines = lines.set_column(index, field, filled)
        return lines

    def note_addresses(self, con: duckdb.DuckDBPyConnection, lines: pa.Table, described: list[str]) -> None:
        """Re-read the addresses a write may have given or changed: its described and its new customers."""
        customers = pc.unique(lines.column("customer_id")).to_pylist()
        stale = sorted(set(self.addresses.unknown(customers)) | set(described))
        if stale:
            self.addresses.update(con, self.addresses.read(con, stale))

    def _load_keys(self, con: duckdb.DuckDBPyConnection) -> None:
        self.keys = {
            table: {row[0] for row in con.execute(f"SELECT {key} FROM {table}").fetchall()}
            for table, key in KEYS_ONLY.items()
        }
        # A price once known stays known (a write never wipes a value): such products need no estimate.
        self.priced = {
            row[0] for row in con.execute(f"SELECT product_id FROM products WHERE {PRICED}").fetchall()
        }

    def prices_known(self, lines: pa.Table) -> bool:
        """Does every product of ``lines`` have a list price and a unit cost already?"""
        return set(pc.unique(lines.column("product_id")).to_pylist()) <= self.priced

    def note_prices(self, con: duckdb.DuckDBPyConnection, lines: pa.Table) -> None:
        """Re-read whether the products of ``lines`` that had no price have one now (a write estimated it)."""
        unpriced = sorted(set(pc.unique(lines.column("product_id")).to_pylist()) - self.priced)
        if unpriced:
            found = con.execute(
                f"SELECT product_id FROM products WHERE product_id = ANY(?) AND {PRICED}", [unpriced]
            )
            self.priced.update(row[0] for row in found.fetchall())

    def complete_tables(self, lines: pa.Table) -> frozenset[str]:
        """The dimension tables that already hold every key ``lines`` refer to."""
        complete = {
            table
            for table, cache in (("customers", self.customers), ("products", self.products))
            if not cache.unknown(pc.unique(lines.column(cache.key)).to_pylist())
        }
        complete |= {
            table
            for table, key in KEYS_ONLY.items()
            if set(pc.unique(lines.column(key)).drop_null().to_pylist()) <= self.keys[table]
        }
        return frozenset(complete)

    def note_keys(self, lines: pa.Table) -> None:
        """Remember the keys of committed ``lines`` (their rows now exist)."""
        for table, key in KEYS_ONLY.items():
            self.keys[table].update(pc.unique(lines.column(key)).drop_null().to_pylist())

    def enrich(self, lines: pa.Table) -> pa.Table:
        return self.products.enrich(self.customers.enrich(lines))


def first_purchase_movers(customers: LookupCache, lines: pa.Table) -> pa.Table:
    """The customers whose first purchase ``lines`` move (new ones, known ones without a sale yet, and those
    with a line earlier than the first purchase the cache knows), each with his earliest line's time: his
    first purchase once they are written, unless a stored line of his is replaced."""
    ids = lines.column("customer_id").combine_chunks()
    times = lines.column("ordered_at").combine_chunks()
    (first,) = customers.columns_for(ids.to_numpy(zero_copy_only=False), ["first_purchase"])
    moves = pc.fill_null(pc.less(times, first), True)
    moving = pa.table({"customer_id": ids.filter(moves), "first_purchase": times.filter(moves)})
    earliest = moving.group_by("customer_id", use_threads=False).aggregate([("first_purchase", "min")])
    return earliest.rename_columns(["customer_id", "first_purchase"])


# --- ingest ---


@dataclass(frozen=True)
class BatchSnapshot:
    """What the warehouse held for a batch before the write (read under the engine's write lock)."""

    stored_keys: frozenset[tuple[str, int]]
    changed_old: pa.Table
    """Stored lines that the batch replaces with different values."""
    orders_before: pa.Table
    """Every stored line of the batch's orders."""
    prior_orders: pa.Table
    """The stored lines of the batch's orders that the batch leaves as they are."""
    old_line_hash: int
    """The hash sum of the stored lines the batch replaces (see Fingerprint)."""
    first_purchase_movers: frozenset[str]
    """Customers whose first purchase the batch's lines move (see first_purchase_movers)."""
    first_purchases: pa.Table
    """Those customers (customer_id) with their earliest line in the batch (first_purchase)."""
    order_hashes: np.ndarray
    """The hashes of the batch's order ids (see OrderIndex)."""


class OrderIndex:
    """Which orders the warehouse holds, as sorted 64-bit hashes of their ids (8 bytes an order: 33 MB for
    the 4M orders of 10M lines). A batch none of whose orders is stored has no stored line to read, which is
    the usual real-time batch: it is told in half a millisecond, where reading them costs a statement over
    the batch and the order lines (5 ms). Two ids that share a hash only cost that read.

    Read when the engine starts or rebuilds (a second at 10M lines); the writer adds each commit's orders.
    """

    MERGE_AT = 1 << 16
    """Hashes added since the last merge that make the next one (a merge rewrites the sorted array)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        found = con.execute("SELECT DISTINCT hash(order_id) AS h FROM order_lines").fetchnumpy()["h"]
        self._stored = np.sort(np.asarray(found, dtype=np.uint64))
        self._added: list[np.ndarray] = []

    @staticmethod
    def hashes(con: duckdb.DuckDBPyConnection, order_ids: list[str]) -> np.ndarray:
        found = con.execute("SELECT hash(unnest(?::VARCHAR[])) AS h", [order_ids]).fetchnumpy()["h"]
        return np.unique(np.asarray(found, dtype=np.uint64))

    def may_hold(self, hashes: np.ndarray) -> bool:
        """Might one of these orders be stored?"""
        return any(_holds(sorted_, hashes) for sorted_ in (self._stored, *self._added))

    def add(self, hashes: np.ndarray) -> None:
        """Orders just committed."""
        self._added.append(hashes)
        if len(self._added) > 16:  # a few sorted arrays to search, not one per batch
            self._added = [np.unique(np.concatenate(self._added))]
        if sum(map(len, self._added)) >= self.MERGE_AT:
            self._stored = np.unique(np.concatenate([self._stored, *self._added]))
            self._added = []


def _holds(sorted_: np.ndarray, hashes: np.ndarray) -> bool:
    if not len(sorted_):
        return False
    at = np.minimum(np.searchsorted(sorted_, hashes), len(sorted_) - 1)
    return bool((sorted_[at] == hashes).any())


def snapshot(
    con: duckdb.DuckDBPyConnection, lines: pa.Table, cache: Lookups, orders: OrderIndex | None = None
) -> BatchSnapshot:
    """Read what the warehouse holds for the orders of ``lines`` before the write (nothing to read when
    ``orders`` tells none is stored). A customer's new address is not asked about: his lines keep their
    ship-to, so no rollup row moves with him."""
    hashes = OrderIndex.hashes(con, pc.unique(lines.column("order_id")).to_pylist())
    movers = first_purchase_movers(cache.customers, lines)
    if orders is not None and not orders.may_hold(hashes):
        nothing = lines.slice(0, 0)
        mover_ids = frozenset(movers.column("customer_id").to_pylist())
        return BatchSnapshot(frozenset(), nothing, nothing, nothing, 0, mover_ids, movers, hashes)
    differs = " OR ".join(
        f"o.{c} IS DISTINCT FROM b.{c}" for c in ORDER_LINES.column_names if c not in ORDER_LINES.key
    )
    # The batch's first and last order id let the scan skip the row groups no order of it can be in.
    span = [pc.min(lines.column("order_id")).as_py(), pc.max(lines.column("order_id")).as_py()]
    flags = f"b.order_id IS NOT NULL AS __replaced, ({differs}) AS __changed, {LINE_HASH} AS __hash"
    stored = con.sql(  # BATCH: ``lines``, registered by the caller
        f"SELECT o.*, {flags} FROM order_lines o LEFT JOIN {BATCH} b USING (order_id, line) "
        f"WHERE o.order_id BETWEEN ? AND ? AND o.order_id IN (SELECT order_id FROM {BATCH})",
        params=span,
    ).to_arrow_table()
    replaced = stored.filter(stored.column("__replaced"))
    keys = zip(replaced.column("order_id").to_pylist(), replaced.column("line").to_pylist(), strict=True)
    extra = ["__replaced", "__changed", "__hash"]
    changed = replaced.filter(replaced.column("__changed")).drop_columns(extra)
    return BatchSnapshot(
        frozenset(keys),
        changed,
        stored.drop_columns(extra),
        stored.filter(pc.invert(stored.column("__replaced"))).drop_columns(extra),
        sum(replaced.column("__hash").to_pylist()),
        frozenset(movers.column("customer_id").to_pylist()),
        movers,
        hashes,
    )


@dataclass(frozen=True)
class Maintenance:
    fingerprint: Fingerprint
    uniform: frozenset[str]
    rebuilt: bool
    appended: dict[str, int]
    """Delta rows appended per table (see compact)."""
    only_appended: bool
    """No row was deleted or rewritten: each table grew by its appended rows."""


def maintain(
    con: duckdb.DuckDBPyConnection,
    lines: pa.Table,
    before: BatchSnapshot,
    cache: Lookups,
    described: dict[str, list[str]],
    previous: Fingerprint,
    uniform: frozenset[str],
) -> Maintenance:
    """Bring every rollup in step with the batch just written; runs inside the ingest transaction.

    ``lines`` is the batch (registered as ``BATCH``), ``described`` the customers and products the batch
    gave fields for.
    """
    moved, first_moved = _refresh_customers(con, before, cache.customers, described["customers"])
    products_moved, products_touched = _refresh_products(con, lines, cache.products, described["products"])
    cache.note_addresses(con, lines, described["customers"])
    cache.note_prices(con, lines)
    rebuild = moved or products_moved
    keys = zip(lines.column("order_id").to_pylist(), lines.column("line").to_pylist(), strict=True)
    new_lines = lines.filter(pa.array([key not in before.stored_keys for key in keys]))
    prior_orders = before.prior_orders
    whole_orders = pa.concat_tables([lines, prior_orders.select(lines.column_names).cast(lines.schema)])
    appended: dict[str, int] = {}
    if rebuild:
        build(con)
    else:
        with registered(con, **{CHANGED_OLD: before.changed_old}):
            appended = _add_new_lines(con, cache, new_lines, prior_orders)
            if before.changed_old.num_rows:
                for rollup in ROLLUPS:
                    _recompute_changed(con, rollup)
            if first_moved:
                _recompute_customers(con, first_moved)
        appended[PAIRS] = _add_pairs(con, before.orders_before, whole_orders)
    uniform = uniform & uniform_in(whole_orders)
    result = _keep_state(
        con, new_lines.num_rows, before, previous, uniform, products_touched=products_touched
    )
    only_appended = not (rebuild or before.changed_old.num_rows or first_moved)
    return Maintenance(result, uniform, rebuild, appended, only_appended)


def _keep_state(
    con: duckdb.DuckDBPyConnection,
    new_lines: int,
    before: BatchSnapshot,
    previous: Fingerprint,
    uniform: frozenset[str],
    *,
    products_touched: bool,
) -> Fingerprint:
    """Write the order lines' fingerprint after the batch (and what else is kept beside the rollups)."""
    # The batch holds its lines exactly as stored (same values, same types), so it hashes like them.
    (new_hash,) = con.execute(f"SELECT coalesce(sum({LINE_HASH}), 0)::VARCHAR FROM {BATCH} o").fetchall()[0]
    result = Fingerprint(
        previous.lines + new_lines, previous.line_hash + int(new_hash) - before.old_line_hash
    )
    state = {"fingerprint": result.encode(), "uniform": ",".join(sorted(uniform))}
    if products_touched:
        state["products"] = con.execute(PRODUCT_HASH).fetchall()[0][0]
    write_state(con, state)
    return result


def defers(before: BatchSnapshot, cache: Lookups, described: dict[str, list[str]]) -> bool:
    """Can the rollups fold this batch later (see UNFOLDED)? Yes when its lines are all new, their orders
    hold no stored line, it describes no customer or product, and the only first purchases it moves are of
    customers without a sale yet (no rollup row holds theirs)."""
    if before.stored_keys or before.orders_before.num_rows or described["customers"] or described["products"]:
        return False
    movers = sorted(before.first_purchase_movers)
    return all(first is None for first in cache.customers.values(movers, "first_purchase"))


def defer(
    con: duckdb.DuckDBPyConnection,
    lines: pa.Table,
    before: BatchSnapshot,
    cache: Lookups,
    previous: Fingerprint,
    uniform: frozenset[str],
) -> Maintenance:
    """The share of rollup upkeep that a batch that :func:`defers` pays in its own transaction: the caches
    kept in step with its new customers and products, its lines kept to be folded. The fingerprint kept
    beside the rollups describes the folded lines (the fold adds these)."""
    _note_first_purchases(con, before, cache.customers)
    products_moved, products_touched = _refresh_products(con, lines, cache.products, [])
    if products_moved:  # defers() rules it out: no product is described
        raise RuntimeError("a deferred batch moved what rollups are keyed by")
    cache.note_addresses(con, lines, [])
    cache.note_prices(con, lines)
    add_unfolded(con, cache.enrich(lines))
    if products_touched:
        write_state(con, {"products": con.execute(PRODUCT_HASH).fetchall()[0][0]})
    return Maintenance(previous, uniform & uniform_in(lines), rebuilt=False, appended={}, only_appended=True)


def _note_first_purchases(con: duckdb.DuckDBPyConnection, before: BatchSnapshot, cache: LookupCache) -> None:
    """The movers of a deferred batch had no sale, so their first purchase is now their earliest line, which
    the batch tells (no read): the first purchase is the only customer field the rollups store."""
    if cache.fields != ["first_purchase"]:
        cache.update(con, cache.read(con, sorted(before.first_purchase_movers)))
        return
    movers = before.first_purchases
    earliest = movers.column("first_purchase").to_pylist()
    cache.update(
        con, {c: (t,) for c, t in zip(movers.column("customer_id").to_pylist(), earliest, strict=True)}
    )


def _refresh_products(
    con: duckdb.DuckDBPyConnection, lines: pa.Table, cache: LookupCache, described: list[str]
) -> tuple[bool, bool]:
    """Re-read the products the batch adds or describes.

    Returns whether a known product's stored fields moved (a category renamed: the rollups are rebuilt),
    and whether any product row may have changed at all (the products digest is then recomputed).
    """
    suspects = sorted(
        set(cache.unknown(sorted(set(lines.column("product_id").to_pylist())))) | set(described)
    )
    if not suspects:
        return False, False
    previous = cache.rows(suspects)
    known = set(suspects) - set(cache.unknown(suspects))
    now = cache.read(con, suspects)
    cache.update(con, now)
    return any(now.get(p, previous[p]) != previous[p] for p in known), True


def _refresh_customers(
    con: duckdb.DuckDBPyConnection, before: BatchSnapshot, cache: LookupCache,
    described: list[str],
) -> tuple[bool, list[str]]:  # fmt: skip
    """Re-read the customers the write may have changed.

    Returns whether a customer with sales got another stored field than his first purchase (the rollups are
    then rebuilt; none is stored today, his address being no part of a sale's geography), and the customers
    with sales whose first purchase alone moved (their rows are recomputed).
    New customers and described ones are read; so are those whose first purchase may have moved: a line
    earlier than the first purchase the cache knows, or a replaced line (it may have been the first).
    """
    earlier = set(before.first_purchase_movers)  # unknown customers among them
    replaced = set(before.changed_old.column("customer_id").to_pylist())
    suspects = sorted(earlier | set(described) | replaced)
    if not suspects:
        return False, []
    first = dict(zip(suspects, cache.values(suspects, "first_purchase"), strict=True))
    previous = cache.rows(suspects)
    now = cache.read(con, suspects)
    cache.update(con, now)
    # A customer without a first purchase had no lines, so no rollup row holds his old fields.
    changed = [c for c in suspects if first[c] is not None and now.get(c) != previous[c]]
    position = cache.fields.index("first_purchase")
    others = [i for i in range(len(cache.fields)) if i != position]
    moved = any(
        tuple(now.get(c, previous[c])[i] for i in others) != tuple(previous[c][i] for i in others)
        for c in changed
    )
    return moved, changed


def _stored_lines(
    con: duckdb.DuckDBPyConnection, condition: str, params: list[Any] | None = None
) -> pa.Table:
    """Stored lines that are not the batch's own and meet ``condition`` (over ``order_lines o``)."""
    return con.sql(
        f"SELECT o.* FROM order_lines o ANTI JOIN {BATCH} b USING (order_id, line) WHERE {condition}",
        params=params or None,
    ).to_arrow_table()


NEW_LINES = "analytics_new_lines"
PRIOR_ORDERS = "analytics_prior_orders"
PRIOR_DAYS = "analytics_prior_days"


def _add_new_lines(
    con: duckdb.DuckDBPyConnection, cache: Lookups, new_lines: pa.Table, prior_orders: pa.Table
) -> dict[str, int]:
    """Append to every rollup the delta of the lines whose key was new; returns the rows appended."""
    appended: dict[str, int] = {}
    if new_lines.num_rows == 0:
        return appended
    relations = {
        NEW_LINES: cache.enrich(new_lines),
        PRIOR_ORDERS: cache.enrich(prior_orders),
        PRIOR_DAYS: cache.enrich(_same_days(con, new_lines)),
    }
    source = lines_source(NEW_LINES, ENRICHED_FIELDS)
    priors = {
        entity: lines_source(relation, ENRICHED_FIELDS) if relations[relation].num_rows else None
        for entity, relation in (("order_id", PRIOR_ORDERS), ("day", PRIOR_DAYS))
    }
    with registered(con, **relations):
        for rollup in ROLLUPS:
            delta = _delta_select(rollup, source, priors)
            # Appended, not merged: a key may have several rows, and every read aggregates them anyway
            # (sums add, min/max widen, distinct deltas count only new pairs). An append is far cheaper
            # than an update in DuckDB; compact() folds the rows again.
            (count,) = con.execute(f"INSERT INTO {rollup.name} BY NAME {delta}").fetchall()[0]
            appended[rollup.name] = count
    return appended


def _delta_select(rollup: Rollup, source: Source, priors: dict[str, Source | None]) -> str:
    """The rows to append to ``rollup`` for the new lines of ``source``: their components, each distinct
    count only over the (key, entity) pairs that the stored lines of ``priors`` (by entity) do not have."""
    delta = f"SELECT * FROM ({rollup_select(rollup, source)}) s"
    for name in (c for c in rollup.components if COMPONENTS[c].entity is not None):
        delta = _only_new_pairs(rollup, name, delta, source, priors)
    return delta


# --- unfolded lines: written by a fast ingest, folded into the rollups a moment later ---

UNFOLDED = "agg_unfolded"
"""Order lines written since the last fold, with the customer and product fields the rollups store.

A batch of new lines whose orders hold no other stored line (the real-time case) is written with its
lines copied here instead of paying every rollup's upkeep in its own transaction; a fold appends their
deltas to every rollup and empties the table in one transaction, a few batches at once. A rollup read
while lines wait reads :func:`with_unfolded`, the rollup and the unfolded lines' delta in one statement, so
it answers exactly what the order lines would, in the statement's own snapshot, without waiting for a
fold. Any other write (a replaced line, a first purchase moved, an order completed) folds first.
"""

_UNFOLDED_SAME_DAYS = f"""(
    SELECT o.* FROM order_lines o ANTI JOIN {UNFOLDED} p USING (order_id, line)
    WHERE o.customer_id IN (SELECT customer_id FROM {UNFOLDED})
      AND o.ordered_at >= (SELECT CAST(min(ordered_at) AS DATE) FROM {UNFOLDED})
      AND o.ordered_at < (SELECT CAST(max(ordered_at) AS DATE) + 1 FROM {UNFOLDED})
)"""
"""Stored lines, not unfolded, of the unfolded lines' customers on their days: all that can share a
(customer, day) pair with them. (No stored line shares an order with them: see UNFOLDED.)"""


def unfolded_delta_select(rollup: Rollup) -> str:
    """The rows that folding the unfolded lines would append to ``rollup``."""
    priors = {"order_id": None, "day": lines_source(_UNFOLDED_SAME_DAYS)}
    return _delta_select(rollup, lines_source(UNFOLDED, ENRICHED_FIELDS), priors)


def with_unfolded(rollup: Rollup) -> str:
    """``rollup`` as it will be once the unfolded lines are folded: a relation for the compiler to read."""
    return f"(SELECT * FROM {rollup.name} UNION ALL BY NAME {unfolded_delta_select(rollup)})"


def create_unfolded(con: duckdb.DuckDBPyConnection, *, replace: bool = False) -> None:
    """The table of unfolded lines: the order lines' columns and the enriched fields (``replace``: emptied
    too)."""
    resolver = Resolver(BASE, Params(), Period(None))
    fields = ", ".join(f"{resolver.field(name)} AS {name}" for name in sorted(ENRICHED_FIELDS))
    create = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    con.execute(f"{create} {UNFOLDED} AS SELECT o.*, {fields} {resolver.from_clause()} LIMIT 0")


def add_unfolded(con: duckdb.DuckDBPyConnection, enriched: pa.Table) -> None:
    """Keep ``enriched`` (written lines with their enriched fields) for the next fold."""
    with registered(con, analytics_unfolded=enriched):
        con.execute(f"INSERT INTO {UNFOLDED} BY NAME SELECT * FROM analytics_unfolded")


def unfolded_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT count(*) FROM {UNFOLDED}").fetchall()[0][0]


@dataclass(frozen=True)
class Folded:
    appended: dict[str, int]
    """Delta rows appended per table (see compact)."""
    first_day: date | None
    """The earliest day the folded lines touch (None: nothing was unfolded)."""
    lines: int = 0
    """The lines folded."""
    fingerprint: Fingerprint = Fingerprint(0, 0)
    """The folded lines' fingerprint after the fold."""


def fold(con: duckdb.DuckDBPyConnection, previous: Fingerprint, uniform: frozenset[str]) -> Folded:
    """Append the unfolded lines' deltas to every rollup and the product pairs, and empty their table;
    inside the caller's transaction. The fingerprint kept beside the rollups (``previous``) moves on by
    theirs; ``uniform`` (which includes them) is kept too."""
    first, lines, line_hash = con.execute(
        f"SELECT CAST(min(ordered_at) AS DATE), count(*), coalesce(sum({LINE_HASH}), 0)::VARCHAR "
        f"FROM {UNFOLDED} o"
    ).fetchall()[0]
    if not lines:
        return Folded({}, None, fingerprint=previous)
    appended: dict[str, int] = {}
    for rollup in ROLLUPS:
        delta = unfolded_delta_select(rollup)
        (count,) = con.execute(f"INSERT INTO {rollup.name} BY NAME {delta}").fetchall()[0]
        appended[rollup.name] = count
    # Every line of an unfolded order is unfolded: the orders' pairs are all new.
    (count,) = con.execute(f"INSERT INTO {PAIRS} {pairs_select(f'{UNFOLDED} o')}").fetchall()[0]
    appended[PAIRS] = count
    con.execute(f"DELETE FROM {UNFOLDED}")  # the rows this snapshot sees: lines written since stay
    # Every unfolded line is a new one: the fingerprint moves by addition.
    fingerprint = Fingerprint(previous.lines + lines, previous.line_hash + int(line_hash))
    write_state(con, {"fingerprint": fingerprint.encode(), "uniform": ",".join(sorted(uniform))})
    return Folded(appended, first, lines, fingerprint)


def unfolded_fingerprint(con: duckdb.DuckDBPyConnection) -> Fingerprint:
    lines, line_hash = con.execute(
        f"SELECT count(*), coalesce(sum({LINE_HASH}), 0)::VARCHAR FROM {UNFOLDED} o"
    ).fetchall()[0]
    return Fingerprint(lines, int(line_hash))


def _same_days(con: duckdb.DuckDBPyConnection, new_lines: pa.Table) -> pa.Table:
    """Stored lines of the new lines' customers on the new lines' days: all that can share a
    (customer, day) pair with them."""
    days = pc.cast(new_lines.column("ordered_at"), pa.date32())
    low = datetime.combine(pc.min(days).as_py(), datetime.min.time())
    high = datetime.combine(pc.max(days).as_py() + timedelta(days=1), datetime.min.time())
    return _stored_lines(
        con,
        f"o.ordered_at >= ? AND o.ordered_at < ? AND o.customer_id IN (SELECT customer_id FROM {BATCH})",
        [low, high],
    )


def _only_new_pairs(
    rollup: Rollup, name: str, delta: str, source: Source, priors: dict[str, Source | None]
) -> str:
    """``delta`` (the new lines' rows of ``rollup``) with the distinct count ``name`` made a delta too: the
    number of (key, entity) pairs that no stored line had.

    Three cases, from cheapest: the entity is part of the key (a customer count in a rollup keyed by
    customer), so a pair is stored exactly when the rollup already has a row for the key; the entity is the
    order, so only the other stored lines of the batch's orders can share a pair; the entity is the day, so
    only stored lines of the same customer (every such rollup is keyed by customer) on the same day can.
    """
    entity = COMPONENTS[name].entity or ""
    if entity in rollup.fields:
        # The semi join builds on the few new keys, and its key ranges prune the rollup's scan (a timed
        # rollup is stored in time order).
        stored_keys = (
            f"SELECT DISTINCT {', '.join(f'r.{k}' for k in rollup.key)} FROM {rollup.name} r "
            f"SEMI JOIN ({delta}) d ON {_matches('r', 'd', rollup.key)}"
        )
        return (
            f"SELECT s.* REPLACE (CASE WHEN x.{rollup.key[0]} IS NULL THEN s.{name} ELSE 0 END AS {name}) "
            f"FROM ({delta}) s LEFT JOIN ({stored_keys}) x ON {_matches('s', 'x', rollup.key)}"
        )
    if entity != "order_id" and not (entity == "day" and "customer_id" in rollup.fields):
        raise NotImplementedError("a count of days needs a rollup keyed by customer")
    prior = priors[entity]
    if prior is None:
        return delta  # nothing stored shares a pair: the new lines' own distinct count is the delta
    counted = (
        f"SELECT {', '.join(rollup.key)}, count(*) AS n FROM "
        f"({_pairs_select(rollup, source, entity)} "
        f"EXCEPT {_pairs_select(rollup, prior, entity)}) "
        f"GROUP BY {', '.join(rollup.key)}"
    )
    return (
        f"SELECT s.* REPLACE (coalesce(x.n, 0) AS {name}) FROM ({delta}) s "
        f"LEFT JOIN ({counted}) x ON {_matches('s', 'x', rollup.key)}"
    )


def _recompute_customers(con: duckdb.DuckDBPyConnection, customers: list[str]) -> None:
    """Recompute, from their order lines, every row of these customers in the rollups that store their
    first purchase (all keyed by customer): it moved, so their rows moved with it."""
    with registered(con, analytics_moved=pa.table({"customer_id": customers})):
        for rollup in ROLLUPS:
            if "first_purchase" not in rollup.fields:
                continue
            assert "customer_id" in rollup.fields, "first_purchase is only kept beside the customer"
            con.execute(
                f"DELETE FROM {rollup.name} WHERE customer_id IN (SELECT customer_id FROM analytics_moved)"
            )
            where = "WHERE o.customer_id IN (SELECT customer_id FROM analytics_moved)"
            con.execute(f"INSERT INTO {rollup.name} BY NAME {rollup_select(rollup, BASE, where)}")


def _recompute_changed(con: duckdb.DuckDBPyConnection, rollup: Rollup) -> None:
    """Recompute, from the order lines, the rows that the changed lines left or entered."""
    keys = rollup.key
    changed_new = f"(SELECT o.* FROM order_lines o SEMI JOIN {CHANGED_OLD} k USING (order_id, line))"
    key_list = ", ".join(keys)
    affected = con.sql(
        f"SELECT DISTINCT {key_list} FROM ({rollup_select(rollup, lines_source(CHANGED_OLD))}) "
        f"UNION SELECT DISTINCT {key_list} FROM ({rollup_select(rollup, lines_source(changed_new))})"
    ).to_arrow_table()
    with registered(con, analytics_affected=affected):
        con.execute(
            f"DELETE FROM {rollup.name} r USING analytics_affected a WHERE {_matches('r', 'a', keys)}"
        )
        where, params = "", []
        if rollup.time is not None:
            low, high = con.execute(
                f"SELECT min({rollup.time}), max({rollup.time}) FROM analytics_affected"
            ).fetchall()[0]
            step = timedelta(days=1) if rollup.time == "day" else timedelta(days=31)
            where, params = "WHERE o.ordered_at >= ? AND o.ordered_at < ?", [low, high + step]
        elif "customer_id" in rollup.fields:
            where = "WHERE o.customer_id IN (SELECT customer_id FROM analytics_affected)"
        con.execute(
            f"INSERT INTO {rollup.name} BY NAME SELECT s.* FROM ({rollup_select(rollup, BASE, where)}) s "
            f"SEMI JOIN analytics_affected a ON {_matches('s', 'a', keys)}",
            params,
        )


def compact(con: duckdb.DuckDBPyConnection, rollup: Rollup, since: date | None = None) -> None:
    """Fold the rows of each key into one (ingest appends delta rows); from ``since`` on, if timed."""
    where, params = "", []
    if since is not None and rollup.time is not None:
        where, params = f"WHERE {rollup.time} >= ?", [since]
    merged = [f"{COMPONENTS[c].merge or 'sum'}({c}) AS {c}" for c in rollup.components]
    keys = ", ".join(rollup.key)
    folded = con.sql(
        f"SELECT {keys}, {', '.join(merged)} FROM {rollup.name} {where} GROUP BY {keys}",
        params=params or None,
    ).to_arrow_table()
    with registered(con, analytics_folded=folded):
        con.execute(f"DELETE FROM {rollup.name} {where}", params)
        con.execute(f"INSERT INTO {rollup.name} BY NAME SELECT * FROM analytics_folded")


UNFOLDED_RELATIONS = {rollup.name: with_unfolded(rollup) for rollup in ROLLUPS}
"""What the compiler reads for each rollup while lines wait to be folded (see WarehouseState.relations)."""
