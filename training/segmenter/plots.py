"""Stage 3: charts of a trained segmentation, as matplotlib figures for MLflow.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot): no GUI backend, no global figure
state, nothing to close, safe in a server or a test worker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from salespulse.features.customers import FEATURE_NAMES
from training.segmenter.train import KScore, TrainedSegmentation

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


def segment_profile_chart(trained: TrainedSegmentation) -> Figure:
    """Heatmap of each segment's centroid (standard deviations, log scale) beside its customer and
    revenue shares, so a segment's name can be checked against what it is."""
    segmentation = trained.segmentation
    profile = segmentation.profile
    names = [s.name for s in segmentation.segments]
    figure = Figure(figsize=(13, 1.0 + 0.55 * len(names)), layout="constrained")
    heat_axes, share_axes = figure.subplots(1, 2, width_ratios=(3, 2))
    centroids = segmentation.centroids
    limit = max(1.0, float(np.abs(centroids).max()))
    image = heat_axes.imshow(centroids, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for row, column in np.ndindex(centroids.shape):
        mean = profile[f"mean_{FEATURE_NAMES[column]}"].iloc[row]
        heat_axes.text(column, row, f"{mean:,.0f}", ha="center", va="center", fontsize="small")
    heat_axes.set_xticks(range(len(FEATURE_NAMES)), FEATURE_NAMES, rotation=20)
    heat_axes.set_yticks(range(len(names)), names)
    heat_axes.set_title("Centroid (colour: std. dev. from average; text: mean)")
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


def k_selection_chart(candidates: tuple[KScore, ...], chosen_k: int) -> Figure:
    """Silhouette (higher is better) and Davies-Bouldin (lower is better) for each k tried."""
    ks = [c.k for c in candidates]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(ks, [c.silhouette for c in candidates], marker="o", color="tab:blue")
    axes.set_xlabel("k (number of segments)")
    axes.set_ylabel("silhouette", color="tab:blue")
    axes.set_xticks(ks)
    axes.axvline(chosen_k, color="grey", linestyle="--")
    other = axes.twinx()
    other.plot(ks, [c.davies_bouldin for c in candidates], marker="s", color="tab:orange")
    other.set_ylabel("Davies-Bouldin", color="tab:orange")
    axes.set_title(f"Choosing k: silhouette (higher is better), Davies-Bouldin (lower); chose k = {chosen_k}")
    return figure
