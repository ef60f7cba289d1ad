"""The digest a manager receives by email: the insights, a few headline figures and a chart of daily revenue,
as ONE self-contained HTML page (inline CSS and SVG; no script, no stylesheet, image or font to fetch) or as
Markdown.

Everything comes from a :class:`salespulse.analytics.insights.ReportSource` (the engine over the warehouse
file, or the running service's report endpoints), so the digest says what GET /analytics/insights says.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cli.report import DigestFormat
from salespulse.analytics.insights import ReportSource, build_insights, money, number

CHART_DAILY_MAX_DAYS = 62
"""Longer windows are charted by week."""
WIDTH, HEIGHT, PAD = 640, 180, 28
NOW_COLOUR, BEFORE_COLOUR = "#0072B2", "#E69F00"  # Okabe-Ito: colour-blind safe


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    change: str
    """The change against the window before, e.g. '+4.2% vs the four weeks before'."""


@dataclass(frozen=True)
class Digest:
    insights: dict[str, Any]
    kpis: list[Kpi]
    chart: list[tuple[str, float, float]]
    """(label, revenue now, revenue in the same position of the window before) per day or week."""
    chart_grain: str
    filters: dict[str, list[Any]]
    source: str
    generated_at: datetime

    @property
    def period(self) -> tuple[date, date]:
        start, end = self.insights["current_period"]
        return date.fromisoformat(start), date.fromisoformat(end)

    @property
    def title(self) -> str:
        start, end = self.period
        days = (end - start).days + 1
        what = {7: "the week", 28: "the four weeks"}.get(days) if self.insights["period"] != "range" else None
        span = f"{what} to {end:%-d %b %Y}" if what else f"{start:%-d %b %Y} to {end:%-d %b %Y}"
        return f"Sales digest: {span}"


# --- gathering ---


def gather(
    source: ReportSource, params: Mapping[str, Any], *, described_source: str, now: datetime | None = None
) -> Digest:
    """The insights for ``params`` (those of GET /analytics/insights) and the figures around them."""
    insights = build_insights(source, params)
    filters = {k: v for k, v in params.items() if k in _filter_names(insights) and v}
    start, end = insights["current_period"]
    before_start, before_end = insights["baseline_period"]
    kpis = _kpis(source, filters, start, end, insights["as_of"])
    days = (date.fromisoformat(end) - date.fromisoformat(start)).days + 1
    grain = "daily" if days <= CHART_DAILY_MAX_DAYS else "weekly"
    chart = _chart(source, filters, grain, (start, end), (before_start, before_end))
    return Digest(
        insights, kpis, chart, grain, filters, described_source, now or datetime.now().replace(microsecond=0)
    )


def _filter_names(insights: dict[str, Any]) -> set[str]:
    return set(insights["params"]) - {"start", "end", "as_of", "period", "n"}


def _pct_change(value: float | None) -> str:
    if value is None:
        return "no earlier figure"
    return f"{'+' if value >= 0 else '-'}{number(abs(value))}%"


def _kpis(source: ReportSource, filters: dict[str, Any], start: str, end: str, as_of: str) -> list[Kpi]:
    """Revenue, orders and average order value against the window before; retention this month."""
    totals = source.report("kpi-average-order-value", {**filters, "start": start, "end": end})["rows"]
    row = totals[0] if totals else {}
    retention = source.report("kpi-retention-rate", {**filters, "as_of": as_of})["rows"]
    kept = retention[0] if retention else {}
    versus = "vs the window before"
    kpis = [
        Kpi(
            "Revenue",
            money(row.get("revenue") or 0.0),
            f"{_pct_change(row.get('revenue_change_pct'))} {versus}",
        ),
        Kpi(
            "Orders",
            f"{int(row.get('orders') or 0):,}",
            f"{_pct_change(row.get('orders_change_pct'))} {versus}",
        ),
        Kpi(
            "Average order value",
            f"${row['average_order_value']:,.2f}" if row.get("average_order_value") is not None else "-",
            f"{_pct_change(row.get('average_order_value_change_pct'))} {versus}",
        ),
    ]
    if kept.get("retention_rate_pct") is not None:
        kpis.append(
            Kpi(
                "Customer retention",
                f"{number(kept['retention_rate_pct'])}%",
                f"of last month's {int(kept['previous_customers']):,} customers bought again this month",
            )
        )
    return kpis


def _chart(
    source: ReportSource,
    filters: dict[str, Any],
    grain: str,
    now: tuple[str, str],
    before: tuple[str, str],
) -> list[tuple[str, float, float]]:
    """Revenue per day (or week) of the window, beside the same day of the window before."""
    rows = source.report(f"sales-by-category-{grain}", {**filters, "start": before[0], "end": now[1]})["rows"]
    by_period: dict[str, float] = defaultdict(float)
    for row in rows:
        by_period[row["period"]] += row["revenue"] or 0.0
    step = 1 if grain == "daily" else 7
    current = _periods(now[0], now[1], step, grain)
    earlier = _periods(before[0], before[1], step, grain)
    return [
        (label, by_period.get(label, 0.0), by_period.get(earlier[i], 0.0) if i < len(earlier) else 0.0)
        for i, label in enumerate(current)
    ]


def _periods(start: str, end: str, step: int, grain: str) -> list[str]:
    """The period keys the report uses: each day, or each week's Monday."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if grain == "weekly":
        first = date.fromordinal(first.toordinal() - first.weekday())
    keys = []
    while first <= last:
        keys.append(first.isoformat())
        first = date.fromordinal(first.toordinal() + step)
    return keys


