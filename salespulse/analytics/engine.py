"""The analytics engine: one per service process, over the process's one DuckDB connection.

Each read runs on its own cursor, so requests query in parallel and see a consistent snapshot (MVCC) while
an ingest transaction writes. Writes (ingest, rollup rebuilds) take one lock: DuckDB lets one process
write, and one transaction at a time keeps the rollup deltas simple. Batches that arrive while another is
being written are written together in the next transaction (group commit): a transaction costs much the
same for one batch as for several. Work that does not need to happen inside an ingest (folding the rollups'
delta rows, checkpointing the write-ahead log) waits for a pause in the stream (housekeeping).

A batch of new orders (the real-time case) leaves the rollups alone: its lines are also kept in the table of
unfolded lines (rollups.UNFOLDED), and the folder thread folds them into every rollup a moment later, a few
batches at once, beside the writer (the fold lock keeps the other writers of rollup rows apart). Meanwhile
the compiler reads each rollup together with the unfolded lines' delta, in one statement and so in one
snapshot: reads are exact and never wait for a fold. A batch that changes what is stored (a replaced line, a
moved first purchase, a described customer or product) folds first and keeps the rollups in step itself.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from salespulse.analytics import rollups
from salespulse.analytics.compiler import (
    PATTERN_DAYS,
    Compiled,
    Compiler,
    GoalBasis,
    Params,
    SellingCalendar,
    WarehouseState,
    lookup_members_sql,
    running_now,
    selling_weekdays,
)
from salespulse.analytics.errors import BatchRejected, Problem
from salespulse.analytics.ingest import SalesBatch, customers_table, lines_table, products_table
from salespulse.analytics.query import INTERNAL, TIME_OUTPUT, Query
from salespulse.analytics.semantic import DIMENSIONS, Operator
from salespulse.warehouse.load import Known, upsert_sales
from salespulse.warehouse.store import transaction

if TYPE_CHECKING:  # annotations only: the engine works without the model code loaded
    from salespulse.analytics.replica import Replica
    from salespulse.modeling.customer_value import CustomerValueParameters

    CustomerModelSource = CustomerValueParameters | Callable[[], CustomerValueParameters | None]

T = TypeVar("T")
CACHED_FRAMES = 16

log = logging.getLogger(__name__)

DATA_FLAGS_SQL = """
    SELECT bool_or(salesman_id IS NOT NULL), bool_or(distributor_id IS NOT NULL), bool_or(profit IS NOT NULL),
           CAST(min(ordered_at) AS DATE), CAST(max(ordered_at) AS DATE)
    FROM order_lines
