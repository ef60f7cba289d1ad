"""The dashboard and the service's own pages in a real browser: Debian's chromium driven by Playwright,
against a real service (fresh warehouse and champions). Every page must draw with data, follow the filters,
take new sales without a reload, log no console error and send no request beyond 127.0.0.1. Screenshots go
to tests/artifacts/ (git-ignored; CI can keep them).

SALESPULSE_DASHBOARD_TEST_URL runs the browser tests against a service already running there instead (its
write key in SALESPULSE_API_KEY), which saves the training while working on the dashboard.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from service_support import API_KEY, serve_with_fresh_models

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# A fresh profile, no background traffic of the browser's own: every request seen is the page's.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
]
PANEL_TIMEOUT_MS = 60_000
LIVE_UPDATE_SECONDS = 8  # "within a few seconds of an ingest": the page polls every 2 s

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/bootstrap.sh installs it)"
    ),
]


@dataclass
class Service:
    url: str
    api_key: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running_url = os.environ.get("SALESPULSE_DASHBOARD_TEST_URL")
    if running_url:
        yield Service(running_url.rstrip("/"), os.environ.get("SALESPULSE_API_KEY", API_KEY))
        return
    for running in serve_with_fresh_models(tmp_path_factory.mktemp("dashboard")):
        yield Service(running.url, API_KEY)


@dataclass
class PageWatch:
    """What a page did that a user would not see: console errors and requests that left 127.0.0.1."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        self.requests.append(request)
        if not request.url.startswith((self.origin, "data:", "blob:")):
            self.outside_requests.append(request.url)

    def assert_clean(self) -> None:
        assert self.outside_requests == [], "requests left 127.0.0.1"
        assert self.console_errors == [], "console errors"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, service: Service, tmp_path: Path) -> Iterator[tuple[Any, PageWatch]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    watch = PageWatch(service.url)
    watch.attach(tab)
    yield tab, watch
    context.close()


# ------------------------------------------------------------------------------------------- helpers


def panel_states(page: Any) -> dict[str, tuple[str, int]]:
    return {
        name: (state, int(rows or 0))
        for name, state, rows in page.evaluate(
            "[...document.querySelectorAll('[data-panel]')]"
            ".map(e => [e.dataset.panel, e.dataset.state || '', e.dataset.rows || '0'])"
        )
    }


def wait_for_refreshes(page: Any, count: int, timeout_ms: float = PANEL_TIMEOUT_MS) -> None:
    page.wait_for_function(
        f"window.salespulseDashboard && window.salespulseDashboard.refreshes >= {count}", timeout=timeout_ms
    )


def refreshes(page: Any) -> int:
    return page.evaluate("window.salespulseDashboard.refreshes")


def assert_every_panel_drawn(page: Any) -> dict[str, tuple[str, int]]:
    states = panel_states(page)
    assert len(states) >= 15
    assert {name: s for name, s in states.items() if s[0] != "ready" or s[1] <= 0} == {}, states
    errors = page.evaluate("window.salespulseDashboard.errors")
    assert errors == []
    return states


def kpi_texts(page: Any) -> list[str]:
    return page.locator("#kpi-grid .kpi .value").all_inner_texts()


def posted_json(request: Any) -> dict[str, Any]:
    try:
        return json.loads(request.post_data or "{}")
    except json.JSONDecodeError:
        return {}


def big_west_sale(service: Service) -> dict[str, Any]:
    """A sale large enough to move every total, by a customer of the West region, stamped now."""
    with service.client() as client:
        customers = client.post(
            "/analytics/query",
            json={
                "measures": ["revenue"],
                "dimensions": ["customer"],
                "filters": [{"member": "region", "operator": "equals", "values": ["West"]}],
                "order": [{"member": "revenue", "direction": "desc"}],
                "limit": 1,
            },
        ).json()["rows"]
        products = client.post(
            "/analytics/query", json={"measures": ["revenue"], "dimensions": ["product"], "limit": 1}
        ).json()["rows"]
        last_sale = client.get("/health").json()["warehouse"]["last_sale"]
    stamp = datetime.fromisoformat(last_sale).replace(microsecond=0)
    line = {
        "order_id": f"DASHBOARD-{time.time_ns()}",
        "line": 1,
        "ordered_at": stamp.isoformat(),
        "customer_id": customers[0]["customer"],
        "product_id": products[0]["product"],
        "channel": "direct",
        "quantity": 400,
        "unit_price": 2_500.0,
    }
    return {"lines": [line]}


# ------------------------------------------------------------------------------------------- the dashboard


def test_dashboard_draws_follows_filters_and_takes_new_sales_live(page, service) -> None:
    tab, watch = page
    started = time.perf_counter()
    tab.goto(f"{service.url}/dashboard")
    wait_for_refreshes(tab, 1)
    first_draw_seconds = time.perf_counter() - started
    assert_every_panel_drawn(tab)
    # It leads with the insights: sentences with their figures, each a link to the report behind it.
    insights = tab.locator("#insights-list a.headline")
    assert all(any(c.isdigit() for c in s) for s in insights.all_inner_texts()) and insights.count() >= 3
    assert all(
        href.startswith("/analytics/reports/")
        for href in insights.evaluate_all("a => a.map(x => x.getAttribute('href'))")
    )
    tab.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    before = kpi_texts(tab)

    # A filter change reaches every panel: each report, query and forecast it asks for carries the region.
    watch.requests.clear()
    tab.select_option("select[name=region]", "West")
    wait_for_refreshes(tab, 2)
    assert_every_panel_drawn(tab)
    assert "region=West" in tab.url
    assert kpi_texts(tab) != before
    panel_requests = [r for r in watch.requests if "/analytics/" in r.url or r.url.endswith("/forecast")]
    unfiltered = [
        r.url + " " + (r.post_data or "")
        for r in panel_requests
        if "region=West" not in r.url and "West" not in (r.post_data or "") and not _is_live_poll(r)
    ]
    assert unfiltered == []
    forecast_request = next(r for r in panel_requests if r.url.endswith("/forecast"))
    assert posted_json(forecast_request)["series"] == ["West"]
    tab.screenshot(path=ARTIFACTS / "dashboard-west.png", full_page=True)

    # A view is shared by its URL: a new tab opened on it shows the same filters.
    shared = tab.context.new_page()
    shared.goto(tab.url)
    wait_for_refreshes(shared, 1)
    assert shared.input_value("select[name=region]") == "West"
    shared.close()

    # New sales appear without a reload.
    revenue_before = tab.inner_text("#kpi-grid .kpi .value >> nth=0")
    done = refreshes(tab)
    with service.client() as client:
        ingested = client.post(
            "/analytics/sales", json=big_west_sale(service), headers={"X-API-Key": service.api_key}
        )
    assert ingested.status_code == 200, ingested.text
    ingested_at = time.perf_counter()
    wait_for_refreshes(tab, done + 1, timeout_ms=LIVE_UPDATE_SECONDS * 1000)
    live_seconds = time.perf_counter() - ingested_at
    assert tab.inner_text("#kpi-grid .kpi .value >> nth=0") != revenue_before
    assert_every_panel_drawn(tab)
    tab.screenshot(path=ARTIFACTS / "dashboard-after-ingest.png", full_page=True)

    # Drill-down: a product row of the top 5 (by keyboard) filters everything to that product.
    tab.locator("#table-top-bottom tr.clickable").first.focus()
    done = refreshes(tab)
    tab.keyboard.press("Enter")
    wait_for_refreshes(tab, done + 1)
    assert "product=" in tab.url
    assert_every_panel_drawn(tab)

    watch.assert_clean()
    print(f"first draw {first_draw_seconds:.2f} s, new sale shown {live_seconds:.2f} s after its ingest")


def _is_live_poll(request: Any) -> bool:
    """The new-sales check, and the filter lists, are over all sales on purpose."""
    body = posted_json(request)
    return (
        request.url.endswith("/analytics/query")
        and not body.get("filters")
        and not body.get("time_dimension")
    )


def test_dashboard_at_tablet_width_with_keyboard_filters(page, service) -> None:
    tab, watch = page
    tab.set_viewport_size({"width": 820, "height": 1180})
    tab.goto(f"{service.url}/dashboard?category=Technology")
    wait_for_refreshes(tab, 1)
    assert_every_panel_drawn(tab)
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "scrolls sideways"
    tab.screenshot(path=ARTIFACTS / "dashboard-tablet.png", full_page=True)

    # Every filter is reached with the Tab key, in order.
    tab.locator("a.brand").focus()
    reached = []
    for _ in range(12):
        tab.keyboard.press("Tab")
        reached.append(tab.evaluate("document.activeElement.name || document.activeElement.id"))
    for name in ("region", "category", "product", "salesman", "start", "end"):
        assert name in reached
    watch.assert_clean()


def test_explorer_pivots_and_downloads_excel(page, service) -> None:
    tab, watch = page
    tab.goto(f"{service.url}/dashboard")
    wait_for_refreshes(tab, 1)
    tab.select_option("#ex-rows", "category")
    tab.select_option("#ex-cols", "region")
    tab.click("#explorer-form button[type=submit]")
    tab.wait_for_function("document.querySelector('#panel-explorer').dataset.state === 'ready'")
    header = tab.locator("#explorer-pivot thead th").all_inner_texts()
    assert header[0] == "category" and {"West", "East"} <= set(header)
    with tab.expect_download() as download:
        tab.click("#ex-xlsx")
    workbook = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    assert rows[0][:3] == ("category", "region", "revenue")
    assert len(rows) > 4
    tab.screenshot(path=ARTIFACTS / "dashboard-explorer.png", full_page=True)
    watch.assert_clean()


# ------------------------------------------------------------------------------------------- root and docs


@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        ("/", "main h1"),
        ("/docs", ".swagger-ui .info .title"),
        ("/redoc", "redoc-root h1, [role=main] h1, h1"),
        ("/analytics/docs", ".swagger-ui .info .title"),
        ("/analytics/redoc", "h1"),
    ],
)
def test_root_and_docs_pages_work_offline(page, service, path: str, drawn: str) -> None:
    tab, watch = page
    tab.goto(f"{service.url}{path}")
    tab.wait_for_selector(drawn, timeout=30_000)
    tab.wait_for_load_state("networkidle")
    html = tab.content()
    assert "googletagmanager" not in html and "BentoML" not in tab.title()
    tab.screenshot(path=ARTIFACTS / f"page{path.replace('/', '-') or '-root'}.png")
    if path == "/":
        text = tab.inner_text("main")
        assert "salespulse" in text and "version" in text
        assert {"/dashboard", "/docs"} <= set(
            tab.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
        )
    images = tab.eval_on_selector_all("img", "images => images.map(i => i.src)")
    assert [src for src in images if not src.startswith((service.url, "data:"))] == []
    watch.assert_clean()


