"""Stage 2: fit KMeans for each k, choose k by silhouette, name and order the segments, measure stability.

Choosing k. Every k in the range is fitted (``N_INIT`` k-means++ starts, the lowest inertia kept) and scored
by its silhouette on a fixed sample of customers, with Davies-Bouldin reported beside it. The highest
silhouette wins, except that k whose silhouette is within ``SILHOUETTE_TIE`` of the best count as tied and
the smallest of them is taken: on sales data the silhouette curve is flat (about 0.25 for every k from 5
to 8 on the sample data) and equally good KMeans solutions of one k differ by up to ~0.0005, so smaller
differences are no evidence for more segments.

k is a property of the data, not of the training seed. The candidate fits use a fixed random state and the
silhouette a fixed sample - measuring instruments, like a ruler - so the number of segments, and with it
the set of names, changes when the customers change, never because a retrain used another seed (on the
generated data, seed-dependent candidate fits gave seeds 0 and 1 different k on 3 of 10 small warehouses).
The training seed drives the fit of the model itself and the bootstrap.

The default range starts at 5 because fewer segments cannot keep apart groups that need different
marketing: with 3 or 4 clusters on the sample data the best customers share a cluster with everyone
active and the newest customers become the most recent cluster, so no cluster is both the most recent
and the most valuable. 8 keeps every segment big enough to act on. 25 starts per fit, because with 10 the
kept solution still changed with the seed on 5,000-customer data.

Stability. The whole pipeline is refitted on bootstrap resamples of the customers and each refit labels
all customers; the adjusted Rand index against the model's labels says how much of the segmentation
survives a different sample (1 = identical partition, 0 = chance).

Threads. Everything here runs on one BLAS/OpenMP thread: the data is tens of thousands of rows by five
columns, where thread start-up and OpenMP spin-waiting cost more than they save and collapse when the
cores are shared (measured: one KMeans fit 0.1 s on one thread, up to 5 s on two busy cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from salespulse.features.customers import validate_features
from salespulse.modeling.segmenter import Segment, Segmentation, build_pipeline
from training.segmenter.naming import name_clusters, segment_order
from training.segmenter.profile import segment_profile

DEFAULT_K_RANGE = (5, 8)
N_INIT = 25
SILHOUETTE_SAMPLE = 5_000
SILHOUETTE_SAMPLE_SEED = 0
CANDIDATE_SEED = 0
SILHOUETTE_TIE = 0.002
BOOTSTRAP_ROUNDS = 10


@dataclass(frozen=True)
class KScore:
    k: int
    silhouette: float
    davies_bouldin: float
    inertia: float


@dataclass(frozen=True)
class TrainedSegmentation:
    segmentation: Segmentation
    labels: np.ndarray  # segment id of each customer, in the feature table's row order
    scaled: np.ndarray  # the feature table in the model's scaled space
    candidates: tuple[KScore, ...]  # one per k in the range
    final: KScore  # the model itself (chosen k, fitted with the run's seed, segments ordered)
    bootstrap_ari: tuple[float, ...]

    @property
    def k(self) -> int:
        return self.final.k


def train_segmentation(
    features: pd.DataFrame, *, seed: int, k_range: tuple[int, int] = DEFAULT_K_RANGE
) -> TrainedSegmentation:
    """Fit, choose, name and order the segmentation of ``features`` (one row per customer)."""
    low, high = k_range
    if not 2 <= low <= high < len(features):
        raise ValueError(f"k range {k_range} must satisfy 2 <= low <= high < customers ({len(features)})")
    # The warehouse may hold imported data the features cannot represent (say, negative revenue).
    matrix = validate_features(features)
    with threadpool_limits(limits=1):
        candidates = tuple(
            score_pipeline(build_pipeline(k, seed=CANDIDATE_SEED, n_init=N_INIT).fit(matrix), matrix)
            for k in range(low, high + 1)
        )
        chosen = choose_k(candidates)
        model = build_pipeline(chosen.k, seed=seed, n_init=N_INIT).fit(matrix)
        pipeline, segments = order_segments(model, matrix, seed=seed)
        final = score_pipeline(pipeline, matrix)
        labels = pipeline.named_steps["kmeans"].labels_
        ari = bootstrap_ari(matrix, labels, k=chosen.k, seed=seed)
    profile = segment_profile(features, labels, segments)
    return TrainedSegmentation(
        segmentation=Segmentation(pipeline, segments, profile),
        labels=labels,
        scaled=pipeline[:-1].transform(matrix),
        candidates=candidates,
        final=final,
        bootstrap_ari=ari,
    )


def silhouette_on_sample(scaled: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette of ``labels`` on the fixed evaluation sample; NaN if the sample has a single label."""
    sample = SILHOUETTE_SAMPLE if len(scaled) > SILHOUETTE_SAMPLE else None
    indices = np.random.default_rng(SILHOUETTE_SAMPLE_SEED).permutation(len(scaled))[:sample]
    if len(np.unique(labels[indices])) < 2:
        return float("nan")
    with threadpool_limits(limits=1):
        return float(silhouette_score(scaled[indices], labels[indices]))


def score_pipeline(pipeline: Pipeline, matrix: np.ndarray) -> KScore:
    kmeans = pipeline.named_steps["kmeans"]
    scaled = pipeline[:-1].transform(matrix)
    return KScore(
        k=kmeans.n_clusters,
        silhouette=silhouette_on_sample(scaled, kmeans.labels_),
        davies_bouldin=float(davies_bouldin_score(scaled, kmeans.labels_)),
        inertia=float(kmeans.inertia_),
    )


def choose_k(candidates: tuple[KScore, ...]) -> KScore:
    """The smallest k whose silhouette is within ``SILHOUETTE_TIE`` of the best."""
    best = max(c.silhouette for c in candidates)
    return min((c for c in candidates if c.silhouette >= best - SILHOUETTE_TIE), key=lambda c: c.k)


def order_segments(pipeline: Pipeline, matrix: np.ndarray, *, seed: int) -> tuple[Pipeline, list[Segment]]:
    """Name the clusters and renumber them in catalogue order (segment id 0 = most valuable).

    KMeans numbers clusters arbitrarily; refitting from the fitted centroids in catalogue order gives the
    same clustering with ids that mean the same thing in every retrain.
    """
    centroids = pipeline.named_steps["kmeans"].cluster_centers_
    names = name_clusters(centroids)
    order = segment_order(names)
    ordered = build_pipeline(len(order), seed=seed, n_init=1, init=centroids[order]).fit(matrix)
    segments = [
        Segment(segment_id=i, name=names[cluster].name, action=names[cluster].action)
        for i, cluster in enumerate(order)
    ]
    return ordered, segments


def bootstrap_ari(matrix: np.ndarray, labels: np.ndarray, *, k: int, seed: int) -> tuple[float, ...]:
    """ARI between ``labels`` and the labels of pipelines refitted on bootstrap resamples."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(BOOTSTRAP_ROUNDS):
        resample = rng.integers(0, len(matrix), len(matrix))
        refit = build_pipeline(k, seed=int(rng.integers(2**31)), n_init=N_INIT).fit(matrix[resample])
        scores.append(float(adjusted_rand_score(labels, refit.predict(matrix))))
    return tuple(scores)
