"""Import of a company's own order-line export (CSV or Parquet) into the warehouse.

How it works, and why:

* DuckDB reads the file with every column as text and numbers its rows; one SQL statement converts and
  checks every row and collects every problem, so a file of millions of rows is checked in seconds and the
  user sees all problems at once, not the first one.
* Row numbers count data rows from 1, in file order: "row 1" is the first row after a CSV's header (line 2
  of the file, when no value spans several lines), or a Parquet file's first row.
* A file with any invalid row is rejected whole (:class:`ImportRejected`) unless ``skip_invalid``; then
  the valid rows are imported and the invalid ones are written, with their row numbers and reasons, to a
  CSV reject file.
* Writing is :func:`salespulse.warehouse.load.upsert_sales`: one transaction keyed on (order_id, line), so
  a re-import replaces lines instead of doubling them, and a killed import leaves the warehouse as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from time import perf_counter

import duckdb
from rich.console import Console

from salespulse.config import get_settings
from salespulse.dataset.geography import REGION_OF_STATE, STATE_NAMES, state_code
from salespulse.dataset.mapping import (
    PRICE_FIELDS,
    REQUIRED_FIELDS,
    WAREHOUSE_FIELDS,
    Mapping,
    MappingError,
    load_mapping,
)
from salespulse.warehouse.load import upsert_sales
from salespulse.warehouse.schema import ORDER_LINES
from salespulse.warehouse.store import connect

ROW = "__row"  # the row number added to the file's own columns
STAGED = "import_staged"  # temporary table: every row converted, derived and checked
MAX_REPORTED_ERRORS = 1_000  # row errors kept for the message; the counts cover all of them
REVENUE_TOLERANCE = 0.01  # relative difference allowed between revenue and quantity x price x (1 - discount)
CHANNELS = ("direct", "trade")


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
    "unit_price": Kind.NUMBER,
    "discount": Kind.NUMBER,
    "revenue": Kind.NUMBER,
    "cost": Kind.NUMBER,
    "profit": Kind.NUMBER,
}  # every other field is TEXT
POSITIVE_FIELDS = ("line", "quantity")
# Needed on every row when the mapping provides them (line is otherwise the position within the order).
REQUIRED_WHEN_MAPPED = (*REQUIRED_FIELDS, "line")
# What a file can tell about customers and products besides their keys.
CUSTOMER_ATTRIBUTES = ("customer_name", "city", "state", "zip", "region")
PRODUCT_ATTRIBUTES = ("product_name", "category", "subcategory")


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
    rows and ``skip_invalid`` is false (nothing is written then).
    """
    started = perf_counter()
    report = _reporter(progress)
    file = Path(file)
    try:
        mapping = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
        source = _source_query(file, mapping)
    except MappingError as error:
        raise ImportFailed(str(error)) from None
    with closing(connect(path)) as con:
        if not progress:  # quiet means quiet: DuckDB draws a bar of its own for long queries
            con.execute("SET enable_progress_bar = false")
        report(f"Reading and checking {file}")
        _stage(con, source, mapping)
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
        counts = upsert_sales(con, lines, customers=customers, products=products, progress=report)
    return ImportResult(
        file=file,
        rows_read=rows_read,
        inserted=counts.inserted,
        updated=counts.updated,
        rejected=invalid_rows,
        reject_file=reject_file,
        seconds=perf_counter() - started,
    )


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
    else:
        reader = (
            f"read_csv({_literal(str(file))}, header = true, all_varchar = true, "
            f"delim = {_literal(mapping.csv.delimiter)}, encoding = {_literal(mapping.csv.encoding)})"
        )
    # An empty OVER () numbers rows in the order the reader produces them, i.e. file order.
    return f"SELECT row_number() OVER () AS {ROW}, * FROM {reader}"


def _stage(con: duckdb.DuckDBPyConnection, source: str, mapping: Mapping) -> None:
    """Convert, derive and check every row into the temporary STAGED table."""
    try:
        column_types = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {source})").fetchall()
        )
        mapping.check_columns_exist([name for name in column_types if name != ROW])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED} AS {_staging_sql(source, mapping, column_types)}")
    except MappingError as error:
        raise ImportFailed(str(error)) from None
    except duckdb.Error as error:
        raise ImportFailed(f"DuckDB could not read it: {error}") from None


# --- conversion, derivation and checks, as SQL ---
# Three names per field: t_<field> is its trimmed text (NULL when empty), v_<field> the converted value
# (NULL when the text does not convert), <field> the final value after defaults and derivations.


def _staging_sql(source: str, mapping: Mapping, column_types: dict[str, str]) -> str:
    texts = ", ".join(f"{_text(mapping, field)} AS t_{field}" for field in WAREHOUSE_FIELDS)
    values = ", ".join(
        f"{_converted(mapping, field, column_types)} AS v_{field}" for field in WAREHOUSE_FIELDS
    )
    finals = ", ".join(f"{expression} AS {field}" for field, expression in _final_values(mapping).items())
    kept = [*ORDER_LINES.column_names, *CUSTOMER_ATTRIBUTES, *PRODUCT_ATTRIBUTES]
    return f"""
        WITH texts AS (SELECT {ROW}, {texts} FROM ({source})),
        converted AS (SELECT *, {values} FROM texts),
        derived AS (SELECT *, {finals} FROM converted)
        SELECT {ROW}, {", ".join(kept)}, {_errors(mapping)} AS errors FROM derived
    """


