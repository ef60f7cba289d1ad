"""Stage 1: read the sales series of one level and frequency from the warehouse."""

from __future__ import annotations

from pathlib import Path

from salespulse.features.series import Panel, load_series
from salespulse.warehouse.store import connect


def load_panel(level: str, freq: str, warehouse: Path | str | None = None) -> Panel:
    """All series of ``level`` at ``freq`` (zero-filled, with discount and static features), side by side."""
    with connect(warehouse, read_only=True) as con:
        con.execute("SET enable_progress_bar = false")  # the pipeline shows its own progress
        frame = load_series(con, level, freq)
    if frame.empty:
        raise ValueError("The warehouse has no sales to train on; run `salespulse data generate` first.")
    return Panel.from_frame(frame, freq)
