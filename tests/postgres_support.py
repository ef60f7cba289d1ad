"""A real PostgreSQL server for the tests, started from the machine's server binaries on 127.0.0.1.

`initdb` refuses to run as root, so under root the cluster belongs to the ``postgres`` user that Debian's
package creates (scripts/bootstrap.sh installs the server where it is missing). The cluster lives in its
own temporary folder outside pytest's (which only root may enter) and is removed when stopped.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

CLUSTER_OWNER = "postgres"
SUPERUSER = "salespulse"
_databases = itertools.count()


def server_binaries() -> Path:
    """The newest installed PostgreSQL server's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb): run scripts/bootstrap.sh as root")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", CLUSTER_OWNER, "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    folder: Path
    port: int
    binaries: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A new empty database on this server; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_owner([str(self.binaries / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                       "-w", "stop"]),
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(*, durable: bool = False) -> PostgresServer:
    """initdb a new cluster and start it on a free loopback port. ``durable=False`` turns fsync off: the
    tests kill service processes, never the database server, and need its speed more than its crash safety."""
    binaries = server_binaries()
    folder = Path(tempfile.mkdtemp(prefix="salespulse-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user=CLUSTER_OWNER)
    data = folder / "data"
    subprocess.run(
        _as_owner([str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"]),
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    started = subprocess.run(
        _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
                   "-w", "-t", "60", "start"]),
        capture_output=True, text=True, check=False, timeout=90,
    )  # fmt: skip
    if started.returncode != 0:
        log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
    server = PostgresServer(folder=folder, port=port, binaries=binaries)
    _wait_until_accepting(server)
    return server


def _wait_until_accepting(server: PostgresServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
