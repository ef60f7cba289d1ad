"""PostgreSQL as the system of record (SALESPULSE_DATABASE_URL).

Order lines, dimensions and goals are written here, by any number of service replicas at once; each replica
keeps its DuckDB warehouse as an analytical copy that follows this record (salespulse/analytics/replica.py).
The tables and keys are those of schema.py, with one more column, ``change_id``: the writing transaction's
id (from a sequence), indexed. ``customers.first_purchase`` is not kept here: each copy derives it exactly
from its lines, as the embedded warehouse does.

Every write is one transaction: the Arrow batches go into temporary tables by binary COPY (ADBC's bulk
ingest), then set-based ``INSERT ... ON CONFLICT`` statements upsert them with the semantics of
``warehouse.load.upsert_sales`` (a NULL never wipes a known dimension value; a key only seen on a line gets
a row with placeholders; a line without any geography takes its customer's address; unknown product prices
are filled from the lines). Rows whose values do not change are not rewritten.

Followers read changes in commit order. Sequence values drawn by concurrent transactions commit out of
order, so a follower reading "everything numbered above my watermark" could pass over a row that commits
later with a lower number. Instead, the LAST statements of a write take the next number from a one-row
counter (``UPDATE change_counter ... RETURNING seq``) and log it with the transaction's ``change_id`` in
``change_log``: the counter row's lock is held until COMMIT, so numbers are handed out and committed in the
same order, and number n is committed before n + 1 exists. Only that stamp and the commit are serialized;
the writes themselves run concurrently. ``NOTIFY salespulse_changes`` (delivered at commit) wakes followers.

``sync_state`` keeps the position of each ``salespulse data sync`` source (salespulse/dataset/sync.py): a
write's ``also`` hook saves it in the transaction of the chunk it describes. It is the record's own
bookkeeping, not copied to the analytical copies.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

from salespulse.config import get_settings
from salespulse.errors import Unavailable
from salespulse.warehouse.load import PLACEHOLDERS
from salespulse.warehouse.schema import (
    ADDRESS_FIELDS,
    CUSTOMERS,
    DIMENSION_TABLES,
    GOAL_TABLES,
    LINE_GEOGRAPHY_COLUMNS,
    ORDER_LINES,
    PRODUCTS,
    SYNC_STATE,
    Column,
    Table,
)

log = logging.getLogger(__name__)

CHANNEL = "salespulse_changes"
"""The NOTIFY channel: its payload is the change number just committed."""
CHANGE_ID = "change_id"
DERIVED: dict[str, frozenset[str]] = {CUSTOMERS.name: frozenset({"first_purchase"})}
"""Columns each analytical copy derives itself (from its own lines), which the record does not keep."""
PG_TYPES = {
    "VARCHAR": "text",
    "DOUBLE": "double precision",
    "INTEGER": "integer",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "BIGINT": "bigint",
    "VARCHAR[]": "text[]",
}
RETRYABLE = frozenset({"40P01", "40001"})
"""Deadlock and serialization failure: the whole transaction is tried again."""
ATTEMPTS = 5
RECORD_TABLES: tuple[Table, ...] = (*DIMENSION_TABLES, ORDER_LINES, *GOAL_TABLES.values())
"""The tables the record keeps (the sales, their dimensions and the goal plan)."""
SYNC_VALUES: tuple[str, ...] = tuple(
    c.name for c in SYNC_STATE.columns if c.name not in ("source", "synced_at")
)
"""What a sync saves of its source's position (sync_state's columns but the key and the time)."""
ArrowSource = pa.Table | Callable[[], pa.RecordBatchReader]
"""A batch: an Arrow table, or a function that opens a stream of it (read again when a write is retried)."""


class RecordUnavailable(Unavailable):
    """The system of record cannot be reached or refused the write for a reason other than the data."""


@dataclass(frozen=True)
class RecordWrite:
    seq: int
    """The change number this write committed as (followers that applied it show it)."""
    inserted: int
    """Order lines whose (order_id, line) was new."""
    updated: int
    """Stored order lines that the write changed."""
    unchanged: int
    """Order lines written again with the values already stored."""


@dataclass(frozen=True)
class Changes:
    """What changed in the record after a watermark, up to ``upto`` (one consistent snapshot)."""

    after: int
    upto: int
    rows: int
    """Rows changed in all tables (as counted by the writes)."""
    tables: dict[str, pa.Table] | None
    """Each table's changed rows (its current values), or None when they were streamed to ``spill``
    instead, or when there were more than the caller wanted in memory."""


def record_columns(table: Table) -> list[Column]:
    derived = DERIVED.get(table.name, frozenset())
    return [c for c in table.columns if c.name not in derived]


def _pg_type(column: Column) -> str:
    return PG_TYPES[column.sql_type]


def schema_statements() -> list[str]:
    statements = [
        "CREATE SEQUENCE IF NOT EXISTS change_ids",
        "CREATE TABLE IF NOT EXISTS record_identity (id text NOT NULL)",
        "INSERT INTO record_identity SELECT gen_random_uuid()::text "
        "WHERE NOT EXISTS (SELECT 1 FROM record_identity)",
        "CREATE TABLE IF NOT EXISTS change_counter "
        "(only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), seq bigint NOT NULL)",
        "INSERT INTO change_counter VALUES (true, 0) ON CONFLICT DO NOTHING",
        "CREATE TABLE IF NOT EXISTS change_log (seq bigint PRIMARY KEY, change_id bigint NOT NULL UNIQUE, "
        "rows bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    ]
    for table in RECORD_TABLES:
        statements.append(_create_table(table, f"{CHANGE_ID} bigint NOT NULL"))
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {table.name}_{CHANGE_ID} ON {table.name} ({CHANGE_ID})"
        )
    statements.append(_create_table(SYNC_STATE))
    return statements


def _create_table(table: Table, *extra: str) -> str:
    body = [f"{c.name} {_pg_type(c)}{' NOT NULL' if c.required else ''}" for c in record_columns(table)]
    body += [*extra, f"PRIMARY KEY ({', '.join(table.key)})"]
    body += [f"CHECK ({check})" for check in table.checks]
    return f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(body)})"


def _sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None)


class _Pool:
    """A few ADBC connections for the writers of one process (a connection serves one transaction)."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._idle: queue.LifoQueue[adbc.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[adbc.Connection]:
        self._slots.acquire()
        try:
            try:
                con = self._idle.get_nowait()
            except queue.Empty:
                con = _connect(self._url)
            try:
                yield con
            except BaseException:
                try:
                    con.rollback()
                except adbc_driver_manager.Error:  # a broken connection is dropped, not reused
                    with suppress(Exception):
                        con.close()
                    raise
                self._idle.put(con)
                raise
            self._idle.put(con)
        finally:
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                con = self._idle.get_nowait()
            except queue.Empty:
                return
            with suppress(Exception):
                con.close()


