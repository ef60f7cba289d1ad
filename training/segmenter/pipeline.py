"""The tracked segmentation run: features and split -> features and k by holdout value and silhouette ->
names by value -> MLflow run -> registry -> gate.

``run()`` is what ``salespulse train segmenter`` calls. One MLflow run logs the parameters, the scores of
every candidate (feature set x k: silhouette, Davies-Bouldin, holdout value separation), the served
model's holdout spend per segment, stability, the segment profile table, the charts and the model
(signature, input example), and registers a new ``customer-segmenter`` version.

The gate. With a holdout, the new version and the champion each assign the customers as they were at the
cut-off, and the one whose segment means predict holdout spend better (``holdout_value_spearman``) wins
(``training.tracking.gate_and_promote``) - provided the new version's clusters are not clearly worse
separated: its silhouette must be within ``SILHOUETTE_SLACK`` of the champion's segments' silhouette in
the new version's own scaled space, else it is rejected before the comparison. Without a holdout the
silhouette decides, as it did before value could be measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.markup import escape

from salespulse.config import get_settings
from salespulse.features.customers import FEATURE_NAMES
from training.holdout import HOLDOUT_DAYS
from training.segmenter import plots
from training.segmenter.data import CustomerTable, load_customers
from training.segmenter.register import champion_segment_ids, log_segmenter
from training.segmenter.train import (
    BOOTSTRAP_ROUNDS,
    CANDIDATE_SEED,
    DEFAULT_K_RANGE,
    FEATURE_SETS,
    N_INIT,
    SILHOUETTE_SAMPLE,
    SILHOUETTE_SLACK,
    SILHOUETTE_TIE,
    VALUE_ORDER_Z,
    VALUE_TIE,
    TrainedSegmentation,
    silhouette_on_sample,
    train_segmentation,
    value_scores,
)
from training.tracking import GateDecision, champion_version, configure_mlflow, gate_and_promote

GATE_METRIC = "holdout_value_spearman"
GATE_METRIC_WITHOUT_HOLDOUT = "silhouette"
PROFILE_ARTIFACT = "segment_profile.csv"


@dataclass(frozen=True)
class SegmenterRun:
    run_id: str
    version: str
    # None when the new version's silhouette fell too far below the champion's: never compared on value.
    decision: GateDecision | None
    trained: TrainedSegmentation
    customers: int
    as_of: date
    k_range: tuple[int, int]
    seconds: float
    selection: str  # how the features and k were chosen
    rejection: str = ""  # why the version was rejected before the comparison (decision is None)

    def describe(self) -> str:
        trained, final = self.trained, self.trained.final
        ari = np.array(trained.bootstrap_ari)
        lines = [
            f"Customer segmenter v{self.version} (run {self.run_id}), {self.seconds:.1f} s",
            f"{self.customers:,} customers as of {self.as_of}; {final.feature_set} "
            f"({', '.join(trained.segmentation.features)}), k={trained.k}: {self.selection}",
            f"silhouette {final.silhouette:.4f}, Davies-Bouldin {final.davies_bouldin:.3f}, "
            f"bootstrap ARI mean {ari.mean():.3f} (min {ari.min():.3f}, {len(ari)} refits)",
        ]
        if trained.holdout is not None:
            lines.append(
                f"holdout value separation (segment means of holdout spend): Spearman "
                f"{final.value_spearman:.4f}, R² {final.value_r2:.4f}"
            )
        lines += ["candidates (silhouette / value Spearman):", *_candidate_lines(trained)]
        lines += ["", profile_text(trained), ""]
        lines += [f"{s.name}: {s.action}" for s in trained.segmentation.segments]
        lines += ["", self.decision.describe() if self.decision is not None else self.rejection]
        return "\n".join(lines)


def _candidate_lines(trained: TrainedSegmentation) -> list[str]:
    lines = []
    for name in FEATURE_SETS:
        own = [c for c in trained.candidates if c.feature_set == name]
        if own:
            scores = ", ".join(f"k={c.k}: {c.silhouette:.3f} / {c.value_spearman:.3f}" for c in own)
            lines.append(f"  {name}: {scores}")
    return lines


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
        "holdout_mean_spend": "{:,.0f}".format,
        "holdout_spend_share": "{:.1%}".format,
    }
    return table.to_string(formatters=formats)


def run(
    seed: int = 0,
    k_range: tuple[int, int] = DEFAULT_K_RANGE,
    progress: bool = True,
    warehouse: Path | None = None,
    holdout_days: int = HOLDOUT_DAYS,
) -> SegmenterRun:
    """Train, log, register and gate a customer segmenter on the warehouse's current customers."""
    started = time.perf_counter()
    say = _reporter(progress, started)
    configure_mlflow()
    model_name = get_settings().segmenter_model_name
    customers = load_customers(warehouse, holdout_days)
    selection = _selection_text(customers)
    say(f"{len(customers.features):,} customers as of {customers.as_of}; {selection}")
    with mlflow.start_run(run_name=f"segmenter-seed{seed}") as active:
        mlflow.set_tag("model", model_name)
        _log_params(customers, seed, k_range, selection)
        trained = train_segmentation(customers.features, seed=seed, k_range=k_range, split=customers.split)
        say(f"{trained.feature_set}, k={trained.k}, silhouette {trained.final.silhouette:.4f}")
        _log_scores(trained)
        _log_profile_and_plots(customers, trained)
        info = log_segmenter(trained.segmentation, customers.features, model_name)
        version = str(info.registered_model_version)
        say(f"registered {model_name} v{version}")
        decision, rejection = _gate(model_name, version, trained, customers)
        say(decision.describe() if decision is not None else rejection)
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
        selection=selection,
        rejection=rejection,
    )


