"""The requests the users send, drawn from what discovery found in the warehouse.

Each builder returns the request (JSON body or query parameters) and, where the answer is checked against
it, what was asked for. Limits that the service documents are mirrored here (a load test must stay valid
against a deployed instance without importing the service's code); tests/test_load.py keeps them in step.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from traffic.discovery import Product, ReportParam, ReportSpec, Targets

# salespulse/features/series.py: the levels, the frequencies and the longest horizon of each.
LEVELS = ("product_region", "product", "category", "region", "category_region", "total")
MAX_HORIZON = {"D": 366, "W": 53, "M": 12}
DEFAULT_LEVEL = "product_region"
DEFAULT_INTERVALS = (80.0, 95.0)
# How often planners ask for each: mostly product x region (what they stock), by day.
LEVEL_WEIGHTS = {
    "product_region": 4,
    "product": 2,
    "category": 2,
    "region": 1,
    "category_region": 1,
    "total": 1,
}
FREQ_WEIGHTS = {"D": 3, "W": 2, "M": 1}
TYPICAL_HORIZONS = {"D": (1, 7, 14, 28, 56, 90), "W": (1, 4, 8, 13, 26), "M": (1, 3, 6)}
INTERVAL_CHOICES: tuple[tuple[float, ...] | None, ...] = (None, (80, 95), (50,), (90,), (80, 95, 99), ())
SERIES_PER_REQUEST = {"product_region": 20, "product": 10}  # most series one planner screen asks for
DAYS_PER_PERIOD = {"D": 1, "W": 7, "M": 31}

QUERY_DIMENSIONS = (
    "region", "category", "subcategory", "channel", "state", "product", "salesman", "customer_segment",
    "month_of_year", "day_of_week", "country",
)  # fmt: skip
GRAINS = (None, "day", "week", "month", "quarter")
GOAL_MEASURES = {"goal", "goal_to_date", "goal_attainment_pct"}
GOAL_GRAINS = (None, "month", "quarter", "year")  # goals are monthly
ORDER_PREFIX = "LOAD"  # order ids of posted sales: LOAD-<run>-<n>, easy to find and remove

T = TypeVar("T")


class Deck(Generic[T]):
    """Cards dealt in shuffled rounds: random like real traffic, yet every card comes up within one round
    (a short run still asks every level, frequency and report)."""

    def __init__(self, cards: Sequence[T], rng: random.Random) -> None:
        if not cards:
            raise ValueError("a deck needs cards")
        self.cards = list(cards)
        self.rng = rng
        self.pile: list[T] = []

    def deal(self) -> T:
        if not self.pile:
            self.pile = list(self.cards)
            self.rng.shuffle(self.pile)
        return self.pile.pop()


def weighted(weights: dict[str, int]) -> list[str]:
    return [name for name, weight in weights.items() for _ in range(weight)]


def iso(day: date) -> str:
    return day.isoformat()


# ------------------------------------------------------------------------------------------- marketing


def feature_rows(targets: Targets, rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Raw features of customers the warehouse does not know: real profiles, varied."""
    rows = []
    for _ in range(count):
        base = rng.choice(targets.profiles)
        recency = round(base["recency_days"] * rng.uniform(0.5, 1.5) + rng.randint(0, 30))
        frequency = max(1, round(base["frequency"] * rng.uniform(0.7, 1.3)))
        average = round(max(base["avg_order_value"], 1.0) * rng.uniform(0.8, 1.2), 2)
        row: dict[str, Any] = {
            "recency_days": recency,
            "frequency": frequency,
            "monetary": round(frequency * average, 2),
            "tenure_days": max(recency, round(base["tenure_days"] * rng.uniform(0.8, 1.2))),
            "avg_order_value": average,
        }
        if rng.random() < 0.8:  # the id is optional: CRM systems send theirs to match the answer
            row["customer_id"] = f"crm-{rng.randint(1, 999_999)}"
        rows.append(row)
    return rows


