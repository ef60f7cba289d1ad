"""Import of a company's own order-line export (CSV or Parquet) into the warehouse.

How it works, and why:

* DuckDB reads the file with every column as text and numbers its rows; one SQL statement converts and
  checks every row and collects every problem (two aggregations then find repeated products and keys), so
  a file of millions of rows is checked in seconds and the user sees all problems at once, not the first.
* A CSV's delimiter is sniffed by DuckDB unless the mapping sets it. A file whose header has none of the
  sniffed delimiters but runs of spaces is read as whitespace-aligned columns (see :func:`_aligned_spans`).
* Dates are read the way the column writes them: ISO, month names, or numeric month first (US) or day
  first, detected over the whole column (:func:`_detect_date_order`), since a file mixes no conventions
  but may hold only a few dates that tell month and day apart. Timestamps with a UTC offset are converted
  to the warehouse time zone; naive ones are taken as already in it.
* Numbers may carry currency symbols, thousands separators and, with ``decimal: ","``, a decimal comma.
* Geography (city, state, zip, region, country, coordinates) is each line's own: exports write the ship-to
  per line. A row is in the US when its country says so, or it has no country and a US state; only there
  is the state turned into its code (and checked), the zip checked and zero-padded, the region derived
  from the state and the coordinates from the zip (:func:`_locate_us_zips`). Other rows keep what they
  say. A customer's address is that of his latest line; a line with no geography at all takes it.
* Line keys do not depend on the row order, so a re-sorted re-export replaces the same lines: the mapped
  ``line``, else a number derived from the mapped ``line_id``, else one derived from the line's content
  (:data:`CONTENT_LINE_RULE`).
* Row numbers count data rows from 1, in file order: "row 1" is the first row after a CSV's header (line 2
  of the file, when no value spans several lines and no line is blank), or a Parquet file's first row.
* A file with any invalid row is rejected whole (:class:`ImportRejected`) unless ``skip_invalid``; then
  the valid rows are imported and the invalid ones are written, with their row numbers and reasons, to a
  CSV reject file. A rejected or failed import into a warehouse file it created removes that file again.
* The rows may also come already read, as an Arrow table (:class:`RowsSource`): the database sync
  (salespulse/dataset/sync.py) hands each chunk of a source table to :func:`import_into` that way, so it
  is checked, converted and written exactly like a file. Its row numbers start at ``first_row``.
* Writing is :func:`salespulse.warehouse.load.upsert_sales`: one transaction keyed on (order_id, line), so
  a re-import replaces lines instead of doubling them, and a killed import leaves the warehouse as it was.
  :func:`import_into` does all of this through a connection the caller owns (the running service's).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from pathlib import Path
from time import perf_counter
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console

from salespulse.bounds import CONTROL_CHARACTERS_SQL
from salespulse.config import get_settings
from salespulse.dataset.geography import REGION_OF_STATE, STATE_NAMES, state_code, zip_table
from salespulse.dataset.mapping import (
    PRICE_FIELDS,
    REQUIRED_FIELDS,
    WAREHOUSE_FIELDS,
    WHITESPACE,
    Mapping,
    MappingError,
    load_mapping,
)
from salespulse.warehouse.load import upsert_sales
from salespulse.warehouse.record import SalesWriter, configured_sales_writer
from salespulse.warehouse.schema import (
    ADDRESS_FIELDS,
    LINE_GEOGRAPHY_COLUMNS,
    ORDER_LINES,
    UNITED_STATES,
    US_SPELLINGS,
)
from salespulse.warehouse.store import connect

ROW = "__row"  # the row number added to the file's own columns
ROWS_VIEW = "import_rows"  # the Arrow table of a RowsSource, while an import reads it
IN_THE_US = "__in_the_us"  # whether a row's geography is in the US (see the module docstring)
ZIPS = "import_zip_coordinates"  # the US zip codes with their coordinates, while an import locates lines
STAGED = "import_staged"  # temporary table: every row converted, derived and checked
# Temporary SQL macros of one import: text -> DOUBLE, text -> TIMESTAMP.
NUMBER_MACRO, TIMESTAMP_MACRO = "import_number", "import_timestamp"
MAX_REPORTED_ERRORS = 1_000  # row errors kept for the message; the counts cover all of them
REVENUE_TOLERANCE = 0.01  # relative difference allowed between revenue and quantity x price x (1 - discount)
CHANNELS = ("direct", "trade")
SNIFFED_DELIMITERS = (",", ";", "|", "\t")  # what DuckDB's sniffer tries
CURRENCY_SYMBOLS = "$€£¥"
LARGEST_LINE = 2_147_483_647  # line is an INTEGER
CONTENT_LINE_RULE = (
    "line = 1 + md5_number('<product id>#<n>') % 2147483646 (DuckDB's md5_number), where n counts the "
    "order's lines of that product, ranked by quantity, unit price, discount, revenue, cost and profit"
)
LINE_ID_RULE = (
    "line = the line id when it is a whole number of up to 9 digits, else "
    "1 + md5_number('<line id>') % 2147483646"
)

# Dates: ISO text is read by DuckDB's own cast; the rest by strptime formats, tried in order (two-digit
# years first: %Y would read '24' as the year 24).
ISO_DATE = r"\d{4}-\d{1,2}-\d{1,2}([T ].*)?"
UTC_OFFSET = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|UTC|GMT|[+-]\d{2}(:?\d{2})?)"
TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
NAMED_MONTH_DATES = ("%Y/%m/%d", "%d-%b-%Y", "%d %b %Y", "%b %d %Y", "%b %d, %Y", "%d %B %Y", "%B %d, %Y")
MONTH_FIRST_DATES = ("%m/%d/%y", "%m/%d/%Y", "%m-%d-%y", "%m-%d-%Y")
DAY_FIRST_DATES = ("%d/%m/%y", "%d/%m/%Y", "%d-%m-%y", "%d-%m-%Y", "%d.%m.%y", "%d.%m.%Y")


def _with_times(dates: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(date + time for date in dates for time in TIMES)


UNAMBIGUOUS_FORMATS = _with_times(NAMED_MONTH_DATES)
MONTH_FIRST_FORMATS = _with_times(MONTH_FIRST_DATES)
DAY_FIRST_FORMATS = _with_times(DAY_FIRST_DATES)


class Kind(Enum):
    """How a field's text is converted; each kind has its own check and message."""

    TEXT = "text"
    TIMESTAMP = "timestamp"
    NUMBER = "number"
    WHOLE_NUMBER = "whole number"
    STATE = "state"
    ZIP = "zip"
    CHANNEL = "channel"


