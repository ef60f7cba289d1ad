"""Stage 1: purchase summaries, and the calibration / holdout split the model is validated on.

The split (``training.holdout``) cuts the history at ``cutoff`` = the last order day minus ``holdout_days``:
the model is fitted on the customers' summaries as of then, and the benchmarks see only that period too;
what each calibration customer actually spent in the ``holdout_days`` days after it is what the predictions
are ranked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from salespulse.features.customers import default_as_of, purchase_summary
from salespulse.warehouse.store import connect
from training.holdout import HOLDOUT_DAYS, CalibrationSplit, calibration_split

__all__ = ["HOLDOUT_DAYS", "CalibrationSplit", "CustomerValueData", "calibration_split"]

# Below this, the seven parameters and a rank correlation rest on too few customers to mean anything.
MIN_CUSTOMERS = 100
MIN_REPEAT_CUSTOMERS = 20


@dataclass(frozen=True)
class CustomerValueData:
    summary: pd.DataFrame  # SUMMARY_NAMES of every customer as of as_of: what the registered model is fit on
    as_of: date
    split: CalibrationSplit


def load_customer_value_data(
    warehouse: Path | None = None, holdout_days: int = HOLDOUT_DAYS
) -> CustomerValueData:
    """The full-history summary and the calibration / holdout split, read in one consistent connection."""
    with connect(warehouse, read_only=True) as con:
        as_of = default_as_of(con)
        if as_of is None:
            raise ValueError("the warehouse has no order lines: generate or import sales first")
        summary = purchase_summary(con, as_of=as_of)
        split = calibration_split(con, as_of, holdout_days)
    _check_enough_customers(summary, "in the warehouse")
    _check_enough_customers(split.summary, f"by the calibration cut-off {split.cutoff}")
    return CustomerValueData(summary=summary, as_of=as_of, split=split)


def _check_enough_customers(summary: pd.DataFrame, when: str) -> None:
    repeaters = int((summary["frequency"] > 0).sum())
    if len(summary) < MIN_CUSTOMERS or repeaters < MIN_REPEAT_CUSTOMERS:
        raise ValueError(
            f"only {len(summary)} customers ({repeaters} with a repeat purchase) {when}; the customer-value "
            f"model needs at least {MIN_CUSTOMERS} ({MIN_REPEAT_CUSTOMERS} with a repeat purchase)"
        )
