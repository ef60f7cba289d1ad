"""`salespulse report ...`: what the analytics say, written for people.

    salespulse report digest --period week --out digest.html      # one self-contained page, for email
    salespulse report digest --period month --out digest.md       # Markdown (or --format markdown)

The digest is the insights of GET /analytics/insights with a few headline figures and a chart. While the
service runs (it owns the warehouse) the reports come from its endpoints; otherwise from the warehouse file,
opened here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from cli.console import console
from cli.link import owner_client, running_owner
from salespulse.client import InvalidRequestError, SalesPulseClient
from salespulse.config import get_settings
from salespulse.warehouse.owner import WarehouseMissing

if TYPE_CHECKING:  # the analytics layer is imported by the command itself: every other command starts faster
    from salespulse.analytics.insights import ReportSource

DigestFormat = Literal["html", "markdown"]

report_app = typer.Typer(
    help="Written reports: the digest of what a sales manager should know.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

MemberOption = Annotated[
    list[str] | None,
    typer.Option(help="Only these members (repeat the option for more).", show_default=False),
]


class ServiceSource:
    """The running service's report endpoints, as the insights' ReportSource."""

    def __init__(self, client: SalesPulseClient) -> None:
        self.client = client

    def report(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.client.report(name, **params).model_dump(mode="json")
        except InvalidRequestError as refused:
            from salespulse.analytics.errors import DataUnavailable, Problem, QueryError

            # A goal plan that cannot answer the filters is a rule that does not apply, not a failure: give
            # it back as the analytics error it was in the service.
            for kind in (QueryError, DataUnavailable):
                if refused.error == kind.title:
                    raise kind([Problem(p.field, p.message) for p in refused.detail]) from None
            raise

    def last_day(self) -> date | None:
        rows = self.client.query({"measures": ["last_sale"]}).rows
        value = rows[0].get("last_sale") if rows else None
        return date.fromisoformat(str(value)[:10]) if value else None


@contextmanager
def report_source() -> Iterator[tuple[ReportSource, str]]:
    """The reports and where they come from: the service that owns the warehouse, else the file."""
    record = running_owner()
    if record is not None:
        with owner_client(record) as client:
            yield ServiceSource(client), f"the service at {record.url}"
        return
    from salespulse.analytics.engine import AnalyticsEngine
    from salespulse.analytics.insights import EngineSource
    from salespulse.warehouse.store import connect

    path = get_settings().warehouse_path
    if not path.exists():  # a writable open would create an empty one
        raise WarehouseMissing(path)
    # Writable: the engine keeps its rollups in the warehouse (built now if they are missing or stale).
    with connect(path) as con:
        yield EngineSource(AnalyticsEngine.configured(con)), f"the warehouse {path}"


def _format_of(out_path: Path | None, given: DigestFormat | None) -> DigestFormat:
    if given is not None:
        return given
    if out_path is not None and out_path.suffix.lower() in (".md", ".markdown"):
        return "markdown"
    return "html"


@report_app.command("digest")
def digest(
    period: Annotated[
        Literal["week", "month"],
        typer.Option(help="The week, or the four weeks, up to the as-of day, against the same before."),
    ] = "week",
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write (default: print to stdout).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        Literal["html", "markdown"] | None,
        typer.Option("--format", help="html or markdown (default: from --out's extension, .md is markdown)."),
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The last day of the period (default: the last complete day with sales).",
            show_default=False,
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", help="Insights at most.", min=1, max=20)] = 6,
    region: MemberOption = None,
    state: MemberOption = None,
    category: MemberOption = None,
    product: MemberOption = None,
    salesman: MemberOption = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Make each cited report a link to the service at this address (default: cited as text, "
            "so the file links nowhere).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the digest: the insights (each sentence with its figures and the report it cites), revenue,
    orders, average order value and retention, and a chart of revenue per day; one file, nothing to fetch."""
    from cli.digest import gather, render

    members = {
        "region": region,
        "state": state,
        "category": category,
        "product": product,
        "salesman": salesman,
    }
    params: dict[str, Any] = {name: values for name, values in members.items() if values}
    params |= {"period": period, "n": count}
    if as_of is not None:
        params["as_of"] = as_of.date()
    with report_source() as (source, described):
        written = gather(source, params, described_source=described)
    text = render(written, _format_of(out_path, fmt), base_url)
    if out_path is None:
        sys.stdout.write(text)  # as it is: no markup, emoji codes or wrapping
        return
    out_path.write_text(text, encoding="utf-8")
    shown = len(written.insights["insights"])
    console.print(f"Wrote {out_path} ({shown} insights, {written.title[len('Sales digest: ') :]}).")