def _connect(url: str) -> adbc.Connection:
    try:
        return adbc.connect(url)
    except adbc_driver_manager.Error as error:
        raise RecordUnavailable(f"cannot connect to the system of record: {error}") from None


class SystemOfRecord:
    """The PostgreSQL database at ``url``; thread-safe (each write takes a connection of its own)."""

    def __init__(self, url: str, *, connections: int = 4) -> None:
        self.url = url
        self._pool = _Pool(url, connections)
        self.create_schema()
        self.identity = self._one("SELECT id FROM record_identity")

    def close(self) -> None:
        self._pool.close()

    def create_schema(self) -> None:
        """Create the tables, idempotently; replicas starting together take turns (an advisory lock)."""

        def create(cur: Any) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('salespulse record schema'))")
            for statement in schema_statements():
                cur.execute(statement)

        self._transaction(create)

    # --- writing ---

    def write_sales(
        self,
        lines: ArrowSource,
        *,
        customers: ArrowSource | None = None,
        products: ArrowSource | None = None,
        salesmen: ArrowSource | None = None,
        distributors: ArrowSource | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Upsert order lines and what is known of their dimensions in one transaction (see the module).
        ``also(cursor)`` runs in that transaction before it commits (a sync saves its position there); it
        runs again if the write is retried, and an exception it raises rolls the whole write back."""
        batches = {
            "order_lines": lines, "customers": customers, "products": products, "salesmen": salesmen,
            "distributors": distributors,
        }  # fmt: skip
        return self._transaction(lambda cur: _write_sales(cur, batches, also))

    def write_goals(self, plans: dict[str, ArrowSource]) -> int:
        """Upsert goal targets by level (``month``, ``member``, ``target`` columns), one transaction;
        returns the change number."""
        return self._transaction(lambda cur: _write_goals(cur, plans))

    def _transaction(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(cursor)`` in one transaction and commit; deadlocks and serialization failures are
        retried (keys are locked in key order, so they are rare: two writers upserting the same rows)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._pool.connection() as con, con.cursor() as cur:
                    result = work(cur)
                    con.commit()
                    return result
            except adbc_driver_manager.Error as error:
                state = _sqlstate(error)
                if state in RETRYABLE and attempt < ATTEMPTS:
                    log.info("system of record: %s, trying the write again", state)
                    time.sleep(0.01 * 2**attempt)
                    continue
                if isinstance(error, adbc_driver_manager.IntegrityError | adbc_driver_manager.DataError):
                    raise ValueError(str(error).splitlines()[0]) from None
                raise RecordUnavailable(
                    f"the system of record failed: {str(error).splitlines()[0]}"
                ) from None
        raise AssertionError("unreachable")

    # --- reading ---

    def _one(self, sql: str, params: list[Any] | None = None) -> Any:
        def read(cur: Any) -> Any:
            cur.execute(sql, params or [])
            return cur.fetchone()[0]

        return self._transaction(read)

    def head(self) -> int:
        """The last committed change number."""
        return int(self._one("SELECT seq FROM change_counter"))

    def read_changes(
        self,
        after: int,
        *,
        max_rows: int | None = None,
        spill: Callable[[str, pa.RecordBatchReader], None] | None = None,
    ) -> Changes:
        """The rows changed after change ``after``, from one snapshot (REPEATABLE READ): every row as it is
        now, its change number at most ``upto``. With ``spill``, each table's rows are streamed to it
        instead of being returned; else more than ``max_rows`` changed rows are not read at all
        (``tables`` None: the caller reads them with a spill)."""

        def read(cur: Any) -> Changes:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(
                "SELECT coalesce(max(seq), $1), coalesce(sum(rows), 0) FROM change_log WHERE seq > $1",
                [after],
            )
            upto, rows = (int(v) for v in cur.fetchone())
            if upto == after:
                return Changes(after, upto, 0, {})
            if spill is None and max_rows is not None and rows > max_rows:
                return Changes(after, upto, rows, None)
            tables: dict[str, pa.Table] = {}
            for table in RECORD_TABLES:
                columns = ", ".join(f"t.{c.name}" for c in record_columns(table))
                cur.execute(
                    f"SELECT {columns} FROM {table.name} t JOIN change_log l USING ({CHANGE_ID}) "
                    "WHERE l.seq > $1 AND l.seq <= $2",
                    [after, upto],
                )
                if spill is not None:
                    spill(table.name, cur.fetch_record_batch())
                else:
                    tables[table.name] = _plain(cur.fetch_arrow_table())
            return Changes(after, upto, rows, None if spill is not None else tables)

        return self._transaction(read)

    def sales_totals(self) -> tuple[int, float]:
        """Order lines and their revenue: what a caught-up copy must also hold."""

        def read(cur: Any) -> tuple[int, float]:
            cur.execute("SELECT count(*), coalesce(sum(revenue), 0) FROM order_lines")
            count, revenue = cur.fetchone()
            return int(count), float(revenue)

        return self._transaction(read)

    def sync_state(self, source: str) -> dict[str, Any] | None:
        """The saved position of a ``data sync`` source (SYNC_VALUES by name), or None before its first
        chunk."""

        def read(cur: Any) -> dict[str, Any] | None:
            cur.execute(f"SELECT {', '.join(SYNC_VALUES)} FROM {SYNC_STATE.name} WHERE source = $1", [source])
            row = cur.fetchone()
            return None if row is None else dict(zip(SYNC_VALUES, row, strict=True))

        return self._transaction(read)


def save_sync_state(
    cur: Any, source: str, values: dict[str, Any], *, previous: dict[str, Any] | None
) -> bool:
    """Save a sync's position in the transaction of ``cur`` (a write's ``also``), only if the source still
    stands at ``previous`` (None: no position saved). False when another sync of the same source moved it
    meanwhile: the caller rolls its chunk back. (Its row lock makes a concurrent save wait for this commit,
    then find the position moved.)"""
    columns = [SYNC_STATE.column(name) for name in SYNC_VALUES]
    params = [f"${n}::{_pg_type(c)}" for n, c in enumerate(columns, start=2)]
    new = [values[name] for name in SYNC_VALUES]
    if previous is None:
        cur.execute(
            f"INSERT INTO {SYNC_STATE.name} (source, {', '.join(SYNC_VALUES)}, synced_at) "
            f"VALUES ($1, {', '.join(params)}, localtimestamp) ON CONFLICT (source) DO NOTHING RETURNING 1",
            [source, *new],
        )
    else:
        before = [f"${n}::{_pg_type(c)}" for n, c in enumerate(columns, start=2 + len(columns))]
        assignments = ", ".join(f"{c} = {p}" for c, p in zip(SYNC_VALUES, params, strict=True))
        cur.execute(
            f"UPDATE {SYNC_STATE.name} SET {assignments}, synced_at = localtimestamp WHERE source = $1 "
            f"AND ROW({', '.join(SYNC_VALUES)}) IS NOT DISTINCT FROM ROW({', '.join(before)}) RETURNING 1",
            [source, *new, *(previous[name] for name in SYNC_VALUES)],
        )
    return cur.fetchone() is not None


def _plain(table: pa.Table) -> pa.Table:
    """Without the driver's field metadata (so it compares and concatenates with the engine's tables)."""
    return table.replace_schema_metadata(None).cast(
        pa.schema([field.remove_metadata() for field in table.schema])
    )


def _ingest(cur: Any, name: str, source: ArrowSource) -> list[str]:
    """COPY the batch (binary, from Arrow) into a temporary table ``name``; returns its column names."""
    data = source if isinstance(source, pa.Table) else source()
    cur.adbc_ingest(name, data, mode="replace", temporary=True)
    return list(data.schema.names)


def _write_sales(
    cur: Any, batches: dict[str, ArrowSource | None], also: Callable[[Any], None] | None = None
) -> RecordWrite:
    cur.execute("SELECT nextval('change_ids')")
    (change,) = cur.fetchone()
    columns = {name: _ingest(cur, f"in_{name}", b) for name, b in batches.items() if b is not None}
    missing = [c.name for c in ORDER_LINES.columns if c.required and c.name not in columns["order_lines"]]
    if missing:
        raise ValueError(f"the order lines lack required column(s): {', '.join(missing)}")
    lines = _all_line_columns(columns["order_lines"])
    changed = 0
    for table in DIMENSION_TABLES:  # always in this order, so that concurrent writers lock alike
        changed += _upsert_dimension(cur, table, columns.get(table.name), lines, change)
    inserted, updated, total = _upsert_lines(cur, lines, change)
    changed += inserted + updated + _fill_unknown_product_prices(cur, lines, change)
    if also is not None:  # before the stamp, which serializes writers until they commit
        also(cur)
    seq = _stamp(cur, change, changed)
    return RecordWrite(seq, inserted, updated, total - inserted - updated)


def _all_line_columns(available: list[str]) -> str:
    """The batch as a subquery with every ORDER_LINES column, NULL for optional ones it leaves out."""
    selected = [
        c.name if c.name in available else f"NULL::{_pg_type(c)} AS {c.name}" for c in ORDER_LINES.columns
    ]
    return f"(SELECT {', '.join(selected)} FROM in_order_lines)"


def _upsert_dimension(cur: Any, table: Table, batch: list[str] | None, lines: str, change: int) -> int:
    """Add the keys not stored yet (with the batch's values, else placeholders), then complete known rows
    with the batch's non-null values. Returns the rows written."""
    (key,) = table.key
    names = [c.name for c in record_columns(table)]
    attributes = [c for c in batch if c != key and c in names] if batch else []
    typed = {c.name: _pg_type(c) for c in table.columns}
    candidates = []
    if batch:
        candidates.append(f"SELECT {', '.join([key, *(f'{a}::{typed[a]} AS {a}' for a in attributes)])} "
                          f"FROM in_{table.name}")  # fmt: skip
    if key in ORDER_LINES.column_names:
        nulls = [f"NULL::{typed[a]} AS {a}" for a in attributes]
        described = f"AND l.{key} NOT IN (SELECT {key} FROM in_{table.name})" if batch else ""
        candidates.append(
            f"SELECT DISTINCT {', '.join([f'l.{key}', *nulls])} FROM {lines} l "
            f"WHERE l.{key} IS NOT NULL {described}"
        )
    if not candidates:
        return 0
    filled = [c for c in names if c != key and (c in attributes or c in PLACEHOLDERS)]
    values = [_value_for_new_row(c, known=c in attributes) for c in filled]
    cur.execute(
        f"WITH added AS (INSERT INTO {table.name} ({', '.join([key, *filled, CHANGE_ID])}) "
        f"SELECT {', '.join([key, *values])}, $1 FROM ({' UNION ALL '.join(candidates)}) c ORDER BY {key} "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING 1) SELECT count(*) FROM added",
        [change],
    )
    written = int(cur.fetchone()[0])
    if attributes:
        # Lock the rows to complete in key order first: two writers describing the same customers then
        # queue instead of deadlocking.
        cur.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table.name} WHERE {key} IN "
            f"(SELECT {key} FROM in_{table.name}) ORDER BY {key} FOR UPDATE) locked"
        )
        cur.fetchone()
        merged = [f"coalesce(b.{a}::{typed[a]}, t.{a})" for a in attributes]
        cur.execute(
            f"WITH completed AS (UPDATE {table.name} t SET "
            f"{', '.join(f'{a} = {m}' for a, m in zip(attributes, merged, strict=True))}, {CHANGE_ID} = $1 "
            f"FROM in_{table.name} b WHERE t.{key} = b.{key} "
            f"AND ROW({', '.join(f't.{a}' for a in attributes)}) IS DISTINCT FROM ROW({', '.join(merged)}) "
            "RETURNING 1) SELECT count(*) FROM completed",
            [change],
        )
        written += int(cur.fetchone()[0])
    return written


