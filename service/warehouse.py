"""The service's handle on the warehouse: one DuckDB connection for the process, a cursor per thread.

DuckDB lets one process write a database file; the service is that process, so it opens the file once and
gives every request thread its own cursor (cursors share the database and see each other's commits).
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import duckdb


class Warehouse:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.connection = con
        self._local = threading.local()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.connection.cursor()
            self._local.cursor = cursor
        return cursor

    def is_open(self) -> bool:
        try:
            self.cursor().execute("SELECT 1").fetchall()
        except duckdb.Error:
            return False
        return True

    def status(self) -> dict[str, Any]:
        try:
            lines, last = (
                self.cursor().execute("SELECT count(*), max(ordered_at) FROM order_lines").fetchall()[0]
            )
        except duckdb.Error as error:
            return {"loaded": False, "error": str(error)}
        return {"loaded": True, "order_lines": lines, "last_sale": last.isoformat() if last else None}

    def last_sale_day(self, cursor: duckdb.DuckDBPyConnection) -> date | None:
        last = cursor.execute("SELECT max(ordered_at)::DATE FROM order_lines").fetchall()[0][0]
        return last

    def customer_details(self, cursor: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, Any]:
        rows = cursor.execute(
            """SELECT customer_name, city, state, zip, region, first_purchase
               FROM customers WHERE customer_id = ?""",
            [customer_id],
        ).fetchall()
        if not rows:
            return {}
        name, city, state, zip_code, region, first_purchase = rows[0]
        return {
            "name": name,
            "city": city,
            "state": state,
            "zip": zip_code,
            "region": region,
            "first_purchase": first_purchase.isoformat() if first_purchase else None,
        }
