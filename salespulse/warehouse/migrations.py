"""Bringing a warehouse made by an older salespulse up to the schema of ``schema.py``.

A warehouse records its schema version in the ``schema_version`` table, one row per version it reached. A
writable open (:func:`salespulse.warehouse.store.connect`) applies the migrations it lacks, in order, then
creates any table it does not have yet, all in the one transaction ``create_schema`` opens: a failed or
killed migration leaves the warehouse as it was. A read-only open cannot change the file, so it refuses an
outdated warehouse with :class:`WarehouseOutdated`, which says how to migrate it.

A migration is history: it describes the schema as it was then, so it names its columns itself rather than
reading today's declarations (which later versions change). A new schema change is a new migration appended
to MIGRATIONS, with ``SCHEMA_VERSION`` raised to its version.

Migrate a warehouse by hand: ``python -m salespulse.warehouse.migrations [PATH]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from salespulse.warehouse.owner import WarehouseUnavailable
from salespulse.warehouse.schema import ALL_TABLES, SCHEMA_VERSION

VERSION_TABLE = "schema_version"
UNVERSIONED = 0
"""The version of a warehouse made before versions were kept (it has order_lines but no VERSION_TABLE)."""


@dataclass(frozen=True)
class Migration:
    version: int
    """The version the warehouse has once this migration is applied."""
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def _add_line_geography(con: duckdb.DuckDBPyConnection) -> None:
    """Version 1: each order line gets where it was shipped to, and customers a country.

    An older warehouse knows only each customer's latest address, so that is every line's geography: its
    reports by region or state keep their figures, and a re-import of the source replaces each line's with
    its own. Before this version every writer accepted only US states and zip codes, so a customer with
    either is in the United States.
    """
    for column, sql_type in (
        ("ship_city", "VARCHAR"), ("ship_state", "VARCHAR"), ("ship_zip", "VARCHAR"),
        ("ship_region", "VARCHAR"), ("ship_country", "VARCHAR"), ("ship_latitude", "DOUBLE"),
        ("ship_longitude", "DOUBLE"),
    ):  # fmt: skip
        con.execute(f"ALTER TABLE order_lines ADD COLUMN {column} {sql_type}")
    con.execute("ALTER TABLE customers ADD COLUMN country VARCHAR")
    con.execute("UPDATE customers SET country = 'United States' WHERE state IS NOT NULL OR zip IS NOT NULL")
    con.execute(
        """
        UPDATE order_lines SET ship_city = c.city, ship_state = c.state, ship_zip = c.zip,
            ship_region = c.region, ship_country = c.country, ship_latitude = c.latitude,
            ship_longitude = c.longitude
        FROM customers c
        WHERE order_lines.customer_id = c.customer_id
        """
    )


def _add_sync_state(con: duckdb.DuckDBPyConnection) -> None:
    """Version 2: where each database sync (`salespulse data sync`) stands, kept in the warehouse so that
    a chunk's lines and the position after them commit together."""
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS sync_state (
            source VARCHAR NOT NULL, watermark_column VARCHAR NOT NULL, key_columns VARCHAR[] NOT NULL,
            last_watermark VARCHAR NOT NULL, last_key VARCHAR[] NOT NULL, rows_synced BIGINT NOT NULL,
            date_order VARCHAR, synced_at TIMESTAMP NOT NULL, PRIMARY KEY (source)
        )
        """
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "order lines carry their own geography (ship-to); customers a country", _add_line_geography),
    Migration(2, "the position of each database sync", _add_sync_state),
)
assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1)), "one migration per version"


class WarehouseOutdated(WarehouseUnavailable):
    """A read-only open of a warehouse whose schema is older than this code's."""

    def __init__(self, path: Path | str, version: int) -> None:
        super().__init__(
            f"the warehouse {path} has schema version {version}, this salespulse needs {SCHEMA_VERSION}: "
            f"open it once writable to migrate (any import, the service, or "
            f"`python -m salespulse.warehouse.migrations {path}`)"
        )
        self.version = version


class WarehouseTooNew(WarehouseUnavailable):
    """A warehouse written by a newer salespulse, whose schema this code does not know."""

    def __init__(self, path: Path | str, version: int) -> None:
        super().__init__(
            f"the warehouse {path} has schema version {version}, newer than this salespulse knows "
            f"({SCHEMA_VERSION}): upgrade salespulse to open it"
        )
        self.version = version


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version of the open warehouse; None when it has no tables at all (a new file)."""
    tables = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    if VERSION_TABLE in tables:
        ((version,),) = con.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchall()
        return version if version is not None else UNVERSIONED
    return UNVERSIONED if "order_lines" in tables else None


def migrate(con: duckdb.DuckDBPyConnection, path: Path | str = "") -> list[Migration]:
    """Bring the open warehouse to SCHEMA_VERSION and create the tables it lacks; returns the migrations
    applied. Runs inside the caller's transaction (``store.create_schema``), so it is all or nothing."""
    version = stored_version(con)
    if version is not None and version > SCHEMA_VERSION:
        raise WarehouseTooNew(path or _database_file(con), version)
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
        "(version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    pending = [m for m in MIGRATIONS if version is not None and m.version > version]
    for migration in pending:
        migration.apply(con)
        _record(con, migration.version, migration.description)
    # Tables added by a release without a migration of their own (they hold nothing yet), or a new file.
    for table in ALL_TABLES:
        con.execute(table.ddl())
    if version is None:
        _record(con, SCHEMA_VERSION, "created")
    return pending


def require_current(con: duckdb.DuckDBPyConnection, path: Path | str) -> None:
    """Refuse (read-only) use of a warehouse whose schema is not this code's."""
    version = stored_version(con)
    if version is None or version == SCHEMA_VERSION:
        return  # an empty file: reading it fails on the missing table, as it always did
    if version > SCHEMA_VERSION:
        raise WarehouseTooNew(path, version)
    raise WarehouseOutdated(path, version)


def _record(con: duckdb.DuckDBPyConnection, version: int, description: str) -> None:
    con.execute(
        f"INSERT INTO {VERSION_TABLE} VALUES (?, ?, CAST(now() AS TIMESTAMP))", [version, description]
    )


def _database_file(con: duckdb.DuckDBPyConnection) -> str:
    (path,) = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return path or "(in memory)"


def main(argv: list[str]) -> None:
    """Open the warehouse (``argv[0]``, else the configured one) writable, which migrates it."""
    from salespulse.warehouse.store import connect  # store imports this module

    path = Path(argv[0]) if argv else None
    with connect(path) as con:
        print(f"schema version {stored_version(con)} (current: {SCHEMA_VERSION})")


if __name__ == "__main__":
    main(sys.argv[1:])