def summary_rows(targets: Targets, rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Purchase summaries (BG/NBD's frequency, recency, T, monetary value) of unknown customers."""
    rows = []
    for features in feature_rows(targets, rng, count):
        age = float(features["tenure_days"])
        rows.append(
            {
                "customer_id": features.get("customer_id", f"crm-{rng.randint(1, 999_999)}"),
                "frequency": max(0, features["frequency"] - 1),  # repeat purchases
                "recency": max(0.0, age - features["recency_days"]),  # first to last purchase
                "T": age,
                "monetary_value": features["avg_order_value"],
            }
        )
    return rows


def value_options(rng: random.Random) -> dict[str, Any]:
    """The customer-value model's options a caller may set; unset ones take the documented defaults."""
    options: dict[str, Any] = {}
    if rng.random() < 0.7:
        options["horizon_days"] = rng.choice((30, 90, 180, 365))
    if rng.random() < 0.3:
        options["lifetime_months"] = rng.choice((12, 36, 60))
    if rng.random() < 0.3:
        options["monthly_discount_rate"] = rng.choice((0.0, 0.01, 0.02))
    return options


# ------------------------------------------------------------------------------------------- planners


@dataclass
class ForecastAsk:
    body: dict[str, Any]
    level: str
    freq: str
    series: list[str]
    horizon: int | None  # None: the service's default
    intervals: tuple[float, ...]


def forecast_request(targets: Targets, rng: random.Random, level: str, freq: str) -> ForecastAsk:
    keys = targets.series[level]
    most = min(len(keys), SERIES_PER_REQUEST.get(level, len(keys)))
    series = rng.sample(keys, rng.randint(1, most))
    body: dict[str, Any] = {"series": series, "freq": freq}
    if level != DEFAULT_LEVEL or rng.random() < 0.5:  # product x region is the default: often left out
        body["level"] = level
    horizon = forecast_horizon(freq, rng, len(series))
    if horizon is not None:
        body["horizon"] = horizon
    intervals = rng.choice(INTERVAL_CHOICES)
    if intervals is not None:
        body["intervals"] = list(intervals)
    if rng.random() < 0.2:
        body["promotions"] = [promotion(targets, rng, level, series, freq, horizon or 4)]
    return ForecastAsk(
        body, level, freq, series, horizon, DEFAULT_INTERVALS if intervals is None else tuple(intervals)
    )


def forecast_horizon(freq: str, rng: random.Random, series: int) -> int | None:
    """Mostly the usual horizons; now and then any horizon up to the limit, or none (the default). The
    longest daily horizons go with few series: a year of days for 20 products is a batch job."""
    draw = rng.random()
    if draw < 0.1:
        return None
    if draw < 0.2 and (freq != "D" or series <= 3):
        return MAX_HORIZON[freq]
    if draw < 0.3:
        return rng.randint(1, MAX_HORIZON[freq] if freq != "D" or series <= 3 else 120)
    return rng.choice(TYPICAL_HORIZONS[freq])


def promotion(
    targets: Targets, rng: random.Random, level: str, series: list[str], freq: str, horizon: int
) -> dict[str, Any]:
    """A planned price cut within the forecast window, on a product or category of the request."""
    assert targets.last_day is not None
    window = max(1, min(horizon * DAYS_PER_PERIOD[freq], 60))
    start = targets.last_day + timedelta(days=rng.randint(1, window))
    end = start + timedelta(days=rng.randint(0, 13))  # a promotion runs at most 14 days
    plan: dict[str, Any] = {
        "discount": rng.choice((0.1, 0.15, 0.2, 0.3)),
        "start": iso(start),
        "end": iso(end),
    }
    first = series[0].split("|")[0]
    if level in ("product_region", "product"):
        plan["product_id"] = first
    elif level in ("category", "category_region"):
        plan["category"] = first
    else:
        plan["category"] = rng.choice(targets.series["category"])
    return plan


# ------------------------------------------------------------------------------------------- analysts


def literal_values(type_text: str) -> list[str]:
    """The allowed values of a report parameter typed ``Literal['a', 'b']`` (or a list of them)."""
    match = re.search(r"Literal\[([^\]]*)\]", type_text)
    return re.findall(r"'([^']*)'", match.group(1)) if match else []


def filter_members(param: ReportParam, targets: Targets) -> list[str]:
    return literal_values(param.type) or targets.members.get(param.name, [])


def date_range(targets: Targets, rng: random.Random) -> tuple[date, date]:
    """A period an analyst looks at: the last week, month, quarter or year, a calendar month, or any span."""
    assert targets.first_day is not None and targets.last_day is not None
    first, last = targets.first_day, targets.last_day
    kind = rng.choice(("last", "last", "month", "span"))
    if kind == "last":
        start, end = last - timedelta(days=rng.choice((6, 29, 89, 364))), last
    elif kind == "month":
        end = last - timedelta(days=rng.randint(0, max(0, (last - first).days)))
        start = end.replace(day=1)
    else:
        start = first + timedelta(days=rng.randint(0, max(0, (last - first).days)))
        end = start + timedelta(days=rng.randint(0, 120))
    return max(start, first), min(end, last)


def recent_day(targets: Targets, rng: random.Random) -> date:
    assert targets.first_day is not None and targets.last_day is not None
    return max(targets.first_day, targets.last_day - timedelta(days=rng.choice((0, 0, 7, 30, 90, 365))))


def report_params(spec: ReportSpec, targets: Targets, rng: random.Random) -> dict[str, Any]:
    """Parameters valid for this report (its listing gives their names, types, defaults and examples):
    now and then its own options, a date range or day, and a few filters."""
    params: dict[str, Any] = {}
    for param in spec.params:
        if not param.type.startswith("list[") and param.name not in ("start", "end"):
            value = option_value(param, targets, rng)
            if value is not None:
                params[param.name] = value
    if spec.param("start") and spec.param("end") and rng.random() < 0.6:
        start, end = date_range(targets, rng)
        params["start"], params["end"] = iso(start), iso(end)
        if spec.param("baseline_start") and rng.random() < 0.3:
            length = end - start
            baseline_end = start - timedelta(days=1)
            params["baseline_start"] = iso(baseline_end - length)
            params["baseline_end"] = iso(baseline_end)
    filters = [p for p in spec.params if p.type.startswith("list[") and filter_members(p, targets)]
    plan = goal_plan_of(spec, params, targets)
    if plan is not None:  # goals are split only by their plan's dimensions: the others refuse (422)
        filters = [p for p in filters if p.name in plan]
    for param in rng.sample(filters, min(len(filters), rng.choices((0, 1, 2), weights=(6, 3, 1))[0])):
        members = filter_members(param, targets)[:20]
        params[param.name] = rng.sample(members, min(len(members), rng.choice((1, 1, 2))))
    return params


def goal_plan_of(spec: ReportSpec, params: dict[str, Any], targets: Targets) -> list[str] | None:
    """The dimensions of the goal plan a goal report reads (by its name or its ``level``), else None."""
    if spec.name.startswith("goal-attainment-by-"):
        return targets.goal_plans.get(spec.name.removeprefix("goal-attainment-by-"), [])
    level = spec.param("level")
    if spec.section == "Goal plan" and level is not None:
        return targets.goal_plans.get(str(params.get("level", level.default)), [])
    return None


def option_value(param: ReportParam, targets: Targets, rng: random.Random) -> Any:
    """A report's own option: set now and then (None: left to its default)."""
    name, kind = param.name, param.type
    if name in ("as_of", "month"):
        day = recent_day(targets, rng)
        return None if rng.random() < 0.5 else iso(day.replace(day=1) if name == "month" else day)
    if name == "for_product":
        return rng.choice(targets.series["product"]) if rng.random() < 0.3 else None
    if name == "n":
        return rng.choice((1, 3, 5, 10, 20, 50)) if rng.random() < 0.7 else None
    if name.startswith("baseline_"):
        return None  # only with start and end (above)
    if literal_values(kind):
        return rng.choice(literal_values(kind)) if rng.random() < 0.6 else None
    if kind == "bool":
        return rng.choice((True, False)) if rng.random() < 0.3 else None
    if param.example is not None and kind in ("int", "float") and rng.random() < 0.25:
        return param.example
    return None


def query_string(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Query parameters as the API reads them: a list repeats its name, booleans are true/false."""
    pairs = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, str(item).lower() if isinstance(item, bool) else str(item)))
    return pairs


@dataclass
class QueryAsk:
    body: dict[str, Any]
    outputs: list[str]
    member_filters: dict[str, tuple[str, set[str]]] = field(default_factory=dict)  # dim -> (operator, values)
    minimum: tuple[str, float] | None = None  # a measure's range filter: (measure, low)
    descending: str | None = None
    end: date | None = None


def analytics_query(targets: Targets, rng: random.Random) -> QueryAsk:
    """An ad-hoc question: a few measures by zero to two dimensions, over a period, with filters; now and
    then one about the goal plan (goals are monthly and split only by their plan's dimensions)."""
    plain = [m for m in targets.measures if m not in GOAL_MEASURES]
    goals = [m for m in targets.measures if m in GOAL_MEASURES]
    usable = [d for d in QUERY_DIMENSIONS if d in targets.dimensions]
    if goals and targets.goal_plans and rng.random() < 0.2:
        plan = rng.choice(list(targets.goal_plans.values()))
        measures = rng.sample(goals, rng.randint(1, len(goals))) + (["revenue"] if rng.random() < 0.7 else [])
        dimensions, filterable, grains = rng.sample(plan, rng.choice((0, 1))), plan, GOAL_GRAINS
    else:
        measures = rng.sample(plain, rng.randint(1, min(3, len(plain))))
        dimensions, filterable, grains = rng.sample(usable, rng.choice((0, 1, 1, 2))), usable, GRAINS
    ask = QueryAsk({"measures": measures, "dimensions": dimensions}, [])
    grain = _query_period(ask, targets, rng, grains)
    _query_filters(ask, targets, rng, [d for d in filterable if d in targets.members])
    numeric = [m for m in measures if m in ("revenue", "units", "orders", "lines")]
    if numeric and rng.random() < 0.5:
        ask.body["order"] = [{"member": numeric[0], "direction": "desc"}]
        ask.descending = numeric[0]
    ask.body["limit"] = rng.choice((10, 50, 100, 1000))
    ask.outputs = (["period"] if grain else []) + dimensions + measures
    if "compare" in ask.body:
        ask.outputs += [f"{m}_{s}" for m in measures for s in ("previous", "change", "change_pct")]
    return ask


def _query_period(
    ask: QueryAsk, targets: Targets, rng: random.Random, grains: Sequence[str | None]
) -> str | None:
    """A date range (and a grain) on most questions; a comparison period on some."""
    if rng.random() >= 0.6:
        return None
    start, end = date_range(targets, rng)
    grain = rng.choice(grains)
    if grain == "day" and (end - start).days > 92:
        grain = "week"
    ask.body["time_dimension"] = {"grain": grain, "date_range": [iso(start), iso(end)]}
    ask.end = end
    if rng.random() < 0.25 and not set(ask.body["measures"]) & GOAL_MEASURES:
        ask.body["compare"] = rng.choice(("previous_period", "same_period_last_year"))
    return grain


def _query_filters(ask: QueryAsk, targets: Targets, rng: random.Random, dimensions: list[str]) -> None:
    """Zero to two member filters (in, equals, not in), and on some questions a measure's lower bound."""
    filters = []
    for dimension in rng.sample(dimensions, min(len(dimensions), rng.choice((0, 0, 1, 2)))):
        values = rng.sample(targets.members[dimension][:20], min(2, len(targets.members[dimension])))
        operator = rng.choice(("in", "in", "equals", "not_in"))
        values = values[:1] if operator == "equals" else values
        filters.append({"member": dimension, "operator": operator, "values": values})
        ask.member_filters[dimension] = (operator, set(values))
    numeric = [m for m in ask.body["measures"] if m in ("revenue", "units", "orders", "lines")]
    if numeric and rng.random() < 0.15:
        ask.minimum = (numeric[0], float(rng.choice((1, 10, 100))))
        filters.append({"member": numeric[0], "operator": "range", "values": [ask.minimum[1], None]})
    if filters:
        ask.body["filters"] = filters


def insights_params(targets: Targets, rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if rng.random() < 0.5:
        params["n"] = rng.randint(1, 20)
    if rng.random() < 0.5:
        params["period"] = rng.choice(("week", "month"))
    if rng.random() < 0.2 and targets.members.get("region"):
        params["region"] = [rng.choice(targets.members["region"])]
    if rng.random() < 0.15:
        params["as_of"] = iso(targets.last_day - timedelta(days=rng.choice((1, 7))))  # type: ignore[operator]
    return params


# ------------------------------------------------------------------------------------------- new sales


@dataclass
class SalesAsk:
    body: dict[str, Any]
    lines: int
    revenue: float


class OrderIds:
    """Order ids never sent before: the run's own prefix and a counter."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{ORDER_PREFIX}-{self.run}-{next(self.counter):06d}"


def sales_batch(targets: Targets, rng: random.Random, orders: OrderIds) -> SalesAsk:
    """One to three new orders of known customers, one to four lines each, at the products' usual prices,
    dated just after the last sale (the same day: the data's 'now')."""
    lines, revenue = [], 0.0
    for _ in range(rng.randint(1, 3)):
        order_id, customer = orders.next(), rng.choice(targets.customer_ids)
        salesman = rng.choice(targets.members["salesman"]) if targets.members.get("salesman") else None
        ordered_at = order_time(targets, rng)
        for number, product in enumerate(rng.sample(targets.products, rng.randint(1, 4)), start=1):
            line = order_line(product, rng, order_id, number, customer, ordered_at)
            if salesman and rng.random() < 0.5:
                line["salesman_id"] = salesman
            revenue += line["quantity"] * line["unit_price"] * (1 - line["discount"])
            lines.append(line)
    return SalesAsk({"lines": lines}, len(lines), revenue)


def order_line(
    product: Product, rng: random.Random, order_id: str, number: int, customer: str, ordered_at: datetime
) -> dict[str, Any]:
    quantity = rng.randint(1, 5)
    discount = rng.choice((0.0, 0.0, 0.0, 0.1, 0.2))
    line: dict[str, Any] = {
        "order_id": order_id,
        "line": number,
        "ordered_at": ordered_at.isoformat(timespec="seconds"),
        "customer_id": customer,
        "product_id": product.product_id,
        "quantity": quantity,
        "unit_price": product.unit_price,
        "discount": discount,
    }
    if product.margin is not None and rng.random() < 0.7:
        line["cost"] = round(quantity * product.unit_price * (1 - discount) * (1 - product.margin), 2)
    return line


def order_time(targets: Targets, rng: random.Random) -> datetime:
    """Up to a minute after the last sale, on its day (never past the service's clock by more than its
    tolerance; forecasts keep starting from the same day)."""
    if targets.last_sale is None:
        assert targets.last_day is not None
        return datetime.combine(targets.last_day, time(12))
    end_of_day = datetime.combine(targets.last_sale.date(), time(23, 59, 59))
    return min(targets.last_sale + timedelta(seconds=rng.randint(0, 60)), end_of_day)
