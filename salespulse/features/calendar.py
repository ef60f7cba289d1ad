"""The retail calendar: which days are special, and how much each kind of special day sells (learnt).

A day can carry an *event label*:

- ``holiday``: a US federal public holiday (observed days included), with ``holiday-1`` / ``holiday+1`` for
  the days before and after (lead/lag);
- ``black_friday-3`` .. ``black_friday+4``: the days around Black Friday (``black_friday+0``), so Cyber
  Monday is ``black_friday+3`` and the Thanksgiving week's run-up has labels of its own;
- ``christmas-24`` .. ``christmas-1`` and ``christmas+1`` .. ``christmas+6``: December's run-up and the days
  between the holidays;
- a company event from the company calendar file (``data/calendar/company_events.csv``: ``name, start, end,
  lead_days, lag_days``), e.g. ``spring_sale`` on its days and ``spring_sale-1`` / ``spring_sale+2`` around
  them. Company events combine with the built-in labels; built-in labels exclude each other (a holiday wins,
  then the Black Friday window, then Christmas).

:class:`EventEffects` is what training learns: the *lift* of each label, pooled over the series of a level:
the revenue of its days divided by a baseline, the mean of the same weekday one to four weeks before and
after (other special days left out). A holiday on which nothing sells has lift 0 (the shop is closed); Black
Friday on the sample data about 2.4. The forecaster models the series with these effects divided out and
multiplies them back into its forecast, so a label seen once a year per series still moves the forecast as
much as it moved the history, which a tree would not learn from a handful of rows.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

CLOSED_LIFT = 0.05  # below this a label means "closed": the day says nothing about the series' level
MAX_LIFT = 6.0
BASELINE_WEEKS = 4  # the baseline of a day: the same weekday 1..4 weeks before and after
BLACK_FRIDAY_WINDOW = range(-3, 5)
CHRISTMAS_RUN_UP = range(-24, 0)
BETWEEN_THE_HOLIDAYS = range(1, 7)
COMPANY_CALENDAR_COLUMNS = ("name", "start", "end", "lead_days", "lag_days")


@dataclass(frozen=True)
class CompanyEvent:
    """One of the company's own events (a sale, a catalogue drop), with days of effect before and after."""

    name: str
    start: date
    end: date
    lead_days: int = 0
    lag_days: int = 0

    def labels(self) -> dict[date, str]:
        days = {}
        for k in range(self.lead_days, 0, -1):
            days[self.start - timedelta(days=k)] = f"{self.name}-{k}"
        day = self.start
        while day <= self.end:
            days[day] = self.name
            day += timedelta(days=1)
        for k in range(1, self.lag_days + 1):
            days[self.end + timedelta(days=k)] = f"{self.name}+{k}"
        return days


def read_company_calendar(path: Path | str) -> tuple[CompanyEvent, ...]:
    """Company events from a CSV file with columns name, start, end, lead_days, lag_days (ISO dates)."""
    with Path(path).open(newline="") as file:
        rows = list(csv.DictReader(file))
    missing = set(COMPANY_CALENDAR_COLUMNS) - set(rows[0] if rows else COMPANY_CALENDAR_COLUMNS)
    if missing:
        raise ValueError(f"The company calendar {path} lacks columns {sorted(missing)}.")
    return tuple(
        CompanyEvent(
            name=row["name"].strip(),
            start=date.fromisoformat(row["start"].strip()),
            end=date.fromisoformat(row["end"].strip()),
            lead_days=int(row["lead_days"] or 0),
            lag_days=int(row["lag_days"] or 0),
        )
        for row in rows
    )


def thanksgiving(year: int) -> date:
    november_first = date(year, 11, 1)
    return november_first + timedelta(days=(3 - november_first.weekday()) % 7, weeks=3)


