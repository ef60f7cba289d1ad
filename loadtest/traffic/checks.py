"""Checks of every answer: its shape, and at least one business rule that a wrong answer would break
(a forecast has as many points as the horizon and stays inside its own intervals, a report applied the
filters it was given, an ingest acknowledged every line sent, ...).

A check raises :class:`Invalid` with a short reason (the failure's name in Locust's statistics, so their
number stays bounded) and the details (logged).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from traffic.discovery import ReportSpec, Targets
from traffic.payloads import MAX_HORIZON, ForecastAsk, QueryAsk, SalesAsk

FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "avg_order_value")
SHARE_TOLERANCE = 0.01
# Reports whose rows are line sales by the filtered members: each row of a filtered column is a member asked
# for. (Other reports have columns of the same name that describe something else, e.g. a distributor's own
# region.)
MEMBER_ROWS = ("sales-by-", "top-", "bottom-", "kpi-region-contribution")


class Invalid(Exception):
    def __init__(self, reason: str, detail: object = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = str(detail)[:600]


def require(condition: object, reason: str, detail: object = "") -> None:
    if not condition:
        raise Invalid(reason, detail)


def number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def close(a: float, b: float, relative: float = 1e-6, absolute: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=relative, abs_tol=absolute)


# ------------------------------------------------------------------------------------------- marketing


def check_segmented(body: dict[str, Any], ids: list[str | None], targets: Targets) -> None:
    customers = body.get("customers")
    require(isinstance(customers, list) and len(customers) == len(ids), "segment: not one row per customer")
    same_model = str(body.get("model_version")) == targets.segment_version
    for row, customer_id in zip(customers, ids, strict=True):
        require(row.get("customer_id") == customer_id, "segment: rows not in the order asked", row)
        segment = row.get("segment_id")
        require(isinstance(segment, int) and row.get("segment") and row.get("action"), "segment: shape", row)
        require(number(row.get("distance")) and row["distance"] >= 0, "segment: negative distance", row)
        if same_model:  # after a model swap the segments may be others
            require(targets.segments.get(segment) == row["segment"], "segment: name not its id's", row)


def check_customer_values(
    body: dict[str, Any], ids: list[str | None], options: dict[str, Any], *, known: bool
) -> None:
    for name, value in options.items():
        require(close(body.get(name, math.nan), value), f"predict: {name} not echoed", body.get(name))
    require((body.get("as_of") is not None) == known, "predict: as_of set only for warehouse customers")
    customers = body.get("customers")
    require(isinstance(customers, list) and len(customers) == len(ids), "predict: not one row per customer")
    for row, customer_id in zip(customers, ids, strict=True):
        require(row.get("customer_id") == customer_id, "predict: rows not in the order asked", row)
        values = [row.get(k) for k in ("expected_purchases", "expected_purchase_value", "lifetime_value")]
        require(all(number(v) and v >= 0 for v in values), "predict: negative or missing value", row)
        require(0 <= row.get("probability_alive", -1) <= 1, "predict: probability outside [0, 1]", row)
        spend = row["expected_purchases"] * row["expected_purchase_value"]
        require(
            close(row.get("expected_spend", math.nan), spend, 1e-6, 1e-4), "predict: spend != n x value", row
        )


def check_profile(body: dict[str, Any], customer_id: str) -> None:
    require(body.get("customer_id") == customer_id, "customer: another customer's profile", body)
    features = body.get("features") or {}
    require(all(number(features.get(f)) for f in FEATURES), "customer: features missing", features)
    require(
        close(body.get("lifetime_revenue", math.nan), features["monetary"]), "customer: revenue != monetary"
    )
    require((body.get("segment") or {}).get("name"), "customer: no segment", body.get("segment"))
    probability = (body.get("prediction") or {}).get("probability_alive", -1)
    require(0 <= probability <= 1, "customer: probability outside [0, 1]", body.get("prediction"))


def check_segment_profiles(body: dict[str, Any]) -> None:
    segments = body.get("segments")
    require(isinstance(segments, list) and segments, "segments: none listed")
    for share in ("customer_share", "revenue_share"):
        total = sum(s.get(share) or 0 for s in segments)
        require(abs(total - 1) <= SHARE_TOLERANCE, f"segments: {share} does not add up to 1", total)


def check_models(body: dict[str, Any]) -> None:
    models = body.get("models")
    require(isinstance(models, list) and models, "models: none listed")
    require(all(m.get("name") and m.get("version") for m in models), "models: name or version missing")


# ------------------------------------------------------------------------------------------- forecasts


def period_start(day: date, freq: str) -> date:
    if freq == "W":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if freq == "M" else day


def next_period(day: date, freq: str) -> date:
    if freq == "M":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=7 if freq == "W" else 1)


def check_forecast(body: dict[str, Any], ask: ForecastAsk, targets: Targets) -> None:
    require(
        body.get("level") == ask.level and body.get("freq") == ask.freq, "forecast: level or freq changed"
    )
    history = date.fromisoformat(body["history_until"])
    require(targets.last_day is None or history >= targets.last_day, "forecast: history before the last sale")
    answered = body.get("series") or []
    require([s.get("series") for s in answered] == list(dict.fromkeys(ask.series)), "forecast: series order")
    lengths = {len(s.get("points") or []) for s in answered}
    require(len(lengths) == 1, "forecast: series of different lengths", lengths)
    (points,) = lengths
    wanted = ask.horizon if ask.horizon else points  # no horizon: the service's default, within the limit
    require(points == wanted and 1 <= points <= MAX_HORIZON[ask.freq], "forecast: points != horizon", points)
    for series in answered:
        check_points(series["series"], series["points"], ask, history)


def check_points(series: str, points: list[dict[str, Any]], ask: ForecastAsk, history: date) -> None:
    expected = period_start(history + timedelta(days=1), ask.freq)
    for point in points:
        require(point.get("date") == expected.isoformat(), "forecast: dates not consecutive periods", point)
        expected = next_period(expected, ask.freq)
        value = point.get("forecast")
        require(number(value) and value >= 0, "forecast: negative or missing forecast", point)
        require(close(point.get("mean", math.nan), value), "forecast: mean != forecast", point)
        if ask.freq == "D":
            require(number(point.get("median")), "forecast: daily point without median", point)
        bounds = []
        for level in sorted(ask.intervals):
            name = f"{level:g}".replace(".", "_")
            lo, hi = point.get(f"lo_{name}"), point.get(f"hi_{name}")
            require(number(lo) and number(hi), f"forecast: interval {name} missing", point)
            inside = lo <= value * (1 + 1e-9) + 1e-9 and value <= hi * (1 + 1e-9) + 1e-9
            require(inside, "forecast: outside its interval", {"series": series, "level": level, **point})
            bounds.append((lo, hi))
        for (lo, hi), (wider_lo, wider_hi) in itertools.pairwise(bounds):
            require(wider_lo <= lo + 1e-9 and hi <= wider_hi + 1e-9, "forecast: intervals not nested", point)
        if not ask.intervals:
            require(not any(k.startswith(("lo_", "hi_")) for k in point), "forecast: intervals not asked for")


# ------------------------------------------------------------------------------------------- analysts


def same_value(sent: object, echoed: object) -> bool:
    if isinstance(sent, list):
        return isinstance(echoed, list) and [str(v) for v in sent] == [str(v) for v in echoed]
    if isinstance(sent, bool) or isinstance(echoed, bool):
        return sent == echoed
    if number(sent) and number(echoed):
        return close(float(sent), float(echoed))  # type: ignore[arg-type]
    return str(sent) == str(echoed)


def check_rows(body: dict[str, Any], what: str) -> tuple[list[str], list[dict[str, Any]]]:
    columns, rows = body.get("columns"), body.get("rows")
    require(isinstance(columns, list) and isinstance(rows, list), f"{what}: no columns or rows")
    names = [c.get("name") for c in columns]
    require(
        all(isinstance(r, dict) and set(r) <= set(names) for r in rows), f"{what}: row outside the columns"
    )
    return names, rows


def check_report(body: dict[str, Any], spec: ReportSpec, params: dict[str, Any]) -> None:
    kind = "kpi" if spec.is_kpi else "report"
    require(body.get("report") == spec.name, f"{kind}: another report answered", body.get("report"))
    echoed = body.get("params") or {}
    for name, value in params.items():
        require(same_value(value, echoed.get(name)), f"{kind}: parameter not applied", (name, value, echoed))
    names, rows = check_rows(body, kind)
    limit = echoed.get("n")
    require(not number(limit) or len(rows) <= limit, f"{kind}: more rows than n", (limit, len(rows)))
    if spec.name.startswith(MEMBER_ROWS):
        for name, values in params.items():
            if isinstance(values, list) and name in names:
                outside = [r[name] for r in rows if r.get(name) not in values]
                require(not outside, f"{kind}: a row outside its filter", (name, values, outside[:3]))
    if "end" in params and "period" in names:
        late = [r["period"] for r in rows if r.get("period") and r["period"] > params["end"]]
        require(not late, f"{kind}: a period after the end", late[:3])
    KPI_RULES.get(spec.name, lambda rows, params: None)(rows, params)


def _average_order_value(rows: list[dict[str, Any]], params: dict[str, Any]) -> None:
    for row in rows:
        if row.get("orders"):
            expected = row["revenue"] / row["orders"]
            require(close(row["average_order_value"], expected, 1e-6), "kpi: AOV != revenue / orders", row)


def _region_contribution(rows: list[dict[str, Any]], params: dict[str, Any]) -> None:
    shares = [r["share_pct"] for r in rows if r.get("share_pct") is not None]
    require(not shares or abs(sum(shares) - 100) <= 0.1, "kpi: region shares do not add up to 100", shares)
    require(descending(r.get("revenue") for r in rows), "kpi: regions not by revenue", rows)


def _active_salesmen(rows: list[dict[str, Any]], params: dict[str, Any]) -> None:
    for row in rows:
        require(
            0 <= (row.get("active_salesmen") or 0) <= (row.get("salesmen") or 0), "kpi: active > all", row
        )


def _run_rate(rows: list[dict[str, Any]], params: dict[str, Any]) -> None:
    for row in rows:
        require(
            row.get("days_elapsed", 0) <= row.get("days_in_month", 0), "kpi: more days than the month", row
        )


def _profitability(rows: list[dict[str, Any]], params: dict[str, Any]) -> None:
    profits = [r.get("profit") for r in rows]
    ordered = descending(profits) if params.get("direction", "most") == "most" else descending(profits[::-1])
    require(ordered, "kpi: products not ordered by profit", profits)


KPI_RULES = {
    "kpi-average-order-value": _average_order_value,
    "kpi-region-contribution": _region_contribution,
    "kpi-active-salesmen": _active_salesmen,
    "kpi-revenue-run-rate": _run_rate,
    "kpi-product-profitability": _profitability,
}


def descending(values: Iterable[object]) -> bool:
    """Non-increasing, over the numbers (a null sorts last and is not compared)."""
    numbers = [v for v in values if number(v)]
    return all(a >= b for a, b in itertools.pairwise(numbers))  # type: ignore[operator]


def check_query(body: dict[str, Any], ask: QueryAsk) -> None:
    names, rows = check_rows(body, "query")
    missing = [o for o in ask.outputs if o not in names]
    require(not missing, "query: asked-for columns missing", missing)
    require(len(rows) <= ask.body["limit"], "query: more rows than the limit", len(rows))
    for dimension, (operator, values) in ask.member_filters.items():
        if dimension not in names:
            continue
        inside = [r.get(dimension) in values for r in rows]
        wrong = not all(inside) if operator in ("in", "equals") else any(inside)
        require(not wrong, "query: a row outside its filter", (dimension, operator, values))
    if ask.minimum:
        measure, low = ask.minimum
        require(all((r.get(measure) or 0) >= low for r in rows), "query: a row below its range filter", low)
    if ask.descending:
        require(descending(r.get(ask.descending) for r in rows), "query: rows not in the order asked")
    if ask.end and "period" in names:
        late = [r["period"] for r in rows if r.get("period") and str(r["period"]) > ask.end.isoformat()]
        require(not late, "query: a period after the range", late[:3])
    for row in rows:
        revenue, goal, attainment = (row.get(k) for k in ("revenue", "goal_to_date", "goal_attainment_pct"))
        if number(revenue) and number(goal) and goal > 0 and number(attainment):
            require(close(attainment, 100 * revenue / goal, 1e-6), "query: attainment != revenue / goal", row)


def check_insights(body: dict[str, Any], params: dict[str, Any]) -> None:
    insights = body.get("insights")
    require(isinstance(insights, list), "insights: no list")
    require("n" not in params or len(insights) <= params["n"], "insights: more than n", len(insights))
    require(all(i.get("headline") and i.get("report") for i in insights), "insights: without headline")
    require(descending(i.get("impact") for i in insights), "insights: not ranked by impact")
    echoed = body.get("params") or {}
    for name, value in params.items():
        require(same_value(value, echoed.get(name)), "insights: parameter not applied", (name, echoed))
    if "as_of" in params:
        require(body.get("as_of") == params["as_of"], "insights: another day", body.get("as_of"))


def check_ingested(body: dict[str, Any], ask: SalesAsk) -> None:
    counts = {k: body.get(k) for k in ("lines", "inserted", "updated", "unchanged")}
    expected = {"lines": ask.lines, "inserted": ask.lines, "updated": 0, "unchanged": 0}
    require(counts == expected, "sales: not every new line acknowledged", (counts, expected))
