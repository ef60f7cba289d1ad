"""Written insights and the digest: every figure in a sentence is the figure of the report it cites (run again
here with the cited parameters, and read independently of the rules), every number in a sentence is one of
its figures, the HTTP route answers the same and refuses bad input naming the field, and the digest is one
file that fetches nothing, written from the warehouse or through the service that owns it.
"""

from __future__ import annotations

import math
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import date
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from analytics_support import build_warehouse, copy_warehouse, open_engine
from fastapi.testclient import TestClient
from service_support import free_port
from starlette.applications import Starlette
from starlette.routing import Mount

from cli.digest import gather, render
from salespulse.analytics import insights
from salespulse.analytics.compiler import add_months, month_start
from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.insights import RULES, EngineSource, insights_of, money
from salespulse.analytics.insights import render as render_figure
from salespulse.analytics.reports import run_report
from salespulse.warehouse import owner
from service.analytics_api import create_analytics_app

REL = 1e-9
# The sample ends on 2025-06-30 (a complete month); on 2025-06-10 the month runs and salesmen sit in the
# 60-80% band. Together the cases give every rule something to say.
CASES = [
    {},
    {"period": "week"},
    {"as_of": "2025-06-10"},
    {"as_of": "2025-06-10", "region": ["South"], "period": "week"},
    {"category": ["Technology"]},
    {"start": "2025-01-01", "end": "2025-03-31"},
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_warehouse(tmp_path_factory.mktemp("insights"))
    open_engine(path)._con.close()  # rollups built once
    return path


@pytest.fixture(scope="module")
def engine(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnalyticsEngine]:
    opened = open_engine(copy_warehouse(warehouse, tmp_path_factory.mktemp("engine")))
    yield opened
    opened._con.close()


@pytest.fixture(scope="module")
def answers(engine: AnalyticsEngine) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(case, insights_of(engine, case)) for case in CASES]


# --- each figure against the report it cites ---


def close(actual: Any, expected: Any) -> bool:
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-9)


