"""Business names for clusters, decided by what each cluster is, so they survive retraining.

Every name in the catalogue has a prototype: the profile of a typical member in the model's scaled space
(log1p, then standardised over all customers; 0 = the average customer, +1 = one standard deviation above
it), in the order of ``FEATURE_NAMES``: recency, frequency, monetary, tenure, average order value. Clusters
are matched one-to-one to the names whose prototypes are nearest to their centroids, minimising the total
squared distance (the Hungarian method) - the same distance KMeans itself uses. A name is therefore a
function of where a cluster sits, not of the arbitrary cluster number a seed produced: retrained with
another seed, or on next month's data, the champions' cluster is again nearest to the Champions prototype.

The catalogue is ordered from the most to the least valuable segment; segment ids follow that order. With
more clusters than names, the clusters left over take the name of their nearest prototype, numbered
("At Risk 2"), so every k works and every name is used once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class SegmentName:
    name: str
    action: str
    # Position in the catalogue: smaller is more valuable; segment ids are ordered by it.
    rank: int
    # 1 for the cluster that got the name; 2, 3, ... for leftover clusters numbered after it.
    repeat: int = 1


@dataclass(frozen=True)
class _Prototype:
    name: str
    action: str
    # recency, frequency, monetary, tenure, average order value - in standard deviations (log scale).
    profile: tuple[float, float, float, float, float]


CATALOGUE: tuple[_Prototype, ...] = (
    _Prototype(
        "Champions",
        "Reward them: loyalty perks, early access to new products; ask for reviews and referrals.",
        (-1.0, 1.3, 1.2, 0.5, 0.3),
    ),
    _Prototype(
        "Loyal",
        "Upsell higher-value products and enrol them in the loyalty programme.",
        (-0.5, 0.8, 0.8, 0.8, 0.0),
    ),
    _Prototype(
        "Big Spenders",
        "Offer premium products and bundles; give them a personal contact in the sales team.",
        (-0.6, 0.1, 0.6, -0.2, 1.0),
    ),
    _Prototype(
        "Potential Loyalists",
        "Turn them into regulars: membership offer and personalised recommendations.",
        (-0.8, 0.0, 0.0, -0.4, 0.0),
    ),
    _Prototype(
        "Promising",
        "Follow up their large first orders with tailored offers and an account introduction.",
        (-0.6, -0.7, -0.1, -1.2, 1.0),
    ),
    _Prototype(
        "New",
        "Onboard: welcome series, product guides and an incentive for the second order.",
        (-0.7, -1.1, -1.0, -2.0, 0.0),
    ),
    _Prototype(
        "Need Attention",
        "Re-engage with limited-time offers based on their past purchases before they slip.",
        (0.0, 0.0, 0.0, 0.0, 0.0),
    ),
    _Prototype(
        "At Risk",
        "Win them back now: personal outreach from their salesman, renewal offers, ask what changed.",
        (0.8, 0.7, 0.7, 0.8, 0.2),
    ),
    _Prototype(
        "Occasional Big Spenders",
        "Remind them before their next big purchase: premium offers timed to their buying cycle.",
        (0.5, -0.8, 0.0, 0.0, 1.2),
    ),
    _Prototype(
        "Hibernating",
        "Reactivate cheaply: seasonal offers by email; no spend on expensive channels.",
        (0.9, -0.75, -0.8, 0.4, -0.4),
    ),
    _Prototype(
        "Lost",
        "One last win-back offer, then stop marketing spend.",
        (0.6, -1.3, -2.2, -0.5, -2.3),
    ),
)
_PROTOTYPES = np.array([p.profile for p in CATALOGUE])


def name_clusters(centroids: np.ndarray) -> list[SegmentName]:
    """The business name of each cluster, given its centroid in scaled space (one row per cluster)."""
    if centroids.ndim != 2 or centroids.shape[1] != _PROTOTYPES.shape[1]:
        raise ValueError(f"expected centroids of {_PROTOTYPES.shape[1]} features, got {centroids.shape}")
    cost = np.square(centroids[:, np.newaxis, :] - _PROTOTYPES).sum(axis=2)
    clusters, prototypes = linear_sum_assignment(cost)
    names: dict[int, SegmentName] = {
        int(c): SegmentName(CATALOGUE[p].name, CATALOGUE[p].action, int(p))
        for c, p in zip(clusters, prototypes, strict=True)
    }
    uses = Counter(int(p) for p in prototypes)
    # Only when there are more clusters than names: the nearest name again, numbered.
    for cluster in (c for c in range(len(centroids)) if c not in names):
        nearest = int(cost[cluster].argmin())
        uses[nearest] += 1
        prototype = CATALOGUE[nearest]
        repeat = uses[nearest]
        names[cluster] = SegmentName(f"{prototype.name} {repeat}", prototype.action, nearest, repeat)
    return [names[c] for c in range(len(centroids))]


def segment_order(names: list[SegmentName]) -> list[int]:
    """Cluster indices from the most to the least valuable segment (catalogue order)."""
    return sorted(range(len(names)), key=lambda c: (names[c].rank, names[c].repeat))
