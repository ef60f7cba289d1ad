"""`salespulse data ...`: sample data, imports and the state of the warehouse.

Each command works whether or not the service runs: while it owns the warehouse, they go through its admin
API (cli/link.py); a warehouse that holds data is never replaced without --replace, and never under the
running service.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from cli.console import console, out
from cli.link import ServiceRefused, owner_client
from salespulse.client import SalesPulseClient
from salespulse.config import get_settings
from salespulse.warehouse import owner
from salespulse.warehouse.owner import WarehouseMissing, WarehouseOwned

data_app = typer.Typer(
    help="Sample data, imports and the state of the warehouse.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
WarehouseOption = Annotated[
    Path | None,
    typer.Option(
        "--warehouse",
        help="DuckDB warehouse file. Default: $SALESPULSE_WAREHOUSE_PATH or data/warehouse.duckdb under the "
        "project root.",
        show_default=False,
    ),
]


def _target(warehouse: Path | None) -> Path:
    return get_settings().resolve(warehouse) if warehouse else get_settings().warehouse_path


@data_app.command("generate")
def generate(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and sizes give the same data.")] = 42,
    scale: Annotated[
        float,
        typer.Option(
            help="Multiplies the default sizes: 1 = ~1M order lines and 20k customers; 10 = ~10M lines."
        ),
    ] = 1.0,
    customers: Annotated[
        int | None, typer.Option(help="Number of customers (default 20,000 x scale).", show_default=False)
    ] = None,
    products: Annotated[int, typer.Option(help="Number of products in the catalogue.")] = 600,
    salesmen: Annotated[int, typer.Option(help="Number of salesmen.")] = 60,
    distributors: Annotated[int, typer.Option(help="Number of trade distributors.")] = 40,
    days: Annotated[int, typer.Option(help="Length of the history in days (1096 = 3 years).")] = 1096,
    end_date: Annotated[
        str | None,
        typer.Option(help="Last day of the history, YYYY-MM-DD (default: today).", show_default=False),
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            help="Order lines to aim for (default 1,050,000 x scale); the result is within a few %.",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace a warehouse that holds sales (they are lost)."),
    ] = False,
    if_empty: Annotated[
        bool,
        typer.Option(
            "--if-empty",
            help="Generate only when there is no warehouse or it has no sales; otherwise keep it (exit 0).",
        ),
    ] = False,
    warehouse: WarehouseOption = None,
) -> None:
    """Generate realistic sample sales data into a fresh warehouse.

    The data has structure a model can learn and a test can check: weekly and yearly seasonality with
    holiday peaks, category and region trends, promotions with price elasticity, customer acquisition,
    repeat purchase and churn, salesmen of differing skill and consistency, discontinued products, and a
    goal plan near (not equal to) actual sales. A warehouse that holds sales is replaced only with
    --replace, never while the service runs, and only when the new one is complete.
    """
    target = _target(warehouse)
    running = owner.find_owner(target)
    refusal = WarehouseOwned(
        f"the service at {running.url} (pid {running.pid}) owns {target}; stop it first (make stop)"
        if running
        else ""
    )
    if running is not None and not if_empty:
        raise refusal
    lines = _order_lines(target)
    if lines and if_empty:
        console.print(f"Keeping the warehouse {target}: it holds {lines:,} order lines.")
        return
    if running is not None:
        raise refusal
    if lines and not replace:
        raise WarehouseOwned(
            f"{target} holds {lines:,} order lines; use --replace to generate a new warehouse in its place "
            "(those sales are lost), or --warehouse to write elsewhere"
        )
    from salespulse.dataset.generate import DEFAULT_ROWS, GeneratorConfig, generate_warehouse

    config = GeneratorConfig(
        seed=seed,
        customers=customers if customers is not None else round(20_000 * scale),
        products=products,
        salesmen=salesmen,
        distributors=distributors,
        days=days,
        end_date=date.fromisoformat(end_date) if end_date else date.today(),
        rows=rows if rows is not None else round(DEFAULT_ROWS * scale),
    )
    summary = generate_warehouse(config, path=target, progress=True)
    console.print(
        f"[green]Generated {summary.order_lines:,} order lines[/] from {summary.first_day} to "
        f"{summary.last_day} in {summary.seconds:.1f} s ({summary.order_lines / summary.seconds:,.0f} rows/s)"
    )
    console.print(f"Warehouse: [bold]{summary.path.resolve()}[/]")


def _order_lines(target: Path) -> int:
    """Order lines in the warehouse at ``target`` (0 when there is none), asked of its owner if it runs."""
    info = _warehouse_info(target, missing_ok=True)
    return info["tables"]["order_lines"] if info else 0


def _warehouse_info(target: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    running = owner.find_owner(target)
    if running is not None:
        with owner_client(running) as client:
            return client.warehouse_info() | {"served_by": running}
    from salespulse.warehouse.store import connect, sales_range, table_counts

    try:
        con = connect(target, read_only=True)
    except WarehouseMissing:
        if missing_ok:
            return None
        raise
    with con:
        first, last = sales_range(con)
        return {"path": str(target), "tables": table_counts(con), "first_sale": first, "last_sale": last}


@data_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet export of order lines.", exists=True)],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            "-m",
            help="YAML file saying which column of FILE is which warehouse field "
            "(see data/mappings/superstore.yaml).",
            exists=True,
        ),
    ],
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Import the valid rows and write the invalid ones to a reject file, "
            "instead of rejecting the whole file.",
        ),
    ] = False,
    warehouse: WarehouseOption = None,
) -> None:
    """Import a company's own order-line export into the warehouse.

    Every row is validated first; a file with any invalid row is rejected whole (row number, column and
    reason are listed) unless --skip-invalid is given. Importing the same file again changes nothing:
    order id + line is the key, and a re-imported line replaces the stored one. The import is one
    transaction: a crash or kill leaves the warehouse as it was. While the service runs, the import goes
    through it, and its reports include the new lines at once.
    """
    from salespulse.dataset.importing import import_file

    paths = str(file.resolve()), str(mapping.resolve())
    _import(
        file,
        _target(warehouse),
        through_service=lambda client: client.import_file(*paths, skip_invalid=skip_invalid),
        locally=lambda target: import_file(
            file, mapping, skip_invalid=skip_invalid, path=target, progress=True
        ),
    )


def _import(
    file: Path,
    target: Path,
    *,
    through_service: Callable[[SalesPulseClient], dict[str, Any]],
    locally: Callable[[Path], Any],
) -> None:
    """One import, through the running service that owns ``target`` or into the file itself; a rejection
    lists its rows and exits 1, the summary is printed otherwise."""
    from salespulse.dataset.importing import ImportFailed, ImportRejected

    running = owner.find_owner(target)
    try:
        if running is None:
            summary = locally(target).describe()
        else:
            console.print(f"Importing through the running service at {running.url}")
            with owner_client(running) as client:
                summary = through_service(client)["summary"]
    except ServiceRefused as refused:
        if refused.status != 422:
            raise
        _say_rejected(file, str(refused), [f"{p.field}: {p.message}" for p in refused.problems[1:]])
    except ImportFailed as failed:
        _say_rejected(file, str(failed), [])
    except ImportRejected as rejected:
        _say_rejected(file, rejected.summary(), rejected.describe(limit=20))
    console.print(summary)


def _say_rejected(file: Path, summary: str, details: list[str]) -> None:
    console.print(f"[red]Rejected {escape(str(file))}:[/] {escape(summary)}")
    for line in details:
        console.print(f"  {escape(line)}")
    console.print("Nothing was imported." + (" Fix the rows above." if details else ""))
    raise typer.Exit(code=1)


@data_app.command("import-goals")
def import_goals(
    file: Annotated[
        Path, typer.Argument(help="CSV or Parquet goal plan: month, level, member, target.", exists=True)
    ],
    level: Annotated[
        Literal["region", "salesman", "category", "product"] | None,
        typer.Option(help="The level of every row, for a file without a 'level' column.", show_default=False),
    ] = None,
    warehouse: WarehouseOption = None,
) -> None:
    """Import a company's goal plan: revenue targets by month and region, salesman, category or product.

    Each row is checked (month, level, a member the warehouse knows, a non-negative target, no duplicates);
    a plan with any bad row changes nothing. Targets replace those of the same month and member, so
    importing a plan again changes nothing. Goal attainment and sales opportunities then cover the imported
    levels. While the service runs, the import goes through it.
    """
    from salespulse.dataset.goals import import_goals as import_plan

    _import(
        file,
        _target(warehouse),
        through_service=lambda client: client.import_goals(str(file.resolve()), level=level),
        locally=lambda target: import_plan(file, level=level, path=target),
    )


@data_app.command("info")
def info(
    warehouse: WarehouseOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing; exit 1 if the warehouse is missing or empty.")
    ] = False,
) -> None:
    """Show where the warehouse is, its row counts and the date range of its sales (through the service
    while it runs)."""
    target = _target(warehouse)
    details = _warehouse_info(target, missing_ok=quiet)
    if details is None or details["tables"]["order_lines"] == 0:
        if not quiet:
            console.print(f"Warehouse {target} has no order lines yet.")
        raise typer.Exit(code=1)
    if quiet:
        return
    table = Table(title="Warehouse tables")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in details["tables"].items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    out.print(f"Warehouse: {target}")
    out.print(f"Sales from {str(details['first_sale'])[:10]} to {str(details['last_sale'])[:10]}")
    if "served_by" in details:
        running = details["served_by"]
        out.print(f"Owned by the running service at {running.url} (pid {running.pid})")


@data_app.command("sync")
def sync_(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The operational database: postgresql://user@host:port/database. Keep the password out of "
            "the command line: libpq reads PGPASSWORD or ~/.pgpass.",
            show_default=False,
        ),
    ],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            "-m",
            help="YAML file saying which column of the table is which warehouse field; its `source:` section "
            "names the table, watermark and key (see data/mappings/orders_table.yaml).",
            exists=True,
        ),
    ],
    table: Annotated[
        str | None,
        typer.Option(
            help="Table or view to read, as SQL names it (default: source.table).",
            show_default=False,
        ),
    ] = None,
    watermark_column: Annotated[
        str | None,
        typer.Option(
            "--watermark-column",
            help="Column that grows when a row is added or changed, e.g. updated_at "
            "(default: source.watermark).",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated columns that tell apart rows of one watermark value (default: source.key, "
            "else the table's primary key).",
            show_default=False,
        ),
    ] = None,
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1, help="Rows per chunk; each chunk is one transaction.")
    ] = 50_000,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Write the valid rows of a chunk and the invalid ones to a reject file, instead of stopping "
            "at the first chunk with an invalid row.",
        ),
    ] = False,
    follow: Annotated[
        float | None,
        typer.Option(
            "--follow",
            min=0.1,
            metavar="SECONDS",
            help="Keep going: after catching up, look for new rows every SECONDS until stopped (Ctrl-C).",
            show_default=False,
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option("--restart", help="Forget the saved position and read the whole table again."),
    ] = False,
    warehouse: WarehouseOption = None,
) -> None:
    """Sync order lines from a company's operational PostgreSQL database, incrementally.

    Reads the rows added or changed since the last sync, in (watermark, key) order and in chunks; each
    chunk is validated and written like a file import with the same mapping, in one transaction together
    with the position after it. A sync killed at any point resumes after its last committed chunk, and
    each row is imported once. A chunk with an invalid row stops the sync (its rows and fields are listed;
    the chunks before it are kept) unless --skip-invalid. Exits 2 when the sync cannot start (source
    unreachable, table or column missing, mapping that does not fit the table).

    With SALESPULSE_DATABASE_URL set, the rows and the position go to the PostgreSQL system of record
    (not to a warehouse file), and the running service replicas show them as they do any write.
    """
    from salespulse.dataset.mapping import MappingError, load_mapping

    target = _target(warehouse)
    try:
        rules = load_mapping(mapping)
    except MappingError as error:
        _sync_failed(str(error))
    options: dict[str, Any] = {
        "table": table,
        "watermark_column": watermark_column,
        "key": [column.strip() for column in key.split(",") if column.strip()] if key else None,
        "batch_rows": batch_rows,
        "skip_invalid": skip_invalid,
        "restart": restart,
    }
    if follow is None:
        console.print(_sync_once(source, rules, target, options).describe())
        return
    first = True
    try:
        while True:
            result = _sync_once(source, rules, target, options)
            if first or result.rows_read:  # a quiet pass says nothing
                console.print(result.describe())
            first = options["restart"] = False
            time.sleep(follow)
    except KeyboardInterrupt:
        console.print("Stopped following; the next sync resumes after the last committed chunk.")


def _sync_once(source: str, rules: Any, target: Path, options: dict[str, Any]) -> Any:
    """One pass of the sync: every row after the saved position. Exits 2 when it cannot run, 1 on a
    chunk with invalid rows."""
    from salespulse.dataset.importing import ImportFailed
    from salespulse.dataset.sync import SyncFailed, SyncRejected, sync

    # With a system of record the chunks are written there, which no replica owns: sync while they serve.
    running = owner.find_owner(target) if get_settings().database_url is None else None
    if running is not None:
        # The service has no sync endpoint: a chunk and its position must commit in one transaction on the
        # warehouse's only writer, which a file-import call cannot carry.
        _sync_failed(
            f"the service at {running.url} (pid {running.pid}) owns {target}: stop it (make stop), sync, "
            "and start it again"
        )
    try:
        with _sync_progress() as progress:
            return sync(source, rules, path=target, progress=progress, **options)
    except (SyncFailed, ImportFailed) as failed:
        _sync_failed(str(failed))
    except SyncRejected as rejected:
        console.print(f"[red]Stopped at invalid rows:[/] {escape(rejected.summary())}")
        for line in rejected.describe(limit=20):
            console.print(f"  {escape(line)}")
        console.print("Fix them in the source (or use --skip-invalid): the next sync resumes at that chunk.")
        raise typer.Exit(code=1) from None


@contextmanager
def _sync_progress() -> Iterator[Callable[[Any], None]]:
    """A progress bar of rows synced on a terminal; a line per committed chunk in a log or a pipe."""
    if not console.is_terminal:
        yield lambda p: console.print(f"Synced {p.rows_done:,} of {p.rows_total:,} rows, {p.chunks:,} chunks")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    parts = (
        TextColumn("Syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    with Progress(*parts, console=console, transient=True) as bar:
        task = bar.add_task("sync", total=None)
        yield lambda p: bar.update(task, completed=p.rows_done, total=p.rows_total)


def _sync_failed(message: str) -> None:
    """The sync cannot run: one line, exit 2 (nothing was written)."""
    console.print(f"[red]error:[/] {escape(message.strip().splitlines()[0] if message.strip() else message)}")
    raise typer.Exit(code=2)
