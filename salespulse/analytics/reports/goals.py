"""The goal plan: attainment by region, salesman, category or product and month, and the sales opportunities
near the goal.

A month that the period or the data cuts short is measured against its goal pro-rated to the selling days
its revenue covers (see periods.SELLING_DAYS_RULE): the query layer's goal_to_date measure does it
(compiler.GoalBasis), and the reports say of each row how its goal counted (goal_basis).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from salespulse.analytics.compiler import goal_dimensions
from salespulse.analytics.query import TIME_OUTPUT
from salespulse.analytics.reports.base import FILTER_PARAMS, Param, Rows, described, preset
from salespulse.analytics.reports.context import ReportContext
from salespulse.analytics.reports.periods import SELLING_DAYS_RULE
from salespulse.analytics.semantic import GOAL_PLANS

SECTION_GOALS = "Goal plan"
ATTAINMENT = ["revenue", "goal", "goal_to_date", "goal_attainment_pct"]
GOAL_COLUMNS = described(*ATTAINMENT, goal_basis="text")
PRORATED_GOAL = (
    "A month that the period or the data cuts short (the running month) is measured against its goal "
    "pro-rated to the selling days its revenue covers: goal_to_date = goal x selling days covered / selling "
    "days in the month, and goal_attainment_pct = revenue / goal_to_date; goal_basis says which. "
)
PLAN_CHOICE = (
    "Goals come from the plan of the level, or from a finer plan when a filter needs it (the product plan "
    "for categories filtered by product); a filter that no plan can be split by (region for products) is "
    "refused. "
)
LEVELS = " or ".join(GOAL_PLANS)


def goal_filters(level: str) -> tuple[str, ...]:
    """The filters a goal report by ``level`` answers: those of the plans that can be split by ``level``.
    Such plans are nested (the region plan's filters are within the salesman plan's), so every combination
    of these filters has a plan that answers it; the report declares exactly these, not every filter."""
    readable = [frozenset(goal_dimensions(p)) for p in GOAL_PLANS.values() if level in goal_dimensions(p)]
    widest = max(readable, key=len)
    assert all(plan <= widest for plan in readable), f"the plans readable by {level} are not nested"
    return tuple(p.name for p in FILTER_PARAMS if p.member in widest)


GOAL_FILTERS = {level: goal_filters(level) for level in GOAL_PLANS}
"""Each goal level's filters (region: region, salesman; category: category, subcategory, product; ...)."""
OPPORTUNITY_FILTERS = tuple(p.name for p in FILTER_PARAMS if any(p.name in f for f in GOAL_FILTERS.values()))
"""Every level's filters: which of them a level answers is a rule between the parameters (LEVEL_FILTERS)."""


def with_goal_basis(ctx: ReportContext, rows: Rows) -> Rows:
    """Say of each row how its goal to date counts: whole, or pro-rated (the query layer did the counting,
    by the same basis)."""
    basis = ctx.goal_basis()
    labels: dict[str, str] = {}  # one per month: a product report has thousands of rows per month
    for row in rows:
        period = row[TIME_OUTPUT]
        if period not in labels:
            labels[period] = basis.label(date.fromisoformat(period))
        row["goal_basis"] = labels[period]
    if any(row["goal_basis"] != "whole month" for row in rows):
        ctx.notes.append(PRORATED_GOAL + SELLING_DAYS_RULE)
    return rows


for _level in GOAL_PLANS:
    preset(
        f"goal-attainment-by-{_level}",
        f"Goal attainment by {_level}",
        SECTION_GOALS,
        f"Revenue against the goal plan per {_level} and month. {PRORATED_GOAL}{PLAN_CHOICE}",
        lambda ctx, level=_level: {
            "measures": ATTAINMENT,
            "dimensions": [level],
            "time_dimension": {"grain": "month"},
        },
        adjust=with_goal_basis,
        columns=GOAL_COLUMNS,
        filters=GOAL_FILTERS[_level],
    )

LEVEL_FILTERS = "; ".join(f"{level}: {', '.join(GOAL_FILTERS[level])}" for level in GOAL_PLANS)
OPPORTUNITY_PARAMS = (
    Param(
        "level",
        Literal[tuple(GOAL_PLANS)],
        "region",
        f"Goals by {LEVELS}. Each level's plan answers some of the filters only ({LEVEL_FILTERS}); another "
        "filter is refused (422).",
        "region",
    ),
    Param("low_pct", float, 60.0, "Lowest attainment %, inclusive.", 60, ge=0, le=1000),
    Param("high_pct", float, 80.0, "Highest attainment %, inclusive.", 80, ge=0, le=1000),
)


def _opportunities(ctx: ReportContext, rows: Rows) -> Rows:
    """The rows in the attainment band (judged on the goal to date), with the gap to that goal."""
    low, high = ctx["low_pct"], ctx["high_pct"]
    within = [
        row
        for row in rows
        if row["goal_attainment_pct"] is not None and low <= row["goal_attainment_pct"] <= high
    ]
    for row in within:
        row["gap_to_goal"] = row["goal_to_date"] - (row["revenue"] or 0.0)
    # Python's sort is stable: the query's order (period, member) breaks ties.
    return sorted(with_goal_basis(ctx, within), key=lambda row: -row["goal_attainment_pct"])


preset(
    "sales-opportunities",
    "Sales opportunities",
    SECTION_GOALS,
    f"Months of a {LEVELS} (the level) whose sales are between 60% and 80% of goal: close enough to reach "
    f"it. {PRORATED_GOAL}gap_to_goal is goal_to_date - revenue. {PLAN_CHOICE}",
    lambda ctx: {
        "measures": ATTAINMENT,
        "dimensions": [ctx["level"]],
        "time_dimension": {"grain": "month"},
    },
    params=OPPORTUNITY_PARAMS,
    adjust=_opportunities,
    columns={**GOAL_COLUMNS, "gap_to_goal": "currency"},
    filters=OPPORTUNITY_FILTERS,
    example_filters=GOAL_FILTERS["region"],  # the level's example
)
