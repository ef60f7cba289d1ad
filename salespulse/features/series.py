"""The sales series: what a forecaster learns from and what it is asked about, defined once.

A *series* is the revenue of one member of a *level* per period. The target is revenue (quantity x unit
price x (1 - discount), summed): planners plan revenue, and revenue is what the goal plan is written in.

Levels and their series ids (key values joined by ``|`` in the order below):

==================  ======================  ==============================  =================
level               keys                    example id                      static features
==================  ======================  ==============================  =================
``product_region``  product_id, region      ``P-00012|West``                category, region
``product``         product_id              ``P-00012``                     category
``category``        category                ``Technology``                  category
``region``          region                  ``West``                        region
``category_region`` category, region        ``Technology|West``             category, region
``total``           (none)                  ``total``                       (none)
==================  ======================  ==============================  =================

The region is the order line's ship-to region, as in the reports (so a region's forecast and its sales
report speak of the same revenue); a line without one takes its customer's, and one without either counts as
``Unknown``.

Frequencies: ``D`` (calendar days) and ``W`` (weeks from Monday to Sunday, labelled by their Monday). A
weekly series ends with the last *complete* week, so a week still in progress never looks like a slump.

Each series is zero-filled from its first sale to the end date (days without sales are zero revenue,
not missing), so the history a forecaster sees has no gaps. Besides ``y`` a series carries:

- ``discount``, the promotion depth in force: per product and day, the smallest discount on its order lines
  (trade and volume discounts come on top of a promotion, so the smallest is the list-price cut), carried
  over days without sales for up to 13 days (promotions last one to two weeks), else 0; averaged over the
  products of the series (its product, its category's products, or all products) and, weekly, over the days.
  It is a feature of the period forecast, known in advance as promotions are planned: a forecast takes it
  from a promotion plan, and assumes regular prices (0) where there is none;
- its static features (category and/or region).

The feature pipeline (:class:`SeriesFeatures`) turns a :class:`Panel` of series into model inputs: lags,
rolling and seasonal means and the share of periods with sales (from the series' own history), calendar
(day of week, month, day of year, US holidays, Black Friday, Cyber Monday), the promotion depth of the
period and the static features. Training computes it for every period at once; a forecast computes it for
the next period, feeds the prediction back as history, and repeats: the same code, so serving computes
exactly what training computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from threading import Lock
from time import monotonic
from typing import TYPE_CHECKING, Literal, get_args

import holidays
import numpy as np
import pandas as pd

if TYPE_CHECKING:  # a forecaster takes data, not connections: loading one needs no DuckDB
    import duckdb

Level = Literal["product_region", "product", "category", "region", "category_region", "total"]
Freq = Literal["D", "W"]
LEVELS: tuple[str, ...] = get_args(Level)
FREQS: tuple[str, ...] = get_args(Freq)
DEFAULT_LEVEL: Level = "product_region"
DEFAULT_FREQ: Freq = "D"

# What a forecast can be asked for: a daily model serves days, weeks (Monday to Sunday) and calendar months
# (sums of its daily forecasts), at most a year ahead. The request schema and the model check these limits.
ServingFreq = Literal["D", "W", "M"]
SERVING_FREQS: tuple[str, ...] = get_args(ServingFreq)
MAX_HORIZON: dict[str, int] = {"D": 366, "W": 53, "M": 12}

ID_SEPARATOR = "|"
TOTAL_ID = "total"
UNKNOWN_REGION = "Unknown"
STATIC_FEATURES: tuple[str, ...] = ("category", "region")
PROMOTION_CARRY_DAYS = 13  # a promotion runs for at most 14 days
EARLIEST = date(1900, 1, 1)  # "no start": before any sale

# Where each key or static column comes from: o = order_lines, p = products, c = customers.
_COLUMN_SQL = {
    "product_id": "o.product_id",
    "category": "p.category",
    "region": f"coalesce(nullif(o.ship_region, ''), c.region, '{UNKNOWN_REGION}')",
}


@dataclass(frozen=True)
class SeriesLevel:
    name: Level
    keys: tuple[str, ...]
    statics: tuple[str, ...]

    @property
    def id_sql(self) -> str:
        if not self.keys:
            return f"'{TOTAL_ID}'"
        return f" || '{ID_SEPARATOR}' || ".join(_COLUMN_SQL[k] for k in self.keys)

    @property
    def promotion_group(self) -> str | None:
        """The products whose promotions count for a series: its product, its category's, or all (None)."""
        if "product_id" in self.keys:
            return "product_id"
        return "category" if "category" in self.keys else None


