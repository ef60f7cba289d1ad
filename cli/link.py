"""How a command reaches the warehouse: directly, or through the running service that owns it.

While the service runs it is the only process that may write the warehouse (DuckDB's lock), so a command
run meanwhile asks it through its keyed admin API: info, file import, and a consistent snapshot that
training and `serve build` read. With no service running, commands open the file themselves.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from salespulse.client import AuthenticationError, SalesPulseClient, SalesPulseError, ServiceUnreachableError
from salespulse.config import get_settings
from salespulse.warehouse import owner
from salespulse.warehouse.owner import OwnerRecord, WarehouseMissing, WarehouseUnavailable


class ServiceRefused(WarehouseUnavailable):
    """The running service answered an admin call with an error (``error`` is the client's exception)."""

    def __init__(self, message: str, error: SalesPulseError) -> None:
        super().__init__(message)
        self.status = error.status
        self.problems = error.detail


def running_owner() -> OwnerRecord | None:
    return owner.find_owner(get_settings().warehouse_path)


@contextmanager
def owner_client(record: OwnerRecord) -> Iterator[SalesPulseClient]:
    """The client of the service that owns the warehouse; its errors as one-line messages. Long timeout:
    an import or a snapshot of a large warehouse takes a while, and is not retried."""
    try:
        with SalesPulseClient(base_url=record.url, timeout=900, retries=0) as client:
            yield client
    except ServiceUnreachableError as error:
        raise WarehouseUnavailable(
            f"the service (pid {record.pid}) owns the warehouse but does not answer at {record.url}"
        ) from error
    except AuthenticationError as error:
        hint = "set SALESPULSE_API_KEY to the service's key (make run keeps it in data/.api-key)"
        raise ServiceRefused(f"the service refused the API key ({error.status}): {hint}", error) from None
    except SalesPulseError as error:
        first = error.detail[0].message if error.detail else ""
        raise ServiceRefused(f"the service answered {error.status} {error.error}: {first}", error) from None


@contextmanager
def readable_warehouse() -> Iterator[Path]:
    """A warehouse file this process can read: the warehouse itself, or, while the service owns it, a
    consistent snapshot the service writes (removed afterwards)."""
    settings = get_settings()
    record = running_owner()
    if record is None:
        if not settings.warehouse_path.exists():
            raise WarehouseMissing(settings.warehouse_path)
        yield settings.warehouse_path
        return
    folder = settings.warehouse_path.parent
    with tempfile.TemporaryDirectory(prefix=".snapshot-", dir=folder) as scratch:
        target = Path(scratch) / "warehouse.duckdb"
        with owner_client(record) as client:
            client.snapshot(str(target))
        yield target
