"""Stage 1: the customer feature table the segmentation is trained on, read from the warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from salespulse.features.customers import customer_features, default_as_of
from salespulse.warehouse.store import connect

# Below this, segments hold a handful of customers each and bootstrap stability means nothing.
MIN_CUSTOMERS = 100


@dataclass(frozen=True)
class CustomerTable:
    features: pd.DataFrame  # indexed by customer_id, columns FEATURE_NAMES
    as_of: date


def load_customers(warehouse: Path | None = None) -> CustomerTable:
    """Features of every customer with an order, as of the warehouse's last order day."""
    with connect(warehouse, read_only=True) as con:
        as_of = default_as_of(con)
        if as_of is None:
            raise ValueError("the warehouse has no order lines: generate or import sales first")
        features = customer_features(con, as_of=as_of)
    if len(features) < MIN_CUSTOMERS:
        raise ValueError(
            f"only {len(features)} customers have orders; segmentation needs at least {MIN_CUSTOMERS}"
        )
    return CustomerTable(features=features, as_of=as_of)