SERIES_LEVELS: dict[str, SeriesLevel] = {
    "product_region": SeriesLevel("product_region", ("product_id", "region"), ("category", "region")),
    "product": SeriesLevel("product", ("product_id",), ("category",)),
    "category": SeriesLevel("category", ("category",), ("category",)),
    "region": SeriesLevel("region", ("region",), ("region",)),
    "category_region": SeriesLevel("category_region", ("category", "region"), ("category", "region")),
    "total": SeriesLevel("total", (), ()),
}


def series_level(level: str) -> SeriesLevel:
    try:
        return SERIES_LEVELS[level]
    except KeyError:
        raise ValueError(f"Unknown level {level!r}; choose one of {', '.join(LEVELS)}.") from None


def check_freq(freq: str) -> Freq:
    if freq not in FREQS:
        raise ValueError(f"Unknown frequency {freq!r}; choose D (daily) or W (weekly).")
    return freq  # type: ignore[return-value]


def series_id(level: str, **keys: str) -> str:
    """The id of one series, e.g. ``series_id("product_region", product_id="P-00012", region="West")``."""
    spec = series_level(level)
    if set(keys) != set(spec.keys):
        raise ValueError(
            f"Level {level} is keyed by {', '.join(spec.keys) or 'nothing'}, got {sorted(keys)}."
        )
    return ID_SEPARATOR.join(keys[k] for k in spec.keys) if spec.keys else TOTAL_ID


def parse_series_id(level: str, unique_id: str) -> dict[str, str]:
    """The key values of a series id; raises ValueError when the id does not fit the level."""
    spec = series_level(level)
    if not spec.keys:
        if unique_id != TOTAL_ID:
            raise ValueError(f"The only {level} series is {TOTAL_ID!r}, not {unique_id!r}.")
        return {}
    parts = unique_id.split(ID_SEPARATOR)
    if len(parts) != len(spec.keys) or not all(parts):
        shape = ID_SEPARATOR.join(k.upper() for k in spec.keys)
        raise ValueError(f"A {level} series id looks like {shape!r}, not {unique_id!r}.")
    return dict(zip(spec.keys, parts, strict=True))


def period_start(day: date, freq: Freq) -> date:
    """The first day of the period containing ``day``."""
    return day - timedelta(days=day.weekday()) if freq == "W" else day


def step(freq: Freq) -> timedelta:
    return timedelta(weeks=1) if freq == "W" else timedelta(days=1)


def pandas_freq(freq: Freq) -> str:
    return "W-MON" if freq == "W" else "D"


def last_sale_day(con: duckdb.DuckDBPyConnection) -> date | None:
    return con.execute("SELECT max(ordered_at)::DATE FROM order_lines").fetchone()[0]


def last_period(con: duckdb.DuckDBPyConnection, freq: Freq, end: date | None = None) -> date | None:
    """The start of the last complete period up to ``end`` (default: the last day with sales)."""
    end = end or last_sale_day(con)
    if end is None:
        return None
    return period_start(end + timedelta(days=1), freq) - step(freq) if freq == "W" else end


def load_series(
    con: duckdb.DuckDBPyConnection,
    level: str = DEFAULT_LEVEL,
    freq: str = DEFAULT_FREQ,
    *,
    start: date | None = None,
    end: date | None = None,
    series_ids: Sequence[str] | None = None,
    with_discount: bool = True,
) -> pd.DataFrame:
    """Revenue series of ``level`` at ``freq``: columns unique_id, ds, y[, discount], static features.

    ``end`` is the last day included (default: the last day with sales; weekly, the last complete week up to
    it); ``start`` the first (rounded down to its week). ``series_ids`` restricts the series; the filter is
    applied to the order lines before anything is aggregated, so asking for one series reads only its
    lines. Sorted by unique_id then ds; ds is a pandas Timestamp (the period's first day).
    """
    spec = series_level(level)
    freq = check_freq(freq)
    end_day = end or last_sale_day(con)
    if end_day is None:
        return _empty_frame(spec, with_discount)
    last = last_period(con, freq, end_day)
    until = last + step(freq)  # first day not included
    first = period_start(start, freq) if start is not None else EARLIEST
    params: dict[str, object] = {"first": first, "until": until, "last_day": until - timedelta(days=1)}
    where = ["o.ordered_at < $until"]
    if series_ids is not None:
        where.extend(_series_filter(spec, list(dict.fromkeys(series_ids)), params))
    sql = _series_sql(spec, freq, " AND ".join(where), with_discount)
    frame = con.execute(sql, params).df()
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def _empty_frame(spec: SeriesLevel, with_discount: bool) -> pd.DataFrame:
    columns = ["unique_id", "ds", "y", *(["discount"] if with_discount else []), *spec.statics]
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "ds" else object) for c in columns})


