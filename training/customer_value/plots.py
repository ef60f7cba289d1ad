"""Stage 4: charts of the holdout validation, as matplotlib figures for MLflow (no pyplot, as the
segmenter's plots)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from training.customer_value.data import CalibrationSplit

DECILES = 10


def holdout_deciles(predicted: np.ndarray, split: CalibrationSplit) -> Figure:
    """Customers in deciles of predicted holdout spend: mean predicted against mean actual spend per decile
    (a well-ranked, well-calibrated model climbs with the actual bars)."""
    table = pd.DataFrame({"predicted": predicted, "actual": split.holdout_spend.to_numpy()})
    # Ranks first, so ties (many customers predicted near 0) still split into equal deciles.
    table["decile"] = pd.qcut(table["predicted"].rank(method="first"), DECILES, labels=False) + 1
    means = table.groupby("decile")[["predicted", "actual"]].mean()
    figure = Figure(figsize=(9, 5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.4
    axes.bar(means.index - width / 2, means["predicted"], width, label="predicted")
    axes.bar(means.index + width / 2, means["actual"], width, label="actual")
    axes.set_xticks(means.index)
    axes.set_xlabel("decile of predicted holdout spend (10 = highest)")
    axes.set_ylabel(f"mean spend in the {split.holdout_days} days after {split.cutoff}")
    axes.set_title("Customer value: predicted against actual holdout spend")
    axes.legend()
    return figure


def probability_alive_histogram(probability: np.ndarray, split: CalibrationSplit) -> Figure:
    """P(alive) at the cut-off, split by whether the customer bought again in the holdout."""
    bought = split.holdout_spend.to_numpy() > 0
    figure = Figure(figsize=(9, 5), layout="constrained")
    axes = figure.add_subplot()
    bins = np.linspace(0, 1, 21)
    axes.hist(probability[bought], bins=bins, alpha=0.6, label="bought in the holdout")
    axes.hist(probability[~bought], bins=bins, alpha=0.6, label="did not")
    axes.set_xlabel(f"probability still active on {split.cutoff}")
    axes.set_ylabel("customers")
    axes.legend()
    return figure
