"""`salespulse train ...`: train on the warehouse (a consistent snapshot while the service runs), track in
MLflow, promote champions, and show them."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from cli.console import console
from cli.link import readable_warehouse
from salespulse.config import get_settings
from salespulse.features.series import LEVELS, Level
from salespulse.modeling.registry import check_registry

if TYPE_CHECKING:
    from training.forecaster.distributed import DaskBoosters

train_app = typer.Typer(
    help="Train the models on the warehouse, track the runs in MLflow, and promote champions.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

LevelOption = Annotated[
    Level, typer.Option(help="Series level: the planning level the forecaster's series are at.")
]
FreqOption = Annotated[
    Literal["D", "W"],
    typer.Option(
        help="D (daily: the served model, which forecasts days, weeks and months) or W (a weekly model, "
        "registered for comparison; the service forecasts weeks with the daily model)."
    ),
]
HorizonOption = Annotated[
    int | None,
    typer.Option(
        help="Forecast horizon in periods (default 28 days / 8 weeks).", min=1, max=366, show_default=False
    ),
]
SeedOption = Annotated[int, typer.Option(help="Random seed of the segmentation fit and its bootstrap.")]
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Fit the LightGBM boosters on the Dask cluster of this scheduler (e.g. tcp://host:8786); every "
        "worker needs the project installed. Default: in this process.",
        metavar="ADDRESS",
        show_default=False,
    ),
]


def _registry_ready() -> None:
    # A server that does not answer fails here in seconds, not after MLflow's minutes of retries; a local
    # store is created by the first training run.
    check_registry(get_settings().tracking_uri, must_exist=False)


@train_app.command("forecaster")
def train_forecaster(
    level: LevelOption = "product_region",
    freq: FreqOption = "D",
    horizon: HorizonOption = None,
    dask: DaskOption = None,
) -> None:
    """Train the LightGBM sales forecaster, backtest it against seasonal naive and AutoETS on the same
    windows, log everything to MLflow, and promote it to champion if it beats the current one."""
    _registry_ready()
    from training.forecaster.pipeline import run

    with ExitStack() as stack:
        boosters = _dask_boosters(dask, stack)
        with readable_warehouse() as warehouse:
            result = run(
                level=level, freq=freq, horizon=horizon, progress=True, warehouse=warehouse, boosters=boosters
            )
    console.print(result.describe())


def _dask_boosters(address: str | None, stack: ExitStack) -> DaskBoosters | None:
    """The booster trainer of the cluster at ``address``, closed with ``stack`` (None: fit in this process).
    A scheduler that does not answer is a bad ``--dask`` value: one line, exit 2."""
    if address is None:
        return None
    from training.forecaster.distributed import DaskUnreachable, dask_boosters

    try:
        return stack.enter_context(dask_boosters(address))
    except DaskUnreachable as error:
        raise typer.BadParameter(str(error), param_hint="'--dask'") from None


@train_app.command("segmenter")
def train_segmenter(seed: SeedOption = 0) -> None:
    """Train the KMeans customer segmentation, name the segments, log everything to MLflow, and promote it
    to champion if it beats the current one on the same customers."""
    _registry_ready()
    from training.segmenter.pipeline import run

    with readable_warehouse() as warehouse:
        result = run(seed=seed, progress=True, warehouse=warehouse)
    console.print(result.describe())


@train_app.command("customer-value")
def train_customer_value(seed: SeedOption = 0) -> None:
    """Fit the BG/NBD + Gamma-Gamma customer-value model (expected purchases and spend, probability still
    active, lifetime value), validate it on the last nine months against the heuristic lifetime value and
    the segment means, log everything to MLflow, and promote it to champion if it beats both the heuristic
    and the current champion on the same holdout."""
    _registry_ready()
    from training.customer_value.pipeline import run

    with readable_warehouse() as warehouse:
        result = run(seed=seed, progress=True, warehouse=warehouse)
    console.print(result.describe())


@train_app.command("all")
def train_all(seed: SeedOption = 0) -> None:
    """Train the segmentation, the customer-value model and a daily forecaster at every level planners ask
    for (product x region, product, category, region, category x region, total); each level has its own
    registry entry. All of them read one consistent state of the warehouse."""
    _registry_ready()
    from training.customer_value.pipeline import run as run_customer_value
    from training.forecaster.hierarchy import run as run_hierarchy
    from training.forecaster.pipeline import run as run_forecaster
    from training.segmenter.pipeline import run as run_segmenter

    with readable_warehouse() as warehouse:
        results = {}
        for level in LEVELS:
            results[level] = run_forecaster(level=level, freq="D", progress=True, warehouse=warehouse)
            console.print(results[level].describe())
        console.print(run_hierarchy(results).describe())
        console.print(run_segmenter(seed=seed, progress=True, warehouse=warehouse).describe())
        console.print(run_customer_value(seed=seed, progress=True, warehouse=warehouse).describe())


@train_app.command("status")
def train_status(
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing; exit 1 if a champion is missing.")
    ] = False,
) -> None:
    """Show the champion version of each model in the MLflow registry (exit 1 if one has none)."""
    check_registry(get_settings().tracking_uri)
    from salespulse.modeling.registry import served_model_names
    from training.tracking import champion_version, configure_mlflow

    configure_mlflow()
    missing = False
    for name in served_model_names():
        version = champion_version(name)
        missing = missing or version is None
        if not quiet:
            console.print(f"{name}: " + (f"champion v{version.version}" if version else "no champion yet"))
            if version is not None:
                for line in _backtest_lines(version.run_id):
                    console.print(line, highlight=False)
    if missing:
        raise typer.Exit(code=1)


def _backtest_lines(run_id: str) -> list[str]:
    """A forecaster champion's backtest per frequency: its WAPE against the baselines', bias, coverage."""
    from mlflow.tracking import MlflowClient

    from training.forecaster.evaluate import MAX_BIAS

    run = MlflowClient().get_run(run_id)
    metrics, method = run.data.metrics, run.data.params.get("method")
    lines = []
    for freq in ("D", "W", "M"):
        if f"wape_{freq}" not in metrics:
            continue
        baselines = min(metrics[f"wape_{freq}_seasonal_naive"], metrics[f"wape_{freq}_autoets"])
        bias, coverage = metrics[f"bias_{freq}"], metrics[f"coverage_80_{freq}"]
        problems = [
            *(["LOSES to a baseline"] if metrics[f"wape_{freq}"] > baselines else []),
            *([f"|bias| over {MAX_BIAS:.0%}"] if abs(bias) > MAX_BIAS else []),
            *(["80% intervals off (want 75-85%)"] if not 0.75 <= coverage <= 0.85 else []),
        ]
        lines.append(
            f"  {freq} {method}: WAPE {metrics[f'wape_{freq}']:.3f} "
            f"(best baseline {baselines:.3f}), bias {bias:+.1%}, 80% coverage {coverage:.1%}, "
            f"95% coverage {metrics[f'coverage_95_{freq}']:.1%}: {', '.join(problems) or 'ok'}"
        )
    return lines