FIELD_KINDS: dict[str, Kind] = {
    "line": Kind.WHOLE_NUMBER,
    "ordered_at": Kind.TIMESTAMP,
    "state": Kind.STATE,
    "zip": Kind.ZIP,
    "channel": Kind.CHANNEL,
    "quantity": Kind.WHOLE_NUMBER,
    "latitude": Kind.NUMBER,
    "longitude": Kind.NUMBER,
    "unit_price": Kind.NUMBER,
    "discount": Kind.NUMBER,
    "revenue": Kind.NUMBER,
    "cost": Kind.NUMBER,
    "profit": Kind.NUMBER,
}  # every other field is TEXT
POSITIVE_FIELDS = ("line", "quantity")
# Identifiers: plain text on one line (no NUL, newline or other control character), as in real-time ingest.
ID_FIELDS = ("order_id", "line_id", "customer_id", "product_id", "salesman_id", "distributor_id")
COORDINATE_RANGES = {"latitude": 90, "longitude": 180}  # degrees either side of 0
# Needed on every row when the mapping provides them.
REQUIRED_WHEN_MAPPED = (*REQUIRED_FIELDS, "line", "line_id")
# What a file can tell about customers and products besides their keys.
CUSTOMER_ATTRIBUTES = ("customer_name", "city", "state", "zip", "region", "country")
PRODUCT_ATTRIBUTES = ("product_name", "category", "subcategory")
# The order-line columns an import fills from the fields of the same name (a column the warehouse adds later
# is left to upsert_sales); the geography fields fill the line's ship_* columns.
LINE_COLUMNS = [column for column in ORDER_LINES.column_names if column in WAREHOUSE_FIELDS]
# Lines of one product in one order are told apart by these, not by their place in the file.
CONTENT_RANK = ("quantity", "unit_price", "discount", "revenue", "cost", "profit")


@dataclass(frozen=True)
class RowsSource:
    """Rows already read (a chunk of a database table), in place of a file: the export's columns as the
    mapping names them, typed or text. ``name`` stands for the file in results and reject file names."""

    name: str
    rows: pa.Table
    first_row: int = 1
    """The row number of the first row (a sync numbers the rows of its run, across chunks)."""


class ImportFailed(Exception):
    """The file cannot be imported at all: unusable mapping, missing column, unreadable file.

    The message says what is wrong, not which file (the caller knows that).
    """


@dataclass(frozen=True)
class RowError:
    row: int
    """1-based data row number (see the module docstring)."""
    column: str
    """The column as named in the file (``defaults.<field>`` for a value from the mapping's defaults)."""
    value: str | None
    message: str

    def describe(self) -> str:
        return f"row {self.row}, column {self.column!r}: {self.message}"


class ImportRejected(Exception):
    """The file has invalid rows and ``skip_invalid`` was not given; nothing was imported."""

    def __init__(
        self, file: Path, errors: list[RowError], invalid_rows: int, error_count: int, rows_read: int
    ):
        self.file = file
        self.errors = errors
        """The first MAX_REPORTED_ERRORS problems, in row order."""
        self.invalid_rows = invalid_rows
        self.error_count = error_count
        self.rows_read = rows_read
        super().__init__(f"{file}: {self.summary()}")

    def summary(self) -> str:
        rows = "row" if self.invalid_rows == 1 else "rows"
        return f"{self.invalid_rows:,} invalid {rows} of {self.rows_read:,}"

    def describe(self, limit: int = 20) -> list[str]:
        lines = [error.describe() for error in self.errors[:limit]]
        if self.error_count > len(lines):
            lines.append(f"... and {self.error_count - len(lines):,} more problems")
        return lines


@dataclass(frozen=True)
class ImportResult:
    file: Path
    rows_read: int
    inserted: int
    """Lines new to the warehouse."""
    updated: int
    """Lines already in the warehouse (same order id and line), replaced by the file's version."""
    rejected: int
    reject_file: Path | None
    seconds: float

    def describe(self) -> str:
        imported, rate = self.inserted + self.updated, self.rows_read / self.seconds
        text = (
            f"Imported {imported:,} of {self.rows_read:,} rows from {self.file.name} in {self.seconds:.1f} s "
            f"({rate:,.0f} rows/s): {self.inserted:,} new, {self.updated:,} replaced."
        )
        if self.rejected:
            text += (
                f"\nSkipped {self.rejected:,} invalid rows; they are in {self.reject_file}, with the reasons."
            )
        return text


@dataclass(frozen=True)
class DateReading:
    """How the date column's text becomes a timestamp, settled once for the whole column."""

    formats: tuple[str, ...]
    """strptime formats tried, in order, on text that is not ISO."""
    expected: str
    """What a value that does not convert is told a date looks like."""
    usual: str | None = None
    """The format of the column's first numeric date, tried alone first: nearly every row has it."""


ISO_ONLY = DateReading(UNAMBIGUOUS_FORMATS, "an ISO date such as 2024-01-31")
DATE_ORDERS = {
    "month first": DateReading(
        (*MONTH_FIRST_FORMATS, *UNAMBIGUOUS_FORMATS), "month/day/year like 1/31/2024, or ISO like 2024-01-31"
    ),
    "day first": DateReading(
        (*DAY_FIRST_FORMATS, *UNAMBIGUOUS_FORMATS), "day/month/year like 31/1/2024, or ISO like 2024-01-31"
    ),
}


@dataclass(frozen=True)
class Conversions:
    """What the checks of one import depend on besides the mapping."""

    zone: str
    """The warehouse time zone: offsets are converted to it, and 'now' is read in it."""
    now: datetime
    latest: datetime
    """The latest a line may be dated: now plus the configured tolerance."""
    dates: DateReading


def import_file(
    file: Path | str,
    mapping: Path | str | Mapping,
    *,
    skip_invalid: bool = False,
    path: Path | str | None = None,
    progress: bool = False,
) -> ImportResult:
    """Check every row of ``file`` and write the valid ones to the warehouse at ``path`` in one transaction.

    Raises ImportFailed when the file cannot be imported at all, and ImportRejected when it has invalid
    rows and ``skip_invalid`` is false (nothing is written then, and a warehouse file this call created is
    removed again).
    """
    mapping = _resolved(mapping)
    target = Path(path) if path is not None else get_settings().warehouse_path
    created = not target.exists()
    con = connect(target)
    try:
        if not progress:  # quiet means quiet: DuckDB draws a bar of its own for long queries
            con.execute("SET enable_progress_bar = false")
        result = import_into(con, file, mapping, skip_invalid=skip_invalid, progress=progress)
    except BaseException:
        con.close()
        if created:  # an import that wrote nothing leaves no empty warehouse behind
            _remove_warehouse_files(target)
        raise
    con.close()
    return result


