"""The segment profile table: what each segment is and what it is worth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from salespulse.features.customers import FEATURE_NAMES
from salespulse.modeling.segmenter import Segment


def segment_profile(
    features: pd.DataFrame,
    labels: np.ndarray,
    segments: Sequence[Segment],
    holdout: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per segment id: name, action, size, shares of customers and revenue, feature means and, with
    a ``holdout`` table (``train.holdout_table``), the segment's customers at the calibration cut-off and
    their mean holdout spend: what a customer of the segment went on to spend."""
    grouped = features.groupby(labels)
    ids = pd.Index([s.segment_id for s in segments], name="segment_id")
    customers = grouped.size().reindex(ids, fill_value=0)
    revenue = grouped["monetary"].sum().reindex(ids, fill_value=0.0)
    means = grouped[list(FEATURE_NAMES)].mean().reindex(ids).add_prefix("mean_")
    table = pd.DataFrame(
        {
            "segment": [s.name for s in segments],
            "action": [s.action for s in segments],
            "customers": customers.to_numpy(),
            "customer_share": (customers / customers.sum()).to_numpy(),
            "revenue_share": (revenue / revenue.sum()).to_numpy(),
        },
        index=ids,
    )
    table = table.join(means)
    return table if holdout is None else table.join(holdout.reindex(ids))