def test_try_it_out_sends_the_documented_example_and_gets_a_forecast(page, service) -> None:
    """Swagger UI's "Try it out" on POST /forecast sends the document's first request example (a series
    that exists in this warehouse), not the schema's placeholder ["string"], and shows a 200."""
    tab, watch = page
    tab.goto(f"{service.url}/docs#/forecasts/forecast")
    operation = tab.locator("#operations-forecasts-forecast")
    operation.wait_for(timeout=30_000)
    if not operation.locator(".try-out__btn").is_visible():
        operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    sent = operation.locator("textarea.body-param__text").input_value()
    assert '"series"' in sent and '"string"' not in sent, sent
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=60_000)
    assert status.inner_text().strip().startswith("200"), status.inner_text()
    answer = operation.locator(".live-responses-table .response .microlight").first.inner_text()
    assert '"points"' in answer and '"forecast"' in answer
    tab.screenshot(path=ARTIFACTS / "page-docs-try-it-out.png", full_page=False)
    watch.assert_clean()


# ------------------------------------------------------------------------------------------- downloads


def test_report_downloads_hold_the_figures_of_its_json(service) -> None:
    params = {"n": 7, "region": "West"}
    with service.client() as client:
        answer = client.get("/analytics/reports/top-products", params=params)
        excel = client.get("/export/report/top-products.xlsx", params=params)
        csv_file = client.get("/export/report/top-products.csv", params=params)
        refused = client.get("/export/report/top-products.xlsx", params={"n": 0})
    assert answer.status_code == excel.status_code == csv_file.status_code == 200
    report = answer.json()
    columns = [c["name"] for c in report["columns"]]

    sheet = load_workbook(io.BytesIO(excel.content)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == columns
    assert len(rows) - 1 == len(report["rows"]) == 7
    for expected, got in zip(report["rows"], rows[1:], strict=True):
        for name, value in zip(columns, got, strict=True):
            assert _same(expected[name], value), (name, expected[name], value)

    lines = csv_file.content.decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == columns and len(lines) == 8
    # A bad parameter is the report's own 422, not a broken file.
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "n"


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float):
        return math.isclose(expected, got, rel_tol=1e-12)
    if isinstance(got, datetime | date):
        return got.isoformat()[:10] == expected
    return expected == got


def test_chromium_is_debians() -> None:
    """The browser comes from the system (apt), not from a download at test time."""
    assert shutil.which("chromium") == str(CHROMIUM) or CHROMIUM.exists()