def import_into(
    con: duckdb.DuckDBPyConnection,
    file: Path | str | RowsSource,
    mapping: Path | str | Mapping,
    *,
    skip_invalid: bool = False,
    progress: bool = False,
    before_commit: Callable[[Any], None] | None = None,
    dates: DateReading | None = None,
    write_sales: SalesWriter | None = None,
) -> ImportResult:
    """:func:`import_file` through an open warehouse connection (the running service's, which owns the
    file). The write is one transaction of :func:`upsert_sales`; ``before_commit`` runs inside it. With a
    system of record (SALESPULSE_DATABASE_URL) the valid rows are written there instead, by ``write_sales``
    (default: a writer of the configured record); the connection only stages and checks them, and
    ``before_commit`` is handed to the writer as ``also``: it runs in the record's transaction, given its
    cursor instead of this connection.

    ``file`` may be rows already read (:class:`RowsSource`); ``dates`` then keeps the date convention
    settled once for all the chunks of a sync (:func:`settle_dates`) instead of detecting it per chunk."""
    started = perf_counter()
    report = _reporter(progress)
    rows = file if isinstance(file, RowsSource) else None
    file = Path(rows.name if rows is not None else file)
    mapping = _resolved(mapping)
    try:
        report(f"Reading and checking {file}")
        source = _rows_query(con, rows) if rows is not None else _source_query(file, mapping)
        _stage(con, source, mapping, dates)
        rows_read, invalid_rows, error_count = con.execute(
            f"SELECT count(*), count(*) FILTER (len(errors) > 0), coalesce(sum(len(errors)), 0) FROM {STAGED}"
        ).fetchall()[0]
        report(f"Checked {rows_read:,} rows: {invalid_rows:,} invalid")
        reject_file = None
        if invalid_rows:
            if not skip_invalid:
                raise ImportRejected(file, _first_errors(con), invalid_rows, error_count, rows_read)
            reject_file = _write_rejects(con, file, source)
            report(f"Wrote the {invalid_rows:,} invalid rows to {reject_file}")
        lines, customers, products = _valid_batches(con)
        write_sales = write_sales or configured_sales_writer()
        if write_sales is not None:  # PostgreSQL is the system of record: the rows go there
            report("Writing the valid rows to the system of record")
            also = {} if before_commit is None else {"also": before_commit}
            counts = write_sales(lines, customers, products, **also)
        else:
            counts = upsert_sales(
                con,
                lines,
                customers=customers,
                products=products,
                progress=report,
                before_commit=before_commit,
                geography_from_customers=True,
            )
    finally:
        _drop_staging(con)
    return ImportResult(
        file=file,
        rows_read=rows_read,
        inserted=counts.inserted,
        updated=counts.updated,
        rejected=invalid_rows,
        reject_file=reject_file,
        seconds=perf_counter() - started,
    )


def _resolved(mapping: Path | str | Mapping) -> Mapping:
    try:
        return mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    except MappingError as error:
        raise ImportFailed(str(error)) from None


def _remove_warehouse_files(target: Path) -> None:
    for candidate in (target, target.with_name(target.name + ".wal")):
        candidate.unlink(missing_ok=True)


def _drop_staging(con: duckdb.DuckDBPyConnection) -> None:
    """The service's connection lives on: leave nothing of this import in its temporary schema."""
    con.execute(f"DROP TABLE IF EXISTS {STAGED}")
    con.unregister(ROWS_VIEW)  # a no-op for a file import
    for macro in (NUMBER_MACRO, TIMESTAMP_MACRO):
        con.execute(f"DROP MACRO IF EXISTS {macro}")


