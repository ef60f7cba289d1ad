"""Importing a company's goal plan: revenue targets by month and region, salesman, category or product.

The file (CSV or Parquet) has one target per row. Long form, any levels in one file:

    month,level,member,target
    2026-01,region,West,125000
    2026-01,product,P-00012,"$4,500.00"

or one level per file (``--level category``) with the member in a column named after the level (``region``,
``salesman``/``salesman_id``, ``category``, ``product``/``product_id``) or ``member``. The month is
``YYYY-MM`` or a date in it (ISO or US ``M/D/YYYY``); the target a non-negative number, currency symbols and
thousands separators allowed. Every row is checked first, with its row number, column and reason: an unknown
level, a member the warehouse does not know (a typo in a plan must not become a target nobody meets), a
duplicate. A file with any bad row changes nothing; a good one is written in one transaction, replacing the
targets of the same month and member (so importing a plan again changes nothing).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import duckdb
import pyarrow as pa

from salespulse.dataset.importing import ImportFailed, ImportRejected, RowError
from salespulse.warehouse.record import GoalWriter, configured_goal_writer
from salespulse.warehouse.schema import GOAL_TABLES
from salespulse.warehouse.store import connect, transaction

LEVELS = tuple(GOAL_TABLES)
MEMBER_COLUMNS = {
    "region": ("region",),
    "salesman": ("salesman_id", "salesman"),
    "category": ("category",),
    "product": ("product_id", "product"),
}
TARGET_COLUMNS = ("target", "revenue_target", "goal")
MONTH_FORMATS = ("%Y-%m", "%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")
# The members the warehouse knows, per level: a target for anything else is rejected.
KNOWN_MEMBERS = {
    "region": "SELECT region FROM customers UNION SELECT region FROM salesmen",
    "salesman": "SELECT salesman_id FROM salesmen",
    "category": "SELECT category FROM products",
    "product": "SELECT product_id FROM products",
}
STAGED = "goal_plan_staged"
MAX_REPORTED_ERRORS = 1_000


@dataclass(frozen=True)
class GoalImportResult:
    file: Path
    rows_read: int
    targets_by_level: dict[str, int]
    seconds: float

    def describe(self) -> str:
        levels = ", ".join(f"{count:,} by {level}" for level, count in self.targets_by_level.items() if count)
        return (
            f"Imported {self.rows_read:,} targets from {self.file.name} in {self.seconds:.1f} s ({levels})."
        )


def import_goals(
    file: Path | str, *, level: str | None = None, path: Path | str | None = None
) -> GoalImportResult:
    """Check every row of the goal plan ``file`` and write it to the warehouse at ``path`` (one transaction).

    Raises ImportFailed when the file can't be read as a plan at all, ImportRejected when rows are invalid.
    """
    with closing(connect(path)) as con:
        return import_goals_into(con, file, level=level)


def import_goals_into(
    con: duckdb.DuckDBPyConnection,
    file: Path | str,
    *,
    level: str | None = None,
    write_goals: GoalWriter | None = None,
) -> GoalImportResult:
    """:func:`import_goals` through an open warehouse connection (the running service's). With a system of
    record (SALESPULSE_DATABASE_URL) the plan is written there, by ``write_goals`` (default: a writer of the
    configured record), after the same checks."""
    started = perf_counter()
    file = Path(file)
    try:
        _stage(con, file, level)
        rows_read = con.execute(f"SELECT count(*) FROM {STAGED}").fetchone()[0]
        errors = _row_errors(con)
        if errors:
            invalid_rows = len({e.row for e in errors})
            raise ImportRejected(file, errors[:MAX_REPORTED_ERRORS], invalid_rows, len(errors), rows_read)
        write_goals = write_goals or configured_goal_writer()
        if write_goals is not None:
            plans = {name: _staged_level(con, name) for name in LEVELS}
            write_goals({name: plan for name, plan in plans.items() if plan.num_rows})
            written = {name: plan.num_rows for name, plan in plans.items()}
        else:
            with transaction(con):
                written = {name: _write_level(con, name) for name in LEVELS}
    finally:
        con.execute(f"DROP TABLE IF EXISTS {STAGED}")
    return GoalImportResult(file, rows_read, written, perf_counter() - started)


def _stage(con: duckdb.DuckDBPyConnection, file: Path, level: str | None) -> None:
    if not file.is_file():
        raise ImportFailed(f"no such file: {file}")
    if level is not None and level not in LEVELS:
        raise ImportFailed(f"unknown level {level!r}; levels are {', '.join(LEVELS)}")
    reader = "read_parquet" if file.suffix.lower() == ".parquet" else "read_csv"
    options = "" if reader == "read_parquet" else ", all_varchar = true, header = true"
    try:
        columns = [
            name
            for (name,) in con.execute(
                f"SELECT column_name FROM (DESCRIBE SELECT * FROM {reader}(?{options}))", [str(file)]
            ).fetchall()
        ]
    except duckdb.Error as error:
        raise ImportFailed(f"cannot read {file.name}: {str(error).splitlines()[0]}") from None
    by_lower = {name.strip().lower(): name for name in columns}
    month = _column(by_lower, ("month",), columns)
    target = _column(by_lower, TARGET_COLUMNS, columns)
    level_sql, member = _level_and_member(by_lower, columns, level)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {STAGED} AS
            SELECT row_number() OVER () AS row_no,
                   trim({month}::VARCHAR) AS month_text,
                   {_month_sql(f"trim({month}::VARCHAR)")} AS month,
                   lower(trim({level_sql})) AS level,
                   trim({member}::VARCHAR) AS member,
                   trim({target}::VARCHAR) AS target_text,
                   {_amount_sql(f"trim({target}::VARCHAR)")} AS target
            FROM {reader}(?{options})""",
        [str(file)],
    )