# --- HTML ---

STYLE = """
body { margin: 0; padding: 24px; background: #f5f7fa; color: #1d2733;
  font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
.page { max-width: 720px; margin: 0 auto; background: #fff; border: 1px solid #dde3ea; border-radius: 6px;
  padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.meta { color: #5b6675; font-size: 13px; margin: 0; }
.kpis { width: 100%; border-collapse: separate; border-spacing: 8px 0; margin: 16px -8px 0; }
.kpis td { border-left: 4px solid #0072B2; padding: 4px 10px; vertical-align: top; width: 25%; }
.kpis .label { color: #5b6675; font-size: 12px; } .kpis .value { font-size: 22px; font-weight: 700; }
.kpis .change { font-size: 12px; color: #5b6675; }
ol { padding-left: 22px; } li { margin: 0 0 12px; } .headline { font-weight: 600; }
.cite { display: block; color: #5b6675; font-size: 12px; margin-top: 2px; word-break: break-all; }
code { font-family: Menlo, Consolas, monospace; font-size: 12px; }
.foot { color: #5b6675; font-size: 12px; margin-top: 24px; border-top: 1px solid #dde3ea; padding-top: 8px; }
"""


def render(digest: Digest, fmt: DigestFormat, base_url: str | None = None) -> str:
    return to_markdown(digest, base_url) if fmt == "markdown" else to_html(digest, base_url)


def _filters_text(filters: dict[str, list[Any]]) -> str:
    if not filters:
        return "all sales"
    return "; ".join(f"{name}: {', '.join(map(str, values))}" for name, values in filters.items())


def _about(digest: Digest) -> str:
    before_start, before_end = digest.insights["baseline_period"]
    return (
        f"{_filters_text(digest.filters)} · compared with {before_start} to {before_end} · generated "
        f"{digest.generated_at:%Y-%m-%d %H:%M} from {digest.source}"
    )


def to_html(digest: Digest, base_url: str | None = None) -> str:
    """One page: inline CSS and SVG only, so it shows the same in a mail client offline."""
    e = html.escape
    cards = "".join(
        f'<td><div class="label">{e(k.label)}</div><div class="value">{e(k.value)}</div>'
        f'<div class="change">{e(k.change)}</div></td>'
        for k in digest.kpis
    )
    items = "".join(_html_item(insight, base_url) for insight in digest.insights["insights"])
    listing = f"<ol>{items}</ol>" if items else "<p>Nothing stands out in this period.</p>"
    notes = "".join(f"<li>{e(n)}</li>" for n in digest.insights["notes"])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(digest.title)}</title>