def _selection_text(customers: CustomerTable) -> str:
    if customers.split is None:
        return f"k by silhouette on the five features (no holdout: {customers.why_no_split})"
    split = customers.split
    return (
        f"features and k by holdout value separation and silhouette ({len(split.features):,} customers "
        f"by {split.cutoff}, holdout to {split.as_of})"
    )


def _gate(
    model_name: str, version: str, trained: TrainedSegmentation, customers: CustomerTable
) -> tuple[GateDecision | None, str]:
    split = customers.split
    if split is None:
        decision = gate_and_promote(
            model_name,
            version,
            GATE_METRIC_WITHOUT_HOLDOUT,
            trained.final.silhouette,
            lambda champion: silhouette_on_sample(
                trained.scaled, champion_segment_ids(champion, customers.features)[0]
            ),
            higher_is_better=True,
        )
        return decision, ""
    champion = champion_version(model_name)
    champion_value = float("nan")
    if champion is not None and str(champion.version) != version:
        on_features, at_cutoff = champion_segment_ids(champion, customers.features, split.features)
        champion_value = value_scores(at_cutoff, split.holdout_spend.to_numpy())["value_spearman"]
        separated = silhouette_on_sample(trained.scaled, on_features)
        mlflow.log_metric("gate_champion_silhouette", separated)
        if trained.final.silhouette < separated - SILHOUETTE_SLACK:
            return None, _reject_for_silhouette(model_name, version, trained, champion.version, separated)
    decision = gate_and_promote(
        model_name,
        version,
        GATE_METRIC,
        trained.final.value_spearman,
        lambda _: champion_value,
        higher_is_better=True,
    )
    return decision, ""


def _reject_for_silhouette(
    model_name: str, version: str, trained: TrainedSegmentation, champion: str, champion_silhouette: float
) -> str:
    summary = (
        f"{model_name} v{version} rejected: silhouette {trained.final.silhouette:.4f} is more than "
        f"{SILHOUETTE_SLACK} below champion v{champion}'s {champion_silhouette:.4f} on the same customers"
    )
    mlflow.set_tags({"gate.decision": "rejected", "gate.reason": "silhouette", "gate.summary": summary})
    mlflow.log_metric("gate_challenger_silhouette", trained.final.silhouette)
    client = MlflowClient()
    client.set_model_version_tag(model_name, version, "gate.decision", "rejected")
    client.set_model_version_tag(model_name, version, "gate.reason", "silhouette")
    return summary


