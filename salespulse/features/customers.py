"""Customer features: the one definition that segmentation training and serving both use.

Each customer with at least one order line up to the reference day ``as_of`` gets five numbers, computed
from ``order_lines`` in DuckDB:

- ``recency_days``: whole calendar days from the day of the customer's last order to ``as_of``
  (0 = ordered on ``as_of``);
- ``frequency``: number of distinct orders (``order_id``), not order lines;
- ``monetary``: total revenue of all the customer's order lines (after discounts);
- ``tenure_days``: whole calendar days from the day of the customer's first order to ``as_of``
  (always >= ``recency_days``);
- ``avg_order_value``: ``monetary / frequency``.

``as_of`` defaults to the day of the last order line in the whole warehouse, not to today. The warehouse is a
snapshot of a company's sales that is loaded now and then: measuring from its end makes the features a
function of the data alone, so training is reproducible, and a model trained on an export that ended weeks
ago does not see every customer as weeks "older" than the data says. Serving computes the features of a
customer id with the same default, so it sees what training saw. Callers that send raw values instead
measure recency and tenure against their own "today".

Counts are whole numbers but every feature is a float64, because the model takes one float matrix in this
column order (:data:`FEATURE_NAMES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    # Only for annotations: the model validates features with this module and must load without DuckDB.
    import duckdb

FEATURE_NAMES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "avg_order_value",
)

FEATURE_DESCRIPTIONS: dict[str, str] = {
    "recency_days": "Whole days from the customer's last order to the reference day.",
    "frequency": "Number of distinct orders.",
    "monetary": "Total revenue of the customer's order lines.",
    "tenure_days": "Whole days from the customer's first order to the reference day.",
    "avg_order_value": "Total revenue divided by the number of orders.",
}

# Smallest valid value of each feature; every value must also be finite. A customer has features only
# once they have ordered, so frequency starts at 1.
FEATURE_MINIMUMS: dict[str, float] = {
    "recency_days": 0.0,
    "frequency": 1.0,
    "monetary": 0.0,
    "tenure_days": 0.0,
    "avg_order_value": 0.0,
}
_MINIMUMS = np.array([FEATURE_MINIMUMS[name] for name in FEATURE_NAMES])

# Lines up to the end of the reference day; the default reference day is the warehouse's last order day.
# Ids, when given, are joined in before aggregating, so one customer costs one filtered scan.
_FEATURES_SQL = """
WITH reference AS (
    SELECT coalesce($as_of::DATE, (SELECT max(ordered_at)::DATE FROM order_lines)) AS as_of
),
lines AS (
    SELECT l.customer_id, l.order_id, l.ordered_at, l.revenue
    FROM order_lines AS l
    {id_filter}
    WHERE l.ordered_at < (SELECT as_of FROM reference) + INTERVAL 1 DAY
)
SELECT
    customer_id,
    date_diff('day', max(ordered_at)::DATE, any_value(reference.as_of))::DOUBLE AS recency_days,
    count(DISTINCT order_id)::DOUBLE AS frequency,
    sum(revenue)::DOUBLE AS monetary,
    date_diff('day', min(ordered_at)::DATE, any_value(reference.as_of))::DOUBLE AS tenure_days,
    (sum(revenue) / count(DISTINCT order_id))::DOUBLE AS avg_order_value