<style>{STYLE}</style>
</head>
<body>
<div class="page">
<h1>{e(digest.title)}</h1>
<p class="meta">{e(_about(digest))}</p>
<table class="kpis" role="presentation"><tr>{cards}</tr></table>
<h2>What to know</h2>
{listing}
<h2>{"Daily" if digest.chart_grain == "daily" else "Weekly"} revenue</h2>
{svg_chart(digest)}
{f'<h2>Notes</h2><ul class="meta">{notes}</ul>' if notes else ""}
<p class="foot">salespulse · every figure comes from the report cited under its sentence (GET it from the
service for the rows behind it).</p>
</div>
</body>
</html>
"""


def _html_item(insight: dict[str, Any], base_url: str | None) -> str:
    e = html.escape
    cites = []
    for source in insight["sources"]:
        text = f"<code>GET {e(source['link'])}</code>"
        if base_url:
            text = f'<a href="{e(base_url.rstrip("/") + source["link"])}">{text}</a>'
        cites.append(text)
    headline = f'<span class="headline">{e(insight["headline"])}</span>'
    return f'<li>{headline}<span class="cite">{" · ".join(cites)}</span></li>'


def svg_chart(digest: Digest) -> str:
    """Bars for the window, a line for the window before (same day or week position); inline SVG."""
    points = digest.chart
    if not points:
        return '<p class="meta">No sales in the period.</p>'
    top = max(max(now, before) for _, now, before in points) or 1.0
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    slot = plot_w / len(points)

    def y(value: float) -> float:
        return PAD + plot_h * (1 - value / top)

    bars = "".join(
        f'<rect x="{PAD + i * slot + slot * 0.15:.1f}" y="{y(now):.1f}" width="{slot * 0.7:.1f}" '
        f'height="{PAD + plot_h - y(now):.1f}" fill="{NOW_COLOUR}">'
        f"<title>{label}: {money(now)}</title></rect>"
        for i, (label, now, _) in enumerate(points)
    )
    line = " ".join(
        f"{PAD + (i + 0.5) * slot:.1f},{y(before):.1f}" for i, (_, _, before) in enumerate(points)
    )
    first, last = points[0][0], points[-1][0]
    unit = "day" if digest.chart_grain == "daily" else "week"
    return f"""<svg width="100%" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"
 aria-label="Revenue per {unit}: bars this period, line the one before">
<line x1="{PAD}" y1="{PAD + plot_h}" x2="{WIDTH - PAD}" y2="{PAD + plot_h}" stroke="#8a96a3"/>
{bars}
<polyline points="{line}" fill="none" stroke="{BEFORE_COLOUR}" stroke-width="2" stroke-dasharray="5 3"/>
<text x="{PAD}" y="{PAD - 10}" font-size="11" fill="#5b6675">max {money(top)}</text>
<text x="{PAD}" y="{HEIGHT - 8}" font-size="11" fill="#5b6675">{first}</text>
<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" fill="#5b6675" text-anchor="end">{last}</text>
<rect x="{WIDTH - 250}" y="6" width="10" height="10" fill="{NOW_COLOUR}"/>
<text x="{WIDTH - 236}" y="15" font-size="11" fill="#5b6675">this period</text>
<line x1="{WIDTH - 160}" y1="11" x2="{WIDTH - 140}" y2="11" stroke="{BEFORE_COLOUR}" stroke-width="2"
 stroke-dasharray="5 3"/>
<text x="{WIDTH - 134}" y="15" font-size="11" fill="#5b6675">the period before</text>
</svg>"""


# --- Markdown ---


def to_markdown(digest: Digest, base_url: str | None = None) -> str:
    lines = [f"# {digest.title}", "", f"_{_about(digest)}_", ""]
    lines += [
        "| " + " | ".join(k.label for k in digest.kpis) + " |",
        "|" + "---|" * len(digest.kpis),
        "| " + " | ".join(f"**{k.value}** ({k.change})" for k in digest.kpis) + " |",
        "",
        "## What to know",
        "",
    ]
    insights = digest.insights["insights"]
    for i, insight in enumerate(insights, start=1):
        cites = []
        for source in insight["sources"]:
            link = source["link"]
            cites.append(f"[`GET {link}`]({base_url.rstrip('/')}{link})" if base_url else f"`GET {link}`")
        lines += [f"{i}. **{_md(insight['headline'])}**  ", f"   {' · '.join(cites)}"]
    if not insights:
        lines.append("Nothing stands out in this period.")
    if digest.insights["notes"]:
        lines += ["", "## Notes", "", *(f"- {_md(n)}" for n in digest.insights["notes"])]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text as Markdown shows it: its own asterisks, underscores and brackets escaped."""
    for char in "\\*_[]`":
        text = text.replace(char, f"\\{char}")
    return text