def _value_for_new_row(column: str, *, known: bool) -> str:
    if column not in PLACEHOLDERS:
        return column
    return f"coalesce({column}, {PLACEHOLDERS[column]})" if known else PLACEHOLDERS[column]


def _upsert_lines(cur: Any, lines: str, change: int) -> tuple[int, int, int]:
    """Insert new lines and replace stored ones whose values differ; a line without any geography takes
    its customer's address (as stored after this write's customers). Returns (inserted, updated, total)."""
    silent = " AND ".join(f"l.{c} IS NULL" for c in LINE_GEOGRAPHY_COLUMNS)
    address = {
        column: f"CASE WHEN {silent} THEN c.{part} ELSE l.{column} END"
        for part, column in zip(ADDRESS_FIELDS, LINE_GEOGRAPHY_COLUMNS, strict=True)
    }
    names = ORDER_LINES.column_names
    selected = ", ".join(f"{address.get(n, f'l.{n}')} AS {n}" for n in names)
    values = [n for n in names if n not in ORDER_LINES.key]
    cur.execute(
        f"WITH written AS (INSERT INTO {ORDER_LINES.name} ({', '.join([*names, CHANGE_ID])}) "
        f"SELECT {selected}, $1 FROM {lines} l LEFT JOIN {CUSTOMERS.name} c ON c.customer_id = l.customer_id "
        f"ORDER BY l.order_id, l.line "
        f"ON CONFLICT ({', '.join(ORDER_LINES.key)}) DO UPDATE SET "
        f"{', '.join(f'{n} = EXCLUDED.{n}' for n in values)}, {CHANGE_ID} = EXCLUDED.{CHANGE_ID} "
        f"WHERE ROW({', '.join(f'{ORDER_LINES.name}.{n}' for n in values)}) IS DISTINCT FROM "
        f"ROW({', '.join(f'EXCLUDED.{n}' for n in values)}) "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
        [change],
    )
    inserted, updated = (int(v) for v in cur.fetchone())
    cur.execute("SELECT count(*) FROM in_order_lines")
    return inserted, updated, int(cur.fetchone()[0])