def _reporter(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda _message: None
    console = Console(stderr=True, highlight=False)
    # soft_wrap: one line per step, however narrow the terminal (a log or a pipe reads them whole)
    return lambda message: console.print(message, markup=False, soft_wrap=True)


# --- reading ---


def _source_query(file: Path, mapping: Mapping) -> str:
    """The file's rows in file order, every column as read, plus the 1-based row number."""
    if mapping.source_format(file) == "parquet":
        reader = f"read_parquet({_literal(str(file))})"
    elif _is_aligned(file, mapping):
        reader = _aligned_reader(file, mapping.csv.encoding)
    else:
        delimiter = mapping.csv.delimiter
        options = ["header = true", "all_varchar = true", f"encoding = {_literal(mapping.csv.encoding)}"]
        if delimiter is not None:  # else DuckDB sniffs it
            options.append(f"delim = {_literal(delimiter)}")
        reader = f"read_csv({_literal(str(file))}, {', '.join(options)})"
    # An empty OVER () numbers rows in the order the reader produces them, i.e. file order.
    return f"SELECT row_number() OVER () AS {ROW}, * FROM {reader}"


def _rows_query(con: duckdb.DuckDBPyConnection, rows: RowsSource) -> str:
    """The rows of a RowsSource, numbered from its first row in the order given."""
    numbers = pa.array(range(rows.first_row, rows.first_row + rows.rows.num_rows), pa.int64())
    con.register(ROWS_VIEW, rows.rows.add_column(0, ROW, numbers))
    return f"SELECT * FROM {ROWS_VIEW}"


def settle_dates(con: duckdb.DuckDBPyConnection, dates: pa.Table, mapping: Mapping) -> DateReading:
    """How the date column reads, decided over ``dates`` (the column's values, by the mapping's name for
    it) as a file import decides it over the whole file: a sync decides once, not per chunk."""
    with con.cursor() as reader:  # its own registration and results, gone with it
        reader.register(ROWS_VIEW, dates)
        source = f"SELECT * FROM {ROWS_VIEW}"
        column_types = dict(
            reader.execute(f"SELECT column_name, column_type FROM (DESCRIBE {source})").fetchall()
        )
        return _date_reading(reader, source, mapping, column_types)


def _is_aligned(file: Path, mapping: Mapping) -> bool:
    """Whitespace-aligned columns: said so, or a header with none of the sniffed delimiters but wide gaps."""
    if mapping.csv.delimiter is not None:
        return mapping.csv.delimiter == WHITESPACE
    header = _header_line(file, mapping.csv.encoding)
    return not any(d in header for d in SNIFFED_DELIMITERS) and re.search(r"\S {2,}\S", header) is not None


def _header_line(file: Path, encoding: str) -> str:
    try:
        with file.open(encoding=encoding, errors="replace", newline="") as lines:
            return next((line.rstrip("\r\n").lstrip("\ufeff") for line in lines if line.strip()), "")
    except (OSError, LookupError):
        return ""  # DuckDB will say what is wrong with the file


def _aligned_reader(file: Path, encoding: str) -> str:
    """A subquery cutting each line of an aligned file into its columns (blank lines skipped)."""
    try:
        spans = _aligned_spans(file, encoding)
    except (OSError, LookupError, UnicodeDecodeError) as error:
        raise ImportFailed(f"cannot read it: {error}") from None
    cells = ", ".join(
        f"trim(substr(line, {start + 1}, {end - start}), ' ' || chr(13)) AS {_identifier(name)}"
        for name, start, end in spans
    )
    lines = (
        f"read_csv({_literal(str(file))}, columns = {{'line': 'VARCHAR'}}, header = true, delim = chr(1), "
        f"quote = '', escape = '', auto_detect = false, encoding = {_literal(encoding)})"
    )
    return f"(SELECT {cells} FROM {lines} WHERE trim(line) <> '')"


def _aligned_spans(file: Path, encoding: str) -> list[tuple[str, int, int]]:
    """Name, start and end (0-based, exclusive) of each column of a whitespace-aligned file.

    Columns are separated by positions that are blank on every line, header included. Single blanks inside
    a header name ("Unit Price") or inside values past the end of their header do not split a column, so
    column names must be at least two spaces apart.
    """
    with file.open(encoding=encoding, newline="") as handle:
        lines = (line.rstrip("\r\n") for line in handle)
        header = next((line for line in lines if line.strip()), "").lstrip("\ufeff")
        occupied = _occupied_positions(header)
        for line in lines:
            occupied |= _occupied_positions(line)
    spans = _merge_split_names(_runs_of_set_bits(occupied), header)
    names: list[str] = []
    for number, (start, end) in enumerate(spans, start=1):
        name = header[start:end].strip() or f"column{number}"
        names.append(name if name not in names else f"{name}_{number}")
    return [(name, start, end) for name, (start, end) in zip(names, spans, strict=True)]


def _occupied_positions(line: str) -> int:
    """Bit i is set when character i of ``line`` is not a space (string operations in C, not a loop)."""
    if not line:
        return 0
    return int(re.sub(r"[^ ]", "1", line).replace(" ", "0")[::-1], 2)


def _runs_of_set_bits(mask: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    start = None
    for position in range(mask.bit_length() + 1):
        if (mask >> position) & 1 and start is None:
            start = position
        elif not (mask >> position) & 1 and start is not None:
            runs.append((start, position))
            start = None
    return runs


def _merge_split_names(runs: list[tuple[int, int]], header: str) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] == 1:
            previous_start, previous_end = merged[-1]
            within_a_name = (
                header[previous_end - 1 : previous_end].strip() and header[start : start + 1].strip()
            )
            without_a_name = not header[start:end].strip()
            if within_a_name or without_a_name:
                merged[-1] = (previous_start, end)
                continue
        merged.append((start, end))
    return merged


def _stage(
    con: duckdb.DuckDBPyConnection, source: str, mapping: Mapping, dates: DateReading | None = None
) -> None:
    """Convert, derive and check every row into the temporary STAGED table."""
    try:
        column_types = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {source})").fetchall()
        )
        mapping.check_columns_exist([name for name in column_types if name != ROW])
        conversions = _conversions(con, source, mapping, column_types, dates)
        _create_macros(con, mapping, conversions)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED} AS {_staging_sql(source, mapping, conversions)}")
        if not (mapping.provides("line") or mapping.provides("line_id")):
            _number_repeated_products(con)
        _flag_duplicate_keys(con, mapping)
        _locate_us_zips(con)
    except MappingError as error:
        raise ImportFailed(str(error)) from None
    except duckdb.Error as error:
        raise ImportFailed(f"DuckDB could not read it: {error}") from None


# --- what conversion depends on: time zone, now, the date column's convention ---


def _conversions(
    con: duckdb.DuckDBPyConnection,
    source: str,
    mapping: Mapping,
    column_types: dict[str, str],
    dates: DateReading | None = None,
) -> Conversions:
    settings = get_settings()
    zone = settings.warehouse_timezone or con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    try:
        (now,) = con.execute("SELECT timezone(?, now())", [zone]).fetchone()
    except duckdb.Error:
        raise ImportFailed(
            f"unknown time zone {zone!r} (SALESPULSE_WAREHOUSE_TIMEZONE): use an IANA name such as "
            "America/New_York or UTC"
        ) from None
    latest = now + timedelta(seconds=settings.import_future_tolerance_seconds)
    return Conversions(
        zone=zone, now=now, latest=latest, dates=dates or _date_reading(con, source, mapping, column_types)
    )


def _date_reading(
    con: duckdb.DuckDBPyConnection, source: str, mapping: Mapping, column_types: dict[str, str]
) -> DateReading:
    if mapping.date_format:
        return DateReading((mapping.date_format,), mapping.date_format)
    column = mapping.columns.get("ordered_at")
    if column is None or column_types[column].startswith(("DATE", "TIMESTAMP")):
        return ISO_ONLY  # a default, or a typed Parquet column: its text is ISO
    return _detect_date_order(con, source, column)


def _detect_date_order(con: duckdb.DuckDBPyConnection, source: str, column: str) -> DateReading:
    """Month first or day first, from the column's distinct numeric dates (ISO and month names need no
    decision). Dates that read only one way decide; a column where every one reads both ways is refused."""
    month_first, month_first_example, day_first, day_first_example, both = con.execute(
        f"""
        WITH numeric_dates AS ({_numeric_dates_sql(source, column)})
        SELECT count(*) FILTER (only_month_first), any_value(t) FILTER (only_month_first),
               count(*) FILTER (only_day_first), any_value(t) FILTER (only_day_first),
               count(*) FILTER (month_first AND day_first)
        FROM (SELECT *, month_first AND NOT day_first AS only_month_first,
                     day_first AND NOT month_first AS only_day_first FROM numeric_dates)
        """
    ).fetchone()
    if not (month_first or day_first):
        if both:
            raise ImportFailed(_ambiguous_dates_message(con, source, column))
        return ISO_ONLY
    # A column that mixes both conventions keeps the majority; the others are reported row by row.
    reading, example = (
        (DATE_ORDERS["month first"], month_first_example)
        if month_first >= day_first
        else (DATE_ORDERS["day first"], day_first_example)
    )
    return replace(reading, usual=_first_matching_format(con, example, reading.formats))


def _numeric_dates_sql(source: str, column: str) -> str:
    text = f"nullif(trim(CAST({_identifier(column)} AS VARCHAR)), '')"
    return f"""
        SELECT t, try_strptime(t, {_formats(MONTH_FIRST_FORMATS)}) IS NOT NULL AS month_first,
               try_strptime(t, {_formats(DAY_FIRST_FORMATS)}) IS NOT NULL AS day_first
        FROM (SELECT DISTINCT {text} AS t FROM ({source}))
        WHERE t IS NOT NULL AND NOT regexp_full_match(t, {_literal(ISO_DATE)})
    """


