"""Incremental sync of order lines from a company's operational PostgreSQL database into the warehouse.

How it works, and why:

* One door: each chunk of source rows is handed to :func:`salespulse.dataset.importing.import_into` as
  a :class:`~salespulse.dataset.importing.RowsSource`, so it is checked, converted and written by
  ``upsert_sales`` exactly like a file import with the same mapping. Invalid rows are treated the same way:
  a chunk with one is rejected whole (nothing of it is written; the chunks before it stay), or, with
  ``skip_invalid``, its valid rows are written and the invalid ones go to a reject file.
* Keyset pagination: the source is read in the order of (watermark, key), one chunk at a time, each the
  rows *after* the last one committed: ``WHERE (watermark, key) > (saved watermark, saved key)``. Rows that
  share a watermark value (a batch inserted by one transaction) are told apart by the key, so a chunk
  boundary inside them neither skips nor repeats one. An index on (watermark, key) in the source makes
  each chunk an index range scan; no transaction stays open in the source between chunks.
* Exactly once: the position after a chunk (last watermark and key, as the source writes them, and the
  rows synced) is saved to the warehouse's ``sync_state`` table by ``before_commit``, inside the chunk's
  own transaction. A sync killed at any moment leaves whole chunks, each with its position; a re-run
  resumes after the last committed one. (A re-read row would only replace its line: the write is keyed.)
* With a system of record (SALESPULSE_DATABASE_URL), the chunks go where every other write goes: each is
  staged and checked in a scratch in-memory DuckDB (the checks need no stored data: a line's missing
  geography is completed from its customer by the record's own write), then written to PostgreSQL by
  ``SystemOfRecord.write_sales``, whose ``also`` hook saves the position in the record's ``sync_state``
  in the same transaction. The service replicas pick the rows up like any write; none of them owns the
  record, so the sync runs while they serve. Two syncs of one source at once cannot both advance it: a
  chunk saves its position only if the source still stands where that sync last left it (else the chunk
  rolls back and the sync stops), so no row is counted twice.
* A row changed in the source gets a later watermark, so the next sync reads it again and its line is
  replaced. What a watermark cannot show is not synced: deleted rows, and rows with no watermark or key.
  A row committed with a watermark below one already synced (a long transaction that set ``updated_at``
  when it began) is missed too: use a watermark the source sets at commit, or a sequence.
* Line identity: a table row is an order line, so when the mapping maps neither ``line`` nor ``line_id``,
  the row's key is its line id. (A file import numbers such lines from their content within the order,
  which needs the whole order in one batch; chunks cut orders anywhere.)
* Dates: the date column's convention (month or day first) is settled once over the rows still to sync,
  as a file import settles it over the whole file, and kept in ``sync_state``: a chunk whose dates all
  read both ways is then read like the others. Date, time and number columns travel as Arrow types (no
  text round trip through the source's DateStyle); columns of other types are read as their text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import duckdb
import pyarrow as pa

from salespulse.config import get_settings
from salespulse.dataset.importing import (
    DATE_ORDERS,
    DateReading,
    ImportRejected,
    ImportResult,
    RowsSource,
    import_into,
    settle_dates,
)
from salespulse.dataset.mapping import Mapping
from salespulse.errors import Unavailable
from salespulse.warehouse.record import (
    SYNC_VALUES,
    RecordUnavailable,
    SalesWriter,
    SystemOfRecord,
    relation_writer,
    save_sync_state,
)
from salespulse.warehouse.schema import SYNC_STATE
from salespulse.warehouse.store import connect

BATCH_ROWS = 50_000  # ~0.3 s of fixed cost per chunk (staging SQL, upsert): big chunks amortize it
CONNECT_TIMEOUT_SECONDS = 10  # libpq waits forever for a host that drops packets
QUERY_VIEW = "salespulse_sync_source"  # a temporary view over a source query, in the source session
WATERMARK_TEXT = "__sync_watermark"  # the watermark as the source writes it (saved, sent back as is)
KEY_TEXT = "__sync_key_{}"
# Types that travel as Arrow values; any other column (uuid, json, enum, ...) is read as its text.
NATIVE_TYPES = (
    "smallint", "integer", "bigint", "numeric", "real", "double precision", "date", "timestamp",
    "text", "character",
)  # fmt: skip
TEXT_TYPES = ("text", "character")
SCHEMES = ("postgresql", "postgres")


class SyncFailed(Unavailable):
    """The sync cannot run: the source is unreachable, a table or column is missing, the mapping does not
    fit the table. ``str()`` is one line saying what to do."""


@dataclass(frozen=True)
class Position:
    """The last row committed, in the source's order: its watermark and key, as the source writes them."""

    watermark: str
    key: tuple[str, ...]

    def describe(self, watermark_column: str) -> str:
        return f"{watermark_column} {self.watermark}"


