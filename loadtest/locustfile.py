"""Load test of the salespulse service: its real users at once.

- **MarketingSystem** (most of the traffic): segments customers one by one and in batches, by warehouse id
  and by raw features; predicts customer value by id and by purchase summary; reads customer profiles and
  the segment profiles.
- **Planner**: forecasts at every level (product x region, the default, then product, category, region,
  category x region, total) and frequency (D, W, M), horizons up to the limits, with or without intervals,
  now and then with a planned promotion.
- **Analyst**: named reports (every one the service lists, with date ranges, filters and options valid for
  each), KPI cards, ad-hoc queries with varied measures, dimensions and filters, and the insights.
- **SalesTrickle** (one user): posts a few new order lines every few seconds for known customers and
  products, each with an order id never sent before (``LOAD-<run>-<n>``). It needs the write key: without
  ``--api-key`` it does not run (the log says so).

Payloads are drawn from the warehouse through the API (so the test works against a deployed instance):
before the users start, the test reads the customers, products, series of every level, filter members,
reports and the data's date range (GET /analytics/meta, /analytics/reports, /segments, /health, a few
POST /analytics/query). Those requests are not in the statistics. Every request checks the status, the
answer's shape and a business rule (forecast points = horizon and inside their intervals, a report applied
its filters, an ingest acknowledged every line, ...) and names the broken rule as the failure.

Run it headless and bounded against a running service (``make run`` serves on http://127.0.0.1:3000):

    .venv/bin/locust -f loadtest/locustfile.py --headless -u 10 -r 10 -t 60s \\
        --host http://127.0.0.1:3000 --api-key "$(cat data/.api-key)"

and against a deployed instance the same with ``--host https://your-instance`` (and its key). Locust exits
with 1 when any request failed, so the command gates a pipeline. ``--csv out/load`` writes the statistics
(``out/load_stats.csv``, by request name), ``--run-report out/run.json`` the run's own record (requests,
failures, p50/p95 per user type, what was asked, sales posted), ``--only-summary`` keeps the console quiet.
Use at least 4 users (-u) so that every user type runs. ``loadtest/soak.py`` (``make soak``) runs this file
for 30 minutes and reports the server processes' memory at start and end.

Options (also as environment variables):

    --api-key KEY            x-api-key on every request: the write key of       (LOCUST_API_KEY)
                             POST /analytics/sales, and the read key of a
                             service with SALESPULSE_READ_ACCESS=keyed
    --no-sales               do not post sales even with a key                  (LOCUST_NO_SALES)
    --customer-ids C-1,C-2   these customers instead of the discovered ones     (LOCUST_CUSTOMER_IDS)
    --seed N                 the same requests in the same order                (LOCUST_SEED)
    --run-report PATH        the run's record as JSON, when the test stops      (LOCUST_RUN_REPORT)
    --versions-report PATH   the model versions that answered, as JSON          (LOCUST_VERSIONS_REPORT)
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the traffic package beside this file

from traffic import checks, payloads
from traffic.checks import Invalid
from traffic.discovery import DiscoveryError, ReportSpec, Targets, discover
from traffic.runlog import RunLog

log = logging.getLogger("salespulse.loadtest")

LOGGED_PER_REASON = 3  # failures logged in full per reason; Locust counts them all
SEGMENT_BATCH = (5, 50)
VALUE_BATCH = (1, 25)
FEATURE_BATCH = (1, 20)
ANALYST_WORK = {"named_report": 4, "kpi": 3, "query": 3, "insights": 1}


class Traffic:
    """What the users share: the discovered targets, the decks they deal from, the run's record."""

    def __init__(self) -> None:
        self.targets = Targets()
        self.rng = random.Random()
        self.run = RunLog()
        self.orders = payloads.OrderIds(secrets.token_hex(3))
        self.decks: dict[str, payloads.Deck[Any]] = {}
        self.logged: Counter[str] = Counter()
        self.ready = False  # discovery done: users may start

    def start(self, targets: Targets, seed: int | None) -> None:
        self.targets, self.run = targets, RunLog()
        self.rng = random.Random(seed)
        if seed is not None:
            self.orders = payloads.OrderIds(f"{seed}x{secrets.token_hex(2)}")  # ids stay new on every run
        self.decks = {
            "level": payloads.Deck(payloads.weighted(payloads.LEVEL_WEIGHTS), self.rng),
            "freq": payloads.Deck(payloads.weighted(payloads.FREQ_WEIGHTS), self.rng),
            "report": payloads.Deck([r for r in targets.reports if not r.is_kpi], self.rng),
            "kpi": payloads.Deck([r for r in targets.reports if r.is_kpi], self.rng),
            "analyst": payloads.Deck(payloads.weighted(ANALYST_WORK), self.rng),
        }
        self.ready = True


