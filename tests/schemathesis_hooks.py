"""Schemathesis hooks: the rules between parameters that an OpenAPI document cannot state, for the fuzzer.

Schemathesis 4 loads hooks named by the environment variable SCHEMATHESIS_HOOKS before it loads the schema:
a path to a file (it contains a "/" or ends in .py) is executed, anything else is imported as a module.
From the project root, either of

    SCHEMATHESIS_HOOKS=tests/schemathesis_hooks.py schemathesis run http://127.0.0.1:3000/docs.json ...
    PYTHONPATH=tests SCHEMATHESIS_HOOKS=schemathesis_hooks schemathesis run ...

(not ``tests.schemathesis_hooks``: mlforecast installs a package named "tests" that shadows ours).
tests/schemathesis_service_hooks.py imports this module and adds the rules of the other endpoints.

Each rule below is said in the description of the parameters it binds, and the service answers a request
that breaks it with a 422 naming the parameter (start after end, a goal report filtered by what its plan is
not split by, a line whose revenue is not quantity x unit price x (1 - discount)...). A fuzzer that draws each
parameter on its own from the schema breaks such rules all the time, and would call each 422 a schema-valid
request refused (ST202). So ``map_case`` makes the *positive* cases keep the rules, changing as little as it
can (swap an inverted range, drop a filter the level does not answer); negative cases are left as drawn: the
service must refuse them, whatever else they break.

The rules are written from the service's own declarations (salespulse), so the hooks follow a renamed measure
or a new goal plan; the fixes are the hooks' own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import schemathesis

from salespulse.analytics.compiler import choose_goal_plan
from salespulse.analytics.errors import QueryError
from salespulse.analytics.query import COMPARE_SUFFIXES, TIME_OUTPUT, Query
from salespulse.analytics.reports.base import FILTER_PARAMS
from salespulse.analytics.reports.goals import GOAL_FILTERS
from salespulse.analytics.semantic import GOAL_PLANS, MEASURES, PUBLIC_DIMENSIONS, Grain, Operator
from salespulse.bounds import SPACES, date_bounds
from salespulse.config import get_settings
from salespulse.dataset.geography import REGION_OF_STATE, REGIONS, state_code
from salespulse.warehouse.schema import US_SPELLINGS

GOAL_MEASURES = frozenset(name for name in MEASURES if name.startswith("goal"))
FILTER_NAMES = frozenset(p.name for p in FILTER_PARAMS)
INSIGHT_PERIOD_DAYS = {"week": 7, "month": 28}  # salespulse.analytics.insights.PERIOD_DAYS


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Positive cases made to keep the rules between their parameters (see the module's docstring)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    path, method = case.operation.path, case.operation.method.upper()
    if method == "GET" and isinstance(case.query, dict):
        consistent_query(path, case.query)
    if method == "POST" and isinstance(case.body, dict):
        if path.endswith("/query") or "/export/query" in path:
            consistent_analytics_query(case.body)
        elif path.endswith("/sales"):
            consistent_sales(case.body)
    return case


# --- report and insights parameters ---


def consistent_query(path: str, query: dict[str, Any]) -> None:
    _ordered(query, "start", "end")
    _ordered(query, "start", "as_of")
    _ordered(query, "baseline_start", "baseline_end")
    # revenue-change-explained: baseline_start and baseline_end, both or neither.
    if path.endswith("/reports/revenue-change-explained") and ("baseline_start" in query) != (
        "baseline_end" in query
    ):
        query.pop("baseline_start", None)
        query.pop("baseline_end", None)
    if path.endswith("/reports/sales-opportunities"):
        # Each level's plan answers some filters only (the `level` parameter's description lists them).
        answered = GOAL_FILTERS[query.get("level", "region")]
        for name in _filters_given(query):
            if name not in answered:
                del query[name]
    if path.endswith("/insights"):
        _insights_window(query)


def _filters_given(query: dict[str, Any]) -> list[str]:
    return [name for name in list(query) if name in FILTER_NAMES]


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def _ordered(query: dict[str, Any], first: str, last: str) -> None:
    """``first`` not after ``last``: an inverted range is swapped."""
    start, end = _day(query.get(first)), _day(query.get(last))
    if start and end and start > end:
        query[first], query[last] = query[last], query[first]


def _insights_window(query: dict[str, Any]) -> None:
    """start not after the as-of day (end, else as_of); the window's baseline (as many days just before it)
    within the supported dates."""
    earliest = date_bounds()[0]
    at = "end" if "end" in query else "as_of" if "as_of" in query else None
    start, day = _day(query.get("start")), _day(query.get(at)) if at else None
    if start is None:
        if day is not None:  # a rolling window: its baseline begins 2 x its days - 1 before the as-of day
            days = INSIGHT_PERIOD_DAYS[query.get("period", "month")]
            query[at] = max(day, earliest + timedelta(days=2 * days - 1)).isoformat()
        return
    if at is None:  # the as-of day would be the data's: name one, so the rule can be kept
        at, day = "end", start
    if start > day:
        start, day = day, start
    start = max(start, earliest + timedelta(days=1))  # a baseline of at least one day before the window
    latest_day = start + (start - earliest) - timedelta(days=1)  # baseline_start = start - days >= earliest
    day = min(max(day, start), latest_day)
    query["start"], query[at] = start.isoformat(), day.isoformat()


# --- POST /query (and its export) ---


def consistent_analytics_query(body: dict[str, Any]) -> None:
    # Each measure and dimension once (uniqueItems).
    measures = body["measures"] = list(dict.fromkeys(body.get("measures") or ["revenue"]))
    body["dimensions"] = list(dict.fromkeys(body.get("dimensions", [])))
    time = body.get("time_dimension") if isinstance(body.get("time_dimension"), dict) else None
    if time and isinstance(time.get("date_range"), list):
        time["date_range"] = sorted(time["date_range"])
    if isinstance(body.get("compare_date_range"), list):
        body["compare_date_range"] = sorted(body["compare_date_range"])
    # compare or compare_date_range, not both, and only with a date_range.
    if "compare" in body and body.get("compare") is not None and body.get("compare_date_range") is not None:
        del body["compare_date_range"]
    if not (time and time.get("date_range")):
        body.pop("compare", None)
        body.pop("compare_date_range", None)
    body["filters"] = [f for f in (_consistent_filter(f, measures) for f in body.get("filters", [])) if f]
    _goal_measures_answerable(body)
    body["order"] = [item for item in body.get("order", []) if item.get("member") in _outputs(body)]


def _consistent_filter(item: dict[str, Any], measures: list[str]) -> dict[str, Any] | None:
    """A filter whose values fit its operator (how many, null only as an open end of a range) and its member
    (numbers for a measure or a whole-number dimension, text otherwise); a filter on a measure the query
    does not ask for is dropped (it must be among the measures)."""
    member, operator = item.get("member"), item.get("operator")
    if member in MEASURES and member not in measures:
        return None
    numeric = member in MEASURES or PUBLIC_DIMENSIONS[member].type == "integer"
    values = [_fitting(v, numeric) for v in item.get("values", [])]
    if operator == Operator.RANGE:
        values = [*values, None, None][:2]
        if values == [None, None]:
            values[0] = 0 if numeric else "a"
    else:
        values = [v for v in values if v is not None]
        if operator in (Operator.SET, Operator.NOT_SET):
            values = []
        elif operator == Operator.EQUALS:
            values = values[:1] or [0 if numeric else "a"]
        elif not values:
            values = [0 if numeric else "a"]
    return {**item, "values": values}


def _fitting(value: Any, numeric: bool) -> Any:
    if value is None:
        return None
    if numeric:
        return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
    return value if isinstance(value, str) else str(value)


def _goal_measures_answerable(body: dict[str, Any]) -> None:
    """A goal measure needs a plan split by every dimension and filter of the query, and a grain no finer
    than the plan's months: otherwise the goal measures are dropped (revenue stands in if none is left)."""
    if not GOAL_MEASURES & set(body["measures"]):
        return
    time = body.get("time_dimension") or {}
    try:  # the order is checked after this (it may name a goal measure dropped here)
        fits = time.get("grain") not in (Grain.DAY, Grain.WEEK) and bool(
            choose_goal_plan(Query.model_validate({**body, "order": []}))
        )
    except (QueryError, ValueError):
        fits = False
    if not fits:
        body["measures"] = [m for m in body["measures"] if m not in GOAL_MEASURES] or ["revenue"]
        body["filters"] = [f for f in body["filters"] if f.get("member") not in GOAL_MEASURES]


