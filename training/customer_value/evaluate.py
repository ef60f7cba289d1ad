"""Stage 3: how well each way of ranking customers predicts what they spend in the holdout.

Three predictions of each calibration customer's holdout spend, each made from the calibration period only,
are compared with what the customer actually spent by Spearman's rank correlation (the reports rank
customers; the level of a heuristic value is arbitrary):

- the model: expected purchases in the holdout's days x expected spend per purchase;
- the heuristic: the lifetime-value report's formula, average order value x orders per year (over the
  tenure, at least a month) x margin x 3 years, reimplemented here on the same customers (training must not
  import the analytics reports); the constant 3 years does not change ranks;
- the segment means: each customer gets the mean holdout spend of their segment, the segments a KMeans of
  the segmenter's own pipeline fitted on the calibration features. It is a benchmark, not a forecast: the
  means are taken from the holdout itself, which is as much as a segmentation can say about spend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from salespulse.features.customers import validate_features
from salespulse.modeling.customer_value import CustomerValueParameters, predict_customers
from salespulse.modeling.segmenter import build_pipeline
from training.customer_value.data import CalibrationSplit

HEURISTIC_LIFETIME_YEARS = 3.0
# The middle of the segmenter's k range (5..8): what the served segmentation usually chooses.
BENCHMARK_SEGMENTS = 6
BENCHMARK_N_INIT = 10


@dataclass(frozen=True)
class HoldoutScores:
    """Spearman rank correlations with actual holdout spend, and how the model's total compares."""

    model: float
    heuristic: float
    segment_means: float
    customers: int
    holdout_days: int
    predicted_total: float  # the model's predicted holdout revenue of all calibration customers
    actual_total: float

    def as_metrics(self) -> dict[str, float]:
        return {
            "holdout_spearman": self.model,
            "heuristic_holdout_spearman": self.heuristic,
            "segment_means_holdout_spearman": self.segment_means,
            "holdout_customers": float(self.customers),
            "holdout_predicted_total": self.predicted_total,
            "holdout_actual_total": self.actual_total,
            "holdout_total_ratio": self.predicted_total / self.actual_total if self.actual_total else np.nan,
        }

    def describe(self) -> str:
        return (
            f"holdout Spearman over {self.holdout_days} days, {self.customers:,} customers: model "
            f"{self.model:.3f}, heuristic lifetime value {self.heuristic:.3f}, segment means "
            f"{self.segment_means:.3f}; predicted total {self.predicted_total:,.0f} vs actual "
            f"{self.actual_total:,.0f}"
        )


def holdout_scores(
    parameters: CustomerValueParameters, split: CalibrationSplit, *, seed: int
) -> HoldoutScores:
    actual = split.holdout_spend.to_numpy()
    predicted = model_holdout_spend(parameters, split)
    return HoldoutScores(
        model=rank_correlation(predicted, actual),
        heuristic=rank_correlation(heuristic_lifetime_value(split), actual),
        segment_means=rank_correlation(segment_mean_spend(split, seed=seed), actual),
        customers=len(actual),
        holdout_days=split.holdout_days,
        predicted_total=float(predicted.sum()),
        actual_total=float(actual.sum()),
    )


def model_holdout_spend(parameters: CustomerValueParameters, split: CalibrationSplit) -> np.ndarray:
    return predict_customers(parameters, split.summary, horizon_days=split.holdout_days).expected_spend


def heuristic_lifetime_value(split: CalibrationSplit) -> np.ndarray:
    """The lifetime-value report's value as of the cut-off: revenue / orders x orders / tenure years x margin
    x lifetime, tenure = days from the first sale to the as-of day inclusive, at least a month."""
    features = split.features
    tenure_years = np.maximum((features["tenure_days"].to_numpy() + 1) / 365.25, 1 / 12)
    orders = features["frequency"].to_numpy()
    average_order_value = features["monetary"].to_numpy() / orders
    return average_order_value * (orders / tenure_years) * split.margin.to_numpy() * HEURISTIC_LIFETIME_YEARS


def segment_mean_spend(split: CalibrationSplit, *, seed: int) -> np.ndarray:
    """Each customer's segment's mean holdout spend (segments fitted on the calibration features)."""
    matrix = validate_features(split.features)
    with threadpool_limits(limits=1):  # tiny data: threads cost more than they save (see the segmenter)
        labels = build_pipeline(BENCHMARK_SEGMENTS, seed=seed, n_init=BENCHMARK_N_INIT).fit_predict(matrix)
    means = pd.Series(split.holdout_spend.to_numpy()).groupby(labels).transform("mean")
    return means.to_numpy()


def rank_correlation(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman's rho (ties share their mean rank); NaN when either side is constant."""
    if np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return float("nan")
    return float(spearmanr(predicted, actual).statistic)