def cited(engine: AnalyticsEngine, insight: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The cited report, run again with the cited parameters (as the link gives them)."""
    source = insight["sources"][index]
    assert (
        source["link"] == f"/analytics/reports/{source['report']}?{urlencode(source['params'], doseq=True)}"
    )
    return run_report(engine, source["report"], source["params"])


def named(rows: list[dict[str, Any]], dimension: str, text: str) -> dict[str, Any]:
    """The row a sentence names: a region as 'the South region', a product or salesman by name."""
    label = {"product": "product_name", "salesman": "salesman_name"}.get(dimension)
    found = [
        row
        for row in rows
        if text in (f"the {row[dimension]} region", str(row[dimension]), str(row.get(label or dimension)))
    ]
    assert len(found) == 1, (dimension, text)
    return found[0]


def check_change_explained(engine: AnalyticsEngine, insight: dict[str, Any], prefix: str) -> None:
    """The change of the member a sentence names (``prefix``: driver or member) and what led it."""
    figures = insight["figures"]
    report = cited(engine, insight)
    dimension = insight["params"]["dimension"]
    assert report["summary"]["current_period"][1] == figures["period_end"]
    row = named(report["rows"], dimension, figures[prefix])
    assert close(figures[f"{prefix}_change"], row["revenue_change"])
    if f"{prefix}_share_pct" in figures:
        assert close(figures[f"{prefix}_share_pct"], row["contribution_pct"])
    if f"{prefix}_change_pct" in figures:
        assert close(figures[f"{prefix}_change_pct"], row["revenue_change_pct"])
    if f"{prefix}_led_by" in figures:
        drill = insight["sources"][1]
        assert drill["params"][dimension] == [row[dimension]]  # one level down in the member named
        below = cited(engine, insight, 1)
        sub = named(below["rows"], drill["params"]["dimension"], figures[f"{prefix}_led_by"])
        assert close(figures[f"{prefix}_led_by_change"], sub["revenue_change"])
        same_way = [
            r["revenue_change"]
            for r in below["rows"]
            if (r["revenue_change"] > 0) == (row["revenue_change"] > 0)
        ]
        assert max(map(abs, same_way)) == abs(sub["revenue_change"])  # the one that led


def check_revenue_change(engine: AnalyticsEngine, insight: dict[str, Any]) -> None:
    figures, summary = insight["figures"], cited(engine, insight)["summary"]
    assert close(figures["current_revenue"], summary["current_revenue"])
    assert close(figures["baseline_revenue"], summary["baseline_revenue"])
    assert close(figures["change_pct"], 100 * summary["change"] / summary["baseline_revenue"])
    if "driver" in figures:
        check_change_explained(engine, insight, "driver")
        assert (figures["driver_change"] > 0) == (summary["change"] > 0)


def check_swing(engine: AnalyticsEngine, insight: dict[str, Any]) -> None:
    check_change_explained(engine, insight, "member")
    change = cited(engine, insight)["summary"]["change"]
    assert (insight["figures"]["member_change"] > 0) != (change > 0)  # against the total


def check_product_movers(engine: AnalyticsEngine, insight: dict[str, Any]) -> None:
    figures, rows = insight["figures"], cited(engine, insight)["rows"]
    for role, extreme in (("fall", min), ("rise", max)):
        if f"{role}_product" in figures:
            row = named(rows, "product", figures[f"{role}_product"])
            assert close(figures[f"{role}_change"], row["revenue_change"])
            assert row["revenue_change"] == extreme(r["revenue_change"] for r in rows)
            if f"{role}_change_pct" in figures:
                assert close(figures[f"{role}_change_pct"], row["revenue_change_pct"])


def check_goal_pace(engine: AnalyticsEngine, insight: dict[str, Any]) -> None:
    figures, report = insight["figures"], cited(engine, insight)
    level = insight["report"].removeprefix("goal-attainment-by-")
    month = date.fromisoformat(figures["month"])
    assert figures["month"] == insight["params"]["start"] == month_start(month).isoformat()
    rows = [r for r in report["rows"] if r["period"] == figures["month"] and r["goal_to_date"]]
    revenue, to_date, goal = (sum(r[k] for r in rows) for k in ("revenue", "goal_to_date", "goal"))
    assert close(figures["revenue"], revenue) and close(figures["goal"], goal)
    assert close(figures["attainment_pct"], 100 * revenue / to_date)
    if "goal_to_date" in figures:  # a running month, and where it ends at this pace
        assert close(figures["goal_to_date"], to_date)
        assert close(figures["projected_gap"], goal - revenue * goal / to_date)
    if "behind" in figures:
        row = named(rows, level, figures["behind"])
        assert close(figures["behind_attainment_pct"], row["goal_attainment_pct"])
        assert row["goal_attainment_pct"] == min(r["goal_attainment_pct"] for r in rows)


def check_opportunities(engine: AnalyticsEngine, insight: dict[str, Any]) -> None:
    figures, params, rows = insight["figures"], insight["params"], cited(engine, insight)["rows"]
    level = params["level"]
    now = [r for r in rows if r["period"] == figures["month"]]
    earlier = {r[level] for r in rows if r["period"] == figures["previous_month"]}
    assert figures["previous_month"] == add_months(date.fromisoformat(figures["month"]), -1).isoformat()
    assert figures["count"] == len(now) > 0
    assert close(figures["gap_to_goal"], sum(r["gap_to_goal"] for r in now))
    entered = len([r for r in now if r[level] not in earlier])
    assert figures.get("entered", entered) == entered
    if len(now) == 1:
        said = "it entered the band since" if entered else "it was in the band in"
        assert said in insight["headline"]
    assert (figures["low_pct"], figures["high_pct"]) == (params["low_pct"], params["high_pct"])
    if "largest_gap_member" in figures:
        row = named(now, level, figures["largest_gap_member"])
        assert close(figures["largest_gap"], row["gap_to_goal"]) and row["gap_to_goal"] == max(
            r["gap_to_goal"] for r in now
        )


def check_churn_risk(engine: AnalyticsEngine, insight: dict[str, Any]) -> None:
    figures, rows = insight["figures"], cited(engine, insight)["rows"]
    assert figures["customers"] == len(rows) <= insight["params"]["n"]
    assert insight["headline"].startswith("At least") == (len(rows) == insight["params"]["n"])
    assert close(figures["value_at_risk"], sum(r["value_at_risk"] for r in rows))
    assert figures["threshold"] == insight["params"]["threshold"]
    assert figures["top_customer"] == rows[0]["customer_name"]
    assert close(figures["top_value_at_risk"], rows[0]["value_at_risk"])


CHECKS = {
    "revenue-change": check_revenue_change,
    "swing": check_swing,
    "product-movers": check_product_movers,
    "goal-pace": check_goal_pace,
    "opportunities": check_opportunities,
    "churn-risk": check_churn_risk,
}


def test_every_figure_is_the_figure_of_the_report_it_cites(engine, answers) -> None:
    kinds = set()
    for _case, answer in answers:
        for insight in answer["insights"]:
            kinds.add(insight["kind"])
            CHECKS[insight["kind"]](engine, insight)
            assert insight["report"] == insight["sources"][0]["report"]
            assert insight["params"] == insight["sources"][0]["params"]
            backed = [name for source in insight["sources"] for name in source["figures"]]
            assert sorted(backed) == sorted(insight["figures"])  # each figure has its report
    assert kinds == set(RULES) == set(CHECKS)  # every rule was checked


def assert_numbers_are_figures(insight: dict[str, Any]) -> None:
    """Each figure is written in the sentence, and the sentence has no number that is not a figure."""
    text = insight["headline"]
    if text[1:].startswith("he "):  # 'The South region': the figure is 'the South region'
        text = text[0].lower() + text[1:]
    written = sorted(
        (render_figure(v, insight["formats"][k]) for k, v in insight["figures"].items()),
        key=len,
        reverse=True,
    )
    assert all(w in text for w in written), (text, written)
    for w in written:
        text = text.replace(w, "")
    assert not re.search(r"\d", text), (insight["headline"], text)
    assert any(c.isdigit() for c in insight["headline"])  # never a sentence without its number


def test_every_number_in_a_sentence_is_one_of_its_figures(answers) -> None:
    for _case, answer in answers:
        for insight in answer["insights"]:
            assert_numbers_are_figures(insight)


def test_more_customers_at_risk_than_the_report_lists_say_at_least(engine, monkeypatch) -> None:
    monkeypatch.setattr(insights, "CHURN_LIMIT", 50)
    (churn,) = [i for i in insights_of(engine, {"n": 20})["insights"] if i["kind"] == "churn-risk"]
    assert churn["params"]["n"] == churn["figures"]["customers"] == 50
    check_churn_risk(engine, churn)
    assert_numbers_are_figures(churn)


def test_ranked_by_impact_and_the_period_is_the_one_asked(answers) -> None:
    for case, answer in answers:
        impacts = [i["impact"] for i in answer["insights"]]
        assert impacts == sorted(impacts, reverse=True) and all(i > 0 for i in impacts)
        assert 1 <= len(impacts) <= 6
        start, end = (date.fromisoformat(d) for d in answer["current_period"])
        baseline = [date.fromisoformat(d) for d in answer["baseline_period"]]
        assert (baseline[1] - baseline[0]) == (end - start) and (start - baseline[1]).days == 1
        assert end == date.fromisoformat(case.get("end") or case.get("as_of") or "2025-06-30")
        expected_days = {"week": 7, None: 28}.get(case.get("period"), 28) if "start" not in case else None
        if expected_days:
            assert (end - start).days + 1 == expected_days


def test_money_keeps_three_significant_digits() -> None:
    assert [money(v) for v in (950.4, 999.6, 84_249.0, 1_234_567.0, 999_600.0, 12_345_678.0)] == [
        "$950", "$1K", "$84.2K", "$1.23M", "$1M", "$12.3M",
    ]  # fmt: skip


def test_today_is_not_over_so_the_insights_are_as_of_the_day_before(engine) -> None:
    from salespulse.analytics.insights import build_insights

    answer = build_insights(EngineSource(engine), {"n": 1}, today=date(2025, 6, 30))
    assert answer["as_of"] == "2025-06-29" and "not over" in answer["notes"][0]


# --- over HTTP ---


def test_the_route_answers_like_the_rules_and_refuses_naming_the_field(engine) -> None:
    client = TestClient(create_analytics_app(engine))
    params = {"region": ["South"], "period": "week", "as_of": "2025-06-10", "n": 3}
    response = client.get("/insights", params=params)
    assert response.status_code == 200, response.text
    over_http, direct = response.json(), insights_of(engine, params)
    assert over_http["insights"] == direct["insights"] and len(direct["insights"]) == 3
    assert over_http["params"]["region"] == ["South"]
    for bad, field in (
        ({"period": "year"}, "period"),
        ({"start": "2025-06-30", "end": "2025-06-01"}, "end"),
        ({"start": "2025-07-01", "as_of": "2025-06-30"}, "start"),
        ({"n": 0}, "n"),
    ):
        refused = client.get("/insights", params=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert [d["field"] for d in refused.json()["detail"]] == [field], refused.text
    assert "/insights" in client.get("/openapi.json").json()["paths"]
    # A region the data does not have is no error: nothing matches it, and a note says so.
    unknown = client.get("/insights", params={"region": "Atlantis", "as_of": "2025-06-10"})
    assert unknown.status_code == 200 and unknown.json()["insights"] == []
    assert any(
        note.startswith("region: no region 'Atlantis' in the data") for note in unknown.json()["notes"]
    )


# --- the digest ---


class Fetches(HTMLParser):
    """What a page would load or link: every src and href, <script>, <link>, and url() in styles."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [(tag, name, value or "") for name, value in attrs if name in ("src", "href", "srcset")]


def salespulse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["salespulse", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def headlines(answer: dict[str, Any]) -> list[str]:
    return [i["headline"] for i in answer["insights"]]


def test_digest_is_one_file_that_fetches_nothing(
    engine, warehouse, cli_env, isolated_settings, tmp_path
) -> None:
    copy_warehouse(warehouse, tmp_path).rename(isolated_settings)
    page, markdown = tmp_path / "digest.html", tmp_path / "digest.md"
    written = salespulse("report", "digest", "--period", "week", "--out", str(page), env=cli_env)
    assert written.returncode == 0, written.stderr
    salespulse("report", "digest", "--period", "week", "--out", str(markdown), env=cli_env)

    html = page.read_text()
    parsed = Fetches()
    parsed.feed(html)
    assert parsed.refs == [] and not parsed.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "url(" not in html and "@import" not in html and "svg" in parsed.tags
    expected = headlines(insights_of(engine, {"period": "week"}))
    assert expected and all(escape(h) in html for h in expected)

    text = markdown.read_text()
    assert text.startswith("# Sales digest: the week to 30 Jun 2025")
    assert all(h in text for h in expected) and "http" not in text and "<" not in text

    # With --base-url, the cited reports become links to that service, and to nothing else.
    digest = gather(EngineSource(engine), {"period": "week"}, described_source="test")
    linked = Fetches()
    with_links = render(digest, "html", "https://sales.example")
    linked.feed(with_links)
    assert linked.refs and all(
        v.startswith("https://sales.example/analytics/reports/") for _, _, v in linked.refs
    )


@pytest.fixture
def service_owning(engine: AnalyticsEngine, isolated_settings: Path) -> Iterator[str]:
    """The analytics API on loopback (uvicorn in a thread), recorded as the owner of the CLI's warehouse."""
    app = Starlette(routes=[Mount("/analytics", app=create_analytics_app(engine))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.config.port}"
    owner.claim(isolated_settings, url=url, instance="test")
    yield url
    owner.release(isolated_settings)
    server.should_exit = True
    thread.join(timeout=10)


def test_digest_while_the_service_owns_the_warehouse_asks_the_service(
    engine, service_owning, cli_env
) -> None:
    params = ["--period", "month", "--as-of", "2025-06-10", "--region", "South", "--format", "markdown"]
    written = salespulse("report", "digest", *params, env=cli_env)
    assert written.returncode == 0, written.stderr
    assert f"the service at {service_owning}" in written.stdout
    expected = headlines(insights_of(engine, {"period": "month", "as_of": "2025-06-10", "region": ["South"]}))
    assert expected and all(h in written.stdout for h in expected)