def _outputs(body: dict[str, Any]) -> set[str]:
    """The columns the query answers with: what its order may name."""
    time = body.get("time_dimension") or {}
    names = {*body.get("dimensions", []), *body["measures"]}
    if time.get("grain"):
        names.add(TIME_OUTPUT)
    if body.get("compare") is not None or body.get("compare_date_range") is not None:
        names |= {f"{m}_{suffix}" for m in body["measures"] for suffix in COMPARE_SUFFIXES}
    return names


# --- POST /sales ---


def consistent_sales(body: dict[str, Any]) -> None:
    lines = body.get("lines", [])
    body["lines"] = _unique(lines, lambda line: (_key(line.get("order_id")), line.get("line")))
    body["customers"] = _unique(body.get("customers", []), lambda c: _key(c.get("customer_id")))
    body["products"] = _unique(body.get("products", []), lambda p: _key(p.get("product_id")))
    for line in body["lines"]:
        _consistent_amounts(line)
        _consistent_address(line, "ship_")
        _within_dates_in_utc(line)
    for customer in body["customers"]:
        _consistent_address(customer, "")


def _key(value: Any) -> Any:
    """An id as the service keys it: without the white space around it."""
    return value.strip(SPACES) if isinstance(value, str) else value


def _unique(items: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    kept = []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    return kept


def _consistent_amounts(line: dict[str, Any]) -> None:
    """quantity x unit_price x (1 - discount) within SALESPULSE_MAX_LINE_REVENUE; a revenue given agrees
    with it (within 1%); a profit given with a cost is revenue - cost."""
    limit = get_settings().max_line_revenue
    quantity, discount = line["quantity"], line.get("discount", 0.0)
    if quantity * line["unit_price"] * (1 - discount) > limit:
        line["unit_price"] = limit / quantity / 2
    revenue = quantity * line["unit_price"] * (1 - discount)
    if line.get("revenue") is not None:
        line["revenue"] = revenue
    if line.get("cost") is not None and line.get("profit") is not None:
        line["profit"] = revenue - line["cost"]


def _consistent_address(record: dict[str, Any], prefix: str) -> None:
    """In the US (its country, or no country and a US state): a US state, a five-digit zip, and for a
    customer one of the sales regions."""
    country, state = record.get(f"{prefix}country"), record.get(f"{prefix}state")
    in_the_us = _text(country).upper() in US_SPELLINGS if country is not None else None
    code = state_code(_text(state)) if state is not None else None
    if in_the_us and state is not None and code is None:
        record[f"{prefix}state"] = code = "CA"
    us_address = in_the_us if in_the_us is not None else code in REGION_OF_STATE
    zip_code = record.get(f"{prefix}zip")
    if us_address and zip_code is not None and not (len(_text(zip_code)) == 5 and _text(zip_code).isdigit()):
        record[f"{prefix}zip"] = "94105"
    region = record.get("region")
    if not prefix and us_address and region is not None and _text(region) not in REGIONS:
        record["region"] = REGIONS[0]


def _text(value: Any) -> str:
    return value.strip(SPACES) if isinstance(value, str) else str(value)


def _within_dates_in_utc(line: dict[str, Any]) -> None:
    """The day of ordered_at, in UTC, within the supported dates: an offset that moves it out is dropped."""
    at = line.get("ordered_at")
    if not isinstance(at, str):
        return
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:  # not a moment at all: nothing to keep
        return
    if moment.tzinfo is None:
        return
    earliest, latest = date_bounds()
    if not earliest <= moment.astimezone(UTC).date() <= latest:
        line["ordered_at"] = moment.replace(tzinfo=None).isoformat()


assert set(GOAL_FILTERS) == set(GOAL_PLANS)  # every goal level has its filters