def _series_filter(spec: SeriesLevel, ids: list[str], params: dict[str, object]) -> list[str]:
    """Conditions on the order lines selecting ``ids``: one per key column, which DuckDB pushes down into
    the scans (so one series reads only its product's lines and its region's customers), then the exact ids.
    """
    keys = [parse_series_id(spec.name, i) for i in ids]
    conditions = []
    for key in spec.keys:
        params[key] = sorted({k[key] for k in keys})
        conditions.append(f"{_COLUMN_SQL[key]} IN (SELECT unnest(${key}))")
    params["ids"] = ids
    conditions.append(f"({spec.id_sql}) IN (SELECT unnest($ids))")
    return conditions


def _series_sql(spec: SeriesLevel, freq: Freq, where: str, with_discount: bool) -> str:
    group = _COLUMN_SQL[spec.promotion_group] if spec.promotion_group else "'all'"
    statics = "".join(f", {_COLUMN_SQL[s]} AS {s}" for s in spec.statics)
    any_statics = "".join(f", any_value({s}) AS {s}" for s in spec.statics)
    names = "".join(f", {s}" for s in spec.statics)
    grid_names = "".join(f", g.{s}" for s in spec.statics)
    discount = ", coalesce(sp.discount, 0.0) AS discount" if with_discount else ""
    discount_join = (
        "LEFT JOIN series_promotion sp ON sp.promo_group = g.promo_group AND sp.day = g.ds"
        if with_discount
        else ""
    )
    daily = f"""
    lines AS (
        SELECT {spec.id_sql} AS unique_id, o.ordered_at::DATE AS day, o.revenue,
               {group} AS promo_group{statics}
        FROM order_lines o
        JOIN products p ON p.product_id = o.product_id
        LEFT JOIN customers c ON c.customer_id = o.customer_id
        WHERE {where}
    ),
    sales AS (
        SELECT unique_id, day, sum(revenue) AS y FROM lines WHERE day >= $first GROUP BY ALL
    ),
    spans AS (
        SELECT unique_id, greatest(min(day), $first) AS first_day,
               any_value(promo_group) AS promo_group{any_statics}
        FROM lines GROUP BY unique_id
    ),
    grid AS (
        SELECT unique_id, unnest(generate_series(first_day, $last_day, INTERVAL 1 DAY))::DATE AS ds,
               promo_group{names}
        FROM spans
    ){_discount_sql(spec) if with_discount else ""},
    daily AS (
        SELECT g.unique_id, g.ds, coalesce(s.y, 0.0) AS y{discount}{grid_names}
        FROM grid g
        LEFT JOIN sales s ON s.unique_id = g.unique_id AND s.day = g.ds
        {discount_join}
    )"""
    if freq == "D":
        return f"WITH {daily} SELECT * FROM daily ORDER BY unique_id, ds"
    weekly_discount = ", avg(discount) AS discount" if with_discount else ""
    return f"""WITH {daily}
    SELECT unique_id, date_trunc('week', ds)::DATE AS ds, sum(y) AS y{weekly_discount}{names}
    FROM daily GROUP BY unique_id, 2{names} ORDER BY unique_id, ds"""