@dataclass(frozen=True)
class SyncState:
    watermark_column: str
    key_columns: tuple[str, ...]
    position: Position
    rows_synced: int
    date_order: str | None


@dataclass(frozen=True)
class SyncProgress:
    """What a sync has done so far in this run (given to the ``progress`` callback after each chunk)."""

    rows_done: int
    rows_total: int
    """Rows that were after the saved position when the run began (more may arrive meanwhile)."""
    chunks: int


@dataclass
class SyncResult:
    source: str
    watermark_column: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    chunks: int = 0
    reject_files: list[Path] = field(default_factory=list)
    position: Position | None = None
    rows_synced: int = 0
    """Rows committed from this source over all runs."""
    seconds: float = 0.0

    def add(self, chunk: ImportResult) -> None:
        self.rows_read += chunk.rows_read
        self.inserted += chunk.inserted
        self.updated += chunk.updated
        self.rejected += chunk.rejected
        self.chunks += 1
        if chunk.reject_file is not None:
            self.reject_files.append(chunk.reject_file)

    def describe(self) -> str:
        where = f" (up to {self.position.describe(self.watermark_column)})" if self.position else ""
        if not self.rows_read:
            return f"Nothing new in {self.source}{where}; {self.rows_synced:,} rows synced so far."
        rate = self.rows_read / self.seconds if self.seconds else 0.0
        text = (
            f"Synced {self.inserted + self.updated:,} of {self.rows_read:,} rows from {self.source} in "
            f"{self.chunks:,} chunks, {self.seconds:.1f} s ({rate:,.0f} rows/s): {self.inserted:,} new, "
            f"{self.updated:,} replaced{where}."
        )
        if self.rejected:
            files = ", ".join(map(str, self.reject_files))
            text += f"\nSkipped {self.rejected:,} invalid rows; they are in {files}, with the reasons."
        return text


class SyncRejected(Exception):
    """A chunk has invalid rows and ``skip_invalid`` was not given: nothing of that chunk was written (the
    chunks before it were, and the next run starts again at this one). Rows are named by their key."""

    def __init__(self, rejected: ImportRejected, row_keys: dict[int, str], synced: SyncResult) -> None:
        self.rejected = rejected
        self.row_keys = row_keys
        self.synced = synced
        super().__init__(f"{synced.source}: {self.summary()}")

    def summary(self) -> str:
        rows = "row" if self.rejected.invalid_rows == 1 else "rows"
        return (
            f"{self.rejected.invalid_rows:,} invalid {rows} in a chunk of {self.rejected.rows_read:,}; "
            f"that chunk was not written ({self.synced.rows_read:,} rows before it were)"
        )

    def describe(self, limit: int = 20) -> list[str]:
        errors = self.rejected.errors
        lines = [
            f"{self.row_keys.get(e.row, f'row {e.row}')}, column {e.column!r}: {e.message}"
            for e in errors[:limit]
        ]
        if self.rejected.error_count > len(lines):
            lines.append(f"... and {self.rejected.error_count - len(lines):,} more problems")
        return lines


# --- the source ---