FROM lines, reference
GROUP BY customer_id
ORDER BY customer_id
"""
_ID_FILTER = "SEMI JOIN (SELECT unnest($ids::VARCHAR[]) AS customer_id) AS wanted USING (customer_id)"


def customer_features(
    con: duckdb.DuckDBPyConnection,
    customer_ids: Sequence[str] | None = None,
    as_of: date | None = None,
) -> pd.DataFrame:
    """Features of ``customer_ids`` (default: every customer), indexed by ``customer_id``.

    Columns are :data:`FEATURE_NAMES` in order, rows are sorted by id. A requested id without any order line
    up to ``as_of`` is absent from the result (it has no recency or frequency), so callers compare the
    index with what they asked for. ``as_of`` defaults to the day of the warehouse's last order line.
    """
    params: dict[str, object] = {"as_of": as_of}
    id_filter = ""
    if customer_ids is not None:
        params["ids"] = list(customer_ids)
        id_filter = _ID_FILTER
    frame = con.execute(_FEATURES_SQL.format(id_filter=id_filter), params).df()
    return frame.set_index("customer_id")[list(FEATURE_NAMES)]


def default_as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    """The default reference day: the day of the warehouse's last order line (None when it has none)."""
    return con.execute("SELECT max(ordered_at)::DATE FROM order_lines").fetchone()[0]


