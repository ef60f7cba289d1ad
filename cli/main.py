"""The ``salespulse`` command: data, training, serving and prediction commands (see the package docstring)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="salespulse: sales warehouse, forecasting and segmentation models, and the service serving them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(
    help="Sample data, imports and the state of the warehouse.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(data_app, name="data")
train_app = typer.Typer(
    help="Train the models on the warehouse, track the runs in MLflow, and promote champions.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(train_app, name="train")
serve_app = typer.Typer(
    help="Build and run the BentoML service with the champion models.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(serve_app, name="serve")

console = Console(stderr=True, soft_wrap=True)
WarehouseOption = Annotated[
    Path | None,
    typer.Option(
        "--warehouse",
        help="DuckDB warehouse file. Default: $SALESPULSE_WAREHOUSE_PATH or data/warehouse.duckdb.",
        show_default=False,
    ),
]


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
    warehouse: WarehouseOption = None,
) -> None:
    """Generate realistic sample sales data into a fresh warehouse.

    The data has structure a model can learn and a test can check: weekly and yearly seasonality with
    holiday peaks, category and region trends, promotions with price elasticity, customer acquisition,
    repeat purchase and churn, salesmen of differing skill and consistency, discontinued products, and a
    goal plan near (not equal to) actual sales. The old warehouse is replaced only when the new one is
    complete.
    """
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
    summary = generate_warehouse(config, path=warehouse, progress=True)
    console.print(
        f"[green]Generated {summary.order_lines:,} order lines[/] from {summary.first_day} to "
        f"{summary.last_day} in {summary.seconds:.1f} s ({summary.order_lines / summary.seconds:,.0f} rows/s)"
    )
    console.print(f"Warehouse: [bold]{summary.path.resolve()}[/]")


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
    transaction: a crash or kill leaves the warehouse as it was.
    """
    from rich.markup import escape

    from salespulse.dataset.importing import ImportFailed, ImportRejected, import_file

    try:
        result = import_file(file, mapping, skip_invalid=skip_invalid, path=warehouse, progress=True)
    except ImportFailed as failed:
        console.print(f"[red]Cannot import {file}:[/] {escape(str(failed))}")
        raise typer.Exit(code=1) from None
    except ImportRejected as rejected:
        console.print(f"[red]Rejected {file}:[/] {rejected.summary()}")
        for line in rejected.describe(limit=20):
            console.print(f"  {escape(line)}")
        console.print("Nothing was imported. Fix the rows above, or use --skip-invalid.")
        raise typer.Exit(code=1) from None
    console.print(result.describe())


@data_app.command("info")
def info(
    warehouse: WarehouseOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing; exit 1 if the warehouse is empty.")
    ] = False,
) -> None:
    """Show where the warehouse is, its row counts and the date range of its sales."""
    from salespulse.warehouse.store import connect, table_counts, warehouse_path

    path = warehouse or warehouse_path()
    try:
        con = connect(path, read_only=True)
    except FileNotFoundError as missing:
        if not quiet:
            console.print(f"[red]{missing}[/]")
        raise typer.Exit(code=1) from None
    with con:
        counts = table_counts(con)
        first, last = con.execute("SELECT min(ordered_at), max(ordered_at) FROM order_lines").fetchone()
    if counts["order_lines"] == 0:
        if not quiet:
            console.print(f"Warehouse {path.resolve()} has no order lines yet.")
        raise typer.Exit(code=1)
    if quiet:
        return
    table = Table(title="Warehouse tables")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    out = Console(soft_wrap=True)
    out.print(table)
    out.print(f"Warehouse: {path.resolve()}")
    out.print(f"Sales from {first:%Y-%m-%d} to {last:%Y-%m-%d}")


LevelOption = Annotated[
    str,
    typer.Option(help="Series level: product_region, product, category, region, category_region or total."),
]
FreqOption = Annotated[str, typer.Option(help="D (daily) or W (weekly).")]
HorizonOption = Annotated[
    int | None,
    typer.Option(help="Forecast horizon in periods (default 28 days / 8 weeks).", show_default=False),
]
SeedOption = Annotated[int, typer.Option(help="Random seed of the segmentation fit and its bootstrap.")]


@train_app.command("forecaster")
def train_forecaster(
    level: LevelOption = "product_region", freq: FreqOption = "D", horizon: HorizonOption = None
) -> None:
    """Train the LightGBM sales forecaster, backtest it against seasonal naive and AutoETS on the same
    windows, log everything to MLflow, and promote it to champion if it beats the current one."""
    from training.forecaster.pipeline import run

    console.print(run(level=level, freq=freq, horizon=horizon, progress=True).describe())


@train_app.command("segmenter")
def train_segmenter(seed: SeedOption = 0) -> None:
    """Train the KMeans customer segmentation, name the segments, log everything to MLflow, and promote it
    to champion if it beats the current one on the same customers."""
    from training.segmenter.pipeline import run

    console.print(run(seed=seed, progress=True).describe())


@train_app.command("all")
def train_all(seed: SeedOption = 0) -> None:
    """Train the segmentation and a daily forecaster at every level planners ask for (product x region,
    product, category, region, category x region, total); each level has its own registry entry."""
    from salespulse.features.series import LEVELS

    for level in LEVELS:
        train_forecaster(level=level, freq="D", horizon=None)
    train_segmenter(seed=seed)


@train_app.command("status")
def train_status(
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing; exit 1 if a champion is missing.")
    ] = False,
) -> None:
    """Show the champion version of each model in the MLflow registry (exit 1 if one has none)."""
    from salespulse.modeling.registry import served_model_names
    from training.tracking import champion_version, configure_mlflow

    configure_mlflow()
    missing = False
    for name in served_model_names():
        version = champion_version(name)
        missing = missing or version is None
        if not quiet:
            console.print(f"{name}: " + (f"champion v{version.version}" if version else "no champion yet"))
    if missing:
        raise typer.Exit(code=1)


@serve_app.command("build")
def serve_build(
    snapshot: Annotated[
        bool, typer.Option(help="Put a snapshot of the warehouse into the Docker build context.")
    ] = True,
) -> None:
    """Pull the champion models from the MLflow registry into the BentoML model store, build the Bento,
    and lay out the Docker build context in build/ (then: `scripts/docker.sh build`)."""
    from service.build import build_all

    console.print(build_all(with_snapshot=snapshot).describe())


@serve_app.command("run")
def serve_run(
    host: Annotated[str | None, typer.Option(help="Bind address (default $SALESPULSE_SERVICE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $SALESPULSE_SERVICE_PORT).")] = None,
) -> None:
    """Serve the champions: imports them into the BentoML model store if needed, then runs
    `bentoml serve service.service:SalesPulse` in the foreground."""
    import os

    from salespulse.config import get_settings
    from service.build import import_champions

    settings = get_settings()
    for model in import_champions():
        console.print(f"Serving {model.tag} (registry version {model.info.metadata.get('registry_version')})")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # see README: OpenMP runtimes of LightGBM and sklearn
    command = ["bentoml", "serve", "service.service:SalesPulse"]
    command += ["--host", host or settings.service_host, "--port", str(port or settings.service_port)]
    os.execvp(command[0], command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
