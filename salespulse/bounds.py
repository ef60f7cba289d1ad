"""Sanity bounds on what clients send, declared once and applied at every entry point.

Calendar dates, identifiers, numbers and the size of one order line are checked here for the service's
request bodies (salespulse.schemas), report parameters and queries (salespulse.analytics), real-time sales
(salespulse.analytics.ingest) and file imports (salespulse.dataset.importing, which checks in SQL with the
same limits). The limits are settings (salespulse.config), read when a value is validated, so one setting
moves a bound everywhere.

Why bounds at all: a date in year 1 or 9999 makes date arithmetic overflow deep inside a report (a 500
instead of a 422 naming the field); one line of revenue 1e19 swamps every total; a control character in an
id breaks CSV exports and log lines; a lone UTF-16 surrogate cannot be stored or encoded at all.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AllowInfNan, Field, Strict, StringConstraints, ValidationInfo
from pydantic_core import PydanticCustomError

from salespulse.config import get_settings

INTERNAL_CONTEXT_KEY = "internal"
"""Validation context key of the queries that reports build themselves: they may reach a little outside the
calendar bounds (a year before the earliest allowed day, for a comparison), which clients may not."""

# --- dates ---


def date_bounds() -> tuple[date, date]:
    """The earliest and latest date a client may name (SALESPULSE_EARLIEST_DATE, SALESPULSE_LATEST_DATE)."""
    settings = get_settings()
    return settings.earliest_date, settings.latest_date


def outside_calendar(value: date) -> PydanticCustomError | None:
    """The error of a date outside the bounds, or None when it is inside them."""
    earliest, latest = date_bounds()
    if earliest <= value <= latest:
        return None
    return PydanticCustomError(
        "date_out_of_range",
        "{value} is outside the supported dates {earliest} to {latest}",
        {"value": value.isoformat(), "earliest": earliest.isoformat(), "latest": latest.isoformat()},
    )


def check_date(value: date, info: ValidationInfo) -> date:
    if info.context and info.context.get(INTERNAL_CONTEXT_KEY):
        return value
    error = outside_calendar(value)
    if error is not None:
        raise error
    return value


def check_datetime(value: datetime) -> datetime:
    error = outside_calendar(value.date())
    if error is not None:
        raise error
    return value


SaneDate = Annotated[date, AfterValidator(check_date)]
"""A date within the configured bounds (a report's own internal queries are exempt)."""


# --- text ---

# Unicode's control characters (category Cc): NUL, tab, newline, carriage return, escape, DEL and C1.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_CHARACTERS_SQL = r"[\x00-\x1f\x7f-\x{9f}]"
"""The same class as an RE2 pattern (DuckDB's regexp functions), for the file import's checks in SQL."""


CONTROL_NAMES = {"\x00": "NUL", "\t": "tab", "\n": "newline", "\r": "carriage return", "\x1b": "escape"}


def control_character_error(value: str) -> PydanticCustomError | None:
    found = CONTROL_CHARACTERS.search(value)
    if found is None:
        return None
    character = found.group()
    code = f"U+{ord(character):04X}"
    name = f"{code} {CONTROL_NAMES[character]}" if character in CONTROL_NAMES else code
    return PydanticCustomError(
        "control_character",
        "contains a control character ({name}) at position {position}; ids are plain text on one line",
        {"name": name, "position": found.start()},
    )


def check_identifier(value: str) -> str:
    error = control_character_error(value)
    if error is not None:
        raise error
    return value


def identifier(max_length: int = 128) -> Any:
    """An id: 1 to ``max_length`` characters, none of them a control character."""
    return Annotated[
        str, StringConstraints(min_length=1, max_length=max_length), AfterValidator(check_identifier)
    ]


Identifier = identifier(128)


# --- numbers ---

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""A whole number a database column (BIGINT) holds: a 40-digit filter value would fail inside DuckDB."""
StrictInt = Annotated[int, Strict()]
"""A JSON number without a fraction: "3" (a string) and true are refused rather than coerced."""
FiniteFloat = Annotated[float, AllowInfNan(False)]
StrictFloat = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite JSON number (a whole number is welcome): "3" (a string), true, NaN and Infinity are refused."""


def non_finite_error(value: float) -> PydanticCustomError | None:
    if math.isfinite(value):
        return None
    return PydanticCustomError("finite_number", "{value} is not a finite number", {"value": str(value)})


def _upper_bound(setting: str, what: str) -> Any:
    """An after-validator refusing a value above the setting ``setting`` (finite values only reach it)."""

    def check(value: float) -> float:
        limit = getattr(get_settings(), setting)
        if value > limit:
            raise PydanticCustomError(
                "sanity_bound",
                "{value} is above the largest {what} accepted, {limit} (SALESPULSE_{setting})",
                {"value": _shown(value), "what": what, "limit": _shown(limit), "setting": setting.upper()},
            )
        return value

    return AfterValidator(check)


def _shown(number: float) -> str:
    return f"{number:,.0f}" if float(number).is_integer() and abs(number) < 1e16 else f"{number:g}"


LineQuantity = Annotated[StrictInt, _upper_bound("max_line_quantity", "quantity of one line")]
UnitPrice = Annotated[StrictFloat, _upper_bound("max_unit_price", "unit price")]
LineAmount = Annotated[StrictFloat, _upper_bound("max_line_revenue", "amount of one line")]
"""Revenue, cost and profit of one line: finite, strict, at most SALESPULSE_MAX_LINE_REVENUE."""


def line_revenue_error(revenue: float) -> PydanticCustomError | None:
    """The error of a (derived) line revenue above the bound: quantity x price can pass each bound and
    still make a line that swamps every total."""
    limit = get_settings().max_line_revenue
    if revenue <= limit:
        return None
    return PydanticCustomError(
        "sanity_bound",
        "the line's revenue {value} is above the largest accepted, {limit} (SALESPULSE_MAX_LINE_REVENUE)",
        {"value": _shown(revenue), "limit": _shown(limit)},
    )