def _log_params(customers: CustomerTable, seed: int, k_range: tuple[int, int], selection: str) -> None:
    split = customers.split
    params = {
        "seed": seed,
        "k_min": k_range[0],
        "k_max": k_range[1],
        "input_features": ",".join(FEATURE_NAMES),
        "feature_sets": "; ".join(f"{name}={','.join(cols)}" for name, cols in FEATURE_SETS.items()),
        "transform": "log1p+standard_scaler",
        "n_init": N_INIT,
        "candidate_seed": CANDIDATE_SEED,
        "silhouette_sample": SILHOUETTE_SAMPLE,
        "silhouette_tie": SILHOUETTE_TIE,
        "silhouette_slack": SILHOUETTE_SLACK,
        "value_tie": VALUE_TIE,
        "value_order_z": VALUE_ORDER_Z,
        "bootstrap_rounds": BOOTSTRAP_ROUNDS,
        "customers": len(customers.features),
        "as_of": customers.as_of.isoformat(),
        "selection": selection[:500],
    }
    if split is not None:
        params |= {
            "holdout_days": split.holdout_days,
            "cutoff": split.cutoff.isoformat(),
            "calibration_customers": len(split.features),
        }
    mlflow.log_params(params)


def _log_scores(trained: TrainedSegmentation) -> None:
    ari = np.array(trained.bootstrap_ari)
    final = trained.final
    metrics = {
        "k": final.k,
        "silhouette": final.silhouette,
        "davies_bouldin": final.davies_bouldin,
        "inertia": final.inertia,
        "ari_mean": float(ari.mean()),
        "ari_min": float(ari.min()),
    }
    mlflow.set_tag("features", ",".join(trained.segmentation.features))
    mlflow.set_tag("feature_set", final.feature_set)
    for candidate in trained.candidates:
        key = f"{candidate.feature_set}_k{candidate.k}"
        metrics[f"silhouette_{key}"] = candidate.silhouette
        metrics[f"davies_bouldin_{key}"] = candidate.davies_bouldin
        if np.isfinite(candidate.value_spearman):
            metrics[f"value_spearman_{key}"] = candidate.value_spearman
            metrics[f"value_r2_{key}"] = candidate.value_r2
    if trained.holdout is not None:
        metrics[GATE_METRIC] = final.value_spearman
        metrics["holdout_value_r2"] = final.value_r2
        # Per segment id (0 = the most valuable name): what its customers at the cut-off spent after it.
        for segment_id, row in trained.holdout.iterrows():
            metrics[f"holdout_mean_spend_segment{segment_id}"] = float(row["holdout_mean_spend"])
            metrics[f"holdout_customers_segment{segment_id}"] = float(row["holdout_customers"])
            metrics[f"holdout_spend_share_segment{segment_id}"] = float(row["holdout_spend_share"])
    mlflow.log_metrics(metrics)


def _log_profile_and_plots(customers: CustomerTable, trained: TrainedSegmentation) -> None:
    mlflow.log_text(trained.segmentation.profile.to_csv(), PROFILE_ARTIFACT)
    mlflow.log_figure(plots.segment_scatter(customers.features, trained), "plots/segment_scatter.png")
    mlflow.log_figure(plots.segment_profile_chart(customers.features, trained), "plots/segment_profile.png")
    mlflow.log_figure(plots.k_selection_chart(trained), "plots/k_selection.png")
    if trained.holdout is not None:
        mlflow.log_figure(plots.holdout_spend_chart(trained), "plots/segment_holdout_spend.png")


def _reporter(progress: bool, started: float) -> Callable[[str], None]:
    console = Console(stderr=True)

    def say(message: str) -> None:
        if progress:
            console.print(f"[dim]segmenter {time.perf_counter() - started:5.1f} s[/] {escape(message)}")

    return say