def _ambiguous_dates_message(con: duckdb.DuckDBPyConnection, source: str, column: str) -> str:
    examples = [
        row[0]
        for row in con.execute(
            f"SELECT t FROM ({_numeric_dates_sql(source, column)}) WHERE month_first ORDER BY t LIMIT 3"
        ).fetchall()
    ]
    month_first = _first_matching_format(con, examples[0], MONTH_FIRST_FORMATS)
    day_first = _first_matching_format(con, examples[0], DAY_FIRST_FORMATS)
    return (
        f"the dates of column {column!r} read both month first and day first (no day is above 12), "
        f"for example {', '.join(map(repr, examples))}. Say which in the mapping: "
        f'`date_format: "{month_first}"` for month first (US), or `date_format: "{day_first}"` for day first'
    )


def _first_matching_format(con: duckdb.DuckDBPyConnection, text: str, formats: tuple[str, ...]) -> str:
    for date_format in formats:
        if con.execute("SELECT try_strptime(?, ?) IS NOT NULL", [text, date_format]).fetchone()[0]:
            return date_format
    return formats[0]


def _formats(formats: tuple[str, ...]) -> str:
    return "[" + ", ".join(map(_literal, formats)) + "]"


# --- conversion, derivation and checks, as SQL ---
# Three names per field: t_<field> is its trimmed text (NULL when empty), v_<field> the converted value
# (NULL when the text does not convert), <field> the final value after defaults and derivations.


def _create_macros(con: duckdb.DuckDBPyConnection, mapping: Mapping, conversions: Conversions) -> None:
    """The number and timestamp conversions as temporary macros, so the staging SQL stays readable."""
    con.execute(f"CREATE OR REPLACE TEMP MACRO {NUMBER_MACRO}(t) AS {_number_sql(mapping)}")
    con.execute(f"CREATE OR REPLACE TEMP MACRO {TIMESTAMP_MACRO}(t) AS {_timestamp_sql(conversions)}")


def _number_sql(mapping: Mapping) -> str:
    """A number written with the mapping's decimal mark and thousands separator, maybe with a currency
    symbol and accounting parentheses for a negative ("($1,234.50)"), as a DOUBLE.

    The shape is checked first, so the separators can then simply be dropped. ``t`` is used only as itself:
    DuckDB computes a repeated sub-expression once for every row, which would defeat the fast path.
    """
    decimal, separator = mapping.decimal, mapping.thousands_separator
    spaces = " \u00a0\u202f"  # a space separator also matches the no-break spaces spreadsheets put there
    grouping = f"[{spaces}]" if separator == " " else re.escape(separator)
    integer = rf"\d{{1,3}}(?:{grouping}\d{{3}})+|\d+" if separator else r"\d+"
    unsigned = rf"(?:(?:{integer})(?:{re.escape(decimal)}\d*)?|{re.escape(decimal)}\d+)(?:[eE][-+]?\d+)?"
    currency = f"[{CURRENCY_SYMBOLS}]"
    amount = rf"{currency}?\s*{unsigned}\s*{currency}?"
    shape = rf"\s*(?:[-+]?\s*{currency}?\s*[-+]?\s*{unsigned}\s*{currency}?|\(\s*{amount}\s*\))\s*"
    dropped = f"[{CURRENCY_SYMBOLS}(){spaces}{re.escape(separator) if separator not in ('', ' ') else ''}]"
    digits = f"regexp_replace(t, {_literal(dropped)}, '', 'g')"
    if decimal != ".":
        digits = f"replace({digits}, {_literal(decimal)}, '.')"
    sign = "CASE WHEN starts_with(ltrim(t), '(') THEN -1 ELSE 1 END"
    written = (
        f"CASE WHEN regexp_full_match(t, {_literal(shape)}) THEN TRY_CAST({digits} AS DOUBLE) * {sign} END"
    )
    if decimal != ".":
        return written
    # Most cells are plain numbers, which the cast reads at once (it refuses "1,234" and "$5").
    return f"coalesce(TRY_CAST(t AS DOUBLE), {written})"


def _timestamp_sql(conversions: Conversions) -> str:
    """ISO text by DuckDB's cast (with a UTC offset: converted to the warehouse zone), else the formats."""
    zone = _literal(conversions.zone)
    formats = conversions.dates.formats
    parsed = f"try_strptime(t, {_formats(formats)})" if formats else "CAST(NULL AS TIMESTAMP)"
    if any("%z" in f or "%Z" in f for f in formats):
        parsed = f"timezone({zone}, {parsed})"
    usual = conversions.dates.usual
    # coalesce evaluates its second argument only for the rows the first leaves NULL.
    fast_path = f"try_strptime(t, {_literal(usual)})" if usual else None
    general = f"""CASE
        WHEN regexp_full_match(t, {_literal(ISO_DATE)}) AND regexp_matches(t, {_literal(UTC_OFFSET + "$")})
            THEN timezone({zone}, TRY_CAST(t AS TIMESTAMPTZ))
        WHEN regexp_full_match(t, {_literal(ISO_DATE)}) THEN TRY_CAST(t AS TIMESTAMP)
        ELSE {parsed} END"""
    return f"coalesce({fast_path}, {general})" if fast_path else general


def _staging_sql(source: str, mapping: Mapping, conversions: Conversions) -> str:
    texts = ", ".join(f"{_text(mapping, field)} AS t_{field}" for field in WAREHOUSE_FIELDS)
    values = ", ".join(f"{_converted(field)} AS v_{field}" for field in WAREHOUSE_FIELDS)
    finals = ", ".join(f"{sql} AS {field}" for field, sql in _final_values(mapping).items())
    kept = dict.fromkeys(
        [*LINE_COLUMNS, "line_id", *ADDRESS_FIELDS, *CUSTOMER_ATTRIBUTES, *PRODUCT_ATTRIBUTES]
    )
    return f"""
        WITH texts AS (SELECT {ROW}, {texts} FROM ({source})),
        located AS (SELECT *, {_in_the_us_sql(mapping)} AS {IN_THE_US} FROM texts),
        converted AS (SELECT *, {values} FROM located),
        derived AS (SELECT *, {finals} FROM converted)
        SELECT {ROW}, {", ".join(kept)}, {_errors(mapping, conversions)} AS errors FROM derived
    """