class PostgresSource:
    """A PostgreSQL table (or query) read in keyset order through ADBC, chunks as Arrow tables."""

    def __init__(
        self,
        url: str,
        *,
        table: str | None = None,
        query: str | None = None,
        watermark: str | None = None,
        key: list[str] | tuple[str, ...] = (),
    ) -> None:
        if bool(table) == bool(query):
            raise SyncFailed("say what to read: a table (--table, or source.table in the mapping) or a query")
        if not watermark:
            raise SyncFailed(
                "say which column grows when a row is added or changed: --watermark-column, or "
                "source.watermark in the mapping"
            )
        self.url = _with_connect_timeout(url)
        self.address = _address(url)
        self.table, self.query = table, query
        self.watermark = watermark
        self.key: tuple[str, ...] = tuple(key)
        self.relation = ""
        self.columns: dict[str, str] = {}
        self._connection: Any = None

    @property
    def identity(self) -> str:
        """What the saved position belongs to: the database and table (or query), not who reads it."""
        if self.table:
            return f"{self.address} {self.table}"
        return f"{self.address} query {self.query}"

    @property
    def name(self) -> str:
        """For reject file names: the table, else 'query'."""
        return re.sub(r"[^A-Za-z0-9_-]+", "_", self.table or "query").strip("_") or "source"

    def open(self) -> None:
        import adbc_driver_manager
        from adbc_driver_postgresql import dbapi

        try:
            self._connection = dbapi.connect(self.url, autocommit=True)
        except adbc_driver_manager.Error as error:
            raise SyncFailed(
                f"cannot reach the source database {self.address}: {_first_line(error)}"
            ) from None
        self._inspect()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> PostgresSource:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _inspect(self) -> None:
        """Resolve the table, read its columns' types and primary key, and check the watermark and key."""
        name = self.table
        if self.query:
            self._execute(f"CREATE TEMPORARY VIEW {QUERY_VIEW} AS {self.query}", what="the source query")
            name = QUERY_VIEW
        (relation,) = self._rows("SELECT to_regclass($1)::text", [name])[0]
        if relation is None:
            raise SyncFailed(f"the source database {self.address} has no table {name!r}")
        self.relation = relation
        self.columns = dict(
            self._rows(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                [relation],
            )
        )
        if not self.key:
            self.key = self._primary_key()
        self._check_columns({self.watermark: "the watermark"} | dict.fromkeys(self.key, "the key"))

    def _primary_key(self) -> tuple[str, ...]:
        key = tuple(
            name
            for (name,) in self._rows(
                "SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n), "
                "pg_attribute a WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
                "AND a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n",
                [self.relation],
            )
        )
        if not key:
            raise SyncFailed(
                f"{self.relation} has no primary key: say which columns tell its rows apart "
                f"(source.key in the mapping, or --key)"
            )
        return key

    def _check_columns(self, wanted: dict[str, str]) -> None:
        missing = [f"{column!r} ({what})" for column, what in wanted.items() if column not in self.columns]
        if missing:
            raise SyncFailed(
                f"{self.relation} in {self.address} has no column {', '.join(missing)}; its columns are: "
                f"{', '.join(map(repr, self.columns))}"
            )

    def check_mapping(self, mapping: Mapping) -> None:
        """The mapping's columns must be the table's (the same check a file gets, said of the table)."""
        self._check_columns({column: f"for {name}" for name, column in mapping.columns.items()})

    def is_text(self, column: str) -> bool:
        return self.columns[column].startswith(TEXT_TYPES)

    # --- reading ---

    def remaining(self, after: Position | None) -> int:
        where, params = self._after(after)
        ((count,),) = self._rows(f"SELECT count(*) FROM {self.relation} {where}", params)
        return count

    def chunk(self, columns: list[str], after: Position | None, limit: int) -> pa.Table:
        """Up to ``limit`` rows after ``after`` in (watermark, key) order: ``columns`` and the position
        of each row as text (WATERMARK_TEXT, KEY_TEXT)."""
        where, params = self._after(after)
        positions = [f"{_quoted(self.watermark)}::text AS {WATERMARK_TEXT}"] + [
            f"{_quoted(column)}::text AS {KEY_TEXT.format(i)}" for i, column in enumerate(self.key)
        ]
        sql = (
            f"SELECT {', '.join([*map(self._selected, columns), *positions])} FROM {self.relation} {where} "
            f"ORDER BY {', '.join(map(_quoted, [self.watermark, *self.key]))} LIMIT {int(limit)}"
        )
        return self._arrow(sql, params)

    def distinct_texts(self, column: str, after: Position | None) -> pa.Table:
        """The distinct values of a text column among the rows after ``after``."""
        where, params = self._after(after)
        return self._arrow(f"SELECT DISTINCT {_quoted(column)} FROM {self.relation} {where}", params)

    def _selected(self, column: str) -> str:
        if self.columns[column].startswith(NATIVE_TYPES):
            return _quoted(column)
        return f"{_quoted(column)}::text AS {_quoted(column)}"

    def _after(self, after: Position | None) -> tuple[str, list[str]]:
        """The WHERE clause of the rows after a position (all rows with a watermark and key at first)."""
        ordered = [self.watermark, *self.key]
        present = " AND ".join(f"{_quoted(c)} IS NOT NULL" for c in ordered)
        if after is None:
            return f"WHERE {present}", []
        placeholders = ", ".join(f"${i}::{self.columns[c]}" for i, c in enumerate(ordered, start=1))
        condition = f"({', '.join(map(_quoted, ordered))}) > ({placeholders})"
        return f"WHERE {present} AND {condition}", [after.watermark, *after.key]

    def _arrow(self, sql: str, params: list[str]) -> pa.Table:
        with self._cursor() as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetch_arrow_table()

    def _rows(self, sql: str, params: list[str]) -> list[tuple[Any, ...]]:
        with self._cursor() as cursor:
            cursor.execute(sql, params or None)
            return [tuple(row) for row in cursor.fetchall()]

    def _execute(self, sql: str, *, what: str) -> None:
        with self._cursor(what) as cursor:
            cursor.execute(sql)

    @contextmanager
    def _cursor(self, what: str = "") -> Iterator[Any]:
        import adbc_driver_manager

        try:
            with self._connection.cursor() as cursor:
                yield cursor
        except adbc_driver_manager.Error as error:
            about = f" ({what})" if what else ""
            raise SyncFailed(
                f"the source database {self.address} refused{about}: {_first_line(error)}"
            ) from None


