"""Acceptance: the service's real users at once (loadtest/locustfile.py: marketing systems, planners, analysts
and a trickle of new sales) against a real `bentoml serve` on loopback, for 45 s: no request fails, every user
type and every kind of request ran, and the sales posted are in the warehouse afterwards.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import API_KEY, REPO_ROOT, VENV_BIN, RunningService, serve_with_fresh_models

from salespulse.features.series import LEVELS, MAX_HORIZON

sys.path.insert(0, str(REPO_ROOT / "loadtest"))

from traffic import checks, payloads
from traffic.discovery import discover

LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
LOAD_SECONDS = 45
USERS = 10
# Every kind of request each user type makes (Locust's request names).
REQUESTS = {
    "MarketingSystem": {
        "/segment (by id)", "/segment (by ids)", "/segment (by features)", "/predict/customers (by ids)",
        "/predict/customers (by summaries)", "/customers/[id]", "/segments",
    },
    "Planner": {"/forecast"},
    "Analyst": {
        "/analytics/reports/[name]", "/analytics/reports/kpi-[name]", "/analytics/query",
        "/analytics/insights",
    },
    "SalesTrickle": {"/analytics/sales"},
}  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    yield from serve_with_fresh_models(tmp_path_factory.mktemp("load"))


def run_locust(service: RunningService, out: Path, seconds: int, users: int, key: str) -> tuple[int, str]:
    """Locust headless against the service; its exit status and output. The key goes in the environment,
    as a CI secret would."""
    command = [
        str(VENV_BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{seconds}s", "--stop-timeout", "10", "--host", service.url, "--csv", str(out / "load"),
        "--only-summary", "--run-report", str(out / "run.json"),
    ]  # fmt: skip
    env = {**os.environ, "LOCUST_API_KEY": key}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=seconds + 90, check=False
    )
    return done.returncode, done.stdout + done.stderr


def stats_by_name(out: Path) -> dict[str, dict[str, str]]:
    with (out / "load_stats.csv").open() as stats:
        return {row["Name"]: row for row in csv.DictReader(stats)}


def warehouse_totals(service: RunningService) -> dict[str, Any]:
    query = {"measures": ["lines", "revenue"]}
    answer = httpx.post(f"{service.url}/analytics/query", json=query, timeout=30).raise_for_status()
    return answer.json()["rows"][0]


def test_the_real_users_for_45_seconds_fail_no_request(service: RunningService, tmp_path: Path) -> None:
    before = warehouse_totals(service)
    status, output = run_locust(service, tmp_path, LOAD_SECONDS, USERS, API_KEY)
    report = json.loads((tmp_path / "run.json").read_text())
    stats = stats_by_name(tmp_path)
    failures = (tmp_path / "load_failures.csv").read_text()
    print(f"\n{json.dumps(report['user_types'], indent=1)}\nsales posted: {report['sales_posted']}")

    assert status == 0, f"Locust exit status {status}:\n{failures}\n{output[-4000:]}"
    assert int(stats["Aggregated"]["Failure Count"]) == 0, failures
    assert all(t["failures"] == 0 for t in report["user_types"].values()), report["user_types"]
    assert set(report["user_types"]) == set(REQUESTS), report
    for user_type, names in REQUESTS.items():
        assert set(report["requests"][user_type]) == names, report["requests"]
        for name in names:
            assert int(stats[name]["Request Count"]) > 0, name
    # Planners asked for every level and frequency, analysts for KPI cards and named reports.
    assert set(report["asked"]["forecast level"]) == set(LEVELS), report["asked"]
    assert set(report["asked"]["forecast freq"]) == set(MAX_HORIZON), report["asked"]
    assert any(name.startswith("kpi-") for name in report["asked"]["report"]), report["asked"]
    assert any(not name.startswith("kpi-") for name in report["asked"]["report"]), report["asked"]

    # The sales posted are in the warehouse: as many more lines, as much more revenue.
    sales, after = report["sales_posted"], warehouse_totals(service)
    assert sales["lines"] > 0 and sales["batches"] == report["user_types"]["SalesTrickle"]["requests"]
    # Locust's CSV can miss a request that ends as the run stops (a CI run counted 18 of 19).
    assert sales["batches"] - int(stats["/analytics/sales"]["Request Count"]) in (0, 1)
    assert after["lines"] - before["lines"] == sales["lines"]
    assert math.isclose(after["revenue"] - before["revenue"], sales["revenue"], rel_tol=1e-6, abs_tol=0.05)


def test_without_a_key_the_sales_trickle_does_not_run(service: RunningService, tmp_path: Path) -> None:
    status, output = run_locust(service, tmp_path, seconds=5, users=4, key="")
    report = json.loads((tmp_path / "run.json").read_text())
    assert status == 0, output[-4000:]
    assert "SalesTrickle disabled: no --api-key" in output
    assert "SalesTrickle" in report["disabled"] and "SalesTrickle" not in report["user_types"]
    assert "/analytics/sales" not in stats_by_name(tmp_path)
    assert report["sales_posted"]["lines"] == 0
    assert {"MarketingSystem", "Planner", "Analyst"} <= set(report["user_types"])


def test_the_load_test_asks_within_the_services_limits() -> None:
    """The locustfile mirrors the forecast limits (it runs without the salespulse package)."""
    assert payloads.MAX_HORIZON == MAX_HORIZON
    assert set(payloads.LEVELS) == set(LEVELS) == set(payloads.LEVEL_WEIGHTS)


def test_the_checks_catch_wrong_answers(service: RunningService) -> None:
    """The business rules are not vacuous: a real answer passes them, the same answer broken fails them."""
    targets = discover(service.url, None)
    rng = random.Random(5)
    ask = payloads.forecast_request(targets, rng, "product_region", "W")
    ask.body.update(series=ask.series[:1], horizon=6, intervals=[80, 95])
    ask.series, ask.horizon, ask.intervals = ask.series[:1], 6, (80, 95)
    answer = httpx.post(f"{service.url}/forecast", json=ask.body, timeout=60).raise_for_status().json()
    checks.check_forecast(answer, ask, targets)
    point = answer["series"][0]["points"][0]
    broken: list[tuple[str, dict[str, Any]]] = [
        ("points != horizon", {**answer, "series": [{**answer["series"][0], "points": [point]}]}),
        (
            "outside its interval",
            _with_point(answer, {**point, "forecast": point["hi_95"] + 1, "mean": point["hi_95"] + 1}),
        ),
        ("not consecutive", _with_point(answer, {**point, "date": "1999-01-04"})),
    ]
    for reason, body in broken:
        with pytest.raises(checks.Invalid, match=reason):
            checks.check_forecast(body, ask, targets)

    sent = {"lines": 3, "inserted": 3, "updated": 0, "unchanged": 0}
    checks.check_ingested(sent, payloads.SalesAsk({}, 3, 1.0))
    with pytest.raises(checks.Invalid, match="acknowledged"):
        checks.check_ingested({**sent, "inserted": 2, "unchanged": 1}, payloads.SalesAsk({}, 3, 1.0))


def _with_point(answer: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    first = answer["series"][0]
    return {**answer, "series": [{**first, "points": [point, *first["points"][1:]]}, *answer["series"][1:]]}
