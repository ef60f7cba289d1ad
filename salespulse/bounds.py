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
from calendar import isleap
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from salespulse.config import get_settings

INTERNAL_CONTEXT_KEY = "internal"
"""Validation context key of the queries that reports build themselves: they may reach a little outside the
calendar bounds (a year before the earliest allowed day, for a comparison), which clients may not."""


@dataclass(frozen=True, eq=False)  # hashed by identity (a type's metadata is hashed; a dict is not hashable)
class Documented:
    """Keywords added to a type's JSON schema: what its validators check, said to clients (and to a fuzzer)
    in the OpenAPI document. ``keywords`` may be a function, called when the schema is generated, for what
    depends on settings (the supported dates)."""

    keywords: Any

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        for keyword, value in (self.keywords() if callable(self.keywords) else self.keywords).items():
            if value is None:
                schema.pop(keyword, None)  # a keyword the type's own schema says and the service does not
            else:
                schema[keyword] = value
        return schema


def _internal(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(INTERNAL_CONTEXT_KEY))


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
    if _internal(info):
        return value
    error = outside_calendar(value)
    if error is not None:
        raise error
    return value


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""A calendar date as clients write it: YYYY-MM-DD, in ASCII digits ([0-9], not \\d, which takes any
script's)."""


def iso_date(value: Any, info: ValidationInfo) -> Any:
    """A date given as ``YYYY-MM-DD`` text (or a date object, from Python callers), nothing else: pydantic
    alone reads 0 or "1700000000" as a Unix time and "2025-01-01T00:00" as a day, which no client means
    and the OpenAPI document (format: date) does not allow."""
    if _internal(info):
        return value  # a report's own query: pydantic's reading of whatever the report built
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "date_invalid", "'{value}' is not a day of the calendar", {"value": value}
            ) from None
    shown = value if isinstance(value, str) else repr(value)
    raise PydanticCustomError(
        "date_format", "'{value}' is not a date: write it as YYYY-MM-DD", {"value": str(shown)[:40]}
    )


def date_pattern(earliest: date, latest: date) -> str:
    """A regular expression (JSON Schema's, which Python's re reads the same) matching exactly the YYYY-MM-DD
    texts of the days from ``earliest`` to ``latest``: the document says what the service accepts (no 30
    February, no 29 February of a common year), and a fuzzer draws days the service takes rather than
    years 1 to 9999."""
    return f"^{_days_pattern(earliest, latest)}$"


def _days_pattern(earliest: date, latest: date) -> str:
    """Every day but 29 February, as years x the days of a common year (the first and last years may be
    partial), then the 29 Februaries within the bounds."""
    segments = []  # (years, first (month, day), last (month, day))
    if earliest.year == latest.year:
        segments.append((f"{earliest.year:04d}", (earliest.month, earliest.day), (latest.month, latest.day)))
    else:
        first_whole, last_whole = earliest.year, latest.year
        if (earliest.month, earliest.day) != (1, 1):
            segments.append((f"{earliest.year:04d}", (earliest.month, earliest.day), (12, 31)))
            first_whole += 1
        if first_whole <= last_whole - ((latest.month, latest.day) != (12, 31)):
            whole = number_pattern(first_whole, last_whole - ((latest.month, latest.day) != (12, 31)), 4)
            segments.append((whole, (1, 1), (12, 31)))
        if (latest.month, latest.day) != (12, 31):
            segments.append((f"{latest.year:04d}", (1, 1), (latest.month, latest.day)))
    alternatives = [
        f"{years}-{days}" for years, first, last in segments if (days := _month_days(first, last))
    ]
    leap = [
        y for y in range(earliest.year, latest.year + 1) if isleap(y) and earliest <= date(y, 2, 29) <= latest
    ]
    if leap:
        alternatives.append(f"{_leap_years(leap)}-02-29")
    return _group(alternatives) if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"


_COMMON_YEAR_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_days(first: tuple[int, int], last: tuple[int, int]) -> str | None:
    """MM-DD of a common year's days from ``first`` to ``last`` (None for none): a month taken whole is
    written with the others of its length."""
    whole: dict[int, list[str]] = {}
    partial = []
    for month in range(first[0], last[0] + 1):
        length = _COMMON_YEAR_DAYS[month - 1]
        low = first[1] if month == first[0] else 1
        high = min(last[1] if month == last[0] else length, length)
        if low > high:
            continue
        if (low, high) == (1, length):
            whole.setdefault(length, []).append(f"{month:02d}")
        else:
            partial.append(f"{month:02d}-{number_pattern(low, high, 2)}")
    parts = [f"{_group(months)}-{number_pattern(1, length, 2)}" for length, months in whole.items()] + partial
    return _group(parts) if parts else None


