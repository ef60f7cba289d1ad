"""The tracked segmentation run: features -> k by silhouette -> names -> MLflow run -> registry -> gate.

``run()`` is what ``salespulse train segmenter`` calls. One MLflow run logs the parameters, the scores of
every k, stability, the segment profile table, the charts and the model (signature, input example),
registers a new ``customer-segmenter`` version, and gives it the champion alias only if its silhouette
beats the current champion's silhouette on the same customers (``training.tracking.gate_and_promote``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
from rich.console import Console
from rich.markup import escape

from salespulse.config import get_settings
from salespulse.features.customers import FEATURE_NAMES
from training.segmenter import plots
from training.segmenter.data import CustomerTable, load_customers
from training.segmenter.register import champion_silhouette, log_segmenter
from training.segmenter.train import (
    BOOTSTRAP_ROUNDS,
    CANDIDATE_SEED,
    DEFAULT_K_RANGE,
    N_INIT,
    SILHOUETTE_SAMPLE,
    SILHOUETTE_TIE,
    TrainedSegmentation,
    train_segmentation,
)
from training.tracking import GateDecision, configure_mlflow, gate_and_promote

GATE_METRIC = "silhouette"
PROFILE_ARTIFACT = "segment_profile.csv"


@dataclass(frozen=True)
class SegmenterRun:
    run_id: str
    version: str
    decision: GateDecision
    trained: TrainedSegmentation
    customers: int
    as_of: date
    k_range: tuple[int, int]
    seconds: float

    def describe(self) -> str:
        trained = self.trained
        ari = np.array(trained.bootstrap_ari)
        per_k = ", ".join(f"k={c.k}: {c.silhouette:.4f} / {c.davies_bouldin:.3f}" for c in trained.candidates)
        lines = [
            f"Customer segmenter v{self.version} (run {self.run_id}), {self.seconds:.1f} s",
            f"{self.customers:,} customers as of {self.as_of}; k={trained.k} chosen from "
            f"{self.k_range[0]}..{self.k_range[1]} by silhouette",
            f"silhouette {trained.final.silhouette:.4f}, Davies-Bouldin {trained.final.davies_bouldin:.3f}, "
            f"bootstrap ARI mean {ari.mean():.3f} (min {ari.min():.3f}, {len(ari)} refits)",
            f"silhouette / Davies-Bouldin per k: {per_k}",
            "",
            profile_text(trained),
            "",
            *(f"{s.name}: {s.action}" for s in trained.segmentation.segments),
            "",
            self.decision.describe(),
        ]
        return "\n".join(lines)


def profile_text(trained: TrainedSegmentation) -> str:
    table = trained.segmentation.profile.drop(columns="action").rename(
        columns=lambda c: c.removeprefix("mean_").replace("_days", "").replace("avg_order_value", "aov")
    )
    formats = {
        "customer_share": "{:.1%}".format,
        "revenue_share": "{:.1%}".format,
        "recency": "{:,.0f}".format,
        "frequency": "{:,.1f}".format,
        "monetary": "{:,.0f}".format,
        "tenure": "{:,.0f}".format,
        "aov": "{:,.0f}".format,
    }
    return table.to_string(formatters=formats)


def run(
    seed: int = 0,
    k_range: tuple[int, int] = DEFAULT_K_RANGE,
    progress: bool = True,
    warehouse: Path | None = None,
) -> SegmenterRun:
    """Train, log, register and gate a customer segmenter on the warehouse's current customers."""
    started = time.perf_counter()
    say = _reporter(progress, started)
    configure_mlflow()
    model_name = get_settings().segmenter_model_name
    customers = load_customers(warehouse)
    say(f"{len(customers.features):,} customers as of {customers.as_of}")
    with mlflow.start_run(run_name=f"segmenter-seed{seed}") as active:
        mlflow.set_tag("model", model_name)
        _log_params(customers, seed, k_range)
        trained = train_segmentation(customers.features, seed=seed, k_range=k_range)
        say(f"k={trained.k}, silhouette {trained.final.silhouette:.4f}")
        _log_scores(trained)
        _log_profile_and_plots(customers, trained)
        info = log_segmenter(trained.segmentation, customers.features, model_name)
        version = str(info.registered_model_version)
        say(f"registered {model_name} v{version}")
        decision = gate_and_promote(
            model_name,
            version,
            GATE_METRIC,
            trained.final.silhouette,
            lambda champion: champion_silhouette(champion, customers.features, trained.scaled),
            higher_is_better=True,
        )
        say(decision.describe())
        seconds = time.perf_counter() - started
        mlflow.log_metric("seconds", seconds)
    return SegmenterRun(
        run_id=active.info.run_id,
        version=version,
        decision=decision,
        trained=trained,
        customers=len(customers.features),
        as_of=customers.as_of,
        k_range=k_range,
        seconds=seconds,
    )


def _log_params(customers: CustomerTable, seed: int, k_range: tuple[int, int]) -> None:
    mlflow.log_params(
        {
            "seed": seed,
            "k_min": k_range[0],
            "k_max": k_range[1],
            "features": ",".join(FEATURE_NAMES),
            "transform": "log1p+standard_scaler",
            "n_init": N_INIT,
            "candidate_seed": CANDIDATE_SEED,
            "silhouette_sample": SILHOUETTE_SAMPLE,
            "silhouette_tie": SILHOUETTE_TIE,
            "bootstrap_rounds": BOOTSTRAP_ROUNDS,
            "customers": len(customers.features),
            "as_of": customers.as_of.isoformat(),
        }
    )


def _log_scores(trained: TrainedSegmentation) -> None:
    ari = np.array(trained.bootstrap_ari)
    metrics = {
        "k": trained.k,
        "silhouette": trained.final.silhouette,
        "davies_bouldin": trained.final.davies_bouldin,
        "inertia": trained.final.inertia,
        "ari_mean": float(ari.mean()),
        "ari_min": float(ari.min()),
    }
    for candidate in trained.candidates:
        metrics[f"silhouette_k{candidate.k}"] = candidate.silhouette
        metrics[f"davies_bouldin_k{candidate.k}"] = candidate.davies_bouldin
    mlflow.log_metrics(metrics)


def _log_profile_and_plots(customers: CustomerTable, trained: TrainedSegmentation) -> None:
    mlflow.log_text(trained.segmentation.profile.to_csv(), PROFILE_ARTIFACT)
    mlflow.log_figure(plots.segment_scatter(customers.features, trained), "plots/segment_scatter.png")
    mlflow.log_figure(plots.segment_profile_chart(trained), "plots/segment_profile.png")
    mlflow.log_figure(plots.k_selection_chart(trained.candidates, trained.k), "plots/k_selection.png")


def _reporter(progress: bool, started: float) -> Callable[[str], None]:
    console = Console(stderr=True)

    def say(message: str) -> None:
        if progress:
            console.print(f"[dim]segmenter {time.perf_counter() - started:5.1f} s[/] {escape(message)}")

    return say
