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
from salespulse.warehouse.migrations import WarehouseOutdated, migrate, require_current
from salespulse.warehouse.owner import WarehouseMissing, locked_error
from salespulse.warehouse.schema import ALL_TABLES


def warehouse_path() -> Path:
    return get_settings().warehouse_path


def connect(path: Path | str | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (creating the file and schema, or migrating an older one, unless read-only).

    Raises WarehouseMissing for a read of a file that isn't there, WarehouseLocked when another process
    (the running service, a training run) holds DuckDB's lock on it, and WarehouseOutdated for a read-only
    open of a warehouse an older salespulse made (see migrations.py).
    """
    settings = get_settings()
    target = Path(path) if path is not None else settings.warehouse_path
    if read_only and not target.exists():
        raise WarehouseMissing(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(
            str(target),
            read_only=read_only,
            config={
                "memory_limit": settings.warehouse_memory_limit,
                "threads": settings.warehouse_threads,
                "checkpoint_threshold": settings.warehouse_checkpoint_threshold,
            },
        )
    except duckdb.IOException as error:
        raise (locked_error(target, error) or error) from None
    try:
        if read_only:
            require_current(con, target)
        else:
            create_schema(con, target)
    except WarehouseOutdated:
        # Existing warehouses migrate on open, read-only opens too: migrate through a short writable
        # connection (it fails with WarehouseLocked if another process holds the file), then read.
        con.close()
        connect(target).close()
        return connect(target, read_only=True)
    except BaseException:
        con.close()
        raise
    return con


def create_schema(con: duckdb.DuckDBPyConnection, path: Path | str = "") -> None:
    """Create the declared tables, or bring an older warehouse up to the current schema, atomically."""
    with transaction(con):
        migrate(con, path)


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


def snapshot(con: duckdb.DuckDBPyConnection, target: Path) -> None:
    """Copy the database ``con`` has open into a new file ``target``: one statement, so one consistent
    state even while others write (training reads such a copy while the service owns the warehouse)."""
    target.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    (source,) = con.execute("SELECT current_database()").fetchone()
    con.execute("ATTACH ? AS snapshot_target", [str(target)])
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO snapshot_target')
    finally:
        con.execute("DETACH snapshot_target")


def sales_range(con: duckdb.DuckDBPyConnection) -> tuple[object, object]:
    """First and last order time, (None, None) when there are no lines."""
    return con.execute("SELECT min(ordered_at), max(ordered_at) FROM order_lines").fetchone()


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of each declared table (a table an older warehouse opened read-only lacks counts 0)."""
    present = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    return {
        t.name: con.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] if t.name in present else 0
        for t in ALL_TABLES
    }
