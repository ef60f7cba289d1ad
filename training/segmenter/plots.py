"""Stage 3: charts of a trained segmentation, as matplotlib figures for MLflow.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot): no GUI backend, no global figure
state, nothing to close, safe in a server or a test worker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from salespulse.features.customers import FEATURE_NAMES, validate_features
from training.segmenter.train import TrainedSegmentation, standard_profiles

# A scatter of every customer is slow to draw and unreadable; a fixed sample shows the shapes.
SCATTER_SAMPLE = 5_000


def segment_colours(n: int) -> list[tuple[float, float, float, float]]:
    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]


def segment_scatter(features: pd.DataFrame, trained: TrainedSegmentation) -> Figure:
    """Recency against monetary value (log scales), one colour per segment."""
    rng = np.random.default_rng(0)
    shown = rng.permutation(len(features))[:SCATTER_SAMPLE]
    recency = features["recency_days"].to_numpy()[shown]
    monetary = features["monetary"].to_numpy()[shown]
    labels = trained.labels[shown]
    segments = trained.segmentation.segments
    figure = Figure(figsize=(9, 6), layout="constrained")
    axes = figure.add_subplot()
    for segment, colour in zip(segments, segment_colours(len(segments)), strict=True):
        mine = labels == segment.segment_id
        axes.scatter(recency[mine], monetary[mine], s=6, alpha=0.5, color=colour, label=segment.name)
    # Recency is 0 for customers who ordered on the reference day: symlog keeps them on the chart.
    axes.set_xscale("symlog", linthresh=1)
    axes.set_yscale("log")
    axes.set_xlabel("recency (days since last order)")
    axes.set_ylabel("monetary (total revenue)")
    axes.set_title(f"Customer segments (sample of {len(shown):,} customers)")
    axes.legend(markerscale=3, fontsize="small")
    return figure


def segment_profile_chart(features: pd.DataFrame, trained: TrainedSegmentation) -> Figure:
    """Heatmap of each segment's profile (its mean member in standard deviations of every feature, log
    scale: what the names describe, whichever features the model clusters on) beside its customer and
    revenue shares, so a segment's name can be checked against what it is."""
    segmentation = trained.segmentation
    profile = segmentation.profile
    names = [s.name for s in segmentation.segments]
    figure = Figure(figsize=(13, 1.0 + 0.55 * len(names)), layout="constrained")
    heat_axes, share_axes = figure.subplots(1, 2, width_ratios=(3, 2))
    profiles = standard_profiles(validate_features(features), trained.labels, len(names))
    limit = max(1.0, float(np.abs(profiles).max()))
    image = heat_axes.imshow(profiles, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for row, column in np.ndindex(profiles.shape):
        mean = profile[f"mean_{FEATURE_NAMES[column]}"].iloc[row]
        heat_axes.text(column, row, f"{mean:,.0f}", ha="center", va="center", fontsize="small")
    clustered = set(segmentation.features)
    labels = [name if name in clustered else f"({name})" for name in FEATURE_NAMES]
    heat_axes.set_xticks(range(len(FEATURE_NAMES)), labels, rotation=20)
    heat_axes.set_yticks(range(len(names)), names)
    heat_axes.set_title("Profile (colour: std. dev. from average; text: mean; (feature): not clustered on)")
    figure.colorbar(image, ax=heat_axes, shrink=0.8)
    rows = np.arange(len(names))
    share_axes.barh(rows - 0.2, profile["customer_share"], height=0.4, label="customers")
    share_axes.barh(rows + 0.2, profile["revenue_share"], height=0.4, label="revenue")
    share_axes.set_yticks(rows, names)
    share_axes.invert_yaxis()
    share_axes.xaxis.set_major_formatter("{x:.0%}")
    share_axes.set_title("Share of customers and of revenue")
    share_axes.legend(fontsize="small")
    return figure


def k_selection_chart(trained: TrainedSegmentation) -> Figure:
    """Per feature set and k: silhouette (left) and holdout value separation (right; without a holdout,
    Davies-Bouldin, lower is better); the chosen candidate is marked."""
    candidates, final = trained.candidates, trained.final
    valued = any(np.isfinite(c.value_spearman) for c in candidates)
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    for name in dict.fromkeys(c.feature_set for c in candidates):
        own = [c for c in candidates if c.feature_set == name]
        ks = [c.k for c in own]
        left.plot(ks, [c.silhouette for c in own], marker="o", label=name)
        other = [c.value_spearman if valued else c.davies_bouldin for c in own]
        right.plot(ks, other, marker="o", label=name)
    for axes in (left, right):
        axes.set_xlabel("k (number of segments)")
        axes.set_xticks(sorted({c.k for c in candidates}))
        axes.axvline(final.k, color="grey", linestyle="--")
        axes.legend(fontsize="small")
    left.set_ylabel("silhouette (higher is better)")
    right.set_ylabel("holdout value Spearman (higher is better)" if valued else "Davies-Bouldin (lower)")
    figure.suptitle(f"Choosing features and k: chose {final.feature_set}, k = {final.k}")
    return figure


def holdout_spend_chart(trained: TrainedSegmentation) -> Figure:
    """Mean holdout spend of each segment's customers at the cut-off, in segment id order (the names'
    value order): the value order of the names, as the holdout saw it."""
    assert trained.holdout is not None
    names = [s.name for s in trained.segmentation.segments]
    table = trained.holdout
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.bar(range(len(names)), table["holdout_mean_spend"], color=segment_colours(len(names)))
    axes.set_xticks(range(len(names)), names, rotation=20, ha="right")
    axes.set_ylabel("mean spend in the holdout")
    axes.set_title("What each segment's customers spent after the cut-off (ids in the names' value order)")
    return figure
