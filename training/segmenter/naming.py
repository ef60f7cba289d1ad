"""Business names for segments, decided by what each segment is and ordered by what it is worth.

Every name in the catalogue has a prototype: the profile of a typical member in the standard scaled space
(log1p of each of the five ``FEATURE_NAMES``, then standardised over all customers; 0 = the average
customer, +1 = one standard deviation above it), in the order recency, frequency, monetary, tenure,
average order value. A segment's profile is the mean of its members in that space, whichever features the
segmentation clusters on. The distance between a profile and a prototype is squared Euclidean.

The catalogue is ordered from the most to the least valuable kind of customer (as buy-till-you-die models
order them: recency first, then frequency and spend), and segment ids follow the names' order (0 = the
most valuable name). :func:`name_segments` takes, beside the profiles, which segments are clearly worth
more than which (in training: their customers at the calibration cut-off spent more in the holdout, by
more than two standard errors) and picks, of all namings that keep every such pair in catalogue order, the
one nearest the profiles (dynamic programming over the catalogue). The names' value order therefore holds
on the holdout - "Occasional Big Spenders" cannot rank above a segment that spent clearly more - and where
the data cannot tell two segments apart, their profiles decide. Without a holdout, profiles alone decide
(the nearest assignment) and the catalogue order stands in for the value order.

A name is a function of where a segment sits and what it is worth, not of the arbitrary cluster number a
seed produced: retrained with another seed or on next month's data, the best customers are again nearest
to the "VIP Regulars" prototype. With more segments than names, names are reused, numbered ("Dormant 2").

The names are deliberately none of the rule-based RFM segments' (``salespulse.analytics.semantic.
RFM_SEGMENT_RULES``: Champions, Loyal, At Risk, ...), which the rfm-segments report and the
``customer_segment`` filter use: the two segmentations group customers differently, and one name must not
mean two groups.
"""

from __future__ import annotations

import math
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
    # 1 for the first segment with the name; 2, 3, ... when there are more segments than names.
    repeat: int = 1


@dataclass(frozen=True)
class _Prototype:
    name: str
    action: str
    # recency, frequency, monetary, tenure, average order value - in standard deviations (log scale).
    profile: tuple[float, float, float, float, float]


# Ordered as buy-till-you-die models order customers by what they will spend: recency first (a customer who
# bought lately is the likelier to be still active), then how often and how much they buy.
CATALOGUE: tuple[_Prototype, ...] = (
    _Prototype(
        "VIP Regulars",
        "Reward them: loyalty perks, early access to new products; ask for reviews and referrals.",
        (-1.0, 1.3, 1.2, 0.5, 0.3),
    ),
    _Prototype(
        "Big-Ticket Buyers",
        "Offer premium products and bundles; give them a personal contact in the sales team.",
        (-0.8, 0.1, 0.6, -0.2, 1.0),
    ),
    _Prototype(
        "Rising Regulars",
        "Turn them into regulars: membership offer and personalised recommendations.",
        (-1.2, 0.2, 0.3, -0.5, 0.1),
    ),
    _Prototype(
        "Steady Regulars",
        "Upsell higher-value products and enrol them in the loyalty programme.",
        (-0.4, 0.5, 0.5, 0.3, 0.2),
    ),
    _Prototype(
        "Strong Starters",
        "Follow up their large first orders with tailored offers and an account introduction.",
        (-0.6, -0.7, -0.1, -1.2, 1.0),
    ),
    _Prototype(
        "Newcomers",
        "Onboard: welcome series, product guides and an incentive for the second order.",
        (-0.7, -1.0, -0.8, -1.5, 0.0),
    ),
    _Prototype(
        "Middle Ground",
        "Re-engage with limited-time offers based on their past purchases before they slip.",
        (0.0, 0.0, 0.0, 0.0, 0.0),
    ),
    _Prototype(
        "Occasional Big Spenders",
        "Remind them before their next big purchase: premium offers timed to their buying cycle.",
        (0.5, -0.8, 0.0, 0.0, 1.2),
    ),
    _Prototype(
        "Small One-Off Buyers",
        "A low-cost second-order incentive by email; no spend on expensive channels.",
        (0.5, -1.4, -2.0, -0.7, -1.8),
    ),
    _Prototype(
        "Lapsing Regulars",
        "Win them back now: personal outreach from their salesman, renewal offers, ask what changed.",
        (0.8, 1.0, 0.9, 0.8, 0.2),
    ),
    _Prototype(
        "Fading Occasionals",
        "Reactivate with seasonal offers matched to what they used to buy.",
        (0.9, 0.0, 0.1, 0.5, 0.1),
    ),
    _Prototype(
        "Dormant",
        "One last win-back offer, then stop marketing spend.",
        (1.0, -0.9, -0.8, 0.3, -0.2),
    ),
)
_PROTOTYPES = np.array([p.profile for p in CATALOGUE])


