"""Stage 3: how well each way of ranking customers predicts what they spend in the holdout.

Three predictions of each calibration customer's holdout spend, each made from the calibration period only,
are compared with what the customer actually spent by Spearman's rank correlation (the reports rank
customers; the level of a heuristic value is arbitrary):

- the model: expected purchases in the holdout's days x expected spend per purchase;
- the heuristic: the lifetime-value report's formula, average order value x orders per year (over the
  tenure, at least a month) x margin x 3 years, reimplemented here on the same customers (training must not
  import the analytics reports); the constant 3 years does not change ranks;
- the segment means: each customer gets the mean holdout spend of their segment, the segments those the
  segmenter itself chooses on this split (features and k by holdout value separation and silhouette,
  ``training.segmenter.train``), fitted on the calibration features. It is a benchmark, not a forecast:
  the means are taken from the holdout itself, which is as much as a segmentation can say about spend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from salespulse.features.customers import validate_features
from salespulse.modeling.customer_value import CustomerValueParameters, predict_customers
from training.holdout import CalibrationSplit, rank_correlation
from training.segmenter.train import (
    DEFAULT_K_RANGE,
    FEATURE_SETS,
    KScore,
    choose_by_value,
    score_candidates,
)

__all__ = ["HoldoutScores", "holdout_scores", "rank_correlation"]

HEURISTIC_LIFETIME_YEARS = 3.0


@dataclass(frozen=True)
class HoldoutScores:
    """Spearman rank correlations with actual holdout spend, and how the model's total compares."""

    model: float
    heuristic: float
    segment_means: float
    segments: KScore  # the benchmark segmentation: its feature set and k
    customers: int
    holdout_days: int
    predicted_total: float  # the model's predicted holdout revenue of all calibration customers
    actual_total: float

    def as_metrics(self) -> dict[str, float]:
        return {
            "holdout_spearman": self.model,
            "heuristic_holdout_spearman": self.heuristic,
            "segment_means_holdout_spearman": self.segment_means,
            "segment_means_holdout_r2": self.segments.value_r2,
            "benchmark_segments": float(self.segments.k),
            "holdout_customers": float(self.customers),
            "holdout_predicted_total": self.predicted_total,
            "holdout_actual_total": self.actual_total,
            "holdout_total_ratio": self.predicted_total / self.actual_total if self.actual_total else np.nan,
        }

    def describe(self) -> str:
        return (
            f"holdout Spearman over {self.holdout_days} days, {self.customers:,} customers: model "
            f"{self.model:.3f}, heuristic lifetime value {self.heuristic:.3f}, segment means "
            f"{self.segment_means:.3f} ({self.segments.feature_set}, k={self.segments.k}); predicted total "
            f"{self.predicted_total:,.0f} vs actual {self.actual_total:,.0f}"
        )


def holdout_scores(parameters: CustomerValueParameters, split: CalibrationSplit) -> HoldoutScores:
    actual = split.holdout_spend.to_numpy()
    predicted = model_holdout_spend(parameters, split)
    segments = benchmark_segmentation(split)
    return HoldoutScores(
        model=rank_correlation(predicted, actual),
        heuristic=rank_correlation(heuristic_lifetime_value(split), actual),
        segment_means=segments.value_spearman,
        segments=segments,
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


def benchmark_segmentation(split: CalibrationSplit) -> KScore:
    """The segmentation the segmenter chooses on ``split``, with its value scores: ``value_spearman`` is the
    rank correlation of each customer's segment mean of holdout spend with their own holdout spend."""
    matrix = validate_features(split.features)
    low, high = DEFAULT_K_RANGE
    with threadpool_limits(limits=1):  # tiny data: threads cost more than they save (see the segmenter)
        return choose_by_value(score_candidates(matrix, split, FEATURE_SETS, range(low, high + 1)))