TRAFFIC = Traffic()


# ------------------------------------------------------------------------------------------- options


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--api-key",
        env_var="LOCUST_API_KEY",
        default="",
        help="x-api-key on every request: the write key (sales) and, for a keyed service, the read key.",
    )
    parser.add_argument(
        "--no-sales",
        env_var="LOCUST_NO_SALES",
        action="store_true",
        default=False,
        help="Do not post sales (SalesTrickle), even with an API key.",
    )
    parser.add_argument(
        "--customer-ids",
        env_var="LOCUST_CUSTOMER_IDS",
        default="",
        help="Comma-separated warehouse customer ids to use (default: discovered from the service).",
    )
    parser.add_argument("--seed", env_var="LOCUST_SEED", type=int, default=None, help="Random seed.")
    parser.add_argument(
        "--run-report",
        env_var="LOCUST_RUN_REPORT",
        default="",
        help="Write the run's record (per user type, what was asked, sales posted) to this JSON file.",
    )
    parser.add_argument(
        "--versions-report",
        env_var="LOCUST_VERSIONS_REPORT",
        default="",
        help="Write the model versions that answered to this JSON file at the end.",
    )


# ------------------------------------------------------------------------------------------- events


@events.test_start.add_listener
def _discover(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if environment.host is None:
        _abort(environment, "give the service's URL with --host, e.g. --host http://127.0.0.1:3000")
        return
    given = [i.strip() for i in options.customer_ids.split(",") if i.strip()]
    try:
        targets = discover(environment.host, options.api_key or None, given)
        TRAFFIC.start(targets, options.seed)
    except (DiscoveryError, KeyError, TypeError, ValueError) as error:
        _abort(environment, f"discovery failed: {error!r}")
        return
    log.info("load test targets: %s", targets.describe())
    if not targets.api_key or options.no_sales:
        reason = (
            "--no-sales" if options.no_sales else "no --api-key (POST /analytics/sales needs the write key)"
        )
        TRAFFIC.run.disabled[SalesTrickle.__name__] = reason
        environment.user_classes[:] = [u for u in environment.user_classes if u is not SalesTrickle]
        log.warning("SalesTrickle disabled: %s", reason)


def _abort(environment: Environment, message: str) -> None:
    log.error("load test not started: %s", message)
    environment.process_exit_code = 2
    if environment.runner is not None:  # quit from outside the runner's start, which called this
        gevent.spawn(environment.runner.quit)


@events.request.add_listener
def _record(name: str, response_time: float, exception: Exception | None, context: dict, **_: Any) -> None:
    TRAFFIC.run.request(context.get("user_type", "?"), name, response_time, exception is not None)


@events.test_stop.add_listener
def _report(environment: Environment, **_: Any) -> None:
    run = TRAFFIC.run
    run.stopped = run.stopped or time.monotonic()
    report = run.report()
    for user_type, stats in report["user_types"].items():
        log.info("%s: %s", user_type, stats)
    log.info("sales posted: %s; model versions: %s", report["sales_posted"], report["model_versions"])
    options = environment.parsed_options
    if getattr(options, "run_report", ""):
        Path(options.run_report).write_text(json.dumps(report, indent=2))
    if getattr(options, "versions_report", ""):
        Path(options.versions_report).write_text(json.dumps(run.versions_seen(), indent=2))


# ------------------------------------------------------------------------------------------- requests


def _answer(response: Any, name: str, request: str) -> dict[str, Any] | None:
    """The body as a dict, or None after marking the request failed (status other than 200, not JSON)."""
    if response.status_code != 200:
        _fail(response, Invalid(f"{name}: status {response.status_code}", response.text or ""), request)
        return None
    try:
        body = response.json()
    except ValueError:
        _fail(response, Invalid(f"{name}: not JSON", response.text or ""), request)
        return None
    if not isinstance(body, dict):
        _fail(response, Invalid(f"{name}: not a JSON object", body), request)
        return None
    return body


def _fail(response: Any, invalid: Invalid, request: str = "") -> None:
    """Count the failure under its reason; log the first few of each reason with the request and answer."""
    response.failure(invalid.reason)
    TRAFFIC.logged[invalid.reason] += 1
    if TRAFFIC.logged[invalid.reason] <= LOGGED_PER_REASON:
        log.error("%s\n  request: %s\n  answer: %s", invalid.reason, request[:800], invalid.detail)


class SalesPulseUser(FastHttpUser):
    abstract = True

    def __init__(self, environment: Environment) -> None:
        # Users start after discovery, so the key is known here; the session takes its headers at creation.
        if TRAFFIC.targets.api_key:
            self.default_headers = {"x-api-key": TRAFFIC.targets.api_key}
        super().__init__(environment)

    def on_start(self) -> None:
        if not TRAFFIC.ready:  # discovery failed: the test is quitting; wait for it, quietly
            gevent.sleep(3600)

    def context(self) -> dict[str, Any]:
        return {"user_type": type(self).__name__}

    @property
    def targets(self) -> Targets:
        return TRAFFIC.targets

    @property
    def rng(self) -> random.Random:
        return TRAFFIC.rng

    def call(
        self,
        method: str,
        path: str,
        name: str,
        check: Callable[[dict[str, Any]], None],
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """One request, its answer checked by ``check``; returns the body when everything held."""
        url = path + (f"?{urllib.parse.urlencode(payloads.query_string(params))}" if params else "")
        described = f"{method} {url} {json.dumps(body)[:600] if body is not None else ''}"
        with self.client.request(method, url, name=name, json=body, catch_response=True) as response:
            answer = _answer(response, name, described)
            if answer is None:
                return None
            try:
                check(answer)
            except Invalid as invalid:
                _fail(response, invalid, described)
                return None
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
                _fail(response, Invalid(f"{name}: malformed answer", f"{error!r}: {answer}"), described)
                return None
            return answer


class MarketingSystem(SalesPulseUser):
    """CRM and campaign tools: segment and value customers, one at a time as they show up and in batches."""

    weight = 5
    wait_time = between(0.05, 0.5)  # machines, not people

    def segment(self, body: dict[str, Any], ids: list[str | None], name: str) -> None:
        answer = self.call(
            "POST", "/segment", name, lambda b: checks.check_segmented(b, ids, self.targets), body
        )
        if answer is not None:
            TRAFFIC.run.saw_version("customer-segmenter", str(answer.get("model_version")))

    @task(4)
    def segment_one_by_id(self) -> None:
        customer = self.rng.choice(self.targets.customer_ids)
        self.segment({"customer_ids": [customer]}, [customer], "/segment (by id)")

    @task(2)
    def segment_batch_by_ids(self) -> None:
        size = min(len(self.targets.customer_ids), self.rng.randint(*SEGMENT_BATCH))
        ids = self.rng.sample(self.targets.customer_ids, size)
        self.segment({"customer_ids": ids}, list(ids), "/segment (by ids)")

    @task(3)
    def segment_by_features(self) -> None:
        rows = payloads.feature_rows(self.targets, self.rng, self.rng.randint(*FEATURE_BATCH))
        self.segment({"customers": rows}, [r.get("customer_id") for r in rows], "/segment (by features)")

    @task(2)
    def predict_by_ids(self) -> None:
        ids = self.rng.sample(self.targets.customer_ids, self.rng.randint(*VALUE_BATCH))
        options = payloads.value_options(self.rng)
        self.predict({"customer_ids": ids, **options}, list(ids), options, "/predict/customers (by ids)")

    @task(1)
    def predict_by_summaries(self) -> None:
        rows = payloads.summary_rows(self.targets, self.rng, self.rng.randint(*VALUE_BATCH))
        options = payloads.value_options(self.rng)
        ids = [r["customer_id"] for r in rows]
        self.predict({"customers": rows, **options}, ids, options, "/predict/customers (by summaries)")

    def predict(self, body: dict[str, Any], ids: list[Any], options: dict[str, Any], name: str) -> None:
        known = "customer_ids" in body

        def check(answer: dict[str, Any]) -> None:
            checks.check_customer_values(answer, ids, options, known=known)

        answer = self.call("POST", "/predict/customers", name, check, body)
        if answer is not None:
            TRAFFIC.run.saw_version("customer-value", str(answer.get("model_version")))

    @task(2)
    def customer_profile(self) -> None:
        customer = self.rng.choice(self.targets.customer_ids)
        path = f"/customers/{urllib.parse.quote(customer, safe='')}"
        self.call("GET", path, "/customers/[id]", lambda b: checks.check_profile(b, customer))

    @task(1)
    def segment_profiles(self) -> None:
        self.call("GET", "/segments", "/segments", checks.check_segment_profiles)


class Planner(SalesPulseUser):
    """Demand planning screens: forecasts at every level and frequency, now and then a what-if promotion."""

    weight = 3
    wait_time = between(0.1, 1.0)

    @task
    def forecast(self) -> None:
        level, freq = TRAFFIC.decks["level"].deal(), TRAFFIC.decks["freq"].deal()
        ask = payloads.forecast_request(self.targets, self.rng, level, freq)
        answer = self.call(
            "POST", "/forecast", "/forecast", lambda b: checks.check_forecast(b, ask, self.targets), ask.body
        )
        if answer is not None:
            TRAFFIC.run.saw_version(str(answer.get("model")), str(answer.get("model_version")))
            TRAFFIC.run.ask("forecast level", level)
            TRAFFIC.run.ask("forecast freq", freq)
            if "promotions" in ask.body:
                TRAFFIC.run.ask("forecast with", "promotion")


class Analyst(SalesPulseUser):
    """People on the dashboard: named reports, KPI cards, ad-hoc queries and the insights."""

    weight = 2
    wait_time = between(0.2, 2.0)

    def report(self, spec: ReportSpec, name: str) -> None:
        params = payloads.report_params(spec, self.targets, self.rng)
        answer = self.call(
            "GET",
            f"/analytics/reports/{spec.name}",
            name,
            lambda b: checks.check_report(b, spec, params),
            params=params,
        )
        if answer is not None:
            TRAFFIC.run.ask("report", spec.name)

    @task
    def work(self) -> None:
        """The next thing an analyst does, dealt from a shared deck (reports 4, KPIs 3, queries 3, insights
        1): random, yet a short run with one analyst still does each."""
        getattr(self, TRAFFIC.decks["analyst"].deal())()

    def named_report(self) -> None:
        self.report(TRAFFIC.decks["report"].deal(), "/analytics/reports/[name]")

    def kpi(self) -> None:
        self.report(TRAFFIC.decks["kpi"].deal(), "/analytics/reports/kpi-[name]")

    def query(self) -> None:
        ask = payloads.analytics_query(self.targets, self.rng)
        self.call(
            "POST", "/analytics/query", "/analytics/query", lambda b: checks.check_query(b, ask), ask.body
        )

    def insights(self) -> None:
        params = payloads.insights_params(self.targets, self.rng)
        self.call(
            "GET",
            "/analytics/insights",
            "/analytics/insights",
            lambda b: checks.check_insights(b, params),
            params=params,
        )


class SalesTrickle(SalesPulseUser):
    """A point-of-sale system posting the orders it takes: new lines for known customers and products."""

    fixed_count = 1  # one sender whatever the number of users: a trickle
    wait_time = between(1.0, 4.0)

    @task
    def post_sales(self) -> None:
        ask = payloads.sales_batch(self.targets, self.rng, TRAFFIC.orders)
        answer = self.call(
            "POST", "/analytics/sales", "/analytics/sales", lambda b: checks.check_ingested(b, ask), ask.body
        )
        if answer is not None:
            TRAFFIC.run.posted(ask.lines, ask.revenue)