def name_segments(profiles: np.ndarray, above: np.ndarray | None = None) -> list[SegmentName]:
    """The business name of each segment, given its profile (one row per segment, standard scaled space).

    ``above[i, j]`` true means segment i must get a name the catalogue ranks above segment j's (i is worth
    clearly more); without it, names follow the profiles alone. Of all namings that respect ``above``, the
    one of least total squared distance between profiles and prototypes. With more segments than names,
    each name may serve several segments (numbered "Dormant 2"), its copies ranked together.
    """
    cost = _cost(profiles)
    k = len(cost)
    above = np.zeros((k, k), dtype=bool) if above is None else np.asarray(above, dtype=bool)
    if above.shape != (k, k) or np.diag(above).any():
        raise ValueError(f"above must be a {k} x {k} relation with a false diagonal")
    copies = max(1, math.ceil(k / len(CATALOGUE)))
    slots = [p for p in range(len(CATALOGUE)) for _ in range(copies)]
    if above.any():
        picks = _ordered_assignment(cost[:, slots], above)
    else:  # no order to keep: the nearest assignment (Hungarian method), the same optimum, faster
        rows, columns = linear_sum_assignment(cost[:, slots])
        picks = {int(r): int(c) for r, c in zip(rows, columns, strict=True)}
    uses: Counter[int] = Counter()
    names: dict[int, SegmentName] = {}
    for segment, slot in sorted(picks.items(), key=lambda pick: pick[1]):
        prototype = slots[slot]
        uses[prototype] += 1
        entry = CATALOGUE[prototype]
        name = entry.name if uses[prototype] == 1 else f"{entry.name} {uses[prototype]}"
        names[segment] = SegmentName(name, entry.action, slot, uses[prototype])
    return [names[s] for s in range(k)]


def _ordered_assignment(cost: np.ndarray, above: np.ndarray) -> dict[int, int]:
    """Segment -> slot (column of ``cost``), one segment per slot, every segment placed after all those
    that must be above it, of least total cost.

    Dynamic programming over the slots in catalogue order, the state being the set of segments already
    named (a bit mask: at most 2^k states, k <= a dozen); a segment may take a slot only once every segment
    above it has one.
    """
    segments, slots = cost.shape
    must_follow = [sum(1 << i for i in range(segments) if above[i, s]) for s in range(segments)]
    best: dict[int, tuple[float, tuple[tuple[int, int], ...]]] = {0: (0.0, ())}
    for slot in range(slots):
        after = dict(best)  # the slot left unused
        for named, (total, picks) in best.items():
            for segment in range(segments):
                if named >> segment & 1 or must_follow[segment] & ~named:
                    continue
                state, value = named | 1 << segment, total + float(cost[segment, slot])
                if state not in after or value < after[state][0]:
                    after[state] = (value, (*picks, (segment, slot)))
        best = after
    return dict(best[(1 << segments) - 1][1])


def segment_order(names: list[SegmentName]) -> list[int]:
    """Segment indices from the most to the least valuable name (catalogue order)."""
    return sorted(range(len(names)), key=lambda c: names[c].rank)


def _cost(profiles: np.ndarray) -> np.ndarray:
    if profiles.ndim != 2 or profiles.shape[1] != _PROTOTYPES.shape[1]:
        raise ValueError(f"expected profiles of {_PROTOTYPES.shape[1]} features, got {profiles.shape}")
    return np.square(profiles[:, np.newaxis, :] - _PROTOTYPES).sum(axis=2)