# --- syncing ---


def sync(
    source_url: str,
    mapping: Mapping,
    *,
    table: str | None = None,
    query: str | None = None,
    watermark_column: str | None = None,
    key: list[str] | None = None,
    batch_rows: int = BATCH_ROWS,
    skip_invalid: bool = False,
    restart: bool = False,
    path: Path | str | None = None,
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncResult:
    """Bring the warehouse at ``path`` up to date with the source table: every row after the saved
    position, in chunks of ``batch_rows``, each validated and written in its own transaction together
    with the position after it. The options override the mapping's ``source:`` section. With
    SALESPULSE_DATABASE_URL set, the system of record is brought up to date instead (``path`` unused).

    Raises SyncFailed when the sync cannot run at all (nothing is written) or the system of record fails,
    ImportFailed when the mapping cannot read the rows (ambiguous dates, say), and SyncRejected for a chunk
    with invalid rows when ``skip_invalid`` is false (the chunks before it are written)."""
    options = mapping.source
    source = PostgresSource(
        source_url,
        table=table or (None if query else options.table),
        query=query or (None if table else options.query),
        watermark=watermark_column or options.watermark,
        key=key or options.key,
    )
    chunking = {
        "batch_rows": batch_rows, "skip_invalid": skip_invalid, "restart": restart, "progress": progress,
    }  # fmt: skip
    database_url = get_settings().database_url
    with source:
        source.check_mapping(mapping)
        if database_url is not None:
            return _sync_into_record(database_url.get_secret_value(), source, mapping, **chunking)
        target = Path(path) if path is not None else get_settings().warehouse_path
        created = not target.exists()
        con = connect(target)
        try:
            con.execute("SET enable_progress_bar = false")
            result = sync_into(con, source, mapping, **chunking)
        except BaseException:
            wrote = not created or _any_chunk_committed(con)
            con.close()
            if not wrote:  # a sync that wrote nothing leaves no empty warehouse behind
                for candidate in (target, target.with_name(target.name + ".wal")):
                    candidate.unlink(missing_ok=True)
            raise
        con.close()
    return result


def _sync_into_record(url: str, source: PostgresSource, mapping: Mapping, **chunking: Any) -> SyncResult:
    """:func:`sync` into the system of record at ``url``, staged in a scratch DuckDB."""
    try:
        record = SystemOfRecord(url, connections=1)
    except RecordUnavailable as error:
        raise SyncFailed(str(error)) from None
    settings = get_settings()
    staging = duckdb.connect(
        config={"memory_limit": settings.warehouse_memory_limit, "threads": settings.warehouse_threads}
    )
    try:
        staging.execute("SET enable_progress_bar = false")
        return sync_into(staging, source, mapping, record=record, **chunking)
    except RecordUnavailable as error:  # the chunks before the failed one are committed
        raise SyncFailed(f"{error}; the next sync resumes after the last committed chunk") from None
    finally:
        staging.close()
        record.close()


def sync_into(
    con: duckdb.DuckDBPyConnection,
    source: PostgresSource,
    mapping: Mapping,
    *,
    record: SystemOfRecord | None = None,
    batch_rows: int = BATCH_ROWS,
    skip_invalid: bool = False,
    restart: bool = False,
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncResult:
    """:func:`sync` through an open source and warehouse connection (a service could call it inside its
    exclusive write, as it does file imports). With ``record``, the rows and positions go to the system of
    record, and ``con`` only stages them."""
    if batch_rows < 1:
        raise SyncFailed("the batch size must be at least 1 row")
    if record is None and get_settings().database_url is not None:
        raise SyncFailed("with SALESPULSE_DATABASE_URL set, a sync writes to the system of record: pass it")
    started = perf_counter()
    saved = record.sync_state(source.identity) if record is not None else _warehouse_state(con, source)
    state = None if restart else _checked_state(saved, source)
    position = state.position if state else None
    mapping = line_keyed(mapping, source)
    dates, date_order = _dates(con, source, mapping, position, state.date_order if state else None)
    result = SyncResult(
        source=source.identity, watermark_column=source.watermark, position=position,
        rows_synced=state.rows_synced if state else 0,
    )  # fmt: skip
    total = source.remaining(position)
    columns = list(dict.fromkeys([*mapping.columns.values(), *source.key, source.watermark]))
    writer: SalesWriter | None = relation_writer(record) if record is not None else None
    while True:
        chunk = source.chunk(columns, position, batch_rows)
        if chunk.num_rows == 0:
            break
        rows, after = _split_positions(chunk, len(source.key))
        synced = result.rows_synced + rows.num_rows
        values = _state_values(source, after, synced, date_order)
        save = _saver(record, source, values, previous=saved)
        first_row = result.rows_read + 1
        try:
            done = import_into(
                con, RowsSource(source.name, rows, first_row), mapping, skip_invalid=skip_invalid,
                before_commit=save, dates=dates, write_sales=writer,
            )  # fmt: skip
        except ImportRejected as rejected:
            result.seconds = perf_counter() - started
            raise SyncRejected(rejected, _row_keys(chunk, source, first_row), result) from None
        result.add(done)
        position = result.position = after
        result.rows_synced = synced
        saved = values
        if progress is not None:
            progress(SyncProgress(result.rows_read, max(total, result.rows_read), result.chunks))
    result.seconds = perf_counter() - started
    return result


def line_keyed(mapping: Mapping, source: PostgresSource) -> Mapping:
    """The mapping, with the source key as the line id when it maps no line key (see the docstring)."""
    if mapping.provides("line") or mapping.provides("line_id"):
        return mapping
    if len(source.key) != 1:
        raise SyncFailed(
            f"the mapping maps no line or line_id, and the key of {source.relation} has several columns "
            f"({', '.join(source.key)}): map line_id (or line) to the column that numbers a line in its order"
        )
    return mapping.model_copy(update={"columns": {**mapping.columns, "line_id": source.key[0]}})


def _split_positions(chunk: pa.Table, key_count: int) -> tuple[pa.Table, Position]:
    """The chunk's own columns, and the position of its last row."""
    texts = [WATERMARK_TEXT, *(KEY_TEXT.format(i) for i in range(key_count))]
    last = {name: chunk.column(name)[-1].as_py() for name in texts}
    after = Position(last[WATERMARK_TEXT], tuple(last[name] for name in texts[1:]))
    return chunk.drop_columns(texts), after


def _row_keys(chunk: pa.Table, source: PostgresSource, first_row: int) -> dict[int, str]:
    """Row number -> the row as named in the source: 'Row ID 17', or '(order_no, line_no) (A-1, 2)'."""
    keys = [chunk.column(KEY_TEXT.format(i)).to_pylist() for i in range(len(source.key))]
    if len(source.key) == 1:
        return {first_row + n: f"{source.key[0]} {value}" for n, value in enumerate(keys[0])}
    names = ", ".join(source.key)
    return {
        first_row + n: f"({names}) ({', '.join(values)})" for n, values in enumerate(zip(*keys, strict=True))
    }


# --- dates ---


def _dates(
    con: duckdb.DuckDBPyConnection,
    source: PostgresSource,
    mapping: Mapping,
    after: Position | None,
    saved_order: str | None,
) -> tuple[DateReading | None, str | None]:
    """The date convention of the whole sync, and its name to save ('month first', 'day first'), or
    (None, None) when each chunk can read its own dates (typed columns, a date_format, a default)."""
    column = mapping.columns.get("ordered_at")
    if mapping.date_format or column is None or not source.is_text(column):
        return None, None
    if saved_order in DATE_ORDERS:
        return DATE_ORDERS[saved_order], saved_order
    reading = settle_dates(con, source.distinct_texts(column, after), mapping)
    order = next((name for name, known in DATE_ORDERS.items() if known.formats == reading.formats), None)
    return reading, order


# --- the saved position ---


def _warehouse_state(con: duckdb.DuckDBPyConnection, source: PostgresSource) -> dict[str, Any] | None:
    """The source's saved position in the warehouse (SYNC_VALUES by name), or None."""
    rows = con.execute(
        f"SELECT {', '.join(SYNC_VALUES)} FROM {SYNC_STATE.name} WHERE source = ?", [source.identity]
    ).fetchall()  # fetched to the end: DuckDB refuses a register() while a result is open
    return dict(zip(SYNC_VALUES, rows[0], strict=True)) if rows else None


def _checked_state(saved: dict[str, Any] | None, source: PostgresSource) -> SyncState | None:
    """The saved position, which must be by the columns this sync reads in."""
    if saved is None:
        return None
    watermark_column, key_columns = saved["watermark_column"], saved["key_columns"]
    if (watermark_column, tuple(key_columns)) != (source.watermark, source.key):
        raise SyncFailed(
            f"the saved position of {source.identity} is by {watermark_column} and key "
            f"({', '.join(key_columns)}), not {source.watermark} and ({', '.join(source.key)}): "
            "sync with the same columns, or with --restart to read the whole table again"
        )
    return SyncState(
        watermark_column,
        tuple(key_columns),
        Position(saved["last_watermark"], tuple(saved["last_key"])),
        saved["rows_synced"],
        saved["date_order"],
    )


def _state_values(
    source: PostgresSource, after: Position, rows: int, date_order: str | None
) -> dict[str, Any]:
    return {
        "watermark_column": source.watermark, "key_columns": list(source.key),
        "last_watermark": after.watermark, "last_key": list(after.key), "rows_synced": rows,
        "date_order": date_order,
    }  # fmt: skip


def _saver(
    record: SystemOfRecord | None,
    source: PostgresSource,
    values: dict[str, Any],
    *,
    previous: dict[str, Any] | None,
) -> Callable[[Any], None]:
    """The chunk's ``before_commit``: its position saved in its transaction (the warehouse's, or the
    record's, where the source must still stand at ``previous``: see the module docstring)."""
    if record is None:
        return lambda write: _save_state(write, source, values)

    def save(cursor: Any) -> None:
        if not save_sync_state(cursor, source.identity, values, previous=previous):
            raise SyncFailed(
                f"another sync of {source.identity} moved its saved position meanwhile; this chunk was not "
                "written (run one sync of a source at a time)"
            )

    return save


def _any_chunk_committed(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        ((committed,),) = con.execute(f"SELECT count(*) > 0 FROM {SYNC_STATE.name}").fetchall()
        return committed
    except duckdb.Error:
        return True  # when in doubt, keep the file


def _save_state(con: duckdb.DuckDBPyConnection, source: PostgresSource, values: dict[str, Any]) -> None:
    con.execute(
        f"INSERT OR REPLACE INTO {SYNC_STATE.name} (source, {', '.join(SYNC_VALUES)}, synced_at) "
        f"VALUES (?, {', '.join('?' * len(SYNC_VALUES))}, CAST(now() AS TIMESTAMP))",
        [source.identity, *(values[name] for name in SYNC_VALUES)],
    )


# --- helpers ---


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    for prefix in ("IO: ", "NOT_FOUND: ", "INVALID_ARGUMENT: ", "INVALID_STATE: ", "[libpq] "):
        text = text.removeprefix(prefix)
    return text.splitlines()[0] if text else type(error).__name__


def _address(url: str) -> str:
    """host:port/database of a postgresql:// URL, without user or password."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise SyncFailed(f"the source must be a postgresql:// URL, not {parts.scheme or url!r}")
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}/{parts.path.lstrip('/') or parts.username or ''}"


def _with_connect_timeout(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
    return urlunsplit(parts._replace(query=urlencode(query)))