def _column(by_lower: dict[str, str], names: tuple[str, ...], columns: list[str]) -> str:
    for name in names:
        if name in by_lower:
            return _quoted(by_lower[name])
    raise ImportFailed(
        f"the plan has no {' / '.join(repr(n) for n in names)} column; its columns are "
        + ", ".join(repr(c) for c in columns)
    )


def _level_and_member(by_lower: dict[str, str], columns: list[str], level: str | None) -> tuple[str, str]:
    """SQL for each row's level and member: a `level` column, or the --level given for the whole file."""
    if level is None:
        if "level" not in by_lower:
            raise ImportFailed("the plan has no 'level' column: add one, or give the level of the whole file")
        return f"{_quoted(by_lower['level'])}::VARCHAR", _column(by_lower, ("member",), columns)
    return f"'{level}'", _column(by_lower, ("member", *MEMBER_COLUMNS[level]), columns)


def _month_sql(text: str) -> str:
    formats = ", ".join(f"'{f}'" for f in MONTH_FORMATS)
    return f"date_trunc('month', TRY_STRPTIME({text}, [{formats}]))::DATE"


def _amount_sql(text: str) -> str:
    """A plan's figure: currency symbols, spaces and thousands separators dropped."""
    return f"TRY_CAST(regexp_replace({text}, '[$€£¥,\\s]', '', 'g') AS DOUBLE)"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row_errors(con: duckdb.DuckDBPyConnection) -> list[RowError]:
    known = " UNION ALL ".join(
        f"SELECT '{level}' AS level, m AS member FROM ({sql}) AS k(m) WHERE m IS NOT NULL"
        for level, sql in KNOWN_MEMBERS.items()
    )
    level_list = ", ".join(f"'{level}'" for level in LEVELS)
    checks = [
        ("month", "month_text", "month IS NULL", "is not a month: use YYYY-MM (or a date in the month)"),
        ("level", "level", f"level NOT IN ({level_list})", f"is not a level; levels are {', '.join(LEVELS)}"),
        ("member", "member", "member IS NULL OR member = ''", "is empty"),
        ("target", "target_text", "target IS NULL OR NOT isfinite(target)", "is not a number"),
        ("target", "target_text", "target < 0", "is negative"),
        (
            "member",
            "member",
            f"level IN ({level_list}) AND member <> '' "
            "AND NOT EXISTS (SELECT 1 FROM known k WHERE k.level = plan.level AND k.member = plan.member)",
            "is not known to the warehouse at this level (import its sales first, or fix the name)",
        ),
        (
            "member",
            "member",
            "copies > 1 AND month IS NOT NULL",
            "has more than one target for this month",
        ),
    ]
    union = " UNION ALL ".join(
        f"SELECT row_no, '{column}' AS col, {value}::VARCHAR AS value, '{message}' AS message, {i} AS rank "
        f"FROM plan WHERE {condition}"
        for i, (column, value, condition, message) in enumerate(checks)
    )
    rows = con.execute(
        f"WITH known AS ({known}), "
        f"plan AS (SELECT *, count(*) OVER (PARTITION BY month, level, member) AS copies FROM {STAGED}), "
        f"problems AS ({union}) "
        f"SELECT row_no, col, value, message FROM problems ORDER BY row_no, rank LIMIT {MAX_REPORTED_ERRORS}"
    ).fetchall()
    return [
        RowError(row=row, column=column, value=value, message=f"{value!r} {message}")
        for row, column, value, message in rows
    ]


def _staged_level(con: duckdb.DuckDBPyConnection, level: str) -> pa.Table:
    """The staged targets of one level as (month, member, target), for the system of record."""
    staged = con.sql(f"SELECT month, member, target FROM {STAGED} WHERE level = ?", params=[level])
    return staged.to_arrow_table()


def _write_level(con: duckdb.DuckDBPyConnection, level: str) -> int:
    table = GOAL_TABLES[level]
    month, member, target = table.column_names
    con.execute(
        f"""INSERT OR REPLACE INTO {table.name} ({month}, {member}, {target})
            SELECT month, member, target FROM {STAGED} WHERE level = ?""",
        [level],
    )
    return con.execute(f"SELECT count(*) FROM {STAGED} WHERE level = ?", [level]).fetchone()[0]