def _text(mapping: Mapping, field: str) -> str:
    expression = "CAST(NULL AS VARCHAR)"
    if field in mapping.columns:
        expression = f"nullif(trim(CAST({_identifier(mapping.columns[field])} AS VARCHAR)), '')"
    if field in mapping.defaults:
        expression = f"coalesce({expression}, {_literal(str(mapping.defaults[field]))})"
    return expression


def _in_the_us_sql(mapping: Mapping) -> str:
    """Whether a row's geography is in the US: its country says so, or it has none and a US state."""
    us_country = f"upper(t_country) IN {_literal_tuple(tuple(sorted(US_SPELLINGS)))}"
    us_state = f"{_state_codes()}[upper(t_state)] IS NOT NULL"
    if not mapping.provides("country"):
        return us_state if mapping.provides("state") else "false"
    if not mapping.provides("state"):
        return f"coalesce({us_country}, false)"
    return f"CASE WHEN t_country IS NOT NULL THEN {us_country} ELSE {us_state} END"


def _converted(field: str) -> str:
    text = f"t_{field}"
    kind = FIELD_KINDS.get(field, Kind.TEXT)
    number = f"{NUMBER_MACRO}({text})"
    conversions = {
        Kind.TEXT: text,
        Kind.TIMESTAMP: f"{TIMESTAMP_MACRO}({text})",
        Kind.NUMBER: f"CASE WHEN isfinite({number}) THEN {number} END",
        Kind.WHOLE_NUMBER: f"CASE WHEN {number} = trunc({number}) THEN TRY_CAST({number} AS INTEGER) END",
        # A US state is stored as its code (NULL, so an error, for anything else); elsewhere as written.
        Kind.STATE: f"CASE WHEN {IN_THE_US} THEN {_state_codes()}[upper({text})] ELSE {text} END",
        # US exports often store zips as numbers (2920 for 02920, or 2920.0), or as ZIP+4.
        Kind.ZIP: (
            rf"CASE WHEN NOT {IN_THE_US} THEN {text} "
            rf"WHEN regexp_full_match({text}, '\d{{1,5}}(\.0+)?') "
            rf"THEN lpad(split_part({text}, '.', 1), 5, '0') "
            rf"WHEN regexp_full_match({text}, '\d{{5}}-\d{{4}}') THEN left({text}, 5) END"
        ),
        Kind.CHANNEL: f"CASE WHEN lower({text}) IN {_literal_tuple(CHANNELS)} THEN lower({text}) END",
    }
    return conversions[kind]


def _final_values(mapping: Mapping) -> dict[str, str]:
    """Every field's final value: the converted one, else a default or a derivation. Without a mapped
    line or line id, ``line`` is that of the first line of its product in the order (see
    :func:`_number_repeated_products` for the others)."""
    finals = {field: f"v_{field}" for field in WAREHOUSE_FIELDS}
    discount = "coalesce(v_discount, 0)"
    revenue = f"coalesce(v_revenue, v_quantity * v_unit_price * (1 - {discount}))"
    finals.update(
        discount=discount,
        revenue=revenue,
        unit_price=f"coalesce(v_unit_price, v_revenue / nullif(v_quantity * (1 - {discount}), 0))",
        cost=f"coalesce(v_cost, {revenue} - v_profit)",
        profit=f"coalesce(v_profit, {revenue} - v_cost)",
        channel="coalesce(v_channel, CASE WHEN v_distributor_id IS NOT NULL THEN 'trade' ELSE 'direct' END)",
        region=f"coalesce(v_region, CASE WHEN {IN_THE_US} THEN {_state_regions()}[v_state] END)",
        country=f"CASE WHEN {IN_THE_US} THEN {_literal(UNITED_STATES)} ELSE v_country END",
    )
    if mapping.order_id_from:
        finals["order_id"] = _derived_order_id(mapping.order_id_from, finals)
    if mapping.provides("line_id"):  # LINE_ID_RULE
        finals["line"] = (
            r"CASE WHEN regexp_full_match(t_line_id, '\d{1,9}') THEN CAST(t_line_id AS INTEGER) "
            f"ELSE CAST(1 + md5_number(t_line_id) % {LARGEST_LINE - 1} AS INTEGER) END"
        )
    elif not mapping.provides("line"):
        finals["line"] = _content_line_number("v_product_id", "1")
    return finals


def _derived_order_id(parts: list[str], finals: dict[str, str]) -> str:
    """The parts' values joined with ' / ' (timestamps as ISO text), NULL when one of them is missing."""
    texts = [
        f"strftime({finals[part]}, '%Y-%m-%d %H:%M:%S')"
        if FIELD_KINDS.get(part) is Kind.TIMESTAMP
        else f"CAST({finals[part]} AS VARCHAR)"
        for part in parts
    ]
    all_present = " AND ".join(f"({finals[part]}) IS NOT NULL" for part in parts)
    return f"CASE WHEN {all_present} THEN concat_ws(' / ', {', '.join(texts)}) END"


def _content_line_number(product_id: str, occurrence: str) -> str:
    """CONTENT_LINE_RULE as SQL."""
    return f"CAST(1 + md5_number({product_id} || '#' || {occurrence}) % {LARGEST_LINE - 1} AS INTEGER)"


def _number_repeated_products(con: duckdb.DuckDBPyConnection) -> None:
    """Number the 2nd, 3rd, ... line of a product in its order by their content, not their place in the
    file. Only those rows are ranked: a window over every row would cost more than all the checks."""
    occurrence = (
        f"row_number() OVER (PARTITION BY order_id, product_id ORDER BY {', '.join(CONTENT_RANK)}, {ROW})"
    )
    con.execute(
        f"""
        UPDATE {STAGED} SET line = ranked.line
        FROM (
            SELECT {ROW}, {_content_line_number("product_id", occurrence)} AS line
            FROM {STAGED}
            SEMI JOIN (SELECT order_id, product_id FROM {STAGED} GROUP BY ALL HAVING count(*) > 1)
                USING (order_id, product_id)
        ) ranked
        WHERE {STAGED}.{ROW} = ranked.{ROW}
        """
    )