def _text(mapping: Mapping, field: str) -> str:
    expression = "CAST(NULL AS VARCHAR)"
    if field in mapping.columns:
        expression = f"nullif(trim(CAST({_identifier(mapping.columns[field])} AS VARCHAR)), '')"
    if field in mapping.defaults:
        expression = f"coalesce({expression}, {_literal(str(mapping.defaults[field]))})"
    return expression


def _converted(mapping: Mapping, field: str, column_types: dict[str, str]) -> str:
    text = f"t_{field}"
    kind = FIELD_KINDS.get(field, Kind.TEXT)
    if kind is Kind.TIMESTAMP:
        source_type = column_types.get(mapping.columns.get(field, ""), "VARCHAR")
        # A Parquet date column arrives typed; its text is ISO whatever the mapping's format says.
        if mapping.date_format and not source_type.startswith(("DATE", "TIMESTAMP")):
            return f"try_strptime({text}, {_literal(mapping.date_format)})"
        return f"TRY_CAST({text} AS TIMESTAMP)"
    number = f"TRY_CAST({text} AS DOUBLE)"
    conversions = {
        Kind.TEXT: text,
        Kind.NUMBER: f"CASE WHEN isfinite({number}) THEN {number} END",
        Kind.WHOLE_NUMBER: f"CASE WHEN {number} = trunc({number}) THEN TRY_CAST({number} AS INTEGER) END",
        Kind.STATE: f"{_state_codes()}[upper({text})]",
        # Exports often store zips as numbers (2920 for 02920, or 2920.0), or as ZIP+4.
        Kind.ZIP: (
            rf"CASE WHEN regexp_full_match({text}, '\d{{1,5}}(\.0+)?') "
            rf"THEN lpad(split_part({text}, '.', 1), 5, '0') "
            rf"WHEN regexp_full_match({text}, '\d{{5}}-\d{{4}}') THEN left({text}, 5) END"
        ),
        Kind.CHANNEL: f"CASE WHEN lower({text}) IN {_literal_tuple(CHANNELS)} THEN lower({text}) END",
    }
    return conversions[kind]


def _final_values(mapping: Mapping) -> dict[str, str]:
    """Every field's final value: the converted one, else a default or a derivation."""
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
        region=f"coalesce(v_region, {_state_regions()}[v_state])",
    )
    if not mapping.provides("line"):
        finals["line"] = f"CAST(row_number() OVER (PARTITION BY v_order_id ORDER BY {ROW}) AS INTEGER)"
    return finals


def _errors(mapping: Mapping) -> str:
    """A list of {source_column, value, message} per row, empty when the row is valid."""
    checks: list[str] = []
    for field in WAREHOUSE_FIELDS:
        if mapping.provides(field):
            checks.extend(_field_checks(mapping, field))
    if all(mapping.provides(field) for field in PRICE_FIELDS):
        checks.extend(_price_checks(mapping))
    if mapping.provides("line"):
        checks.append(_duplicate_key_check(mapping))
    return f"list_filter([{', '.join(checks)}], lambda e: e IS NOT NULL)"


def _field_checks(mapping: Mapping, field: str) -> list[str]:
    text, value = f"t_{field}", f"v_{field}"
    shown = f"'''' || {text} || ''''"  # the value as the user typed it, in quotes
    kind = FIELD_KINDS.get(field, Kind.TEXT)
    checks = []
    if field in REQUIRED_WHEN_MAPPED or (field in PRICE_FIELDS and not _other_price_provided(mapping, field)):
        checks.append(_error(mapping, field, f"{text} IS NULL", _literal(f"is empty ({field} is required)")))
    if kind is not Kind.TEXT:
        problem = _literal(f" is not {_expected(kind, mapping)}")
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
    return checks


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


def _duplicate_key_check(mapping: Mapping) -> str:
    first_row = f"min({ROW}) OVER (PARTITION BY order_id, line)"
    return _error(
        mapping,
        "order_id",
        f"order_id IS NOT NULL AND line IS NOT NULL AND {ROW} > {first_row}",
        f"'order ''' || order_id || ''' line ' || line || ' is also in row ' || {first_row}",
    )


def _error(mapping: Mapping, field: str, condition: str, message: str) -> str:
    column = _literal(_source_name(mapping, field))
    return (
        f"CASE WHEN {condition} THEN "
        f"{{'source_column': {column}, 'value': t_{field}, 'message': {message}}} END"
    )


def _source_name(mapping: Mapping, field: str) -> str:
    return mapping.columns.get(field, f"defaults.{field}")


def _expected(kind: Kind, mapping: Mapping) -> str:
    if kind is Kind.TIMESTAMP:
        return f"a date (expected {mapping.date_format or 'an ISO date such as 2024-01-31'})"
    if kind is Kind.CHANNEL:
        return f"a channel (expected {' or '.join(CHANNELS)})"
    if kind is Kind.STATE:
        return "a US state"
    if kind is Kind.ZIP:
        return "a US zip code"
    return f"a {kind.value}"


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
    lines = con.sql(f"SELECT {', '.join(ORDER_LINES.column_names)} {valid}")
    customers = con.sql(_latest_per_key("customer_id", CUSTOMER_ATTRIBUTES, valid))
    products = con.sql(_latest_per_key("product_id", PRODUCT_ATTRIBUTES, valid))
    return lines, customers, products


def _latest_per_key(key: str, attributes: tuple[str, ...], rows: str) -> str:
    """One row per key, from the key's latest line in the file (a customer's latest address, say)."""
    return (
        f"SELECT DISTINCT ON ({key}) {key}, {', '.join(attributes)} {rows} "
        f"ORDER BY {key}, ordered_at DESC, {ROW} DESC"
    )
