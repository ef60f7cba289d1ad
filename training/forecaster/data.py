"""Stage 1: read the sales series of one level and frequency, the products' categories and the company
calendar."""

from __future__ import annotations

from pathlib import Path

from salespulse.features.calendar import RetailCalendar, read_company_calendar
from salespulse.features.series import Panel, load_series
from salespulse.warehouse.store import connect

# The company's own events (sales, catalogue drops); absent means the built-in retail calendar only.
COMPANY_CALENDAR = Path(__file__).resolve().parents[2] / "data" / "calendar" / "company_events.csv"


def load_panel(level: str, freq: str, warehouse: Path | str | None = None) -> Panel:
    """All series of ``level`` at ``freq`` (zero-filled, with discount and static features), side by side."""
    return load_inputs(level, freq, warehouse)[0]


def load_inputs(level: str, freq: str, warehouse: Path | str | None = None) -> tuple[Panel, dict[str, str]]:
    """The panel and every product's category (to spread a category's planned promotion over series)."""
    with connect(warehouse, read_only=True) as con:
        con.execute("SET enable_progress_bar = false")  # the pipeline shows its own progress
        frame = load_series(con, level, freq)
        categories = dict(con.execute("SELECT product_id, category FROM products").fetchall())
    if frame.empty:
        raise ValueError("The warehouse has no sales to train on; run `salespulse data generate` first.")
    return Panel.from_frame(frame, freq), categories


def load_calendar(path: Path | str | None = None) -> RetailCalendar:
    """The retail calendar with the company's events from ``path`` (default: data/calendar, if there)."""
    path = Path(path) if path is not None else COMPANY_CALENDAR
    return RetailCalendar(read_company_calendar(path) if path.exists() else ())