def builtin_labels(dates: pd.DatetimeIndex) -> np.ndarray:
    """The built-in label of each day ('' for an ordinary day)."""
    labels = np.full(len(dates), "", dtype=object)
    days = dates.normalize()
    holiday_days = us_holidays(tuple(sorted({*days.year, *(days.year + 1), *(days.year - 1)})))
    is_holiday = days.isin(holiday_days)
    for offset, label in ((1, "holiday-1"), (-1, "holiday+1")):
        labels[days.shift(offset, freq="D").isin(holiday_days)] = label
    for year in sorted(set(days.year)):
        christmas = pd.Timestamp(year, 12, 25)
        for k in [*CHRISTMAS_RUN_UP, *BETWEEN_THE_HOLIDAYS]:
            labels[days == christmas + pd.Timedelta(days=k)] = f"christmas{k:+d}"
        black_friday = pd.Timestamp(thanksgiving(year) + timedelta(days=1))
        for k in BLACK_FRIDAY_WINDOW:
            labels[days == black_friday + pd.Timedelta(days=k)] = f"black_friday{k:+d}"
    labels[is_holiday] = "holiday"
    return labels


@lru_cache(maxsize=64)
def us_holidays(years: tuple[int, ...]) -> pd.DatetimeIndex:
    """US federal public holidays (observed days included)."""
    return pd.DatetimeIndex(sorted(holidays.country_holidays("US", years=years)))


@dataclass(frozen=True)
class RetailCalendar:
    """The built-in retail events and the company's own."""

    company_events: tuple[CompanyEvent, ...] = ()

    def label_masks(self, dates: pd.DatetimeIndex) -> dict[str, np.ndarray]:
        """For every label that occurs in ``dates``, the days that carry it."""
        masks: dict[str, np.ndarray] = {}
        builtin = builtin_labels(dates)
        for label in sorted(set(builtin) - {""}):
            masks[label] = builtin == label
        index = {d: i for i, d in enumerate(dates.date)}
        for event in self.company_events:
            for day, label in event.labels().items():
                if day in index:
                    masks.setdefault(label, np.zeros(len(dates), dtype=bool))[index[day]] = True
        return masks

    def to_dict(self) -> dict[str, object]:
        return {
            "company_events": [
                {**e.__dict__, "start": e.start.isoformat(), "end": e.end.isoformat()}
                for e in self.company_events
            ]
        }

    @classmethod
    def from_dict(cls, fields: dict[str, object]) -> RetailCalendar:
        events = fields.get("company_events") or []
        return cls(
            tuple(
                CompanyEvent(
                    name=e["name"],
                    start=date.fromisoformat(e["start"]),
                    end=date.fromisoformat(e["end"]),
                    lead_days=e["lead_days"],
                    lag_days=e["lag_days"],
                )
                for e in events  # type: ignore[union-attr]
            )
        )


