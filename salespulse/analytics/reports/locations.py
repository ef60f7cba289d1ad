"""Locations: where the distributors and the customers are (with coordinates, for a map), and what each sold
in the period.

The addresses are the entities' own (semantic.ENTITIES), not the geography of their sales; the amounts are
a query of the semantic layer, so every filter applies to them and a rollup answers the common periods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salespulse.analytics.compiler import Params
from salespulse.analytics.query import LIMITS
from salespulse.analytics.reports.base import Param, Report, described, register
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.semantic import ENTITIES

SECTION_LOCATIONS = "Locations"
AMOUNTS = ["revenue", "units", "orders"]


def locations(entity: str, *, everyone: bool) -> Callable[[ReportContext], dict[str, Any]]:
    """The members of ``entity`` with their address and coordinates and what they sold, most revenue first.
    With ``everyone``, members without a sale are listed too (with 0): a map of the distributors shows them
    all; otherwise only those with a sale in the period and the filters (customers are many)."""

    def run(ctx: ReportContext) -> dict[str, Any]:
        sales = ctx.query(
            measures=AMOUNTS,
            dimensions=[entity],
            time_dimension={"date_range": ctx.date_range()},
            filters=[{"member": entity, "operator": "set"}],
        )

        def build(p: Params) -> str:
            members = ctx.entity_sql(entity, p)
            amounts = ", ".join(f"coalesce(s.{m}, 0) AS {m}" for m in AMOUNTS)
            limit = p.add(ctx["n"])
            if everyone:
                listed, join = f"({members}) m LEFT JOIN sales s", f"s.{entity} = m.{entity}"
            else:  # the top of the sales first, then the addresses of those listed only
                top = f"SELECT * FROM sales ORDER BY revenue DESC, {entity} LIMIT {limit}"
                listed, join = f"({top}) s JOIN ({members}) m", f"m.{entity} = s.{entity}"
            return (
                f"SELECT m.*, {amounts} FROM {listed} ON {join} "
                f"ORDER BY revenue DESC, m.{entity} LIMIT {limit}"
            )

        return ctx.result(ctx.sql(build, sales=sales))

    return run


def _columns(entity: str) -> dict[str, str]:
    return described(entity, *ENTITIES[entity].attributes, *AMOUNTS)


def _how_many(default: int) -> Param:
    return Param(
        "n", int, default, "How many to list (most revenue first).", default, ge=1, le=LIMITS.max_rows
    )


register(
    Report(
        "distributor-locations",
        "Distributor locations",
        SECTION_LOCATIONS,
        "Every distributor with its address (city, state, zip) and coordinates (latitude, longitude), and "
        "its revenue, units and orders in the period within the filters (0 when it sold nothing): the data "
        "of a map of the distributors. The distributor filter picks distributors; the others pick the sales.",
        locations("distributor", everyone=True),
        (_how_many(1_000),),
        columns=_columns("distributor"),
    )
)

register(
    Report(
        "customer-locations",
        "Customer locations",
        SECTION_LOCATIONS,
        "The customers who bought in the period (within the filters), most revenue first, with the "
        "address (city, state, zip) and coordinates (latitude, longitude) of each and their revenue, units "
        "and orders: the data of a map of the customers.",
        locations("customer", everyone=False),
        (_how_many(1_000),),
        columns=_columns("customer"),
    )
)
