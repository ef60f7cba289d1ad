"""`salespulse serve ...`: build the Bento and Docker context, and run the service."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.console import console
from cli.link import readable_warehouse, running_owner
from salespulse.config import get_settings
from salespulse.warehouse.owner import WarehouseOwned

serve_app = typer.Typer(
    help="Build and run the BentoML service with the champion models.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def venv_tool(name: str) -> str:
    """A console script of this environment, not whatever PATH finds (a venv need not be activated)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@serve_app.command("build")
def serve_build(
    snapshot: Annotated[
        bool, typer.Option(help="Put a snapshot of the warehouse into the Docker build context.")
    ] = True,
) -> None:
    """Pull the champion models from the MLflow registry into the BentoML model store, build the Bento,
    and lay out the Docker build context in build/ (then: `scripts/docker.sh build`). Works while the
    service runs: the warehouse snapshot is then taken by the service."""
    from service.build import build_all

    if not snapshot:
        console.print(build_all(warehouse=None).describe())
        return
    with readable_warehouse() as warehouse:
        console.print(build_all(warehouse=warehouse).describe())


@serve_app.command("run")
def serve_run(
    host: Annotated[str | None, typer.Option(help="Bind address (default $SALESPULSE_SERVICE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $SALESPULSE_SERVICE_PORT).")] = None,
) -> None:
    """Serve the champions: imports them into the BentoML model store if needed, then runs
    `bentoml serve service.service:SalesPulse` in the foreground."""
    settings = get_settings()
    running = running_owner()
    if running is not None:
        raise WarehouseOwned(
            f"the service is already running at {running.url} (pid {running.pid}); make stop"
        )
    from service.build import import_champions

    for model in import_champions():
        metadata = model.info.metadata
        console.print(f"Serving {model.tag} (registry version {metadata.get('registry_version')}, "
                      f"run {metadata.get('run_id')})")  # fmt: skip
    host, port = host or settings.service_host, port or settings.service_port
    # The service reads its own address from the settings (its owner record says where it answers).
    os.environ.update(SALESPULSE_SERVICE_HOST=host, SALESPULSE_SERVICE_PORT=str(port))
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # see README: OpenMP runtimes of LightGBM and sklearn
    command = [
        venv_tool("bentoml"),
        "serve",
        "service.service:SalesPulse",
        "--host",
        host,
        "--port",
        str(port),
    ]
    os.execv(command[0], command) if os.path.isabs(command[0]) else os.execvp(command[0], command)