def _discount_sql(spec: SeriesLevel) -> str:
    """CTEs computing ``series_promotion(promo_group, day, discount)``: see the module docstring."""
    group = spec.promotion_group
    member_sql = {"product_id": "o.product_id", "category": "p.category", None: "'all'"}[group]
    group_sql = {"product_id": "pp.product_id", "category": "p.category", None: "'all'"}[group]
    # Promotions are per product whatever the region, so every line of the products involved counts.
    return f""",
    product_lines AS (
        SELECT o.product_id, o.ordered_at::DATE AS day, min(o.discount) AS depth
        FROM order_lines o JOIN products p ON p.product_id = o.product_id
        WHERE o.ordered_at < $until AND o.ordered_at >= $first - INTERVAL {PROMOTION_CARRY_DAYS} DAY
          AND {member_sql} IN (SELECT DISTINCT promo_group FROM lines)
        GROUP BY ALL
    ),
    product_days AS (
        SELECT product_id, unnest(generate_series(min(day), $last_day, INTERVAL 1 DAY))::DATE AS day
        FROM product_lines GROUP BY product_id
    ),
    product_promotion AS (
        SELECT d.product_id, d.day,
               coalesce(last_value(pl.depth IGNORE NULLS) OVER (
                   PARTITION BY d.product_id ORDER BY d.day
                   ROWS BETWEEN {PROMOTION_CARRY_DAYS} PRECEDING AND CURRENT ROW), 0.0) AS depth
        FROM product_days d LEFT JOIN product_lines pl ON pl.product_id = d.product_id AND pl.day = d.day
    ),
    series_promotion AS (
        SELECT {group_sql} AS promo_group, pp.day, avg(pp.depth) AS discount
        FROM product_promotion pp JOIN products p ON p.product_id = pp.product_id
        GROUP BY ALL
    )"""


def warehouse_version(con: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
    """What changes whenever sales are added: the number of order lines and the latest order time, both
    answered from DuckDB's statistics (well under a millisecond), and the ingest fingerprint of the order
    lines where the analytics rollups keep one (it also changes when a line is corrected in place)."""
    has_state = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'agg_state'").fetchall()[
        0
    ][0]
    if not has_state:
        return tuple(con.execute("SELECT count(*), max(ordered_at) FROM order_lines").fetchall()[0])
    return tuple(
        con.execute(
            """SELECT count(*), max(ordered_at),
                      (SELECT any_value(value) FROM agg_state WHERE key = 'fingerprint')
               FROM order_lines"""
        ).fetchall()[0]
    )


@dataclass
class _CachedLevel:
    version: tuple[object, ...]
    panel: Panel