def validate_features(values: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Check a feature matrix (columns in :data:`FEATURE_NAMES` order) and return it as float64.

    Raises ``ValueError`` naming the first bad column, how many rows are bad and the first bad value, so an
    API can pass the message on to its caller as it is.
    """
    if isinstance(values, pd.DataFrame):
        values = _columns_in_order(values)
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(FEATURE_NAMES):
        raise ValueError(
            f"expected a matrix of {len(FEATURE_NAMES)} columns ({', '.join(FEATURE_NAMES)}), "
            f"got shape {matrix.shape}"
        )
    # One vectorised pass for the common case (all good); the per-column search runs only on failure.
    if not (np.isfinite(matrix) & (matrix >= _MINIMUMS)).all():
        _raise_for_first_bad_column(matrix)
    return matrix


def _columns_in_order(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [name for name in FEATURE_NAMES if name not in frame.columns]
    if missing:
        raise ValueError(f"missing feature column(s): {', '.join(missing)}")
    return frame[list(FEATURE_NAMES)]


def _raise_for_first_bad_column(matrix: np.ndarray) -> None:
    for column, name in enumerate(FEATURE_NAMES):
        values = matrix[:, column]
        minimum = FEATURE_MINIMUMS[name]
        bad = ~(np.isfinite(values) & (values >= minimum))
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(
                f"{name} must be a finite number >= {minimum:g}: {int(bad.sum())} bad row(s), "
                f"first at row {first} ({float(values[first])})"
            )


# ------------------------------------------------------------------------------------------------------------
# The purchase summary of buy-till-you-die models (BG/NBD, Gamma-Gamma)
# ------------------------------------------------------------------------------------------------------------
#
# The customer-value model counts *purchases*: days with at least one order. Two orders of one customer on
# one day are one purchase (as in the BTYD literature and PyMC-Marketing's ``rfm_summary``): the models
# assume purchases arrive one at a time in continuous time, and a day is the resolution of the data that
# matters here (about 6% of purchase days hold more than one order on the sample data). Time is in days.

SUMMARY_NAMES: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")

SUMMARY_DESCRIPTIONS: dict[str, str] = {
    "frequency": "Repeat purchases: days with an order, after the first one.",
    "recency": "Days from the first to the last purchase day (0 without a repeat purchase).",
    "T": "Days from the first purchase day to the reference day (the customer's age).",
    "monetary_value": "Mean revenue of the repeat purchase days (0 without a repeat purchase).",
}

# Repeat revenue is clipped at 0 because an imported warehouse may hold returns as negative lines, and a
# mean spend below 0 means nothing to a spend model. The first purchase day is left out of the mean, as the
# Gamma-Gamma model expects (it models repeat spend; a first order is often unlike the later ones).
_SUMMARY_FROM_DAYS_SQL = """
SELECT
    customer_id,
    (count(*) - 1)::DOUBLE AS frequency,
    date_diff('day', min(day), max(day))::DOUBLE AS recency,
    date_diff('day', min(day), ({as_of})::DATE)::DOUBLE AS T,
    greatest(coalesce((sum(revenue) - arg_min(revenue, day)) / nullif(count(*) - 1, 0), 0), 0)::DOUBLE
        AS monetary_value
FROM {purchase_days}
GROUP BY customer_id
"""

_SUMMARY_SQL = """
WITH reference AS (
    SELECT coalesce($as_of::DATE, (SELECT max(ordered_at)::DATE FROM order_lines)) AS as_of
),
purchase_days AS (
    SELECT l.customer_id, l.ordered_at::DATE AS day, sum(l.revenue) AS revenue
    FROM order_lines AS l
    {id_filter}
    WHERE l.ordered_at < (SELECT as_of FROM reference) + INTERVAL 1 DAY
    GROUP BY ALL
)
{summary}
ORDER BY customer_id
"""


def purchase_summary_sql(purchase_days: str, as_of: str) -> str:
    """SQL of the summary (``customer_id`` and the :data:`SUMMARY_NAMES` columns, one row per customer) of
    ``purchase_days``: a relation of one row per customer and day with a purchase (``customer_id``, ``day``
    a DATE, ``revenue`` the day's revenue, none after ``as_of``), measured to the SQL date expression
    ``as_of`` (a parameter or a scalar subquery, never user text).

    The one definition of the summary: :func:`purchase_summary` (what the model is trained on and serves)
    passes the warehouse's days; the analytics reports pass the days of the sales their filters select.
    """
    return _SUMMARY_FROM_DAYS_SQL.format(purchase_days=purchase_days, as_of=as_of)


def purchase_summary(
    con: duckdb.DuckDBPyConnection,
    customer_ids: Sequence[str] | None = None,
    as_of: date | None = None,
) -> pd.DataFrame:
    """BTYD summary of ``customer_ids`` (default: every customer), indexed by ``customer_id``.

    Columns are :data:`SUMMARY_NAMES` in order, rows sorted by id; as :func:`customer_features`, ids without
    an order line up to ``as_of`` are absent, and ``as_of`` defaults to the warehouse's last order day.
    """
    params: dict[str, object] = {"as_of": as_of}
    id_filter = ""
    if customer_ids is not None:
        params["ids"] = list(customer_ids)
        id_filter = _ID_FILTER
    summary = purchase_summary_sql("purchase_days", "SELECT as_of FROM reference")
    frame = con.execute(_SUMMARY_SQL.format(id_filter=id_filter, summary=summary), params).df()
    return frame.set_index("customer_id")[list(SUMMARY_NAMES)]


def validate_summary(values: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Check a purchase summary (columns in :data:`SUMMARY_NAMES` order) and return it as float64.

    Every value must be finite and >= 0, and ``recency`` at most ``T`` (the last purchase cannot be after the
    reference day). Raises ``ValueError`` naming the column, the number of bad rows and the first bad value.
    """
    if isinstance(values, pd.DataFrame):
        missing = [name for name in SUMMARY_NAMES if name not in values.columns]
        if missing:
            raise ValueError(f"missing summary column(s): {', '.join(missing)}")
        values = values[list(SUMMARY_NAMES)]
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(SUMMARY_NAMES):
        raise ValueError(
            f"expected a matrix of {len(SUMMARY_NAMES)} columns ({', '.join(SUMMARY_NAMES)}), "
            f"got shape {matrix.shape}"
        )
    for column, name in enumerate(SUMMARY_NAMES):
        values = matrix[:, column]
        _refuse_bad_rows(name, values, ~(np.isfinite(values) & (values >= 0)), "a finite number >= 0")
    _refuse_bad_rows("recency", matrix[:, 1], matrix[:, 1] > matrix[:, 2], "at most T")
    return matrix


def _refuse_bad_rows(name: str, values: np.ndarray, bad: np.ndarray, rule: str) -> None:
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"{name} must be {rule}: {int(bad.sum())} bad row(s), "
            f"first at row {first} ({float(values[first])})"
        )
