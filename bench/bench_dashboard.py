"""Benchmark (not a test): how long /dashboard takes from navigation to every panel drawn, in Debian's
chromium.

    .venv/bin/python bench/bench_dashboard.py             # the service of `make run` (127.0.0.1:3000)
    .venv/bin/python bench/bench_dashboard.py --url http://127.0.0.1:3077 --loads 10

"Drawn" is the dashboard's own mark (window.salespulseDashboard.firstDrawnMs): the time since navigation start
when the first refresh of every panel (the insights the page leads with, the KPI cards, the charts, tables,
map and forecast) has set its chart, table or sentences; a load counts only if every panel drew with data.
The first load is reported apart (cold browser cache: ~4 MB of vendored libraries); the others reuse the
cache, as a returning user does. The slowest panels are listed with their median time to drawn. The target
is under 1.5 s on the default sample (3 s on a 10M-line warehouse).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TARGET_SECONDS = 1.5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the running service")
    parser.add_argument("--loads", type=int, default=8, help="page loads after the first (cold) one")
    parser.add_argument("--width", type=int, default=1400, help="viewport width (820 for a tablet)")
    parser.add_argument(
        "--target", type=float, default=TARGET_SECONDS, help="target in seconds (3 for a 10M-line warehouse)"
    )
    return parser.parse_args()


def load_once(page: Any, url: str) -> dict[str, Any]:
    """One navigation: the dashboard's drawn mark, each panel's, its requests and the wall time around it."""
    started = time.perf_counter()
    page.goto(f"{url}/dashboard")
    drawn = "window.salespulseDashboard && window.salespulseDashboard.refreshes >= 1"
    page.wait_for_function(drawn, timeout=60_000)
    wall = time.perf_counter() - started
    mark = page.evaluate("window.salespulseDashboard")
    if mark["errors"]:
        raise SystemExit(f"panels failed: {mark['errors']}")
    states = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-panel]')]"
        ".map(e => [e.dataset.panel, [e.dataset.state, Number(e.dataset.rows || 0)]]))"
    )
    empty = {name: s for name, s in states.items() if s[0] != "ready" or s[1] <= 0}
    if empty:
        raise SystemExit(f"panels drawn without data: {empty}")
    requests = page.evaluate("performance.getEntriesByType('resource').length")
    return {
        "drawn_s": mark["firstDrawnMs"] / 1000,
        "wall_s": wall,
        "requests": requests,
        "panels": {name: ms / 1000 for name, ms in mark["panelMs"].items()},
    }


def main() -> None:
    args = parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium (scripts/bootstrap.sh)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 1000})
        cold = load_once(page, args.url)
        warm = [load_once(page, args.url) for _ in range(args.loads)]
        browser.close()
    drawn = sorted(r["drawn_s"] for r in warm)
    requests = int(cold["requests"])
    print(
        f"dashboard at {args.url}, viewport {args.width} px wide, {len(cold['panels'])} panels, "
        f"{requests} requests per load"
    )
    print(f"  cold load (empty cache): drawn in {cold['drawn_s']:.2f} s")
    print(
        f"  warm loads ({len(warm)}): median {statistics.median(drawn):.2f} s, "
        f"best {drawn[0]:.2f} s, worst {drawn[-1]:.2f} s (target < {args.target} s)"
    )
    print(f"  slowest panels (median of the warm loads): {slowest_panels(warm)}")
    insights = statistics.median(load["panels"]["insights"] for load in warm)
    print(f"  the insights panel (the page leads with it): drawn at {insights:.2f} s (median)")


def slowest_panels(loads: list[dict[str, Any]], count: int = 4) -> str:
    times: dict[str, list[float]] = defaultdict(list)
    for load in loads:
        for name, seconds in load["panels"].items():
            times[name].append(seconds)
    medians = sorted(((statistics.median(v), k) for k, v in times.items()), reverse=True)
    return ", ".join(f"{name} {seconds:.2f} s" for seconds, name in medians[:count])


if __name__ == "__main__":
    main()