def _flag_duplicate_keys(con: duckdb.DuckDBPyConnection, mapping: Mapping) -> None:
    """Add an error to every row whose (order id, line) an earlier row has: found by aggregation, which
    costs little, and only the few repeated keys are then ranked."""
    if mapping.provides("line_id"):
        field, what = "line_id", _quoted_sql("line id ", "d.line_id")
    elif mapping.provides("line"):
        field, what = "order_id", "'line ' || d.line"
    else:  # two different contents whose line numbers collide: vanishingly rare
        field, what = "product_id", "'line ' || d.line || ' (derived from the content; map a line id)'"
    message = f"{_quoted_sql('order ', 'd.order_id')} || ' ' || {what} || ' is also in row ' || d.first_row"
    column = _literal(_source_name(mapping, field))
    error = f"{{'source_column': {column}, 'value': d.{field}, 'message': {message}}}"
    con.execute(
        f"""
        UPDATE {STAGED} SET errors = list_append(errors, {error})
        FROM (
            SELECT {ROW}, order_id, line, line_id, product_id,
                   min({ROW}) OVER (PARTITION BY order_id, line) AS first_row
            FROM {STAGED}
            SEMI JOIN (SELECT order_id, line FROM {STAGED} WHERE order_id IS NOT NULL AND line IS NOT NULL
                       GROUP BY ALL HAVING count(*) > 1) USING (order_id, line)
        ) d
        WHERE {STAGED}.{ROW} = d.{ROW} AND d.{ROW} > d.first_row
        """
    )


def _locate_us_zips(con: duckdb.DuckDBPyConnection) -> None:
    """US lines without coordinates get their zip code's (from the offline zipcodes package). The zip table
    takes a moment to load, so it is read only when some line needs it."""
    ((needed,),) = con.execute(
        f"SELECT count(*) > 0 FROM (FROM {STAGED} s WHERE {_unlocated_us_line('s')} LIMIT 1)"
    ).fetchall()  # fetched to the end: DuckDB refuses a register() while a result is open
    if not needed:
        return
    con.register(ZIPS, zip_table()[["zip", "latitude", "longitude"]])
    try:
        con.execute(
            f"UPDATE {STAGED} SET latitude = z.latitude, longitude = z.longitude FROM {ZIPS} z "
            f"WHERE {STAGED}.zip = z.zip AND {_unlocated_us_line(STAGED)}"
        ).fetchall()  # done with the result before the zip table is unregistered
    finally:
        con.unregister(ZIPS)


def _unlocated_us_line(table: str) -> str:
    return (
        f"{table}.country = {_literal(UNITED_STATES)} AND {table}.zip IS NOT NULL "
        f"AND {table}.latitude IS NULL AND {table}.longitude IS NULL"
    )


def _quoted_sql(label: str, value: str) -> str:
    """SQL for ``label`` followed by the value in single quotes: order 'CA-2016-1'."""
    return f"{_literal(label + chr(39))} || {value} || {_literal(chr(39))}"


def _errors(mapping: Mapping, conversions: Conversions) -> str:
    """A list of {source_column, value, message} per row, empty when the row is valid."""
    checks: list[str] = []
    for field in WAREHOUSE_FIELDS:
        if mapping.provides(field):
            checks.extend(_field_checks(mapping, field, conversions))
    checks.extend(_order_id_part_checks(mapping))
    if all(mapping.provides(field) for field in PRICE_FIELDS):
        checks.extend(_price_checks(mapping))
    checks.append(_future_check(mapping, conversions))
    checks.extend(_bound_checks(mapping))
    return f"list_filter([{', '.join(checks)}], lambda e: e IS NOT NULL)"


def _field_checks(mapping: Mapping, field: str, conversions: Conversions) -> list[str]:
    text, value = f"t_{field}", f"v_{field}"
    shown = f"'''' || {text} || ''''"  # the value as the user typed it, in quotes
    kind = FIELD_KINDS.get(field, Kind.TEXT)
    checks = []
    if field in REQUIRED_WHEN_MAPPED or (field in PRICE_FIELDS and not _other_price_provided(mapping, field)):
        checks.append(_error(mapping, field, f"{text} IS NULL", _literal(f"is empty ({field} is required)")))
    if kind is not Kind.TEXT:
        problem = (
            f"{_literal(f' is not {_expected(kind, conversions)}')}{_decimal_comma_hint(mapping, kind, text)}"
        )
        checks.append(
            _error(mapping, field, f"{text} IS NOT NULL AND {value} IS NULL", f"{shown} || {problem}")
        )
    if field in POSITIVE_FIELDS:
        checks.append(_error(mapping, field, f"{value} <= 0", f"{shown} || ' must be greater than 0'"))
    if field == "discount":
        out_of_range = f"NOT ({value} >= 0 AND {value} < 1)"
        checks.append(
            _error(mapping, field, out_of_range, f"{shown} || ' is not a fraction 0 <= discount < 1'")
        )
    if field in COORDINATE_RANGES:
        limit = COORDINATE_RANGES[field]
        message = f"{shown} || ' is not a {field} (-{limit} to {limit} degrees)'"
        checks.append(_error(mapping, field, f"abs({value}) > {limit}", message))
    return checks


def _decimal_comma_hint(mapping: Mapping, kind: Kind, text: str) -> str:
    """'14,62' with the default decimal point: most likely a decimal comma, which the mapping can say."""
    if kind not in (Kind.NUMBER, Kind.WHOLE_NUMBER) or mapping.decimal != ".":
        return ""
    hint = _literal(' (a decimal comma? set `decimal: ","` in the mapping)')
    return rf" || CASE WHEN regexp_full_match({text}, '[^,]*\d,\d{{1,2}}') THEN {hint} ELSE '' END"


def _order_id_part_checks(mapping: Mapping) -> list[str]:
    """A derived order id needs each of its parts on every row (the required ones are checked anyway)."""
    return [
        _error(mapping, part, f"t_{part} IS NULL", _literal(f"is empty (the order id is made from {part})"))
        for part in mapping.order_id_from
        if part not in REQUIRED_WHEN_MAPPED
    ]


def _other_price_provided(mapping: Mapping, field: str) -> bool:
    return any(mapping.provides(other) for other in PRICE_FIELDS if other != field)


def _price_checks(mapping: Mapping) -> list[str]:
    """With both unit price and revenue in the file: one must be there, and they must agree."""
    both_empty = _error(
        mapping,
        "revenue",
        "t_revenue IS NULL AND t_unit_price IS NULL",
        _literal(f"is empty, and so is {_source_name(mapping, 'unit_price')!r} (one of them is required)"),
    )
    expected = "v_quantity * v_unit_price * (1 - coalesce(v_discount, 0))"
    mismatch = _error(
        mapping,
        "revenue",
        f"abs(v_revenue - {expected}) > {REVENUE_TOLERANCE} * abs({expected}) + 0.005",
        f"'''' || t_revenue || ''' is not quantity x unit price x (1 - discount) = ' || round({expected}, 2)",
    )
    return [both_empty, mismatch]


def _future_check(mapping: Mapping, conversions: Conversions) -> str:
    """A sale cannot have happened after now: one such line skews recency and pads every series."""
    now = f"{conversions.now:%Y-%m-%d %H:%M} {conversions.zone}"
    return _error(
        mapping,
        "ordered_at",
        f"ordered_at > TIMESTAMP '{conversions.latest.isoformat(sep=' ')}'",
        f"'''' || t_ordered_at || ''' is in the future (now is {now})'",
    )


