"""``salespulse predict forecast|segment``: ask the running service, through :mod:`salespulse.client`.

The main command registers this group with ``app.add_typer(predict_app, name="predict")``. The client (and
with it pandas and the models' schemas) is imported inside the commands, so ``salespulse --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from salespulse.client import SalesPulseClient
    from salespulse.schemas import ForecastResponse, SegmentResponse

predict_app = typer.Typer(
    help="Forecasts and segments from the running service (`make run` or `salespulse serve run` starts it).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

# The planning levels of salespulse.features.series.Level, spelled out so that the parser can check them
# without importing the feature code (a test keeps the two equal).
LevelChoice = Literal["product_region", "product", "category", "region", "category_region", "total"]

errors = Console(stderr=True, soft_wrap=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Service URL. Default: http://$SALESPULSE_SERVICE_HOST:$SALESPULSE_SERVICE_PORT.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the service's answer as JSON.")]


@predict_app.command("forecast")
def forecast(
    series: Annotated[
        list[str],
        typer.Argument(
            help="Series keys at the level: 'Technology' (category), 'West' (region), 'P-00012|West' "
            "(product_region), 'total', ...",
            show_default=False,
        ),
    ],
    level: Annotated[LevelChoice, typer.Option(help="Planning level of the series.")] = "product_region",
    horizon: Annotated[
        int | None,
        typer.Option(min=1, help="Days ahead (default: the service's, 28).", show_default=False),
    ] = None,
    interval: Annotated[
        list[float] | None,
        typer.Option(
            help="Prediction interval in percent; repeat for several (default 80 and 95).", show_default=False
        ),
    ] = None,
    freq: Annotated[
        Literal["D", "W", "M"], typer.Option(help="D (days), W (weeks, Monday to Sunday) or M (months).")
    ] = "D",
    promotion: Annotated[
        list[str] | None,
        typer.Option(
            help="A planned price cut (what-if): 'product_id=P-00012,discount=0.2,start=2026-12-01,"
            "end=2026-12-14' (or category=Technology); repeat for several.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revenue forecasts with prediction intervals, e.g.
    `salespulse predict forecast Technology Furniture --level category --freq W --horizon 8`."""
    from salespulse.client import DEFAULT_INTERVALS

    plans = [_promotion(text) for text in promotion or []]
    with _client(url) as client, _exit_on_service_errors(client):
        answer = client.forecast(
            series,
            level=level,
            horizon=horizon,
            intervals=interval or DEFAULT_INTERVALS,
            freq=freq,
            promotions=plans,
        )
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
    else:
        Console(soft_wrap=True).print(_forecast_table(answer))


@predict_app.command("segment")
def segment(
    customer_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Customer ids known to the warehouse.", show_default=False),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--features",
            help="One customer's raw values, 'recency_days=12,frequency=9,monetary=5120,tenure_days=640,"
            "avg_order_value=568' (customer_id=... optional); repeat for several customers.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Segment, recommended action and distance to the segment's centre, of customers given by id or by
    raw feature values."""
    if bool(customer_ids) == bool(features):
        raise typer.BadParameter("give customer ids or --features, not both and not neither")
    customers = [_parse_features(text) for text in features] if features else None
    with _client(url) as client, _exit_on_service_errors(client):
        answer = client.segment(customer_ids=customer_ids or None, customers=customers)
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
    else:
        Console(soft_wrap=True).print(_segment_table(answer))


def _client(url: str | None) -> SalesPulseClient:
    from salespulse.client import SalesPulseClient

    # A person waits at the terminal: retry a restarting service briefly, then say it is not there.
    return SalesPulseClient(url, retries=2, backoff=0.25)


@contextmanager
def _exit_on_service_errors(client: SalesPulseClient) -> Iterator[None]:
    """A one-line error and exit 1, not a traceback, when the service is unreachable or refuses."""
    from salespulse.client import SalesPulseError, ServiceUnreachableError

    try:
        yield
    except ServiceUnreachableError:
        _fail(f"cannot reach the salespulse service at {client.base_url}: is it running? (make run)")
    except SalesPulseError as error:
        _fail(str(error))


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]{message}[/]", highlight=False, markup=True)
    raise typer.Exit(code=1)


def _parse_features(text: str) -> dict[str, Any]:
    """'recency_days=12,frequency=9,...' as a dict of numbers (the service checks names and ranges)."""
    values: dict[str, Any] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected name=value, got {pair!r}", param_hint="--features")
        values[name] = value if name == "customer_id" else _number(name, value)
    return values


def _number(name: str, text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{name}: {text!r} is not a number", param_hint="--features") from None


def _forecast_table(answer: ForecastResponse) -> Table:
    table = Table(
        title=f"{answer.level} forecast ({answer.model} v{answer.model_version}), "
        f"sales until {answer.history_until}"
    )
    first = answer.series[0].points[0] if answer.series and answer.series[0].points else None
    bounds = sorted((first.model_extra or {}) if first else {}, key=_bound_order)
    for name in ("series", "date", "forecast", "mean", *bounds):
        table.add_column(name, justify="left" if name in ("series", "date") else "right")
    for series in answer.series:
        for point in series.points:
            extra = point.model_extra or {}
            numbers = [point.forecast, point.mean, *(extra[name] for name in bounds)]
            table.add_row(series.series, str(point.date), *(f"{value:,.2f}" for value in numbers))
    return table


def _bound_order(name: str) -> float:
    """lo_95, lo_80, hi_80, hi_95: the widest interval outside, as the numbers run."""
    side, _, level = name.partition("_")
    width = float(level.replace("_", ".")) if level.replace("_", "").isdigit() else 0.0
    return -width if side == "lo" else width


def _segment_table(answer: SegmentResponse) -> Table:
    table = Table(title=f"customer segments (model v{answer.model_version})")
    for name in ("customer", "segment", "action", "distance"):
        table.add_column(name, justify="right" if name == "distance" else "left")
    for customer in answer.customers:
        table.add_row(
            customer.customer_id or "-", customer.segment, customer.action, f"{customer.distance:.3f}"
        )
    return table


def _promotion(text: str) -> dict[str, object]:
    """'product_id=P-00012,discount=0.2,start=2026-12-01,end=2026-12-14' (or category=...) as a planned
    promotion; the service validates the names and values and names a wrong one."""
    plan: dict[str, object] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="--promotion")
        plan[key.strip()] = value.strip()
    if "discount" in plan:
        try:
            plan["discount"] = float(str(plan["discount"]))
        except ValueError:
            raise typer.BadParameter(
                f"discount {plan['discount']!r} is not a number", param_hint="--promotion"
            ) from None
    return plan
