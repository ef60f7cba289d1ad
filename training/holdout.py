"""The calibration / holdout split of the customers, shared by the customer-value model and the segmenter.

The split cuts the history at ``cutoff`` = the last order day minus ``holdout_days``. Everything up to the
end of ``cutoff`` is the calibration period: models are fitted on the customers as they were then. The
``holdout_days`` days after it are the holdout: what each calibration customer actually spent then is what
predictions are scored against. Customers whose first purchase falls in the holdout are left out: nothing
predicts them from the calibration period.

Both pipelines score rankings of customers by Spearman's rank correlation with their holdout spend
(:func:`rank_correlation`); a segmentation predicts each customer's spend by the mean of their segment
(:func:`segment_means`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from salespulse.features.customers import customer_features, purchase_summary

# Nine months, as in the report that found the heuristic's rank correlation of 0.40 on a real log.
HOLDOUT_DAYS = 273

# Calibration-period margin (profit / costed revenue; 1 where no cost is known, as the lifetime-value
# report does) and holdout revenue of every customer who bought by the cutoff.
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


def calibration_split(con: duckdb.DuckDBPyConnection, as_of: date, holdout_days: int) -> CalibrationSplit:
    """The split of the lines up to the end of ``as_of``, whose last ``holdout_days`` days are the holdout."""
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


def rank_correlation(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman's rho (ties share their mean rank); NaN when either side is constant."""
    if np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return float("nan")
    return float(spearmanr(predicted, actual).statistic)


def segment_means(labels: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """Each customer's prediction by segment: the mean ``spend`` of the customers sharing their label.

    The means are taken from ``spend`` itself: as much as a segmentation can say about spend. With at most
    a dozen segments of dozens to thousands of customers each, the optimism this adds is small, and it is
    the same for every segmentation compared.
    """
    return pd.Series(spend).groupby(np.asarray(labels)).transform("mean").to_numpy()


def explained_share(labels: np.ndarray, spend: np.ndarray) -> float:
    """R² of the segment means as predictions of ``spend``: the share of its variance between segments."""
    total = float(np.square(spend - spend.mean()).sum())
    if total == 0:
        return float("nan")
    return 1.0 - float(np.square(spend - segment_means(labels, spend)).sum()) / total