def _fill_unknown_product_prices(cur: Any, lines: str, change: int) -> int:
    """As load.py: a product's unknown list price and unit cost estimated from its lines (here, so that
    every copy gets the same estimate, whatever batches it applies the lines in)."""
    cur.execute(
        f"""
        WITH filled AS (
            UPDATE {PRODUCTS.name} p SET
                list_price = coalesce(p.list_price, b.list_price),
                unit_cost = coalesce(p.unit_cost, b.unit_cost),
                {CHANGE_ID} = $1
            FROM (
                SELECT product_id,
                       max(unit_price) AS list_price,
                       sum(cost) / sum(quantity) FILTER (WHERE cost IS NOT NULL) AS unit_cost
                FROM {lines} l GROUP BY product_id
            ) b
            WHERE p.product_id = b.product_id
              AND ((p.list_price IS NULL AND b.list_price IS NOT NULL)
                   OR (p.unit_cost IS NULL AND b.unit_cost IS NOT NULL))
            RETURNING 1
        ) SELECT count(*) FROM filled
        """,
        [change],
    )
    return int(cur.fetchone()[0])


def _write_goals(cur: Any, plans: dict[str, ArrowSource]) -> int:
    cur.execute("SELECT nextval('change_ids')")
    (change,) = cur.fetchone()
    changed = 0
    for level, plan in plans.items():
        table = GOAL_TABLES[level]
        month, member, target = table.column_names
        _ingest(cur, f"in_goals_{level}", plan)
        cur.execute(
            f"WITH written AS (INSERT INTO {table.name} ({month}, {member}, {target}, {CHANGE_ID}) "
            f"SELECT month::date, member::text, target::double precision, $1 FROM in_goals_{level} "
            f"ORDER BY 1, 2 ON CONFLICT ({month}, {member}) DO UPDATE SET {target} = EXCLUDED.{target}, "
            f"{CHANGE_ID} = EXCLUDED.{CHANGE_ID} WHERE {table.name}.{target} IS DISTINCT FROM "
            f"EXCLUDED.{target} RETURNING 1) SELECT count(*) FROM written",
            [change],
        )
        changed += int(cur.fetchone()[0])
    return _stamp(cur, change, changed)


