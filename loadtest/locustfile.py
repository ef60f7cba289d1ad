"""Load test of the salespulse service: the traffic of marketing systems, planners and analysts at once.

Run it headless and bounded against a running service (``salespulse serve`` or ``bentoml serve``):

    .venv/bin/locust -f loadtest/locustfile.py --headless -u 10 -r 5 -t 30s --host http://127.0.0.1:3000

add ``--csv out/load`` for the statistics as CSV (``out/load_stats.csv``; the ``Aggregated`` row holds the
totals), or drop ``--headless`` for the web UI on http://127.0.0.1:8089. Locust exits with 1 when any request
failed, so the command can gate a pipeline.

Options (also as environment variables):

    --customer-ids C-0000001,C-0000002   ids for the segment-by-ids task    (LOCUST_CUSTOMER_IDS)
    --api-key KEY                        sent as x-api-key, for a service    (LOCUST_API_KEY)
                                         with SALESPULSE_READ_ACCESS=keyed
    --versions-report PATH               write the model versions that       (LOCUST_VERSIONS_REPORT)
                                         answered, as JSON, when the test stops

Without --customer-ids the test asks the service once, before the users start, for its top customers
(GET /analytics/reports/top-customers), the categories to forecast (POST /analytics/query) and the last day
of sales (GET /health); when the analytics API is not there it segments raw feature values instead and
forecasts the 'Technology' category. Those discovery requests are not part of the statistics.

Every request checks the status (200) and the shape of the answer, and marks a failure with the reason.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, tag, task
from locust.env import Environment

log = logging.getLogger("salespulse.loadtest")

FALLBACK_CATEGORIES = ["Technology"]
SEGMENT_BATCH = 5
DISCOVERED_CUSTOMERS = 200
FORECAST_HORIZON = 14


@dataclass
class Targets:
    """What the users ask about, found once per test run (or given on the command line)."""

    customer_ids: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=lambda: list(FALLBACK_CATEGORIES))
    last_sale: date | None = None
    api_key: str | None = None


@dataclass
class VersionLog:
    """Which model version answered each prediction: shows whether traffic spanned a model swap."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, model: str, version: str) -> None:
        with self.lock:
            self.counts.setdefault(model, Counter())[version] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {model: dict(counter) for model, counter in self.counts.items()}


TARGETS = Targets()
VERSIONS = VersionLog()


# ------------------------------------------------------------------------------------------- options


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--customer-ids",
        env_var="LOCUST_CUSTOMER_IDS",
        default="",
        help="Comma-separated warehouse customer ids to segment (default: discovered from the service).",
    )
    parser.add_argument(
        "--api-key",
        env_var="LOCUST_API_KEY",
        default="",
        help="x-api-key header for every request (needed when the service's read access is keyed).",
    )
    parser.add_argument(
        "--versions-report",
        env_var="LOCUST_VERSIONS_REPORT",
        default="",
        help="Write the model versions that answered predictions to this JSON file at the end.",
    )


# ------------------------------------------------------------------------------------------- discovery