def _bound_checks(mapping: Mapping) -> list[str]:
    """The sanity bounds of salespulse.bounds, from the same settings as real-time ingest's: the supported
    dates, the largest quantity, unit price and line amount (given or derived), and ids without control
    characters."""
    settings = get_settings()
    earliest = settings.earliest_date.isoformat()
    too_early = _literal(f"' is before the earliest date accepted, {earliest} (SALESPULSE_EARLIEST_DATE)")
    checks = [
        _error(
            mapping,
            "ordered_at",
            f"CAST(ordered_at AS DATE) < DATE '{earliest}'",
            f"{_literal(chr(39))} || t_ordered_at || {too_early}",
        )
    ]
    bounds = {
        "quantity": (settings.max_line_quantity, "quantity of one line", "MAX_LINE_QUANTITY"),
        "unit_price": (settings.max_unit_price, "unit price", "MAX_UNIT_PRICE"),
        "cost": (settings.max_line_revenue, "amount of one line", "MAX_LINE_REVENUE"),
    }
    for field, (limit, what, setting) in bounds.items():
        if mapping.provides(field):
            above = _literal(f"' is above the largest {what} accepted, {limit:,.0f} (SALESPULSE_{setting})")
            message = f"{_literal(chr(39))} || t_{field} || {above}"
            checks.append(_error(mapping, field, f"v_{field} > {limit!r}", message))
    # The line's revenue, given or derived: quantity x price can pass each bound and still swamp every total.
    limit = settings.max_line_revenue
    field = "revenue" if mapping.provides("revenue") else "unit_price"
    above = _literal(f" is above the largest accepted, {limit:,.0f} (SALESPULSE_MAX_LINE_REVENUE)")
    message = f"{_literal('the line revenue ')} || round(revenue, 2) || {above}"
    checks.append(_error(mapping, field, f"revenue > {limit!r}", message))
    for field in ID_FIELDS:
        if mapping.provides(field):
            condition = f"regexp_matches(t_{field}, {_literal(CONTROL_CHARACTERS_SQL)})"
            message = "contains a control character (NUL, newline, ...); ids are plain text on one line"
            checks.append(_error(mapping, field, condition, _literal(message)))
    return checks


def _error(mapping: Mapping, field: str, condition: str, message: str) -> str:
    column = _literal(_source_name(mapping, field))
    return (
        f"CASE WHEN {condition} THEN "
        f"{{'source_column': {column}, 'value': t_{field}, 'message': {message}}} END"
    )


def _source_name(mapping: Mapping, field: str) -> str:
    if field == "order_id" and mapping.order_id_from:
        return f"order id from {' + '.join(_source_name(mapping, part) for part in mapping.order_id_from)}"
    return mapping.columns.get(field, f"defaults.{field}")


def _expected(kind: Kind, conversions: Conversions) -> str:
    if kind is Kind.TIMESTAMP:
        return f"a date (expected {conversions.dates.expected})"
    if kind is Kind.CHANNEL:
        return f"a channel (expected {' or '.join(CHANNELS)})"
    if kind is Kind.STATE:
        return "a US state"
    if kind is Kind.ZIP:
        return "a US zip code"
    return f"a {kind.value}"


@cache  # built from every spelling of every state: an import uses it per field, a sync per chunk
def _state_codes() -> str:
    """SQL map from upper-cased state names and codes to the two-letter code."""
    spellings = [*STATE_NAMES, *REGION_OF_STATE]
    return _map_literal({spelling.upper(): code for spelling in spellings if (code := state_code(spelling))})


def _state_regions() -> str:
    return _map_literal(REGION_OF_STATE)


def _map_literal(pairs: dict[str, str]) -> str:
    return "MAP {" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in pairs.items()) + "}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal_tuple(texts: tuple[str, ...]) -> str:
    return "(" + ", ".join(map(_literal, texts)) + ")"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- results ---


def _first_errors(con: duckdb.DuckDBPyConnection) -> list[RowError]:
    rows = con.execute(
        f"SELECT {ROW}, errors FROM {STAGED} WHERE len(errors) > 0 ORDER BY {ROW} LIMIT {MAX_REPORTED_ERRORS}"
    ).fetchall()
    errors = [
        RowError(row=row, column=e["source_column"], value=e["value"], message=e["message"])
        for row, row_errors in rows
        for e in row_errors
    ]
    return errors[:MAX_REPORTED_ERRORS]


def _write_rejects(con: duckdb.DuckDBPyConnection, file: Path, source: str) -> Path:
    """The invalid rows as they were in the file, plus their row number and what is wrong with them."""
    reject_dir = get_settings().import_reject_dir
    reject_dir.mkdir(parents=True, exist_ok=True)
    target = reject_dir / f"{file.stem}.rejects.{datetime.now():%Y%m%d-%H%M%S-%f}.csv"
    reasons = (
        "array_to_string(list_transform(s.errors, lambda e: e.source_column || ': ' || e.message), '; ')"
    )
    con.execute(
        f"""
        COPY (
            SELECT f.* EXCLUDE ({ROW}), s.{ROW} AS row_number, {reasons} AS reason
            FROM ({source}) f JOIN {STAGED} s USING ({ROW})
            WHERE len(s.errors) > 0
            ORDER BY s.{ROW}
        ) TO {_literal(str(target))} (HEADER)
        """
    )
    return target


def _valid_batches(con: duckdb.DuckDBPyConnection) -> tuple[duckdb.DuckDBPyRelation, ...]:
    """Order lines, customers and products of the valid rows, as relations over the staged table."""
    valid = f"FROM {STAGED} WHERE len(errors) = 0"
    ship_to = [
        f"{part} AS {column}" for part, column in zip(ADDRESS_FIELDS, LINE_GEOGRAPHY_COLUMNS, strict=True)
    ]
    lines = con.sql(f"SELECT {', '.join([*LINE_COLUMNS, *ship_to])} {valid}")
    customers = con.sql(_latest_per_key("customer_id", CUSTOMER_ATTRIBUTES, valid))
    products = con.sql(_latest_per_key("product_id", PRODUCT_ATTRIBUTES, valid))
    return lines, customers, products


def _latest_per_key(key: str, attributes: tuple[str, ...], rows: str) -> str:
    """One row per key, from the key's latest line in the file (a customer's latest address, say)."""
    return (
        f"SELECT DISTINCT ON ({key}) {key}, {', '.join(attributes)} {rows} "
        f"ORDER BY {key}, ordered_at DESC, {ROW} DESC"
    )