"""
FLAG_NAMES = ("salesman", "distributor", "cost")


@dataclass(frozen=True)
class IngestResult:
    inserted: int
    updated: int
    unchanged: int
    rollups_rebuilt: bool
    seconds: float
    group: int = 1
    """How many batches were written in the same transaction."""


class _Pending:
    """A batch waiting for the writer, as Arrow tables, and then its outcome."""

    def __init__(self, lines: pa.Table, customers: pa.Table | None, products: pa.Table | None) -> None:
        self.lines, self.customers, self.products = lines, customers, products
        self.line_count = lines.num_rows
        self.keys = set(
            zip(lines.column("order_id").to_pylist(), lines.column("line").to_pylist(), strict=True)
        )
        # Customers and products the batch describes (not only refers to): a later batch describing the
        # same one must not overtake it.
        self.described_customers = customers.column("customer_id").to_pylist() if customers else []
        self.described_products = products.column("product_id").to_pylist() if products else []
        self.described = {f"c:{c}" for c in self.described_customers} | {
            f"p:{p}" for p in self.described_products
        }
        self.done = threading.Event()
        self.result: IngestResult | None = None
        self.error: BaseException | None = None

    @classmethod
    def of_batch(cls, batch: SalesBatch) -> _Pending:
        # Built by the request's own thread while the writer may be busy with earlier batches.
        return cls(lines_table(batch), customers_table(batch), products_table(batch))


def _concat(tables: list[pa.Table | None]) -> pa.Table | None:
    present = [t for t in tables if t is not None]
    return pa.concat_tables(present, promote_options="permissive") if present else None


class AnalyticsEngine:
    """Queries and real-time ingest over one warehouse connection (the named reports and GET /meta are built
    on it, in reports/ and meta.py; the engine knows nothing of them).

    ``con`` must be writable: the engine keeps its rollup tables in the warehouse. With ``use_rollups``
    false every query reads the order lines (the rollups are still maintained); tests use it to check that
    both answer the same.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        use_rollups: bool = True,
        max_batch_lines: int = 10_000,
        compact_after_rows: int = 100_000,
        fold_after_lines: int = 20_000,
        fold_after_seconds: float = 1.0,
    ) -> None:
        self._con = con
        self._write_lock = threading.Lock()
        # Held by whoever writes rollup rows: folds, compactions, rebuilds, a write that keeps the rollups in
        # step itself. Taken after the write lock, never before it.
        self._fold_lock = threading.Lock()
        self._state_lock = threading.Lock()  # self.state is replaced whole, by the writer and by the folder
        self.use_rollups = use_rollups
        self.max_batch_lines = max_batch_lines
        self.compact_after_rows = compact_after_rows
        self.fold_after_lines, self.fold_after_seconds = fold_after_lines, fold_after_seconds
        self._unfolded_lines = 0  # committed lines not folded into the rollups yet (see rollups.UNFOLDED)
        self._unfolded_since = float("inf")  # when the oldest of them was written
        self._folder: threading.Thread | None = None
        self._fold_wanted = threading.Event()
        self.max_group_lines = max(max_batch_lines, 20_000)
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self.linger_seconds = 0.05
        self._senders = 1  # batches seen in flight together when the last transaction ended
        self._senders_seen_at = float("-inf")
        self._appended: dict[str, tuple[int, date]] = {}
        self._last_write_at = float("-inf")
        self._unsaved = False  # committed writes not yet checkpointed into the file
        self._housekeeper: threading.Thread | None = None
        self._stop_housekeeping = threading.Event()
        self.state = WarehouseState()
        self._members: dict[str, tuple[WarehouseState, frozenset[Any]]] = {}
        # What the last day with data and the selling calendars are, until the next ingest or rebuild.
        self._last_day: tuple[WarehouseState, date | None] | None = None
        self._calendars: tuple[WarehouseState, dict[tuple[date, date], SellingCalendar]] | None = None
        self._fingerprint = rollups.Fingerprint(0, 0)
        self._orders: rollups.OrderIndex | None = None  # which orders are stored (see rollups.OrderIndex)
        self._customer_model: Callable[[], CustomerValueParameters | None] | None = None
        self._frames: tuple[WarehouseState, OrderedDict[str, pd.DataFrame]] | None = None
        self._frames_lock = threading.Lock()
        self.refresh()

    @classmethod
    def configured(cls, con: duckdb.DuckDBPyConnection) -> AnalyticsEngine:
        """An engine with the options of the settings (SALESPULSE_ANALYTICS_*)."""
        from salespulse.config import get_settings

        settings = get_settings()
        return cls(
            con,
            use_rollups=settings.analytics_rollups,
            max_batch_lines=settings.analytics_max_batch_lines,
            compact_after_rows=settings.analytics_compact_after_rows,
            fold_after_lines=settings.analytics_fold_after_lines,
            fold_after_seconds=settings.analytics_fold_after_seconds,
        )

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self._con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    # --- the customer-value model (the lifetime-value and churn-risk reports use it when given one) ---

    def use_customer_model(self, model: CustomerModelSource | None) -> None:
        """Let the customer reports predict with the customer-value model: its parameters, or a function
        that returns the parameters in service at each call (so a model swapped later is used without
        calling this again; None from it means no model). None: back to the heuristics."""
        if model is None or callable(model):
            self._customer_model = model
        else:
            self._customer_model = lambda: model

    def customer_model(self) -> CustomerValueParameters | None:
        """The customer-value model's parameters the reports use now, or None (heuristics)."""
        return None if self._customer_model is None else self._customer_model()

    # --- rollups ---

    def refresh(self, *, force: bool = False) -> bool:
        """Rebuild the rollups if the warehouse changed behind the engine's back; True when rebuilt."""
        with self._write_lock, self._fold_lock, self.cursor() as con:
            stored = rollups.read_state(con)
            current = rollups.fingerprint(con)
            (products,) = con.execute(rollups.PRODUCT_HASH).fetchall()[0]
            rollups.create_unfolded(con)  # a warehouse from before deferred folds has none
            unfolded = rollups.unfolded_fingerprint(con)
            folded = rollups.Fingerprint(
                current.lines - unfolded.lines, current.line_hash - unfolded.line_hash
            )
            stale = (
                force
                or not rollups.rollups_exist(con)
                or stored.get("fingerprint") != folded.encode()  # the folded lines are what it describes
                or stored.get("products") != products
                or stored.get("definitions") != rollups.definitions_digest()
                or not rollups.customers_agree(con)
            )
            if stale:
                with transaction(con):
                    rollups.build(con)
                    uniform = rollups.uniform_fields(con)
                    state = {"fingerprint": current.encode(), "uniform": ",".join(sorted(uniform))}
                    definitions = rollups.definitions_digest()
                    rollups.write_state(con, {**state, "products": products, "definitions": definitions})
                folded = current
            else:
                uniform = frozenset(filter(None, stored.get("uniform", "").split(",")))
                if unfolded.lines:
                    uniform &= rollups.uniform_fields(con, rollups.UNFOLDED)
            self._fingerprint = folded
            self._lookups = rollups.Lookups(con)
            if stale or self._orders is None:  # the same fingerprint: the same orders
                self._orders = rollups.OrderIndex(con)
            # Lines a stopped or killed process wrote and never folded: read with the rollups, folded soon.
            self._unfolded_lines = rollups.unfolded_count(con)
            self._unfolded_since = time.monotonic() if self._unfolded_lines else float("inf")
            with self._state_lock:
                self.state = self._read_state(con, uniform)
        return stale

    def write_exclusively(self, write: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """A bulk write (a file import) on the engine's connection, with ingest held off while it runs; then
        the rollups are brought up to date, so the next report includes what it wrote."""
        with self._write_lock, self.cursor() as con:
            with self._fold_lock:  # the write may complete an unfolded order: the rollups hold them first
                self._fold(con)
            result = write(con)
        self.refresh()
        return result

    def _read_state(self, con: duckdb.DuckDBPyConnection, uniform: frozenset[str]) -> WarehouseState:
        *flags, first, last = con.execute(DATA_FLAGS_SQL).fetchall()[0]
        return WarehouseState(
            rollups=rollups.row_counts(con),
            uniform=uniform,
            bounds=(first, last) if first is not None else None,
            flags=frozenset(name for name, present in zip(FLAG_NAMES, flags, strict=True) if present),
            relations=rollups.UNFOLDED_RELATIONS if self._unfolded_lines else {},
        )

    # --- reading ---

    def compile(
        self,
        query: Query,
        *,
        unlimited: bool = False,
        labels: bool = True,
        params: Params | None = None,
        use_rollups: bool | None = None,
    ) -> Compiled:
        rollups_on = self.use_rollups if use_rollups is None else use_rollups
        compiler = Compiler(self.state, use_rollups=rollups_on, goal_basis=self.goal_basis)
        return compiler.compile(query, unlimited=unlimited, labels=labels, params=params)

    def run_query(
        self, query: Query | dict[str, Any], *, use_rollups: bool | None = None, raw_json: bool = False
    ) -> dict[str, Any]:
        """The answer as columns and rows; with ``raw_json`` the rows are one RawJSON text (for HTTP).

        A filter value the warehouse does not have matches nothing, as any filter would; a note says so,
        like a report's (unknown_members)."""
        if not isinstance(query, Query):
            query = Query.model_validate(query)
        unknown = self.unknown_members(
            (f"filters[{i}].values", f.member, f.values)
            for i, f in enumerate(query.filters)
            if f.operator in (Operator.EQUALS, Operator.IN) and not f.is_measure
        )
        compiled = self.compile(query, use_rollups=use_rollups)
        started = time.perf_counter()
        rows = (self.fetch_json if raw_json else self.fetch)(compiled.sql, compiled.params)
        return {
            "columns": [{"name": c.name, "format": c.format} for c in compiled.columns],
            "rows": rows,
            "source": compiled.source,
            "notes": [*unknown, *compiled.notes],
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    def internal_query(self, **spec: Any) -> Query:
        """A query built by a report: may use internal dimensions (the order), validated all the same."""
        return Query.model_validate(spec, context=INTERNAL)

    def fetch(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        with self.cursor() as con:
            result = con.execute(sql, params or [])
            names = [d[0] for d in result.description]
            converters = [_converter(str(d[1])) for d in result.description]
            rows = result.fetchall()
        # Column by column, and only the columns that need it: a report of 20k rows converts ~10x faster
        # than calling _plain on every value.
        columns = [
            list(values) if convert is None else [convert(v) for v in values]
            for values, convert in zip(zip(*rows, strict=True), converters, strict=True)
        ] if rows else []  # fmt: skip
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def fetch_frame(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """The rows as a DataFrame, kept (a copy handed out) until the warehouse changes.

        For the steps SQL cannot do over every customer (the customer-value model's closed forms): their
        inputs are a group-by of the order lines by customer and day (1-3 s at 10M lines), the same for
        every request between two ingests (the dashboard's churn panel and its insights ask for the same)."""
        key = repr((sql, params))
        state = self.state
        with self._frames_lock:
            if self._frames is None or self._frames[0] is not state:
                self._frames = (state, OrderedDict())
            frames = self._frames[1]
            if key in frames:
                frames.move_to_end(key)
                return frames[key].copy()
        with self.cursor() as con:
            frame = con.execute(sql, params or []).df()
        with self._frames_lock:
            if self._frames is not None and self._frames[0] is state:
                self._frames[1][key] = frame
                while len(self._frames[1]) > CACHED_FRAMES:
                    self._frames[1].popitem(last=False)
        return frame.copy()

    def fetch_json(self, sql: str, params: list[Any] | None = None) -> RawJSON:
        """The rows as a JSON array, serialized by DuckDB: many times faster than Python for big results."""
        with self.cursor() as con:
            rows = con.execute(f"SELECT to_json(q) FROM ({sql}) q", params or []).fetchall()
        return RawJSON("[" + ",".join(row[0] for row in rows) + "]")

    def last_day(self) -> date | None:
        """The last day with a sale (exact, unlike the conservative bounds); kept until the next ingest."""
        state = self.state
        if self._last_day is None or self._last_day[0] is not state:
            compiled = self.compile(Query(measures=["last_sale"]))
            rows = self.fetch(compiled.sql, compiled.params)
            value = rows[0]["last_sale"] if rows else None
            self._last_day = (state, date.fromisoformat(value) if value else None)
        return self._last_day[1]

    # --- running periods (compiler.SELLING_DAYS_RULE) ---

    def selling_calendar(self, since: date, now: date) -> SellingCalendar:
        """The business's selling days from ``since`` on, as seen on ``now``; kept until the next ingest."""
        first = min(since, now - timedelta(days=PATTERN_DAYS - 1))
        state = self.state
        if self._calendars is None or self._calendars[0] is not state:
            self._calendars = (state, {})
        calendars = self._calendars[1]
        if (first, now) not in calendars:
            # The whole business decides which days it sells on: no filter applies.
            query = self.internal_query(
                measures=["lines"], time_dimension={"grain": "day", "date_range": [first, now]}
            )
            compiled = self.compile(query, unlimited=True, labels=False)
            rows = self.fetch(compiled.sql, compiled.params)
            days = frozenset(date.fromisoformat(row[TIME_OUTPUT]) for row in rows)
            calendars[(first, now)] = SellingCalendar(now, days, selling_weekdays(days, now))
        return calendars[(first, now)]

    def goal_basis(self, period: tuple[date, date] | None) -> GoalBasis:
        """What the goal of each month of ``period`` (None: all time) counts for its revenue: "now" is the
        period's end, at most the last day with data."""
        now = running_now(period[1] if period else None, self.last_day())
        return GoalBasis(period, now, lambda since: self.selling_calendar(since, now))

    def members(self, dimension: str) -> frozenset[Any]:
        """The values ``dimension`` takes in the warehouse: a closed list when declared, else read from its
        dimension table, else from the sales through the query layer (a rollup answers). Kept until the
        warehouse state changes (every ingest and rebuild makes a new one), so a batch's new members count
        from the next request on."""
        declared = DIMENSIONS[dimension].values
        if declared is not None:
            return frozenset(declared)
        state = self.state
        cached = self._members.get(dimension)
        if cached is not None and cached[0] is state:
            return cached[1]
        sql, params = lookup_members_sql(dimension), []
        if sql is None:
            query = self.internal_query(measures=["lines"], dimensions=[dimension])
            compiled = self.compile(query, unlimited=True, labels=False)
            sql = f'SELECT "{dimension}" AS member FROM ({compiled.sql}) WHERE member IS NOT NULL'
            params = compiled.params
        with self.cursor() as con:
            found = frozenset(row[0] for row in con.execute(sql, params).fetchall())
        self._members[dimension] = (state, found)
        return found

    def unknown_members(self, wanted: Iterable[tuple[str, str, list[Any]]]) -> list[str]:
        """Notes on the member values the warehouse does not have, each naming where it was given and the
        values the data has. A filter on region 'Atlantis' answers nothing, as a filter on a region without
        sales would: the OpenAPI document can promise no list of values that imports and sales change, so
        such a value is not an invalid request (422); the note keeps a typo from passing for "no sales".
        ``wanted`` lists where the values were given, the dimension and the values."""
        notes = []
        for where, dimension, values in wanted:
            known = self._known_values(dimension)
            unknown = [v for v in values if v not in known]
            if unknown:
                notes.append(f"{where}: {unknown_member_message(dimension, unknown, known)}")
        return notes

    def _known_values(self, dimension: str) -> frozenset[Any]:
        cycle = DIMENSIONS[dimension].cycle
        if cycle is not None:  # a month of year with no sales is still a month: any value of the cycle is
            return frozenset(range(cycle[0], cycle[1] + 1))
        return self.members(dimension)

    # --- writing ---

    def ingest(self, batch: SalesBatch) -> IngestResult:
        """Write a batch atomically (upsert by order_id + line) with the rollups kept in step.

        Batches that arrive while another is being written are written together, in one transaction (group
        commit): each batch is still all or nothing, and a batch waits for the earlier ones it shares an
        order line, customer or product with.
        """
        if len(batch.lines) > self.max_batch_lines:
            raise BatchRejected(
                Problem(
                    "lines", f"{len(batch.lines):,} lines; a batch holds at most {self.max_batch_lines:,}"
                )
            )
        if self._replica is not None:  # a copy of the system of record: the batch is written there
            return self._ingest_through_record(batch)
        pending = _Pending.of_batch(batch)
        with self._queue_lock:
            self._queue.append(pending)
        while not pending.done.is_set():
            with self._write_lock:
                if not pending.done.is_set():
                    self._linger()
                    self._write_group(self._take_group())
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _linger(self) -> None:
        """When batches have been arriving together, wait a moment for the next ones to join the commit.

        A transaction costs much the same for one batch as for several (about 70 ms, then 6 ms a batch of
        1,000 lines at 10M lines), so with concurrent senders a few milliseconds of waiting for all of them
        buy throughput. How many there are is what was in flight when the last transaction ended: the
        batches it wrote (their senders come back) and those already waiting. A lone sender never waits.
        """
        if self._senders <= 1 or time.monotonic() - self._senders_seen_at > 2.0:
            return
        deadline = time.monotonic() + self.linger_seconds
        while time.monotonic() < deadline:
            with self._queue_lock:
                lines = sum(p.line_count for p in self._queue)
                if len(self._queue) >= self._senders or lines >= self.max_group_lines:
                    return
            time.sleep(0.001)

    def _take_group(self) -> list[_Pending]:
        """Queued batches to write together, oldest first; none overtakes a batch it shares a key with."""
        taken: list[_Pending] = []
        left: list[_Pending] = []
        keys: set[tuple[str, int]] = set()
        blocked: set[tuple[str, int]] = set()
        described: set[str] = set()
        lines = 0
        with self._queue_lock:
            for pending in self._queue:
                fits = not taken or lines + pending.line_count <= self.max_group_lines
                clash = pending.keys & (keys | blocked) or pending.described & described
                if fits and not clash:
                    taken.append(pending)
                    keys |= pending.keys
                    described |= pending.described
                    lines += pending.line_count
                else:
                    left.append(pending)
                    blocked |= pending.keys
                    described |= pending.described
            self._queue = left
        return taken

    def _write_group(self, group: list[_Pending]) -> None:
        try:
            results = self._write(group)
        except BaseException as error:
            if len(group) == 1:
                group[0].error = error
                group[0].done.set()
                return
            results = []
            for pending in group:  # one bad batch must not sink the others: write each alone
                try:
                    results.append(self._write([pending])[0])
                except BaseException as alone:
                    pending.error = alone
                    results.append(None)
        for pending, result in zip(group, results, strict=True):
            pending.result = result
            pending.done.set()
        with self._queue_lock:
            self._senders, self._senders_seen_at = len(group) + len(self._queue), time.monotonic()

    def _write(self, batches: list[_Pending]) -> list[IngestResult]:
        """One transaction for ``batches`` (whose keys are disjoint); the caller holds the write lock."""
        started = time.perf_counter()
        lines = pa.concat_tables([b.lines for b in batches])
        customers = _concat([b.customers for b in batches])
        products = _concat([b.products for b in batches])
        # A line that says nowhere it went takes the stored customer's address now (from the engine's
        # cache of the addresses), so that the batch the rollups see is the lines as stored.
        lines = self._lookups.complete_geography(lines)
        with self.cursor() as con, contextlib.ExitStack() as rollup_writer:
            with rollups.registered(con, **{rollups.BATCH: lines}):
                before = rollups.snapshot(con, lines, self._lookups, self._orders)
                described = {
                    "customers": [c for b in batches for c in b.described_customers],
                    "products": [p for b in batches for p in b.described_products],
                }
                deferred = rollups.defers(before, self._lookups, described)
                if not deferred:  # this write keeps the rollups in step itself, from the lines as stored
                    rollup_writer.enter_context(self._fold_lock)
                    self._fold(con)
                # Widened before the commit: a query routed while the batch commits must never believe a
                # month rollup is exact for days it has not seen.
                self._widen(lines)
                done: list[rollups.Maintenance] = []

                def keep_rollups_in_step(c: duckdb.DuckDBPyConnection) -> None:
                    if deferred:
                        maintenance = rollups.defer(
                            c, lines, before, self._lookups, self._fingerprint, self.state.uniform
                        )
                        self._note_unfolded(lines.num_rows)  # before the commit, like the bounds
                    else:
                        maintenance = rollups.maintain(
                            c, lines, before, self._lookups, described, self._fingerprint, self.state.uniform
                        )
                    done.append(maintenance)

                known = Known(
                    complete_tables=self._lookups.complete_tables(lines),
                    first_purchases_stay=before.changed_old.num_rows == 0
                    and not before.first_purchase_movers,
                    lines_are_new=not before.stored_keys,
                    prices_known=products is None and self._lookups.prices_known(lines),
                    first_purchases=before.first_purchases,
                )
                try:
                    upsert_sales(
                        con,
                        lines,
                        customers=customers,
                        products=products,
                        before_commit=keep_rollups_in_step,
                        known=known,
                    )
                except BaseException:
                    if deferred and done:  # counted as unfolded, then not committed
                        self._note_unfolded(-lines.num_rows)
                    self._lookups.load(con)  # it may hold customers of the rolled-back batch
                    raise
                self._lookups.note_keys(lines)
                self._orders.add(before.order_hashes)
            maintenance = done[0]
            if not deferred:  # a deferred write leaves the fingerprint of the folded lines to the folds
                self._fingerprint = maintenance.fingerprint
            if maintenance.rebuilt:
                self._lookups.load(con)
            compacted = False
            if not deferred:  # (after a deferred write, the folds compact what they append)
                first_day = pc.min(lines.column("ordered_at")).as_py().date()
                self._note_appended(maintenance.appended, first_day, rebuilt=maintenance.rebuilt)
                compacted = self._compact_due(con)
            with self._state_lock:
                if maintenance.only_appended and not compacted:  # counting ten tables costs milliseconds
                    rows = self.state.rollups
                    counts = {n: count + maintenance.appended.get(n, 0) for n, count in rows.items()}
                else:
                    counts = rollups.row_counts(con)
                self.state = replace(self.state, uniform=maintenance.uniform, rollups=counts)
        if deferred and self._folder is None and self._unfolded_lines >= self.fold_after_lines:
            with self._fold_lock, self.cursor() as con:  # no folder thread: the writer folds
                self._fold(con)
        self._last_write_at, self._unsaved = time.monotonic(), True
        seconds = time.perf_counter() - started
        changed = set(
            zip(
                before.changed_old.column("order_id").to_pylist(),
                before.changed_old.column("line").to_pylist(),
                strict=True,
            )
        )
        results = []
        for batch in batches:
            inserted = len(batch.keys - before.stored_keys)
            updated = len(batch.keys & changed)
            results.append(
                IngestResult(
                    inserted=inserted,
                    updated=updated,
                    unchanged=len(batch.keys) - inserted - updated,
                    rollups_rebuilt=maintenance.rebuilt,
                    seconds=seconds,
                    group=len(batches),
                )
            )
        return results

    def _note_appended(self, appended: dict[str, int], first_day: date, *, rebuilt: bool = False) -> None:
        """Count the delta rows appended per table, and the earliest day they may touch."""
        if rebuilt:
            self._appended = {}
            return
        for name, count in appended.items():
            if count:
                total, since = self._appended.get(name, (0, first_day))
                self._appended[name] = (total + count, min(since, first_day))

    # --- deferred folds (see rollups.UNFOLDED) ---

    def _note_unfolded(self, lines: int) -> None:
        """Count lines written to the unfolded table (negative: a write that did not commit). Counted, and
        the compiler told to read the rollups with them, before the write commits: a read that starts after
        the commit must include them."""
        with self._state_lock:
            if lines > 0 and not self._unfolded_lines:
                self._unfolded_since = time.monotonic()
            self._unfolded_lines += lines
            if not self.state.relations:
                self.state = replace(self.state, relations=rollups.UNFOLDED_RELATIONS)
        self._fold_wanted.set()

    def _fold(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fold the unfolded lines into the rollups, in a transaction of its own; the caller holds the fold
        lock. Batches keep committing meanwhile (they write no rollup), and a read keeps reading the rollups
        with their unfolded lines until the fold commits: either way it answers the same."""
        if not self._unfolded_lines:
            return
        with transaction(con):
            folded = rollups.fold(con, self._fingerprint, self.state.uniform)
        self._fingerprint = folded.fingerprint
        if folded.first_day is not None:
            self._note_appended(folded.appended, folded.first_day)
        compacted = self._compact_due(con)
        with self._state_lock:
            self._unfolded_lines -= folded.lines  # lines committed since stay counted
            self._unfolded_since = time.monotonic() if self._unfolded_lines else float("inf")
            rows = self.state.rollups
            counts = (
                rollups.row_counts(con)
                if compacted
                else {n: count + folded.appended.get(n, 0) for n, count in rows.items()}
            )
            relations = self.state.relations if self._unfolded_lines else {}
            self.state = replace(self.state, rollups=counts, relations=relations)

    def fold(self) -> None:
        """Fold every unfolded line committed so far into the rollups, now."""
        with self._fold_lock, self.cursor() as con:
            self._fold(con)

    def _fold_due(self) -> bool:
        waited = time.monotonic() - self._unfolded_since
        return self._unfolded_lines >= self.fold_after_lines or waited >= self.fold_after_seconds

    def _fold_when_due(self) -> None:
        """The folder thread: folds once ``fold_after_lines`` lines wait, or the oldest has waited
        ``fold_after_seconds``; beside the writer, which it never holds up."""
        while not self._stop_housekeeping.is_set():
            self._fold_wanted.wait(min(self.fold_after_seconds, 0.5) / 4)
            self._fold_wanted.clear()
            if self._unfolded_lines <= 0 or not self._fold_due():
                continue
            try:
                self.fold()
            except Exception:  # reads stay exact without it; a write that cannot wait folds first
                log.exception("folding the rollups failed; it will be tried again")

    def _compact_due(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Compact the tables due (the caller holds the fold lock); True when some were."""
        due = self._due_for_compaction()
        if due:
            self._compact(con, due)
        return bool(due)

    def _due_for_compaction(self) -> list[str]:
        """Tables whose appended rows reached the threshold, or a tenth of their size: a big table is
        folded less often (it costs more, and the extra rows weigh less on its reads)."""
        rows = self.state.rollups
        return [
            name
            for name, (count, _) in self._appended.items()
            if count >= max(self.compact_after_rows, rows.get(name, 0) // 10)
        ]

    def _compact(self, con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
        """Fold the delta rows that ingests appended (one transaction; readers see before or after)."""
        by_name = {r.name: r for r in rollups.ROLLUPS}
        with transaction(con):
            for name in names:
                since = self._appended[name][1].replace(day=1)  # month rows are dated the 1st
                if name == rollups.PAIRS:
                    rollups.compact_pairs(con)
                else:
                    rollups.compact(con, by_name[name], since)
        for name in names:
            del self._appended[name]

    def compact(self) -> None:
        """Fold the unfolded lines and every table's appended rows now."""
        with self._write_lock, self._fold_lock, self.cursor() as con:
            self._fold(con)
            self._compact(con, list(self._appended))
            with self._state_lock:
                self.state = replace(self.state, rollups=rollups.row_counts(con))

    # --- housekeeping while ingest pauses ---

    def start_housekeeping(self, idle_seconds: float) -> None:
        """Fold the rollups' delta rows and checkpoint the warehouse whenever no batch has come for
        ``idle_seconds``: work that a busy stream would otherwise pay for in the middle of an ingest."""
        if self._housekeeper is not None:
            return
        self._stop_housekeeping.clear()
        self._housekeeper = threading.Thread(
            target=self._housekeep_when_idle, args=(idle_seconds,), name="analytics-housekeeping", daemon=True
        )
        self._housekeeper.start()
        self._folder = threading.Thread(target=self._fold_when_due, name="analytics-folds", daemon=True)
        self._folder.start()

    def stop_housekeeping(self) -> None:
        if self._housekeeper is not None:
            self._stop_housekeeping.set()
            self._fold_wanted.set()
            self._housekeeper.join()
            self._housekeeper = None
        if self._folder is not None:
            self._folder.join()
            self._folder = None

    def _housekeep_when_idle(self, idle_seconds: float) -> None:
        while not self._stop_housekeeping.wait(idle_seconds / 2):
            if time.monotonic() - self._last_write_at >= idle_seconds:
                try:
                    self.housekeep()
                except Exception:  # folding is an optimization: ingest and reads stay exact without it
                    log.exception("analytics housekeeping failed; it will be tried again")

    def housekeep(self) -> bool:
        """Fold the delta rows and checkpoint, unless a batch is waiting; True when there was work done."""
        if not (self._appended or self._unsaved or self._unfolded_lines):
            return False
        with self._write_lock:
            with self._queue_lock:
                if self._queue:
                    return False  # ingest goes first
            with self._fold_lock, self.cursor() as con:
                self._fold(con)
                if self._appended:
                    self._compact(con, list(self._appended))
                    with self._state_lock:
                        self.state = replace(self.state, rollups=rollups.row_counts(con))
                try:
                    con.execute("CHECKPOINT")
                except duckdb.Error:
                    return True  # a reader's transaction stood in the way: the next pause will do
                self._unsaved = False
        return True

    def _widen(self, lines: pa.Table) -> None:
        times = lines.column("ordered_at")
        first, last = pc.min(times).as_py().date(), pc.max(times).as_py().date()
        bounds = self.state.bounds
        if bounds is not None:
            first, last = min(first, bounds[0]), max(last, bounds[1])
        flags = set(self.state.flags)
        columns = {"salesman": "salesman_id", "distributor": "distributor_id", "cost": "profit"}
        flags |= {
            flag for flag, column in columns.items() if lines.column(column).null_count < lines.num_rows
        }
        with self._state_lock:
            self.state = replace(self.state, bounds=(first, last), flags=frozenset(flags))

    # --- a copy of the system of record (SALESPULSE_DATABASE_URL; salespulse/analytics/replica.py) ---

    _replica: Replica | None = None

    def follow(self, replica: Replica | None) -> None:
        """Make this warehouse a copy that ``replica`` keeps in step with the system of record: ingest then
        writes there (and answers once this copy shows the batch). None: the warehouse is the store."""
        self._replica = replica

    def _ingest_through_record(self, batch: SalesBatch) -> IngestResult:
        assert self._replica is not None
        started = time.perf_counter()
        written = self._replica.write_sales(lines_table(batch), customers_table(batch), products_table(batch))
        return IngestResult(
            inserted=written.inserted,
            updated=written.updated,
            unchanged=written.unchanged,
            rollups_rebuilt=False,
            seconds=time.perf_counter() - started,
        )

    def apply_changes(self, lines: pa.Table, customers: pa.Table | None, products: pa.Table | None) -> None:
        """Write rows that changed in the system of record (their values there) to this copy through the
        ingest's own transaction, so the rollups stay exact. ``lines`` has the LINE_SCHEMA columns."""
        pending = _Pending(lines, customers, products)
        with self._write_lock:
            self._write_group([pending])
        if pending.error is not None:
            raise pending.error

    def write_locked(self, write: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``write`` on the engine's connection with ingest held off, without the rollup check that
        write_exclusively makes afterwards (for writes that leave the sales alone)."""
        with self._write_lock, self.cursor() as con:
            return write(con)


LISTED_MEMBERS = 25
"""An unknown member's message lists the valid values up to this many, else counts them."""


def unknown_member_message(dimension: str, unknown: list[Any], known: frozenset[Any]) -> str:
    listed = sorted(map(str, known))
    if len(listed) <= LISTED_MEMBERS:
        valid = (
            f"the {dimension} values are: {', '.join(listed)}" if listed else f"the data has no {dimension}"
        )
    else:
        valid = f"the data has {len(listed):,} {dimension} values, e.g. {', '.join(listed[:5])}"
    return f"no {dimension} {', '.join(map(repr, unknown))} in the data; {valid}"


class RawJSON(str):
    """Rows already serialized as a JSON array (to be spliced into a response, not quoted)."""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _converter(type_name: str) -> Callable[[Any], Any] | None:
    """What _plain does to the values of a column of this DuckDB type (None: nothing)."""
    if type_name.startswith(("DATE", "TIMESTAMP", "TIME")):
        return _iso
    if type_name in ("DOUBLE", "FLOAT", "REAL"):
        return _finite
    return None


def _plain(value: Any) -> Any:
    """JSON-ready: dates as ISO text, NaN and infinities as null."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
