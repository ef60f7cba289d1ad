"""Stage 2: choose the features and k, fit KMeans, name and order the segments, measure stability.

What is chosen. A segmentation is judged by two things: how well its clusters are separated (silhouette,
on a fixed sample of customers, Davies-Bouldin beside it) and how well it separates *value*: fitted on the
customers as they were at the calibration cut-off (``training.holdout``), how well each customer's
segment mean of holdout spend predicts what the customer spent in the holdout (Spearman's rank correlation
``value_spearman``, the share of variance ``value_r2`` beside it). Every feature set of ``FEATURE_SETS`` is
fitted for every k in the range. Within a feature set, the k whose silhouette is within ``SILHOUETTE_SLACK``
of the set's best are eligible (silhouettes of different feature spaces are not compared: fewer dimensions
give higher ones by themselves); of all eligible candidates the one with the highest value separation
wins, and candidates within ``VALUE_TIE`` of it count as tied: the fewest segments, then the higher
silhouette. Without a holdout (a history shorter than the holdout plus a calibration period with enough
customers) the five features are used and k is chosen by silhouette alone, the smallest k within
``SILHOUETTE_TIE`` of the best: on sales data the silhouette curve is flat and equally good KMeans
solutions of one k differ by up to ~0.0005.

The choice is a property of the data, not of the training seed. The candidate fits use a fixed random
state and the silhouette a fixed sample - measuring instruments, like a ruler - so the features and k, and
with them the set of names, change when the customers change, never because a retrain used another seed.
The training seed drives the fit of the model itself and the bootstrap.

The served model is then fitted on every customer as of the last order day, with the chosen features and
k. Its value order is measured the same way: it assigns the customers as they were at the cut-off, and
the mean holdout spend of each segment's customers is the segment's value. Names follow that order
(``naming.name_by_value``), and segment ids too (0 = most valuable), so the names' value order holds on
the holdout. The centroids were fitted on a history that includes the holdout; a handful of cluster
centres barely move with it, as the customer-value model's population parameters barely do.

The default range starts at 5 because fewer segments cannot keep apart groups that need different
marketing: with 3 or 4 clusters on the sample data the best customers share a cluster with everyone
active. 8 keeps every segment big enough to act on. 25 starts per fit, because with 10 the kept solution
still changed with the seed on 5,000-customer data.

Stability. The whole pipeline is refitted on bootstrap resamples of the customers and each refit labels
all customers; the adjusted Rand index against the model's labels says how much of the segmentation
survives a different sample (1 = identical partition, 0 = chance).

Threads. Everything here runs on one BLAS/OpenMP thread: the data is tens of thousands of rows by five
columns, where thread start-up and OpenMP spin-waiting cost more than they save and collapse when the
cores are shared (measured: one KMeans fit 0.1 s on one thread, up to 5 s on two busy cores).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from salespulse.features.customers import FEATURE_NAMES, validate_features
from salespulse.modeling.segmenter import Segment, Segmentation, build_pipeline
from training.holdout import CalibrationSplit, explained_share, rank_correlation, segment_means
from training.segmenter.naming import name_segments, segment_order
from training.segmenter.profile import segment_profile

DEFAULT_K_RANGE = (5, 8)
N_INIT = 25
SILHOUETTE_SAMPLE = 5_000
SILHOUETTE_SAMPLE_SEED = 0
CANDIDATE_SEED = 0
SILHOUETTE_TIE = 0.002
SILHOUETTE_SLACK = 0.03
VALUE_TIE = 0.01
# A segment must be named above another when its mean holdout spend is higher by more than this many
# standard errors of the difference; closer than that, the two are as valuable as the data can tell.
VALUE_ORDER_Z = 2.0
BOOTSTRAP_ROUNDS = 10

# The feature sets tried, by name. Each holds a measure of money, since value is what the segments must
# separate; the names are used in logged metric names.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "rfm_tenure_aov": FEATURE_NAMES,
    "rfm_tenure": ("recency_days", "frequency", "monetary", "tenure_days"),
    "rfm": ("recency_days", "frequency", "monetary"),
    "rf_aov": ("recency_days", "frequency", "avg_order_value"),
}
DEFAULT_FEATURE_SET = "rfm_tenure_aov"  # without a holdout to choose by


@dataclass(frozen=True)
class KScore:
    """A fitted candidate (or the model): its feature set, k and scores. ``value_*`` are NaN when there is
    no holdout; for candidates they are measured on the calibration customers, for the model on the
    customers as they were at the cut-off."""

    k: int
    silhouette: float
    davies_bouldin: float
    inertia: float
    feature_set: str = DEFAULT_FEATURE_SET
    value_spearman: float = float("nan")
    value_r2: float = float("nan")


@dataclass(frozen=True)
class TrainedSegmentation:
    segmentation: Segmentation
    labels: np.ndarray  # segment id of each customer, in the feature table's row order
    scaled: np.ndarray  # the feature table in the model's scaled space
    candidates: tuple[KScore, ...]  # one per feature set and k tried
    final: KScore  # the model itself (chosen features and k, fitted with the run's seed, segments ordered)
    bootstrap_ari: tuple[float, ...]
    holdout: pd.DataFrame | None  # per segment id: the model's customers at the cut-off and holdout spend

    @property
    def k(self) -> int:
        return self.final.k

    @property
    def feature_set(self) -> str:
        return self.final.feature_set


def train_segmentation(
    features: pd.DataFrame,
    *,
    seed: int,
    k_range: tuple[int, int] = DEFAULT_K_RANGE,
    split: CalibrationSplit | None = None,
) -> TrainedSegmentation:
    """Choose, fit, name and order the segmentation of ``features`` (one row per customer, as of the last
    order day); ``split`` (the customers at the cut-off and their holdout spend) lets value choose."""
    low, high = k_range
    if not 2 <= low <= high < len(features):
        raise ValueError(f"k range {k_range} must satisfy 2 <= low <= high < customers ({len(features)})")
    # The warehouse may hold imported data the features cannot represent (say, negative revenue).
    matrix = validate_features(features)
    ks = range(low, high + 1)
    with threadpool_limits(limits=1):
        if split is not None:
            candidates = score_candidates(validate_features(split.features), split, FEATURE_SETS, ks)
            chosen = choose_by_value(candidates)
        else:
            candidates = score_candidates(matrix, None, {DEFAULT_FEATURE_SET: FEATURE_NAMES}, ks)
            chosen = choose_k(candidates)
        columns = FEATURE_SETS[chosen.feature_set]
        model = build_pipeline(chosen.k, seed=seed, n_init=N_INIT, features=columns).fit(matrix)
        pipeline, segments = order_segments(model, matrix, split, columns, seed=seed)
        labels = pipeline.named_steps["kmeans"].labels_
        final = score_pipeline(pipeline, matrix, chosen.feature_set)
        holdout = None
        if split is not None:
            at_cutoff = holdout_labels(pipeline, split)
            holdout = holdout_table(at_cutoff, split, chosen.k)
            final = replace(final, **value_scores(at_cutoff, split.holdout_spend.to_numpy()))
        ari = bootstrap_ari(matrix, labels, k=chosen.k, features=columns, seed=seed)
    profile = segment_profile(features, labels, segments, holdout)
    return TrainedSegmentation(
        segmentation=Segmentation(pipeline, segments, profile),
        labels=labels,
        scaled=pipeline[:-1].transform(matrix),
        candidates=candidates,
        final=final,
        bootstrap_ari=ari,
        holdout=holdout,
    )


def score_candidates(
    matrix: np.ndarray,
    split: CalibrationSplit | None,
    feature_sets: dict[str, tuple[str, ...]],
    ks: Iterable[int],
) -> tuple[KScore, ...]:
    """Fit every feature set x k on ``matrix`` (the calibration customers when there is a split) with the
    fixed candidate seed, and score each; the value scores against the split's holdout spend."""
    spend = split.holdout_spend.to_numpy() if split is not None else None
    scores = []
    for name, columns in feature_sets.items():
        for k in ks:
            pipeline = build_pipeline(k, seed=CANDIDATE_SEED, n_init=N_INIT, features=columns).fit(matrix)
            score = score_pipeline(pipeline, matrix, name)
            if spend is not None:
                labels = pipeline.named_steps["kmeans"].labels_
                score = replace(score, **value_scores(labels, spend))
            scores.append(score)
    return tuple(scores)


