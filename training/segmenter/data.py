"""Stage 1: the customer feature table the segmentation is trained on, and the calibration / holdout split
its features and k are chosen on, read from the warehouse in one consistent connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from salespulse.features.customers import customer_features, default_as_of
from salespulse.warehouse.store import connect
from training.holdout import HOLDOUT_DAYS, CalibrationSplit, calibration_split

# Below this, segments hold a handful of customers each and bootstrap stability means nothing.
MIN_CUSTOMERS = 100
# Below this many calibration customers who bought in the holdout, segment means of holdout spend are noise.
MIN_HOLDOUT_BUYERS = 50


@dataclass(frozen=True)
class CustomerTable:
    features: pd.DataFrame  # indexed by customer_id, columns FEATURE_NAMES
    as_of: date
    # None when the history is too short to hold a calibration period and a holdout with enough customers.
    split: CalibrationSplit | None = None
    why_no_split: str = ""


def load_customers(
    warehouse: Path | None = None, holdout_days: int = HOLDOUT_DAYS, as_of: date | None = None
) -> CustomerTable:
    """Features of every customer with an order, as of ``as_of`` (default: the warehouse's last order day),
    and the split of the history up to then whose last ``holdout_days`` days are the holdout."""
    with connect(warehouse, read_only=True) as con:
        as_of = as_of or default_as_of(con)
        if as_of is None:
            raise ValueError("the warehouse has no order lines: generate or import sales first")
        features = customer_features(con, as_of=as_of)
        split = calibration_split(con, as_of, holdout_days)
    if len(features) < MIN_CUSTOMERS:
        raise ValueError(
            f"only {len(features)} customers have orders; segmentation needs at least {MIN_CUSTOMERS}"
        )
    buyers = int((split.holdout_spend > 0).sum())
    if len(split.features) < MIN_CUSTOMERS or buyers < MIN_HOLDOUT_BUYERS:
        why = (
            f"{len(split.features)} customers by the cut-off {split.cutoff}, {buyers} of them bought in the "
            f"{holdout_days}-day holdout (needs {MIN_CUSTOMERS} and {MIN_HOLDOUT_BUYERS})"
        )
        return CustomerTable(features=features, as_of=as_of, why_no_split=why)
    return CustomerTable(features=features, as_of=as_of, split=split)
