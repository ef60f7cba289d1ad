"""Who owns the warehouse right now.

DuckDB lets one process write a database file, and while the service runs that process is the service. It
says so in an owner record beside the file (``warehouse.duckdb.owner.json``: its URL, process id and instance
id), so that every command run meanwhile goes through the service's keyed admin API instead of failing on
DuckDB's lock. A record whose process is gone (a crash, ``kill -9``) is stale and ignored.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from salespulse.errors import Unavailable


class WarehouseUnavailable(Unavailable):
    """The warehouse can't be used as asked; ``str()`` is one line a person can act on."""


class WarehouseMissing(WarehouseUnavailable, FileNotFoundError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no warehouse at {path}: create one with `salespulse data generate` "
            "or `salespulse data import FILE --mapping M.yaml`"
        )
        self.path = path


class WarehouseLocked(WarehouseUnavailable):
    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"the warehouse {path} is in use by {holder} (DuckDB lets one process write it); "
            "wait for that process to finish, or stop it"
        )
        self.path = path
        self.pid = pid


class WarehouseOwned(WarehouseUnavailable):
    """Refused because the running service owns the warehouse (e.g. replacing it under the service)."""


_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


def locked_error(path: Path, error: duckdb.Error) -> WarehouseLocked | None:
    """DuckDB's lock conflict as a WarehouseLocked, or None for any other error."""
    message = str(error)
    if "lock" not in message.lower():
        return None
    holder = _LOCK_HOLDER.search(message)
    return WarehouseLocked(path, int(holder.group(1)) if holder else None)


@dataclass(frozen=True)
class OwnerRecord:
    url: str
    pid: int
    instance: str
    warehouse: str
    started_at: str

    def is_alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, but another user's
            return True
        return True


def record_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".owner.json")


def claim(warehouse: Path, *, url: str, instance: str) -> OwnerRecord:
    """Write the owner record of this process (atomically: readers never see half a record)."""
    record = OwnerRecord(
        url=url,
        pid=os.getpid(),
        instance=instance,
        warehouse=str(warehouse),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    target = record_path(warehouse)
    scratch = target.with_name(target.name + f".{os.getpid()}")
    scratch.write_text(json.dumps(asdict(record), indent=2))
    os.replace(scratch, target)
    return record


def release(warehouse: Path) -> None:
    """Remove the record if it is this process's own (a newer owner's record is left alone)."""
    current = read(warehouse)
    if current is not None and current.pid == os.getpid():
        record_path(warehouse).unlink(missing_ok=True)


def read(warehouse: Path) -> OwnerRecord | None:
    try:
        data = json.loads(record_path(warehouse).read_text())
        return OwnerRecord(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def find_owner(warehouse: Path) -> OwnerRecord | None:
    """The running service that owns ``warehouse``, or None (no record, or its process is gone)."""
    record = read(warehouse)
    if record is None or not record.is_alive():
        return None
    return record