def _leap_years(years: list[int]) -> str:
    """The leap ``years``, century by century: a century's every leap year in the classic short form."""
    parts = []
    for century in sorted({y // 100 for y in years}):
        within = [y for y in years if y // 100 == century]
        every = [y for y in range(century * 100, century * 100 + 100) if isleap(y)]
        if within == every:
            parts.append(f"{century:02d}(?:0[48]|[2468][048]|[13579][26]{'|00' if century % 4 == 0 else ''})")
        else:
            parts.extend(f"{y:04d}" for y in within)
    return _group(parts)


def number_pattern(low: int, high: int, width: int) -> str:
    """A regular expression matching the whole numbers ``low`` to ``high``, zero-padded to ``width``
    digits."""
    return _digits(f"{low:0{width}d}", f"{high:0{width}d}")


def _digits(low: str, high: str) -> str:
    if low == high:
        return low
    if len(low) == 1:
        return f"[{low}-{high}]"
    if low[0] == high[0]:
        return low[0] + _digits(low[1:], high[1:])
    rest = len(low) - 1
    parts, first, last, tail = [], int(low[0]), int(high[0]), None
    if low[1:] != "0" * rest:  # the first leading digit covers only part of its numbers
        parts.append(low[0] + _digits(low[1:], "9" * rest))
        first += 1
    if high[1:] != "9" * rest:
        tail = high[0] + _digits("0" * rest, high[1:])
        last -= 1
    if first <= last:
        leading = str(first) if first == last else f"[{first}-{last}]"
        parts.append(leading + ("[0-9]" if rest == 1 else f"[0-9]{{{rest}}}"))
    if tail is not None:
        parts.append(tail)
    return _group(parts)


def _group(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"


def _date_schema() -> dict[str, str]:
    earliest, latest = date_bounds()
    return {"format": "date", "pattern": date_pattern(earliest, latest)}


def check_datetime(value: datetime) -> datetime:
    error = outside_calendar(value.date())
    if error is not None:
        raise error
    return value


ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)
"""A moment as clients write it: YYYY-MM-DDThh:mm[:ss[.ffffff]], and Z or an offset when it is not the
warehouse's own (naive) time."""
_TIME_PATTERN = ISO_DATETIME.pattern.split("T", 1)[1]


def iso_datetime(value: Any) -> Any:
    """A moment given as ISO text (ISO_DATETIME) or a datetime object, nothing else (no Unix time, no bare
    day, no space for the T): what the document's pattern says."""
    if isinstance(value, datetime) or (isinstance(value, str) and ISO_DATETIME.fullmatch(value)):
        return value  # pydantic reads it (and refuses a day a month lacks)
    shown = value if isinstance(value, str) else repr(value)
    raise PydanticCustomError(
        "datetime_format",
        "'{value}' is not a date and time: write it as YYYY-MM-DDThh:mm:ss, with Z or an offset such as "
        "+02:00 unless it is the warehouse's own time",
        {"value": str(shown)[:40]},
    )


def datetime_schema() -> dict[str, Any]:
    # No `format: date-time`: RFC 3339 wants an offset, and a time without one (the warehouse's) is welcome.
    earliest, latest = date_bounds()
    return {"format": None, "pattern": f"^{_days_pattern(earliest, latest)}T{_TIME_PATTERN}$"}


SaneDate = Annotated[date, BeforeValidator(iso_date), AfterValidator(check_date), Documented(_date_schema)]
"""A date within the configured bounds, written YYYY-MM-DD (a report's own internal queries are exempt); its
JSON schema says both: ``format: date`` and a pattern of the years, months and days within the bounds."""


# --- text ---

# Unicode's control characters (category Cc): NUL, tab, newline, carriage return, escape, DEL and C1.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""The same rule as a JSON Schema pattern (no control character anywhere), declared on every text the
service refuses control characters in."""
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
        str,
        StringConstraints(min_length=1, max_length=max_length),
        AfterValidator(check_identifier),
        Documented({"pattern": PLAIN_TEXT_PATTERN}),
    ]


# JSON Schema's (ECMAScript's) white space, spelled out: Python's \s and str.strip() differ (they take
# U+001C-U+001F and U+0085, not U+FEFF), and the document's patterns must mean what the service does.
SPACES = " \t\n\x0b\x0c\r\xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    map(chr, range(0x2000, 0x200B))  # U+2000 to U+200A
)
_SPACE_CLASS = r" \t\n\x0b\x0c\r\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CONTROL_CLASS = r"\x00-\x1f\x7f-\x9f"
NOT_BLANK_PATTERN = f"[^{_SPACE_CLASS}]"
"""Some character that is not white space (a pattern matches anywhere in the value)."""
PLAIN_NOT_BLANK_PATTERN = f"^[^{_CONTROL_CLASS}]*[^{_CONTROL_CLASS}{_SPACE_CLASS}][^{_CONTROL_CLASS}]*$"
"""No control character, and some character that is not white space."""


def _trimmed(value: str) -> str:
    """Without surrounding white space; refused when nothing else is left."""
    trimmed = value.strip(SPACES)
    if not trimmed:
        raise PydanticCustomError("blank", "is blank: give some text besides white space", {})
    return trimmed


def _plain_trimmed(value: str) -> str:
    """check_identifier, then _trimmed; at once for the usual id (printable, nothing to trim), which a
    1,000-line batch has 4,000 of."""
    if value.isprintable() and value[0] not in SPACES and value[-1] not in SPACES:
        return value  # isprintable: no control character (nor any other space than U+0020)
    return _trimmed(check_identifier(value))


def trimmed_text(max_length: int, *, plain: bool) -> Any:
    """Text with something besides white space, stored without the white space around it; at most
    ``max_length`` characters as sent. ``plain``: an id, without control characters."""
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_length),
        AfterValidator(_plain_trimmed if plain else _trimmed),
        Documented({"pattern": PLAIN_NOT_BLANK_PATTERN if plain else NOT_BLANK_PATTERN}),
    ]


def plain_text(max_length: int) -> Any:
    """Text on one line (no control character), at most ``max_length`` characters, possibly empty: a filter
    value, which may match nothing."""
    return Annotated[
        str,
        StringConstraints(max_length=max_length),
        AfterValidator(check_identifier),
        Documented({"pattern": PLAIN_TEXT_PATTERN}),
    ]


Identifier = identifier(128)


# --- numbers ---

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""A whole number a database column (BIGINT) holds: a 40-digit filter value would fail inside DuckDB."""


def _integral(value: Any) -> Any:
    """3.0 as 3: JSON Schema's integer is any number without a fraction, however it is written."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def strict_int(**constraints: float) -> Any:
    """A JSON number without a fraction, 3 or 3.0 (JSON Schema's integer, however written), within
    ``constraints`` (ge, le, ...): "3" (text), 3.5 and true are refused rather than coerced.

    The constraints are given here, before the validator that reads 3.0 as 3: given after it (Field(ge=1)
    on the field), pydantic can no longer write them into the JSON schema (it wrote ``"ge": 1``)."""
    limits = [Field(**constraints)] if constraints else []  # type: ignore[arg-type]
    return Annotated[int, Strict(), *limits, BeforeValidator(_integral)]


StrictInt = Annotated[int, Strict()]
"""A JSON number without a fraction, written without one: "3" (a string), 3.0 and true are refused rather
than coerced. (3.0 is an integer to JSON Schema: strict_int takes it.)"""
FiniteFloat = Annotated[float, AllowInfNan(False)]
StrictFloat = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite JSON number (a whole number is welcome): "3" (a string), true, NaN and Infinity are refused."""


def non_finite_error(value: float) -> PydanticCustomError | None:
    if math.isfinite(value):
        return None
    return PydanticCustomError("finite_number", "{value} is not a finite number", {"value": str(value)})


def at_most(base: Any, setting: str, what: str) -> Any:
    """``base`` (a strict number, with its own constraints) at most the setting ``setting``, read when a
    value is validated, and when the JSON schema is generated (its ``maximum``).

    Constraints go in ``base``, before the setting's validator: after a validator, pydantic cannot put them
    in the JSON schema (it wrote ``"gt": 0`` where the document needs ``exclusiveMinimum``)."""

    def check(value: float) -> float:
        limit = getattr(get_settings(), setting)
        if value > limit:
            raise PydanticCustomError(
                "sanity_bound",
                "{value} is above the largest {what} accepted, {limit} (SALESPULSE_{setting})",
                {"value": _shown(value), "what": what, "limit": _shown(limit), "setting": setting.upper()},
            )
        return value

    maximum = Documented(lambda: {"maximum": getattr(get_settings(), setting)})
    return Annotated[base, AfterValidator(check), maximum]


def _strict_float(**constraints: float) -> Any:
    return Annotated[StrictFloat, Field(**constraints)] if constraints else StrictFloat  # type: ignore[arg-type]


def _shown(number: float) -> str:
    return f"{number:,.0f}" if float(number).is_integer() and abs(number) < 1e16 else f"{number:g}"


def line_quantity(**constraints: float) -> Any:
    """The quantity of one line: strict, at most SALESPULSE_MAX_LINE_QUANTITY."""
    return at_most(strict_int(**constraints), "max_line_quantity", "quantity of one line")


def unit_price(**constraints: float) -> Any:
    """A unit price (or cost): finite, strict, at most SALESPULSE_MAX_UNIT_PRICE."""
    return at_most(_strict_float(**constraints), "max_unit_price", "unit price")


def line_amount(**constraints: float) -> Any:
    """Revenue, cost and profit of one line: finite, strict, at most SALESPULSE_MAX_LINE_REVENUE."""
    return at_most(_strict_float(**constraints), "max_line_revenue", "amount of one line")


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