@dataclass(frozen=True)
class EventEffects:
    """The lift of each event label, learnt by :meth:`estimate`; a day's multiplier is the product of the
    lifts of its labels (1 on an ordinary day)."""

    calendar: RetailCalendar = field(default_factory=RetailCalendar)
    lifts: dict[str, float] = field(default_factory=dict)
    occurrences: dict[str, int] = field(default_factory=dict)  # series-days each lift was learnt from
    yearly: tuple[float, ...] = ()  # Fourier coefficients (cos 1, sin 1, cos 2, sin 2) of the yearly profile

    @classmethod
    def estimate(cls, y: np.ndarray, dates: pd.DatetimeIndex, calendar: RetailCalendar) -> EventEffects:
        """Lifts of the labels found in ``dates`` from series ``y`` (series x days, NaN before a start)."""
        masks = calendar.label_masks(dates)
        special = np.zeros(len(dates), dtype=bool)
        for mask in masks.values():
            special |= mask
        ordinary = np.where(special[None, :], np.nan, y)
        lifts, occurrences = {}, {}
        for label, mask in masks.items():
            lift, seen = _pooled_lift(y, ordinary, np.flatnonzero(mask))
            if seen:
                lifts[label], occurrences[label] = lift, seen
        events = cls(calendar=calendar, lifts=lifts, occurrences=occurrences)
        return replace(events, yearly=_yearly_profile(y, dates, events.multiplier(dates), special))

    def multiplier(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """The product of the lifts of each day's labels (labels never learnt count as 1) and the yearly
        profile."""
        factor = np.exp(_fourier(dates) @ np.asarray(self.yearly)) if self.yearly else np.ones(len(dates))
        for label, mask in self.calendar.label_masks(dates).items():
            factor[mask] *= self.lifts.get(label, 1.0)
        return factor

    def to_dict(self) -> dict[str, object]:
        return {
            "calendar": self.calendar.to_dict(),
            "lifts": self.lifts,
            "occurrences": self.occurrences,
            "yearly": list(self.yearly),
        }

    @classmethod
    def from_dict(cls, fields: dict[str, object]) -> EventEffects:
        return cls(
            calendar=RetailCalendar.from_dict(fields["calendar"]),  # type: ignore[arg-type]
            lifts=dict(fields["lifts"]),  # type: ignore[arg-type]
            occurrences=dict(fields["occurrences"]),  # type: ignore[arg-type]
            yearly=tuple(fields.get("yearly") or ()),  # type: ignore[arg-type]
        )


YEARLY_HARMONICS = 2
MIN_PROFILE_DAYS = 365  # days with a centred yearly average needed to fit the profile (two years of history)


def _fourier(dates: pd.DatetimeIndex) -> np.ndarray:
    angle = 2 * np.pi * dates.dayofyear.to_numpy()[:, None] / 365.25 * np.arange(1, YEARLY_HARMONICS + 1)
    return np.column_stack([f(angle[:, k]) for k in range(YEARLY_HARMONICS) for f in (np.cos, np.sin)])


def _yearly_profile(
    y: np.ndarray, dates: pd.DatetimeIndex, factor: np.ndarray, special: np.ndarray
) -> tuple[float, ...]:
    """The yearly shape of the level's revenue: a smooth curve (two harmonics) through the ratio of each
    ordinary day's total to the centred 365-day average, weekday effects fitted alongside and dropped.

    Lags trail a level that rises towards December: the recursion would under-forecast the autumn. Dividing
    the yearly shape out (and multiplying it back) lets the model forecast a level that holds still.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        adjusted = np.where(factor >= CLOSED_LIFT, y / np.maximum(factor, CLOSED_LIFT), np.nan)
    total = np.nansum(adjusted, axis=0)
    open_day = (factor >= CLOSED_LIFT) & ~special
    series = pd.Series(np.where(open_day, total, np.nan))
    average = series.rolling(365, center=True, min_periods=300).mean().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.log(series.to_numpy() / average)
    usable = np.isfinite(ratio)
    if usable.sum() < MIN_PROFILE_DAYS:
        return ()
    weekdays = np.eye(7)[dates.dayofweek.to_numpy()]
    design = np.hstack([_fourier(dates), weekdays])[usable]
    coefficients = np.linalg.lstsq(design, ratio[usable], rcond=None)[0]
    return tuple(float(c) for c in coefficients[: 2 * YEARLY_HARMONICS])


def _pooled_lift(y: np.ndarray, ordinary: np.ndarray, columns: np.ndarray) -> tuple[float, int]:
    """Sum of ``y`` on the label's days over the sum of their baselines, over every series with both."""
    offsets = [7 * k for k in range(1, BASELINE_WEEKS + 1)]
    neighbours = [c + s * o for c in columns for o in offsets for s in (-1, 1)]
    n_days = y.shape[1]
    gathered = np.full((y.shape[0], len(columns), 2 * len(offsets)), np.nan)
    for j, source in enumerate(neighbours):
        if 0 <= source < n_days:
            gathered[:, j // (2 * len(offsets)), j % (2 * len(offsets))] = ordinary[:, source]
    observed = ~np.isnan(gathered)
    counts = observed.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        baseline = np.where(counts >= 2, np.where(observed, gathered, 0.0).sum(axis=2) / counts, np.nan)
    actual = y[:, columns]
    usable = np.isfinite(baseline) & np.isfinite(actual)
    base_sum = baseline[usable].sum()
    if base_sum <= 0:
        return 1.0, 0
    return float(np.clip(actual[usable].sum() / base_sum, 0.0, MAX_LIFT)), int(usable.sum())


def lift_table(effects: EventEffects, labels: Iterable[str] | None = None) -> pd.DataFrame:
    """The learnt lifts as a table (label, lift, series-days), e.g. for the training run's artifacts."""
    chosen: Sequence[str] = sorted(effects.lifts) if labels is None else list(labels)
    return pd.DataFrame(
        {
            "label": chosen,
            "lift": [effects.lifts.get(k, 1.0) for k in chosen],
            "series_days": [effects.occurrences.get(k, 0) for k in chosen],
        }
    )
