"""Benchmark (not a test): how long /dashboard takes from navigation to every panel drawn, in Debian's
chromium.

    .venv/bin/python bench/bench_dashboard.py             # the service of `make run` (127.0.0.1:3000)
    .venv/bin/python bench/bench_dashboard.py --url http://127.0.0.1:3077 --loads 10

"Drawn" is the dashboard's own mark (window.salespulseDashboard.firstDrawnMs): the time since navigation start
when the first refresh of every panel has set its chart or table. The first load is reported apart (cold
browser cache: ~4 MB of vendored libraries); the others reuse the cache, as a returning user does. The
target is under 1.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

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
    return parser.parse_args()


def load_once(page, url: str) -> dict[str, float]:
    """One navigation: the dashboard's drawn mark, its requests and the wall time around it."""
    started = time.perf_counter()
    page.goto(f"{url}/dashboard")
    drawn = "window.salespulseDashboard && window.salespulseDashboard.refreshes >= 1"
    page.wait_for_function(drawn, timeout=60_000)
    wall = time.perf_counter() - started
    mark = page.evaluate("window.salespulseDashboard")
    if mark["errors"]:
        raise SystemExit(f"panels failed: {mark['errors']}")
    requests = page.evaluate("performance.getEntriesByType('resource').length")
    return {"drawn_s": mark["firstDrawnMs"] / 1000, "wall_s": wall, "requests": requests}


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
    print(f"dashboard at {args.url}, viewport {args.width} px wide, {requests} requests per load")
    print(f"  cold load (empty cache): drawn in {cold['drawn_s']:.2f} s")
    print(
        f"  warm loads ({len(warm)}): median {statistics.median(drawn):.2f} s, "
        f"best {drawn[0]:.2f} s, worst {drawn[-1]:.2f} s (target < {TARGET_SECONDS} s)"
    )


if __name__ == "__main__":
    main()