def _stamp(cur: Any, change: int, rows: int) -> int:
    """The transaction's change number, taken last (see the module: numbers commit in order)."""
    cur.execute("UPDATE change_counter SET seq = seq + 1 RETURNING seq")
    (seq,) = cur.fetchone()
    cur.execute("INSERT INTO change_log (seq, change_id, rows) VALUES ($1, $2, $3)", [seq, change, rows])
    cur.execute(f"SELECT pg_notify('{CHANNEL}', $1)", [str(seq)])
    cur.fetchone()
    return int(seq)


STREAM_ROWS = 100_000
"""Rows per Arrow batch when a DuckDB relation is streamed to the record."""


def relation_source(relation: Any) -> Callable[[], pa.RecordBatchReader]:
    """A DuckDB relation as a batch for the writes: streamed, and read again if a write is retried."""
    return lambda: relation.to_arrow_reader(STREAM_ROWS)


SalesWriter = Callable[..., RecordWrite]
"""Writes an import's valid (lines, customers, products) relations; see importing.import_into. Called with
``also=`` too when the caller has work for the same transaction (a sync's position)."""
GoalWriter = Callable[[dict[str, pa.Table]], int]


def configured_sales_writer() -> SalesWriter | None:
    """With SALESPULSE_DATABASE_URL set, the file import's write to the record (a connection for the one
    write); None in the embedded set-up."""
    url = get_settings().database_url
    if url is None:
        return None

    def write(
        lines: Any, customers: Any, products: Any, *, also: Callable[[Any], None] | None = None
    ) -> RecordWrite:
        record = SystemOfRecord(url.get_secret_value(), connections=1)
        try:
            return relation_writer(record)(lines, customers, products, also=also)
        finally:
            record.close()

    return write


def relation_writer(record: SystemOfRecord) -> SalesWriter:
    """A SalesWriter of DuckDB relations (an import's valid rows) into ``record``, streamed."""

    def write(
        lines: Any, customers: Any, products: Any, *, also: Callable[[Any], None] | None = None
    ) -> RecordWrite:
        return record.write_sales(
            relation_source(lines),
            customers=relation_source(customers) if customers is not None else None,
            products=relation_source(products) if products is not None else None,
            also=also,
        )

    return write


def configured_goal_writer() -> GoalWriter | None:
    """With SALESPULSE_DATABASE_URL set, the goal import's write to the record; None embedded."""
    url = get_settings().database_url
    if url is None:
        return None

    def write(plans: dict[str, pa.Table]) -> int:
        record = SystemOfRecord(url.get_secret_value(), connections=1)
        try:
            return record.write_goals(plans)  # type: ignore[arg-type]
        finally:
            record.close()

    return write
