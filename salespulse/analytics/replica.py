"""A service process's DuckDB warehouse as an analytical copy of the system of record (PostgreSQL).

With SALESPULSE_DATABASE_URL set, ingest and imports write to the record (salespulse/warehouse/record.py)
and every service process keeps its own DuckDB file, with the rollups, in step with it: a follower thread
pulls the rows changed after its watermark (the last change number it applied) whenever the record says
something committed (LISTEN/NOTIFY; a poll every SALESPULSE_REPLICA_POLL_SECONDS if a notification is
missed) and applies them through the engine's own write path, so the rollups stay exact. A write through
this process wakes the follower at once and is answered once the copy shows it (read-your-writes); other
replicas show it a notification later.

The watermark is stored in the copy (``replica_state``, with the record's identity). A small change is
applied in the engine's ingest transaction and the watermark right after it: a crash between the two
applies those rows again on restart, which changes nothing (rows are upserted by key with their values in
the record). A large change (an import, a new copy's first load) is streamed into the copy with the
watermark in the same transaction, and the rollups are rebuilt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import psycopg
import pyarrow as pa

from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.errors import AnalyticsError, Problem
from salespulse.analytics.ingest import LINE_SCHEMA
from salespulse.warehouse.load import upsert_sales
from salespulse.warehouse.owner import WarehouseUnavailable
from salespulse.warehouse.record import (
    CHANNEL,
    RECORD_TABLES,
    Changes,
    RecordUnavailable,
    RecordWrite,
    SystemOfRecord,
    relation_source,
)
from salespulse.warehouse.schema import DIMENSION_TABLES, GOAL_TABLES, ORDER_LINES
from salespulse.warehouse.store import transaction

log = logging.getLogger(__name__)

STATE_TABLE = "replica_state"
PULLED = "replica_pulled_"
"""Prefix of the temporary tables a large change is streamed into."""


class NotACopy(WarehouseUnavailable):
    """The DuckDB file holds data of its own, or follows another system of record."""


class RecordDown(AnalyticsError):
    """The system of record could not take the write (nothing was written): the client may retry."""

    status = 503
    title = "system of record unavailable"


class Replica:
    """Keeps ``engine``'s warehouse a copy of ``record`` and writes the engine's ingest there."""

    def __init__(
        self,
        engine: AnalyticsEngine,
        record: SystemOfRecord,
        *,
        poll_seconds: float = 1.0,
        wait_seconds: float = 10.0,
    ) -> None:
        self.engine = engine
        self.record = record
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self._applied = self._stored_watermark()
        self._applied_changed = threading.Condition()
        self._apply_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.caught_up = threading.Event()
        """Set once the copy has applied everything the record had when the follower started."""
        self.last_error: str | None = None
        self.last_applied_at: float | None = None

    @classmethod
    def configured(cls, engine: AnalyticsEngine) -> Replica:
        """A replica of the record at SALESPULSE_DATABASE_URL (which must be set)."""
        from salespulse.config import get_settings

        settings = get_settings()
        assert settings.database_url is not None
        record = SystemOfRecord(settings.database_url.get_secret_value())
        return cls(
            engine,
            record,
            poll_seconds=settings.replica_poll_seconds,
            wait_seconds=settings.replica_wait_seconds,
        )

    # --- running ---

    def start(self) -> None:
        """Route the engine's ingest to the record and follow it (the first catch-up runs in the follower
        thread: ``caught_up`` says when it is done)."""
        self.engine.follow(self)
        self._stop.clear()
        for target, name in ((self._follow, "replica-follower"), (self._listen, "replica-listener")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self.engine.follow(None)
        self.record.close()

    def _follow(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                applied = self.apply_available()
                failures, self.last_error = 0, None
                self.caught_up.set()
            except Exception as error:  # the record may be briefly unreachable: keep serving, try again
                failures += 1
                self.last_error = str(error).splitlines()[0] if str(error) else type(error).__name__
                log.exception("replica: applying the record's changes failed (attempt %d)", failures)
                self._stop.wait(min(0.5 * failures, 10))
                continue
            if not applied:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def _listen(self) -> None:
        """Wake the follower on each NOTIFY; reconnects when the connection drops."""
        url = self.record.url
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as con:
                    con.execute(f"LISTEN {CHANNEL}")
                    self._wake.set()  # anything committed while no one listened
                    while not self._stop.is_set():
                        for _ in con.notifies(timeout=1.0):
                            self._wake.set()
            except psycopg.Error as error:
                log.warning("replica: listening to the record failed (%s); polling meanwhile", error)
                self._stop.wait(1.0)

    # --- writing through the record ---

    def write_sales(
        self, lines: pa.Table, customers: pa.Table | None, products: pa.Table | None
    ) -> RecordWrite:
        """Write a validated real-time batch to the record; answered once this copy shows it."""
        try:
            written = self.record.write_sales(lines, customers=customers, products=products)
        except RecordUnavailable as error:
            raise RecordDown(
                Problem("lines", f"{error}; nothing was written, send the batch again")
            ) from None
        self.wait_for(written.seq)
        return written

    def write_import(
        self,
        lines: duckdb.DuckDBPyRelation,
        customers: duckdb.DuckDBPyRelation | None,
        products: duckdb.DuckDBPyRelation | None,
    ) -> RecordWrite:
        """The file import's write (importing.import_into's ``write_sales``): its valid rows, streamed."""
        written = self.record.write_sales(
            relation_source(lines),
            customers=relation_source(customers) if customers is not None else None,
            products=relation_source(products) if products is not None else None,
        )
        self.wait_for(written.seq)
        return written

    def write_goals(self, plans: dict[str, pa.Table]) -> int:
        """The goal import's write (goals.import_goals_into's ``write_goals``)."""
        seq = self.record.write_goals(plans)  # type: ignore[arg-type]
        self.wait_for(seq)
        return seq

    def wait_for(self, seq: int, timeout: float | None = None) -> bool:
        """Until this copy has applied change ``seq`` (bounded: the write is in the record either way)."""
        self._wake.set()
        with self._applied_changed:
            shown = self._applied_changed.wait_for(
                lambda: self._applied >= seq, self.wait_seconds if timeout is None else timeout
            )
        if not shown:
            log.warning("replica: change %d is in the record but not yet in this copy", seq)
        return shown

    # --- applying the record's changes ---

    @property
    def watermark(self) -> int:
        return self._applied

    def apply_available(self) -> bool:
        """Apply what the record changed after the watermark; False when there was nothing."""
        with self._apply_lock:
            after = self._applied
            changes = self.record.read_changes(after, max_rows=self.engine.max_group_lines)
            if changes.upto == after:
                return False
            if changes.tables is None:
                upto = self._apply_large()
            else:
                self._apply_small(changes)
                upto = changes.upto
            with self._applied_changed:
                self._applied = upto
                self._applied_changed.notify_all()
            self.last_applied_at = time.time()
            return True

    def _apply_small(self, changes: Changes) -> None:
        assert changes.tables is not None
        tables = {name: t if t.num_rows else None for name, t in changes.tables.items()}
        lines = tables.pop(ORDER_LINES.name)
        customers, products = tables.pop("customers"), tables.pop("products")
        if lines is not None:
            # The ingest's own transaction: the rollups follow the lines (and the dimensions they bring).
            self.engine.apply_changes(lines.select(LINE_SCHEMA.names).cast(LINE_SCHEMA), customers, products)
            customers = products = None
        dimensions_only = customers is not None or products is not None

        def apply_rest(con: duckdb.DuckDBPyConnection) -> None:
            with transaction(con):
                _upsert_dimensions(con, customers=customers, products=products, **_dimensions(tables))
                for level, table in GOAL_TABLES.items():
                    _replace_goals(con, level, tables.get(table.name))
                self._store_watermark(con, changes.upto)

        self.engine.write_locked(apply_rest)
        if dimensions_only:  # a product renamed without a line: the rollups check themselves
            self.engine.refresh()

    def _apply_large(self) -> int:
        """Stream every change after the watermark into the copy in one transaction, then rebuild the
        rollups (write_exclusively checks them). Returns the change number applied."""

        def write(con: duckdb.DuckDBPyConnection) -> int:
            def spill(name: str, reader: pa.RecordBatchReader) -> None:
                con.register("replica_reader", reader)
                try:
                    con.execute(
                        f"CREATE OR REPLACE TEMP TABLE {PULLED}{name} AS SELECT * FROM replica_reader"
                    )
                finally:
                    con.unregister("replica_reader")

            try:
                changes = self.record.read_changes(self._applied, spill=spill)
                pulled = {t.name: con.table(f"{PULLED}{t.name}") for t in RECORD_TABLES}

                def goals_and_watermark(c: duckdb.DuckDBPyConnection) -> None:
                    for level, table in GOAL_TABLES.items():
                        _replace_goals(c, level, pulled[table.name])
                    self._store_watermark(c, changes.upto)

                upsert_sales(
                    con,
                    pulled[ORDER_LINES.name],
                    **{t.name: pulled[t.name] for t in DIMENSION_TABLES},
                    before_commit=goals_and_watermark,
                )
                return changes.upto
            finally:
                for table in RECORD_TABLES:
                    con.execute(f"DROP TABLE IF EXISTS {PULLED}{table.name}")

        return self.engine.write_exclusively(write)

    # --- the watermark ---

    def _stored_watermark(self) -> int:
        """The change number this copy has applied (0: a new copy), after checking it is a copy of this
        record: a file with sales of its own, or another record's copy, is refused rather than mixed."""
        with self.engine.cursor() as con:
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (only_row BOOLEAN PRIMARY KEY, "
                "record_id VARCHAR NOT NULL, seq BIGINT NOT NULL)"
            )
            stored = con.execute(f"SELECT record_id, seq FROM {STATE_TABLE}").fetchall()
            (lines,) = con.execute(f"SELECT count(*) FROM {ORDER_LINES.name}").fetchone()
            (path,) = con.execute(
                "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
            ).fetchone()
        if stored and stored[0][0] == self.record.identity:
            return int(stored[0][1])
        if stored or lines:
            whose = "another system of record's copy" if stored else f"{lines:,} order lines of its own"
            raise NotACopy(
                f"the warehouse {path} holds {whose}, not a copy of the system of record: give this service "
                "a new SALESPULSE_WAREHOUSE_PATH (it is filled from the record), or load this warehouse's "
                "data into the record first (salespulse.analytics.replica.publish_warehouse)"
            )
        return 0

    def _store_watermark(self, con: duckdb.DuckDBPyConnection, seq: int) -> None:
        con.execute(f"INSERT OR REPLACE INTO {STATE_TABLE} VALUES (true, ?, ?)", [self.record.identity, seq])

    def status(self) -> dict[str, Any]:
        """The watermark, the record's head and the lag, for /health."""
        status: dict[str, Any] = {
            "watermark": self._applied,
            "caught_up": self.caught_up.is_set(),
            "last_applied_at": self.last_applied_at,
            "error": self.last_error,
        }
        try:
            head = self.record.head()
        except RecordUnavailable as error:
            return {**status, "record": "unreachable", "error": str(error)}
        return {**status, "record": "reachable", "head": head, "lag_changes": max(head - self._applied, 0)}