class RecentHistory:
    """The recent daily history of every series of a level, kept in memory for forecasts.

    A forecast needs the last few months of a few series; reading them from the order lines costs tens of
    milliseconds a request. This reads a level's whole recent history once (one query, a few hundred
    milliseconds) and again only when :func:`warehouse_version` says the sales changed, so a request costs
    a version check and an array slice, and sales ingested a minute ago still move the next forecast.
    """

    def __init__(self, periods: int, recheck_seconds: float = 0.25) -> None:
        self.periods = periods
        self.recheck_seconds = recheck_seconds
        self._levels: dict[str, _CachedLevel] = {}
        self._lock = Lock()
        self._checked: tuple[float, tuple[object, ...]] | None = None

    def _version(self, con: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
        """The warehouse version, asked at most every ``recheck_seconds`` (a quarter of a second: a sale
        moves the forecasts that quickly, and a busy service asks once, not once per request)."""
        now = monotonic()
        checked = self._checked
        if checked is not None and now - checked[0] < self.recheck_seconds:
            return checked[1]
        version = warehouse_version(con)
        self._checked = (now, version)
        return version

    def version(self, con: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
        """The warehouse version the cached histories answer for (what a cache of forecasts keys on)."""
        return self._version(con)

    def panel(self, con: duckdb.DuckDBPyConnection, level: str, series_ids: Sequence[str]) -> Panel:
        """The history of ``series_ids`` (KeyError naming the ids without sales)."""
        cached = self._current(con, level)
        known = pd.Index(cached.panel.ids)
        unknown = [i for i in dict.fromkeys(series_ids) if i not in known]
        if unknown:
            raise KeyError(f"No sales in the warehouse for series {unknown[:10]}")
        return cached.panel.select(list(dict.fromkeys(series_ids)))

    def series_ids(self, con: duckdb.DuckDBPyConnection, level: str) -> list[str]:
        """Every series of ``level`` with sales in the warehouse."""
        return list(self._current(con, level).panel.ids)

    def _current(self, con: duckdb.DuckDBPyConnection, level: str) -> _CachedLevel:
        version = self._version(con)
        cached = self._levels.get(level)
        if cached is not None and cached.version == version:
            return cached
        with self._lock:  # one reader rebuilds; the others wait for its result rather than repeat it
            cached = self._levels.get(level)
            if cached is None or cached.version != version:
                cached = _CachedLevel(version, self._read(con, level))
                self._levels[level] = cached
        return cached

    def _read(self, con: duckdb.DuckDBPyConnection, level: str) -> Panel:
        last = last_sale_day(con)
        if last is None:
            raise KeyError("No sales in the warehouse")
        start = last - timedelta(days=self.periods - 1)
        frame = load_series(con, level, "D", start=start, end=last, with_discount=False)
        return Panel.from_frame(frame, "D")


# ---------------------------------------------------------------------------------------------- features


@dataclass
class Panel:
    """Series side by side on one calendar: ``y[i, t]`` is series ``ids[i]`` in period ``dates[t]``.

    Periods before a series' first period are NaN (no history yet), which is how the features tell a new
    series from one that sold nothing. Every series runs to the same last period.
    """

    ids: np.ndarray
    dates: pd.DatetimeIndex
    y: np.ndarray
    discount: np.ndarray
    statics: pd.DataFrame
    freq: Freq

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, freq: str) -> Panel:
        """Build from a long frame: unique_id, ds (period starts), y, and optionally discount and the static
        features. Like :func:`load_series`, a series is zero from its first period to the last period of
        the frame, so periods without a row (days without sales) may be left out."""
        freq = check_freq(freq)
        missing = {"unique_id", "ds", "y"} - set(frame.columns)
        if missing:
            raise ValueError(f"Series history needs columns unique_id, ds, y; missing {sorted(missing)}.")
        ds = pd.DatetimeIndex(pd.to_datetime(frame["ds"]))
        rows, ids = pd.factorize(frame["unique_id"], sort=True)
        dates = pd.date_range(ds.min(), ds.max(), freq=pandas_freq(freq))
        columns = dates.get_indexer(ds)
        if (columns < 0).any():
            raise ValueError(f"ds must be period starts at frequency {freq}: {ds[columns < 0][0]} is not.")
        y = np.full((len(ids), len(dates)), np.nan)
        y[rows, columns] = frame["y"].to_numpy(dtype=np.float64)
        started = np.arange(len(dates))[None, :] >= np.argmax(~np.isnan(y), axis=1)[:, None]
        y = np.where(started & np.isnan(y), 0.0, y)
        discount = np.zeros_like(y)
        if "discount" in frame.columns:
            discount[rows, columns] = frame["discount"].to_numpy(dtype=np.float64)
        present = [c for c in STATIC_FEATURES if c in frame.columns]
        statics = frame[["unique_id", *present]].drop_duplicates("unique_id").set_index("unique_id")
        ids = np.asarray(ids, dtype=object)
        return cls(ids=ids, dates=dates, y=y, discount=discount, statics=statics.reindex(ids), freq=freq)

    @property
    def last_date(self) -> pd.Timestamp:
        return self.dates[-1]

    def first_positions(self) -> np.ndarray:
        """Column of each series' first period."""
        return np.argmax(~np.isnan(self.y), axis=1)

    def select(self, ids: Sequence[str]) -> Panel:
        """The series ``ids``, in that order."""
        rows = pd.Index(self.ids).get_indexer(ids)
        if (rows < 0).any():
            raise KeyError(f"Not in the panel: {list(np.asarray(ids)[rows < 0][:10])}")
        return replace(
            self,
            ids=self.ids[rows],
            y=self.y[rows],
            discount=self.discount[rows],
            statics=self.statics.iloc[rows],
        )

    def tail(self, periods: int) -> Panel:
        """The last ``periods`` periods (all of them if fewer)."""
        keep = slice(max(len(self.dates) - periods, 0), None)
        return replace(self, dates=self.dates[keep], y=self.y[:, keep], discount=self.discount[:, keep])

    def until(self, last: pd.Timestamp) -> Panel:
        """The panel as it was at the end of period ``last``; series that had not started are dropped."""
        keep = slice(0, self.dates.searchsorted(last, side="right"))
        y = self.y[:, keep]
        alive = ~np.isnan(y).all(axis=1)
        return replace(
            self,
            ids=self.ids[alive],
            dates=self.dates[keep],
            y=y[alive],
            discount=self.discount[alive, keep],
            statics=self.statics.loc[self.ids[alive]],
        )

    def extended(self, h: int, discount: np.ndarray | None = None) -> Panel:
        """The panel with ``h`` future periods: y NaN (to be forecast), discount as planned (default 0)."""
        future = pd.date_range(self.last_date, periods=h + 1, freq=pandas_freq(self.freq))[1:]
        planned = np.zeros((len(self.ids), h)) if discount is None else discount
        return replace(
            self,
            dates=self.dates.append(future),
            y=np.hstack([self.y, np.full((len(self.ids), h), np.nan)]),
            discount=np.hstack([self.discount, planned]),
        )

    def to_frame(self) -> pd.DataFrame:
        """Back to the long layout (periods before a series' start left out)."""
        rows, columns = np.nonzero(~np.isnan(self.y))
        frame = pd.DataFrame(
            {
                "unique_id": self.ids[rows],
                "ds": self.dates[columns],
                "y": self.y[rows, columns],
                "discount": self.discount[rows, columns],
            }
        )
        return frame.join(self.statics, on="unique_id")


@dataclass(frozen=True)
class SeriesFeatures:
    """The feature pipeline: which features, and the static-feature vocabulary learnt at training.

    ``lags``: the value k periods back. ``windows``: the mean of the last w periods. ``seasonal_means``: the
    mean of the same period of the last k seasons (the same weekday daily). ``activity_window``: the share of
    the last w periods with sales (how intermittent the series is). Windows use whatever part of the history
    exists, so a young series gets features from its first periods on.
    """

    freq: Freq
    lags: tuple[int, ...]
    windows: tuple[int, ...]
    season: int
    seasonal_means: tuple[int, ...]
    activity_window: int
    statics: tuple[str, ...] = ()
    vocabulary: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Level normalisation (0: none, the models of earlier versions). The history features and the target
    # are divided by the series' mean over the last ``scale_window`` periods, and the forecast multiplied
    # back: trees can't extrapolate, so a booster fitted on absolute revenue caps a growing series at the
    # highest values it saw (measured on the sample's total: -26% bias over the last three 28-day windows,
    # the worse the later, against -4% normalised).
    scale_window: int = 0

    @classmethod
    def default(cls, freq: str, statics: Iterable[str] = ()) -> SeriesFeatures:
        """Daily: the last week day by day, the same weekday 2-4 weeks back, means over 1, 2, 4 and 13 weeks
        and over the same weekday of the last 4 and 8 weeks. Weekly: the last month week by week, 2 and 3
        months and a year back, and means over 1, 2, 3 and 6 months."""
        if check_freq(freq) == "W":
            return cls(
                freq="W",
                lags=(1, 2, 3, 4, 8, 13, 52),
                windows=(4, 8, 13, 26),
                season=52,
                seasonal_means=(),
                activity_window=13,
                statics=tuple(statics),
                scale_window=8,
            )
        return cls(
            freq="D",
            lags=(1, 2, 3, 4, 5, 6, 7, 14, 21, 28),
            windows=(7, 14, 28, 91),
            season=7,
            seasonal_means=(4, 8),
            activity_window=28,
            statics=tuple(statics),
            scale_window=28,
        )

    @classmethod
    def from_dict(cls, fields: dict[str, object]) -> SeriesFeatures:
        """The inverse of ``dataclasses.asdict`` after a JSON round trip (lists back to tuples)."""
        vocabulary = {name: tuple(values) for name, values in fields["vocabulary"].items()}  # type: ignore[union-attr]
        plain = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if k != "vocabulary"}
        return cls(**plain, vocabulary=vocabulary)  # type: ignore[arg-type]

    @property
    def lookback(self) -> int:
        """Periods of history that determine every feature: a forecast needs no more."""
        seasonal = [self.season * k for k in self.seasonal_means]
        return max([*self.lags, *self.windows, *seasonal, self.activity_window, self.scale_window, 1])

    @property
    def names(self) -> list[str]:
        return [
            *(f"lag{k}" for k in self.lags),
            *(f"mean{w}" for w in self.windows),
            *(f"seasonal_mean{k}x{self.season}" for k in self.seasonal_means),
            f"active_share{self.activity_window}",
            *CALENDAR_FEATURES[self.freq],
            "discount",
            *self.statics,
            *(["log_scale"] if self.scale_window else []),
        ]

    @property
    def categorical(self) -> list[str]:
        return list(self.statics)

    def fitted(self, panel: Panel) -> SeriesFeatures:
        """A copy that knows the static-feature values of ``panel`` (unseen values later become missing)."""
        vocabulary = {s: tuple(sorted(panel.statics[s].dropna().unique())) for s in self.statics}
        return replace(self, vocabulary=vocabulary)

    def context(self, panel: Panel) -> FeatureContext:
        """What does not depend on the history: the calendar of every period and the static codes."""
        statics = np.column_stack(
            [self._codes(panel, name) for name in self.statics] or [np.empty((len(panel.ids), 0))]
        )
        return FeatureContext(calendar=calendar_features(panel.dates, self.freq), statics=statics)

    def matrix(
        self, panel: Panel, positions: np.ndarray, context: FeatureContext | None = None
    ) -> np.ndarray:
        """Features of every series at the periods ``positions`` (columns of the panel), from the history
        strictly before each period; series-major rows (series i at positions[j] is row i * len + j).
        A forecast computes ``context`` once and calls this once per step."""
        return self.matrix_and_scale(panel, positions, context)[0]

    def matrix_and_scale(
        self, panel: Panel, positions: np.ndarray, context: FeatureContext | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`matrix`, and each row's scale: what the model's output (and the training target) is in
        units of. Ones without level normalisation."""
        positions = np.asarray(positions)
        context = context or self.context(panel)
        shape = (len(panel.ids), len(positions))
        history = self._history(panel.y, positions)
        scale = np.ones(shape)
        extra = []
        if self.scale_window:
            scale = self.scales(panel.y, positions)
            history[..., :-1] /= scale[..., None]  # every level feature; the share of days with sales stays
            extra = [np.log1p(scale)[..., None]]
        blocks = [
            history,
            np.broadcast_to(context.calendar[positions], (*shape, context.calendar.shape[1])),
            panel.discount[:, positions, None],
            np.broadcast_to(context.statics[:, None, :], (*shape, context.statics.shape[1])),
            *extra,
        ]
        x = np.concatenate(blocks, axis=2).reshape(shape[0] * shape[1], -1)
        return x, scale.reshape(-1)

    def scales(self, y: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Series x positions: the mean of the last ``scale_window`` periods before each position; where
        that is zero or missing (a series quiet for a month), the mean of all its history before it; where
        that is too, 1 (a series that never sold is forecast in plain units, near zero)."""
        if len(positions) == 1:  # a forecast step: running sums over the history before it, as in _history
            position = int(positions[0])
            means = _Recent(y[:, :position])
            recent, overall = means.mean(positions, self.scale_window), means.mean(positions, position)
        else:
            recent = _Cumulative(y).mean(positions, self.scale_window)
            overall = _Cumulative(y).mean(positions, int(positions.max()) + 1)
        scale = np.where(recent > 0, recent, overall)
        return np.where(scale > 0, scale, 1.0)

    def _history(self, y: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Lags, window means, seasonal means and the share of periods with sales: series x positions x k."""
        # A forecast step asks for one position: slicing the last window there beats running sums over
        # the whole history (same numbers; the sums serve training's thousands of positions).
        if len(positions) == 1:
            position, span = int(positions[0]), max((*self.windows, self.activity_window))
            recent = y[:, max(position - span, 0) : position]
            level = _Recent(recent)
            activity = _Recent(np.where(np.isnan(recent), np.nan, recent > 0))
        else:
            level = _Cumulative(y)
            activity = _Cumulative(np.where(np.isnan(y), np.nan, y > 0))
        seasons = max(self.seasonal_means, default=0)
        seasonal_lags = _lagged(y, positions, self.season * np.arange(1, seasons + 1))
        return np.concatenate(
            [
                _lagged(y, positions, np.asarray(self.lags, dtype=int)),
                *(level.mean(positions, w)[..., None] for w in self.windows),
                *(_nanmean_last(seasonal_lags[..., :k])[..., None] for k in self.seasonal_means),
                activity.mean(positions, self.activity_window)[..., None],
            ],
            axis=2,
        )

    def _codes(self, panel: Panel, name: str) -> np.ndarray:
        values = panel.statics[name] if name in panel.statics else pd.Series(np.nan, index=panel.ids)
        known = pd.Categorical(values, categories=self.vocabulary.get(name, ()))
        return np.where(known.codes >= 0, known.codes, np.nan).astype(np.float64)


@dataclass(frozen=True)
class FeatureContext:
    calendar: np.ndarray  # periods x calendar features
    statics: np.ndarray  # series x static features (category codes, NaN when unknown)


class _Cumulative:
    """Running sums and counts of the non-missing values of each series, for window means."""

    def __init__(self, values: np.ndarray) -> None:
        observed = ~np.isnan(values)
        zeros = np.zeros((len(values), 1))
        self.sums = np.hstack([zeros, np.cumsum(np.where(observed, values, 0.0), axis=1)])
        self.counts = np.hstack([zeros, np.cumsum(observed, axis=1)])

    def mean(self, positions: np.ndarray, window: int) -> np.ndarray:
        """Mean of the non-missing values among the ``window`` periods before each position (NaN if none)."""
        begin = np.maximum(positions - window, 0)
        total = self.sums[:, positions] - self.sums[:, begin]
        count = self.counts[:, positions] - self.counts[:, begin]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)


class _Recent:
    """Means of the last w values of a slice ending at one position, for any w: running sums from the
    newest value back, so a forecast step's four window means and its share of days with sales cost two
    cumulative sums instead of one pass each (a forecast makes 28 steps)."""

    def __init__(self, recent: np.ndarray) -> None:
        newest_first = recent[:, ::-1]
        observed = ~np.isnan(newest_first)
        self.sums = np.cumsum(np.where(observed, newest_first, 0.0), axis=1)
        self.counts = np.cumsum(observed, axis=1)

    def mean(self, positions: np.ndarray, window: int) -> np.ndarray:
        """As _Cumulative.mean at the slice's end: the mean of the non-missing values among the last
        ``window`` (NaN if none)."""
        if self.sums.shape[1] == 0:
            return np.full((len(self.sums), 1), np.nan)
        last = min(window, self.sums.shape[1]) - 1
        count = self.counts[:, last]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, self.sums[:, last] / count, np.nan)[:, None]


def _lagged(y: np.ndarray, positions: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """``y`` ``lags`` periods before each position (NaN before the start): series x positions x lags."""
    source = positions[:, None] - lags[None, :]
    out = y[:, np.maximum(source, 0)]
    out[:, source < 0] = np.nan
    return out


def _nanmean_last(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the non-missing values (NaN if none), without the empty-slice warning."""
    observed = ~np.isnan(values)
    count = observed.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(observed, values, 0.0).sum(axis=-1) / count, np.nan)


CALENDAR_FEATURES: dict[str, tuple[str, ...]] = {
    "D": ("dayofweek", "day", "month", "dayofyear", "holiday", "black_friday", "cyber_monday"),
    "W": ("weekofyear", "month", "holidays", "black_friday"),
}


def calendar_features(dates: pd.DatetimeIndex, freq: Freq) -> np.ndarray:
    """Calendar features of period starts, one row per date, columns as in CALENDAR_FEATURES[freq]."""
    if freq == "W":
        days = [dates + pd.Timedelta(days=d) for d in range(7)]
        holiday_count = sum(_is_holiday(d) for d in days)
        black_friday = np.any([_is_black_friday(d) for d in days], axis=0)
        week = dates.isocalendar().week.to_numpy()
        return np.column_stack([week, dates.month, holiday_count, black_friday]).astype(np.float64)
    black_friday = _is_black_friday(dates)
    cyber_monday = _is_black_friday(dates - pd.Timedelta(days=3))
    return np.column_stack(
        [
            dates.dayofweek,
            dates.day,
            dates.month,
            dates.dayofyear,
            _is_holiday(dates),
            black_friday,
            cyber_monday,
        ]
    ).astype(np.float64)


def _is_holiday(dates: pd.DatetimeIndex) -> np.ndarray:
    days = _us_holidays(tuple(sorted(set(dates.year))))
    return dates.normalize().isin(days)


def _is_black_friday(dates: pd.DatetimeIndex) -> np.ndarray:
    """The day after Thanksgiving (the fourth Thursday of November): a Friday from the 23rd to the 29th."""
    return np.asarray((dates.month == 11) & (dates.dayofweek == 4) & (dates.day >= 23) & (dates.day <= 29))


@lru_cache(maxsize=64)
def _us_holidays(years: tuple[int, ...]) -> pd.DatetimeIndex:
    """US public holidays (observed days included), as the sample-data generator closes on them."""
    return pd.DatetimeIndex(sorted(holidays.country_holidays("US", years=years)))
