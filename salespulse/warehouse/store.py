"""Opening the DuckDB warehouse, creating its schema, and writing to it atomically.

DuckDB commits a transaction to its write-ahead log only at COMMIT, so a process killed inside
``transaction()`` leaves the file as it was; a whole rebuild goes to a temporary file that replaces the
warehouse with one ``os.replace``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from salespulse.config import get_settings
from salespulse.warehouse.schema import ALL_TABLES


def warehouse_path() -> Path:
    return get_settings().warehouse_path


def connect(path: Path | str | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (creating the file and schema unless read-only)."""
    settings = get_settings()
    target = Path(path) if path is not None else settings.warehouse_path
    if read_only and not target.exists():
        raise FileNotFoundError(
            f"No warehouse at {target}. "
            "Create one with `salespulse data generate` or `salespulse data import`."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        str(target),
        read_only=read_only,
        config={
            "memory_limit": settings.warehouse_memory_limit,
            "threads": settings.warehouse_threads,
            "checkpoint_threshold": settings.warehouse_checkpoint_threshold,
        },
    )
    if not read_only:
        create_schema(con)
    return con


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    for table in ALL_TABLES:
        con.execute(table.ddl())


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit on success, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def rebuild(path: Path | str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Build a whole new warehouse beside the old one and swap it in only when complete."""
    target = Path(path) if path is not None else warehouse_path()
    scratch = target.with_name(target.name + ".building")
    _remove_database_files(scratch)
    con = connect(scratch)
    try:
        yield con
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        _remove_database_files(scratch)
        raise
    con.close()
    # A WAL left beside the old file would be replayed onto the new one; the file itself is swapped
    # atomically, so readers see the old warehouse or the new one, never a missing one.
    target.with_name(target.name + ".wal").unlink(missing_ok=True)
    os.replace(scratch, target)


def _remove_database_files(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t.name: con.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in ALL_TABLES}