def _dimensions(tables: dict[str, pa.Table | None]) -> dict[str, pa.Table | None]:
    return {name: tables.get(name) for name in ("salesmen", "distributors")}


def _upsert_dimensions(con: duckdb.DuckDBPyConnection, **batches: pa.Table | None) -> None:
    """Dimension rows that came without lines (upsert_sales with no lines: the same coalesce rules)."""
    given = {name: con.from_arrow(b) for name, b in batches.items() if b is not None}
    if not given:
        return
    no_lines = con.from_arrow(LINE_SCHEMA.empty_table())
    upsert_sales(con, no_lines, **given)


def _replace_goals(con: duckdb.DuckDBPyConnection, level: str, rows: Any) -> None:
    if rows is None:
        return
    table = GOAL_TABLES[level]
    columns = ", ".join(table.column_names)
    relation = con.from_arrow(rows) if isinstance(rows, pa.Table) else rows
    con.register("replica_goals", relation)
    try:
        con.execute(f"INSERT OR REPLACE INTO {table.name} ({columns}) SELECT {columns} FROM replica_goals")
    finally:
        con.unregister("replica_goals")


def publish_warehouse(con: duckdb.DuckDBPyConnection, record: SystemOfRecord) -> tuple[RecordWrite, int]:
    """Write a DuckDB warehouse's sales, dimensions and goals into the record (an embedded set-up moving to
    PostgreSQL, a test's seed), streamed: the lines and dimensions in one transaction, then the goals."""
    sources: dict[str, Callable[[], pa.RecordBatchReader]] = {
        table.name: relation_source(con.table(table.name)) for table in (ORDER_LINES, *DIMENSION_TABLES)
    }
    written = record.write_sales(sources.pop(ORDER_LINES.name), **sources)
    plans = {}
    for level, table in GOAL_TABLES.items():
        month, member, target = table.column_names
        plan = con.sql(f"SELECT {month} AS month, {member} AS member, {target} AS target FROM {table.name}")
        plans[level] = plan.to_arrow_table()
    return written, record.write_goals({level: plan for level, plan in plans.items() if plan.num_rows})
