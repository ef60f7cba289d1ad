"""Selling days and calendar months: how running and partial periods are compared, one rule for every report.

* **Now** is the as-of day (``as_of``, or ``end``), never later than the last day with a sale.
* A day up to now is a **selling day** when the business sold anything on it (all regions and products,
  whatever the report's filters); a later day is one when its weekday had sales on at least half of its days
  in the 8 weeks up to now. So a report as of a past day says what it would have said then.
* A **goal** of a month that the period or the data cuts short counts pro-rated to the selling days covered
  (:class:`GoalBasis`), in the reports and in ``POST /query`` alike.

The rule is defined with the query layer (``compiler.py``) and used from here by the reports.
"""

from __future__ import annotations

from datetime import date, timedelta

from salespulse.analytics.compiler import (
    PATTERN_DAYS,
    SELLING_DAYS_RULE,
    GoalBasis,
    SellingCalendar,
    add_months,
    month_end,
    month_start,
    running_now,
    selling_weekdays,
)

__all__ = [
    "PATTERN_DAYS",
    "SELLING_DAYS_RULE",
    "GoalBasis",
    "SellingCalendar",
    "month_end",
    "month_start",
    "month_to_date",
    "period_end",
    "running_now",
    "selling_weekdays",
]


def month_to_date(as_of: date) -> tuple[list[date], list[date]]:
    """This month up to ``as_of``, and the same days of the previous month (capped at its end)."""
    previous_start = add_months(month_start(as_of), -1)
    previous_end = min(previous_start + timedelta(days=as_of.day - 1), month_end(previous_start))
    return [month_start(as_of), as_of], [previous_start, previous_end]


def period_end(start: date, grain: str) -> date:
    """The last day of the week, month, quarter or year that starts on ``start``."""
    if grain == "week":
        return start + timedelta(days=6)
    return add_months(start, {"month": 1, "quarter": 3, "year": 12}[grain]) - timedelta(days=1)
