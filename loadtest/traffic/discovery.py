"""What the users ask about, read from the service once before they start: real customer ids and profiles,
products with their usual price and margin, the series of every forecast level, the members of every filter,
the named reports with their parameters, the data's date range and the segments in service.

Everything comes through the public API (the warehouse may be on another machine), with the standard
library, so none of these requests counts in Locust's statistics.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

RECENT_DAYS = 90  # series and products sold in the last quarter: every forecast level has their history
ACTIVE_CUSTOMER_DAYS = 180
MAX_CUSTOMERS = 500
MAX_SERIES = 2_000
MAX_MEMBERS = 200
PROFILES = 12  # customer profiles whose features seed the "unknown customer" payloads
FILTER_DIMENSIONS = (
    "region", "country", "state", "category", "subcategory", "product", "channel", "salesman", "distributor",
    "customer_segment",
)  # fmt: skip


class DiscoveryError(RuntimeError):
    """The service did not answer a discovery request as documented: the load test cannot start."""


@dataclass(frozen=True)
class ReportParam:
    name: str
    type: str
    default: Any
    example: Any


@dataclass(frozen=True)
class ReportSpec:
    name: str
    section: str
    params: tuple[ReportParam, ...]

    def param(self, name: str) -> ReportParam | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def is_kpi(self) -> bool:
        return self.name.startswith("kpi-")


@dataclass(frozen=True)
class Product:
    product_id: str
    category: str | None
    unit_price: float  # revenue per unit sold
    margin: float | None  # profit / revenue, where the cost is known


@dataclass
class Targets:
    """The warehouse as the API shows it: what every payload is drawn from."""

    api_key: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    last_sale: datetime | None = None
    customer_ids: list[str] = field(default_factory=list)
    profiles: list[dict[str, float]] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    series: dict[str, list[str]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    measures: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    reports: list[ReportSpec] = field(default_factory=list)
    goal_plans: dict[str, list[str]] = field(default_factory=dict)  # level -> the plan's dimensions
    segments: dict[int, str] = field(default_factory=dict)
    segment_version: str | None = None

    def describe(self) -> str:
        levels = ", ".join(f"{level} {len(keys)}" for level, keys in self.series.items())
        return (
            f"{len(self.customer_ids)} customers, {len(self.products)} products, series ({levels}), "
            f"{len(self.reports)} reports, {len(self.measures)} measures, "
            f"sales {self.first_day}..{self.last_day}"
        )


class Fetcher:
    """GET and POST with the API key; a refusal names the request and the service's answer."""

    def __init__(self, host: str, api_key: str | None) -> None:
        self.host = host.rstrip("/")
        self.api_key = api_key

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        return self._send(path + query, None)

    def post(self, path: str, body: object) -> Any:
        return self._send(path, body)

    def _send(self, path: str, body: object | None) -> Any:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.host + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            answer = error.read().decode(errors="replace")[:500]
            hint = " (a keyed service: give --api-key)" if error.code in (401, 403) else ""
            raise DiscoveryError(f"{path}: {error.code} {answer}{hint}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise DiscoveryError(f"{path}: {error}") from None

    def query(self, **query: Any) -> list[dict[str, Any]]:
        return self.post("/analytics/query", query)["rows"]


def discover(host: str, api_key: str | None, customer_ids: list[str] | None = None) -> Targets:
    fetch = Fetcher(host, api_key)
    targets = Targets(api_key=api_key)
    meta = fetch.get("/analytics/meta")
    targets.first_day = date.fromisoformat(meta["data"]["first_day"])
    targets.last_day = date.fromisoformat(meta["data"]["last_day"])
    targets.measures = [m["name"] for m in meta["measures"] if not m.get("unavailable")]
    targets.dimensions = [d["name"] for d in meta["dimensions"] if not d.get("unavailable")]
    targets.goal_plans = {p["level"]: list(p["dimensions"]) for p in meta.get("goal_plans") or []}
    last_sale = fetch.get("/health").get("warehouse", {}).get("last_sale")
    targets.last_sale = datetime.fromisoformat(last_sale) if last_sale else None
    recent = _window(targets.last_day, RECENT_DAYS)
    _discover_series(fetch, targets, recent)
    targets.products = _products(fetch, recent, with_profit="profit" in targets.measures)
    targets.members = _members(fetch, targets)
    targets.customer_ids = customer_ids or _active_customers(fetch, targets.last_day)
    if not targets.customer_ids:
        raise DiscoveryError("no customer with sales in the last half year")
    targets.profiles = _profiles(fetch, targets.customer_ids[:PROFILES])
    targets.reports = [_report_spec(r) for r in fetch.get("/analytics/reports")["reports"]]
    segments = fetch.get("/segments")
    targets.segments = {int(s["segment_id"]): str(s["segment"]) for s in segments["segments"]}
    targets.segment_version = str(segments["model_version"])
    return targets


def _window(last_day: date, days: int) -> list[str]:
    return [(last_day - timedelta(days=days - 1)).isoformat(), last_day.isoformat()]


def _discover_series(fetch: Fetcher, targets: Targets, recent: list[str]) -> None:
    """The series of every forecast level with sales in the last quarter (the service forecasts a series
    from its recent history; a series without any is refused with 404)."""
    by_product = fetch.query(
        measures=["revenue"],
        dimensions=["product", "region"],
        time_dimension={"date_range": recent},
        order=[{"member": "revenue", "direction": "desc"}],
        limit=MAX_SERIES,
    )
    by_category = fetch.query(
        measures=["revenue"], dimensions=["category", "region"], time_dimension={"date_range": recent}
    )
    by_product = [r for r in by_product if r.get("product") and r.get("region")]
    by_category = [r for r in by_category if r.get("category") and r.get("region")]
    if not by_product or not by_category:
        raise DiscoveryError(f"no sales by product and region in {recent}")
    targets.series = {
        "product_region": [f"{r['product']}|{r['region']}" for r in by_product],
        "product": list(dict.fromkeys(r["product"] for r in by_product)),
        "category": sorted({r["category"] for r in by_category}),
        "region": sorted({r["region"] for r in by_category}),
        "category_region": [f"{r['category']}|{r['region']}" for r in by_category],
        "total": ["total"],
    }


def _products(fetch: Fetcher, recent: list[str], *, with_profit: bool) -> list[Product]:
    """Products sold lately, with the price they sold at and their margin: what a new order line costs."""
    measures = ["revenue", "units"] + (["profit"] if with_profit else [])
    rows = fetch.query(
        measures=measures,
        dimensions=["product", "category"],
        time_dimension={"date_range": recent},
        limit=MAX_SERIES,
    )
    products = []
    for row in rows:
        revenue, units = row.get("revenue") or 0.0, row.get("units") or 0
        if not row.get("product") or units <= 0 or revenue <= 0:
            continue
        profit = row.get("profit")
        margin = profit / revenue if isinstance(profit, int | float) and 0 <= profit < revenue else None
        products.append(Product(row["product"], row.get("category"), round(revenue / units, 2), margin))
    if not products:
        raise DiscoveryError(f"no product sold in {recent}")
    return products


def _members(fetch: Fetcher, targets: Targets) -> dict[str, list[str]]:
    """Values of the report filters and query dimensions, the most selling first."""
    members: dict[str, list[str]] = {}
    for dimension in FILTER_DIMENSIONS:
        if dimension not in targets.dimensions:
            continue
        rows = fetch.query(
            measures=["revenue"],
            dimensions=[dimension],
            order=[{"member": "revenue", "direction": "desc"}],
            limit=MAX_MEMBERS,
        )
        values = [str(r[dimension]) for r in rows if r.get(dimension) not in (None, "")]
        if values:
            members[dimension] = values
    return members


def _active_customers(fetch: Fetcher, last_day: date) -> list[str]:
    rows = fetch.query(
        measures=["revenue"],
        dimensions=["customer"],
        time_dimension={"date_range": _window(last_day, ACTIVE_CUSTOMER_DAYS)},
        order=[{"member": "revenue", "direction": "desc"}],
        limit=MAX_CUSTOMERS,
    )
    return [str(r["customer"]) for r in rows if r.get("customer")]


def _profiles(fetch: Fetcher, customer_ids: list[str]) -> list[dict[str, float]]:
    """Real customers' features (GET /customers/{id}): the raw-feature payloads vary around them."""
    profiles = []
    for customer in customer_ids:
        features = fetch.get(f"/customers/{urllib.parse.quote(customer, safe='')}")["features"]
        profiles.append({name: float(value) for name, value in features.items()})
    return profiles


def _report_spec(report: dict[str, Any]) -> ReportSpec:
    params = tuple(
        ReportParam(p["name"], str(p["type"]), p.get("default"), p.get("example")) for p in report["params"]
    )
    return ReportSpec(str(report["name"]), str(report.get("section", "")), params)