def value_scores(labels: np.ndarray, spend: np.ndarray) -> dict[str, float]:
    """How well the segment means of ``spend`` predict each customer's ``spend``: rank and variance."""
    return {
        "value_spearman": rank_correlation(segment_means(labels, spend), spend),
        "value_r2": explained_share(labels, spend),
    }


def silhouette_on_sample(scaled: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of ``labels`` on the fixed evaluation sample; NaN if the sample has a single label."""
    sample = SILHOUETTE_SAMPLE if len(scaled) > SILHOUETTE_SAMPLE else None
    indices = np.random.default_rng(SILHOUETTE_SAMPLE_SEED).permutation(len(scaled))[:sample]
    if len(np.unique(labels[indices])) < 2:
        return float("nan")
    with threadpool_limits(limits=1):
        return float(silhouette_score(scaled[indices], labels[indices]))


def score_pipeline(pipeline: Pipeline, matrix: np.ndarray, feature_set: str) -> KScore:
    kmeans = pipeline.named_steps["kmeans"]
    scaled = pipeline[:-1].transform(matrix)
    return KScore(
        k=kmeans.n_clusters,
        silhouette=silhouette_on_sample(scaled, kmeans.labels_),
        davies_bouldin=float(davies_bouldin_score(scaled, kmeans.labels_)),
        inertia=float(kmeans.inertia_),
        feature_set=feature_set,
    )


def choose_k(candidates: tuple[KScore, ...]) -> KScore:
    """The smallest k whose silhouette is within ``SILHOUETTE_TIE`` of the best."""
    best = max(c.silhouette for c in candidates)
    return min((c for c in candidates if c.silhouette >= best - SILHOUETTE_TIE), key=lambda c: c.k)


def choose_by_value(candidates: tuple[KScore, ...]) -> KScore:
    """The best value separation among the candidates whose silhouette is within ``SILHOUETTE_SLACK`` of
    their feature set's best; within ``VALUE_TIE`` of it, the fewest segments, then the higher silhouette.
    Falls back to :func:`choose_k` over the default features when no candidate separates value at all."""
    eligible = []
    for name in dict.fromkeys(c.feature_set for c in candidates):
        own = [c for c in candidates if c.feature_set == name]
        best = max(c.silhouette for c in own)
        eligible += [c for c in own if c.silhouette >= best - SILHOUETTE_SLACK]
    valued = [c for c in eligible if np.isfinite(c.value_spearman)]
    if not valued:
        return choose_k(tuple(c for c in candidates if c.feature_set == DEFAULT_FEATURE_SET))
    top = max(c.value_spearman for c in valued)
    tied = [c for c in valued if c.value_spearman >= top - VALUE_TIE]
    return min(tied, key=lambda c: (c.k, -c.silhouette))


def order_segments(
    pipeline: Pipeline,
    matrix: np.ndarray,
    split: CalibrationSplit | None,
    columns: tuple[str, ...],
    *,
    seed: int,
) -> tuple[Pipeline, list[Segment]]:
    """Name the clusters and renumber them in the names' order (segment id 0 = most valuable).

    With a split, the names follow the clusters' holdout value (``naming.name_by_value``); without, the
    profiles alone. KMeans numbers clusters arbitrarily; refitting from the fitted centroids in that order
    gives the same clustering with ids that mean the same thing in every retrain.
    """
    kmeans = pipeline.named_steps["kmeans"]
    profiles = standard_profiles(matrix, kmeans.labels_, kmeans.n_clusters)
    above = None
    if split is not None:
        above = clearly_above(
            holdout_labels(pipeline, split), split.holdout_spend.to_numpy(), kmeans.n_clusters
        )
    names = name_segments(profiles, above)
    order = segment_order(names)
    ordered = build_pipeline(
        len(order), seed=seed, n_init=1, init=kmeans.cluster_centers_[order], features=columns
    ).fit(matrix)
    segments = [
        Segment(segment_id=i, name=names[cluster].name, action=names[cluster].action)
        for i, cluster in enumerate(order)
    ]
    return ordered, segments


def standard_profiles(matrix: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Each cluster's mean member in the standard scaled space of all five features (log1p, standardised
    over these customers): what the naming catalogue's prototypes describe, whatever the model clusters on."""
    logged = np.log1p(matrix)
    spread = logged.std(axis=0)
    scaled = (logged - logged.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    frame = pd.DataFrame(scaled).groupby(labels).mean()
    return frame.reindex(range(k)).fillna(0.0).to_numpy()


def clearly_above(labels: np.ndarray, spend: np.ndarray, k: int) -> np.ndarray:
    """``above[i, j]``: cluster i's customers spent clearly more than cluster j's - the difference of their
    mean ``spend`` exceeds ``VALUE_ORDER_Z`` standard errors. An empty cluster is above and below none."""
    frame = pd.DataFrame({"label": labels, "spend": spend}).groupby("label")["spend"]
    mean = frame.mean().reindex(range(k)).to_numpy()
    variance = (frame.var(ddof=1) / frame.size()).reindex(range(k)).fillna(np.inf).to_numpy()
    difference = mean[:, None] - mean[None, :]
    margin = VALUE_ORDER_Z * np.sqrt(variance[:, None] + variance[None, :])
    return np.nan_to_num(difference, nan=-np.inf) > margin


def holdout_labels(pipeline: Pipeline, split: CalibrationSplit) -> np.ndarray:
    """The cluster of each customer as they were at the cut-off (the split's calibration features)."""
    return pipeline.predict(validate_features(split.features))


def holdout_table(labels: np.ndarray, split: CalibrationSplit, k: int) -> pd.DataFrame:
    """Per cluster: its customers at the cut-off (``labels``), their mean holdout spend and the cluster's
    share of all holdout spend. A cluster no customer fell in at the cut-off has a mean of 0."""
    spend = split.holdout_spend.to_numpy()
    customers = np.bincount(labels, minlength=k)
    total = np.bincount(labels, weights=spend, minlength=k)
    return pd.DataFrame(
        {
            "holdout_customers": customers,
            "holdout_mean_spend": np.divide(total, customers, out=np.zeros(k), where=customers > 0),
            "holdout_spend_share": total / total.sum() if total.sum() else np.zeros(k),
        },
        index=pd.RangeIndex(k, name="segment_id"),
    )


def bootstrap_ari(
    matrix: np.ndarray, labels: np.ndarray, *, k: int, features: tuple[str, ...], seed: int
) -> tuple[float, ...]:
    """ARI between ``labels`` and the labels of pipelines refitted on bootstrap resamples."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(BOOTSTRAP_ROUNDS):
        resample = rng.integers(0, len(matrix), len(matrix))
        refit = build_pipeline(k, seed=int(rng.integers(2**31)), n_init=N_INIT, features=features)
        refit.fit(matrix[resample])
        scores.append(float(adjusted_rand_score(labels, refit.predict(matrix))))
    return tuple(scores)