def _fetch(host: str, path: str, api_key: str | None, body: object | None = None) -> Any:
    """One discovery request with the standard library: it must not count in the load statistics."""
    headers = {"content-type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(host.rstrip("/") + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def discover(host: str, options: Any) -> Targets:
    api_key = options.api_key or None
    targets = Targets(api_key=api_key)
    given = [i.strip() for i in options.customer_ids.split(",") if i.strip()]
    try:
        if given:
            targets.customer_ids = given
        else:
            top = _fetch(host, f"/analytics/reports/top-customers?n={DISCOVERED_CUSTOMERS}", api_key)
            targets.customer_ids = [str(row["customer"]) for row in top["rows"] if row.get("customer")]
    except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
        log.warning("no customer ids discovered (%s): segmenting raw feature values instead", error)
    try:
        query = {"measures": ["revenue"], "dimensions": ["category"], "limit": 50}
        rows = _fetch(host, "/analytics/query", api_key, query)["rows"]
        targets.categories = [
            str(row["category"]) for row in rows if row.get("category")
        ] or targets.categories
    except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
        log.warning("no categories discovered (%s): forecasting %s", error, targets.categories)
    try:
        last_sale = _fetch(host, "/health", api_key)["warehouse"]["last_sale"]
        targets.last_sale = date.fromisoformat(last_sale[:10])
    except (urllib.error.URLError, OSError, KeyError, ValueError, TypeError) as error:
        log.warning("no last sale day discovered (%s): analytics queries cover all data", error)
    return targets


@events.test_start.add_listener
def _discover(environment: Environment, **_: Any) -> None:
    global TARGETS
    if environment.host is None:
        raise ValueError("Give the service's URL with --host, e.g. --host http://127.0.0.1:3000")
    TARGETS = discover(environment.host, environment.parsed_options)
    log.info(
        "load test targets: %d customer ids, categories %s, last sale %s",
        len(TARGETS.customer_ids),
        TARGETS.categories,
        TARGETS.last_sale,
    )


@events.test_stop.add_listener
def _report_versions(environment: Environment, **_: Any) -> None:
    seen = VERSIONS.as_dict()
    log.info("model versions that answered: %s", seen)
    path = getattr(environment.parsed_options, "versions_report", "")
    if path:
        Path(path).write_text(json.dumps(seen, indent=2))


# ------------------------------------------------------------------------------------------- request data


def random_customer() -> dict[str, float]:
    """Plausible raw features of one customer (the first order is never after the last one)."""
    frequency = random.randint(1, 60)
    average = round(random.uniform(20, 2_000), 2)
    recency = random.randint(0, 600)
    return {
        "recency_days": recency,
        "frequency": frequency,
        "monetary": round(frequency * average, 2),
        "tenure_days": recency + random.randint(0, 900),
        "avg_order_value": average,
    }


def analytics_query() -> dict[str, Any]:
    """One of the questions a sales dashboard asks, over the last quarter of data when it is known."""
    query: dict[str, Any] = random.choice(
        [
            {"measures": ["revenue", "orders"], "dimensions": ["category"]},
            {"measures": ["revenue", "profit", "margin_pct"], "dimensions": ["region"]},
            {
                "measures": ["revenue"],
                "dimensions": ["product"],
                "order": [{"member": "revenue", "direction": "desc"}],
                "limit": 10,
            },
            {"measures": ["revenue", "customers"], "dimensions": ["channel"]},
        ]
    )
    if TARGETS.last_sale is not None:
        start = TARGETS.last_sale - timedelta(days=89)
        query["time_dimension"] = {
            "grain": random.choice(["week", "month", None]),
            "date_range": [start.isoformat(), TARGETS.last_sale.isoformat()],
        }
    return query


def _json(response: Any) -> dict[str, Any] | None:
    """The body as a dict, or None after marking the request failed (bad status or not JSON)."""
    if response.status_code != 200:
        response.failure(f"status {response.status_code}: {(response.text or '')[:300]}")
        return None
    try:
        body = response.json()
    except ValueError:
        response.failure(f"not JSON: {(response.text or '')[:300]}")
        return None
    if not isinstance(body, dict):
        response.failure(f"expected a JSON object, got {type(body).__name__}")
        return None
    return body


# ------------------------------------------------------------------------------------------- users


class SalesPulseUser(FastHttpUser):
    abstract = True
    # Users pause like callers that do some work between requests; a closed loop with no pause measures
    # the client as much as the service.
    wait_time = between(0.05, 0.5)

    def __init__(self, environment: Environment) -> None:
        # Users start after discovery, so the key is known here; the session takes its headers at creation.
        if TARGETS.api_key:
            self.default_headers = {"x-api-key": TARGETS.api_key}
        super().__init__(environment)


class PredictionClient(SalesPulseUser):
    """A marketing system segmenting customers and a planning tool pulling forecasts."""

    weight = 3

    @tag("segment")
    @task(6)
    def segment_one_by_features(self) -> None:
        customer = random_customer() | {"customer_id": f"crm-{random.randint(1, 99_999)}"}
        with self.client.post(
            "/segment", json={"customers": [customer]}, name="/segment [features]", catch_response=True
        ) as response:
            body = _json(response)
            if body is None:
                return
            rows = body.get("customers") or []
            if (
                len(rows) != 1
                or rows[0].get("customer_id") != customer["customer_id"]
                or not rows[0].get("segment")
            ):
                response.failure(f"unexpected answer: {str(body)[:300]}")
                return
            VERSIONS.saw("customer-segmenter", str(body.get("model_version")))

    @tag("segment")
    @task(3)
    def segment_batch_by_ids(self) -> None:
        if len(TARGETS.customer_ids) < SEGMENT_BATCH:
            # No known customers: the same batch size, as raw features.
            payload: dict[str, Any] = {"customers": [random_customer() for _ in range(SEGMENT_BATCH)]}
            name = "/segment [features batch]"
        else:
            payload = {"customer_ids": random.sample(TARGETS.customer_ids, SEGMENT_BATCH)}
            name = "/segment [ids]"
        with self.client.post("/segment", json=payload, name=name, catch_response=True) as response:
            body = _json(response)
            if body is None:
                return
            if len(body.get("customers") or []) != SEGMENT_BATCH:
                response.failure(f"expected {SEGMENT_BATCH} customers: {str(body)[:300]}")
                return
            VERSIONS.saw("customer-segmenter", str(body.get("model_version")))

    @tag("forecast")
    @task(2)
    def forecast_one_series(self) -> None:
        series = random.choice(TARGETS.categories)
        request = {
            "level": "category",
            "series": [series],
            "horizon": FORECAST_HORIZON,
            "intervals": [80, 95],
        }
        with self.client.post("/forecast", json=request, name="/forecast", catch_response=True) as response:
            body = _json(response)
            if body is None:
                return
            answered = body.get("series") or []
            if len(answered) != 1 or len(answered[0].get("points") or []) != FORECAST_HORIZON:
                response.failure(f"expected {FORECAST_HORIZON} points of {series!r}: {str(body)[:300]}")
                return
            VERSIONS.saw(str(body.get("model")), str(body.get("model_version")))


class Analyst(SalesPulseUser):
    """Someone on a dashboard: model and segment pages, a customer profile, ad-hoc analytics queries."""

    weight = 1

    @tag("read")
    @task(1)
    def models(self) -> None:
        with self.client.get("/models", catch_response=True) as response:
            body = _json(response)
            if body is not None and not body.get("models"):
                response.failure("no models listed")

    @tag("read")
    @task(1)
    def segments(self) -> None:
        with self.client.get("/segments", catch_response=True) as response:
            body = _json(response)
            if body is not None and not body.get("segments"):
                response.failure("no segments listed")

    @tag("read")
    @task(1)
    def customer_profile(self) -> None:
        if not TARGETS.customer_ids:
            return
        customer = random.choice(TARGETS.customer_ids)
        with self.client.get(
            f"/customers/{customer}", name="/customers/[id]", catch_response=True
        ) as response:
            body = _json(response)
            if body is not None and body.get("customer_id") != customer:
                response.failure(f"profile of another customer: {str(body)[:300]}")

    @tag("analytics")
    @task(2)
    def query(self) -> None:
        with self.client.post(
            "/analytics/query", json=analytics_query(), name="/analytics/query", catch_response=True
        ) as response:
            body = _json(response)
            if body is not None and "rows" not in body:
                response.failure(f"no rows: {str(body)[:300]}")
