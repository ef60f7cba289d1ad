"""Stage 1: purchase summaries, and the calibration / holdout split the model is validated on.

The split cuts the history at ``cutoff`` = the last order day minus ``holdout_days``. Everything up to the
end of ``cutoff`` is the calibration period: the model is fitted on the customers' summaries as of then, and
the benchmarks see only that period too. The ``holdout_days`` days after it are the holdout: what each
calibration customer actually spent then is what the predictions are ranked against. Customers whose first
purchase falls in the holdout are left out: nothing predicts them from the calibration period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from salespulse.features.customers import customer_features, default_as_of, purchase_summary
from salespulse.warehouse.store import connect

# Nine months, as in the report that found the heuristic's rank correlation of 0.40 on a real log.
HOLDOUT_DAYS = 273
# Below this, the seven parameters and a rank correlation rest on too few customers to mean anything.
MIN_CUSTOMERS = 100
MIN_REPEAT_CUSTOMERS = 20

# Calibration-period margin (profit / costed revenue; 1 where no cost is known, as the
# lifetime-value report does) and holdout revenue of every customer who bought by the cutoff.
_SPLIT_SQL = """
SELECT
    customer_id,
    coalesce(
        sum(profit) FILTER (WHERE calibration AND profit IS NOT NULL)
            / nullif(sum(revenue) FILTER (WHERE calibration AND profit IS NOT NULL), 0),
        1.0
    ) AS margin,
    coalesce(sum(revenue) FILTER (WHERE NOT calibration), 0) AS holdout_spend
FROM (
    SELECT *, ordered_at < $cutoff::DATE + INTERVAL 1 DAY AS calibration
    FROM order_lines
    WHERE ordered_at < $as_of::DATE + INTERVAL 1 DAY
)
GROUP BY customer_id
HAVING bool_or(calibration)
ORDER BY customer_id
"""


@dataclass(frozen=True)
class CalibrationSplit:
    """The calibration period's view of its customers and what they spent in the holdout; every frame and
    series is indexed by customer_id in the same order."""

    cutoff: date  # last day of the calibration period
    as_of: date  # last day of the holdout
    holdout_days: int
    summary: pd.DataFrame  # SUMMARY_NAMES as of cutoff
    features: pd.DataFrame  # the segmenter's FEATURE_NAMES as of cutoff
    margin: pd.Series  # calibration-period margin ratio
    holdout_spend: pd.Series  # revenue in the holdout (0 for customers who bought nothing)


@dataclass(frozen=True)
class CustomerValueData:
    summary: pd.DataFrame  # SUMMARY_NAMES of every customer as of as_of: what the registered model is fit on
    as_of: date
    split: CalibrationSplit


def load_customer_value_data(
    warehouse: Path | None = None, holdout_days: int = HOLDOUT_DAYS
) -> CustomerValueData:
    """The full-history summary and the calibration / holdout split, read in one consistent connection."""
    with connect(warehouse, read_only=True) as con:
        as_of = default_as_of(con)
        if as_of is None:
            raise ValueError("the warehouse has no order lines: generate or import sales first")
        summary = purchase_summary(con, as_of=as_of)
        split = calibration_split(con, as_of, holdout_days)
    _check_enough_customers(summary, "in the warehouse")
    _check_enough_customers(split.summary, f"by the calibration cut-off {split.cutoff}")
    return CustomerValueData(summary=summary, as_of=as_of, split=split)


def calibration_split(con: duckdb.DuckDBPyConnection, as_of: date, holdout_days: int) -> CalibrationSplit:
    cutoff = as_of - timedelta(days=holdout_days)
    outcome = con.execute(_SPLIT_SQL, {"cutoff": cutoff, "as_of": as_of}).df().set_index("customer_id")
    summary = purchase_summary(con, as_of=cutoff)
    features = customer_features(con, as_of=cutoff)
    if not (summary.index.equals(outcome.index) and features.index.equals(outcome.index)):
        raise RuntimeError("the calibration summary, features and holdout disagree on the customers")
    return CalibrationSplit(
        cutoff=cutoff,
        as_of=as_of,
        holdout_days=holdout_days,
        summary=summary,
        features=features,
        margin=outcome["margin"],
        holdout_spend=outcome["holdout_spend"],
    )


def _check_enough_customers(summary: pd.DataFrame, when: str) -> None:
    repeaters = int((summary["frequency"] > 0).sum())
    if len(summary) < MIN_CUSTOMERS or repeaters < MIN_REPEAT_CUSTOMERS:
        raise ValueError(
            f"only {len(summary)} customers ({repeaters} with a repeat purchase) {when}; the customer-value "
            f"model needs at least {MIN_CUSTOMERS} ({MIN_REPEAT_CUSTOMERS} with a repeat purchase)"
        )
