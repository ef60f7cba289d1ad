"""The tracked customer-value run: split -> calibration fit -> holdout scores -> full fit -> MLflow -> gate.

``run()`` is what ``salespulse train customer-value`` calls. The model is fitted twice with the same code:
on the calibration period, to be scored on the holdout beside the heuristic lifetime value and the segment
means, and then on the whole history, which is the model registered and served (the parameters of both are
logged).

The gate has two steps. The floor: the calibration fit's holdout rank correlation (``holdout_spearman``, a
true out-of-sample figure) must beat the heuristic lifetime value's, else the version is rejected. Then the
champion: the new registered model and the champion, each through its own logged model, rank the same
split's customers (``served_holdout_spearman``), and the new one must do better (``training.tracking``).
Like is compared with like there: both registered models were fitted on histories that may overlap the
holdout (seven population parameters barely move with it: 0.836 out of sample, 0.840 refitted on the
sample), so neither gets an advantage the other lacks, and a retrain on unchanged data is not promoted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.markup import escape

from salespulse.config import get_settings
from salespulse.features.customers import SUMMARY_NAMES
from salespulse.modeling.customer_value import (
    CustomerValueModel,
    CustomerValueParameters,
    predict_customers,
)
from training.customer_value import plots
from training.customer_value.data import HOLDOUT_DAYS, CustomerValueData, load_customer_value_data
from training.customer_value.evaluate import (
    HEURISTIC_LIFETIME_YEARS,
    HoldoutScores,
    holdout_scores,
    model_holdout_spend,
    rank_correlation,
)
from training.customer_value.register import champion_holdout_spearman, log_customer_value
from training.customer_value.train import FIT_METHOD, FittedCustomerValue, fit_customer_value
from training.tracking import GateDecision, configure_mlflow, gate_and_promote

GATE_METRIC = "served_holdout_spearman"


@dataclass(frozen=True)
class CustomerValueRun:
    run_id: str
    version: str
    # None when the challenger did not beat the heuristic: it was never compared with the champion.
    decision: GateDecision | None
    scores: HoldoutScores
    calibration: FittedCustomerValue
    fitted: FittedCustomerValue
    as_of: date
    seconds: float

    @property
    def beats_heuristic(self) -> bool:
        return self.scores.model > self.scores.heuristic

    def describe(self) -> str:
        fitted = self.fitted
        lines = [
            f"Customer value v{self.version} (run {self.run_id}), {self.seconds:.1f} s",
            f"{fitted.customers:,} customers as of {self.as_of} ({fitted.repeat_customers:,} with repeat "
            f"spend); fits {fitted.seconds_purchases:.1f} s (BG/NBD) + {fitted.seconds_spend:.1f} s "
            "(Gamma-Gamma)",
            f"parameters: {_parameters_text(fitted.parameters)}",
            self.scores.describe(),
            self.decision.describe()
            if self.decision is not None
            else f"not promoted: its holdout Spearman {self.scores.model:.4f} does not beat the heuristic's "
            f"{self.scores.heuristic:.4f}",
        ]
        return "\n".join(lines)


def run(
    seed: int = 0,
    holdout_days: int = HOLDOUT_DAYS,
    progress: bool = True,
    warehouse: Path | None = None,
) -> CustomerValueRun:
    """Train, validate, log, register and gate a customer-value model on the warehouse's customers."""
    started = time.perf_counter()
    say = _reporter(progress, started)
    configure_mlflow()
    model_name = get_settings().customer_value_model_name
    data = load_customer_value_data(warehouse, holdout_days)
    split = data.split
    say(f"{len(data.summary):,} customers as of {data.as_of}, {len(split.summary):,} by {split.cutoff}")
    with mlflow.start_run(run_name=f"customer-value-seed{seed}") as active:
        mlflow.set_tag("model", model_name)
        _log_params(data, seed)
        calibration = fit_customer_value(split.summary)
        scores = holdout_scores(calibration.parameters, split)
        say(scores.describe())
        fitted = fit_customer_value(data.summary)
        say(f"fitted on the whole history: {_parameters_text(fitted.parameters)}")
        _log_fits(calibration, fitted)
        mlflow.log_metrics(scores.as_metrics())
        _log_plots(calibration.parameters, data)
        model = CustomerValueModel(fitted.parameters, trained_as_of=data.as_of.isoformat())
        info = log_customer_value(model, data.summary, model_name)
        version = str(info.registered_model_version)
        say(f"registered {model_name} v{version}")
        served_score = rank_correlation(
            model_holdout_spend(fitted.parameters, split), split.holdout_spend.to_numpy()
        )
        mlflow.log_metric(GATE_METRIC, served_score)
        decision = _gate(model_name, version, scores, served_score, data)
        seconds = time.perf_counter() - started
        mlflow.log_metric("seconds", seconds)
    result = CustomerValueRun(
        run_id=active.info.run_id,
        version=version,
        decision=decision,
        scores=scores,
        calibration=calibration,
        fitted=fitted,
        as_of=data.as_of,
        seconds=seconds,
    )
    say(result.describe().splitlines()[-1])
    return result


def _gate(
    model_name: str, version: str, scores: HoldoutScores, served_score: float, data: CustomerValueData
) -> GateDecision | None:
    """The heuristic is the floor: a model that ranks customers no better than it is never served."""
    if not scores.model > scores.heuristic:
        _record_below_heuristic(model_name, version, scores)
        return None
    return gate_and_promote(
        model_name,
        version,
        GATE_METRIC,
        served_score,
        lambda champion: champion_holdout_spearman(champion, data.split),
        higher_is_better=True,
    )


def _record_below_heuristic(model_name: str, version: str, scores: HoldoutScores) -> None:
    summary = (
        f"{model_name} v{version} rejected: holdout Spearman {scores.model:.4f} does not beat the heuristic "
        f"lifetime value's {scores.heuristic:.4f}"
    )
    mlflow.set_tags({"gate.decision": "rejected", "gate.reason": "heuristic", "gate.summary": summary})
    client = MlflowClient()
    client.set_model_version_tag(model_name, version, "gate.decision", "rejected")
    client.set_model_version_tag(model_name, version, "backtest.holdout_spearman", f"{scores.model:.6f}")


def _log_params(data: CustomerValueData, seed: int) -> None:
    split = data.split
    mlflow.log_params(
        {
            "seed": seed,
            "summary": ",".join(SUMMARY_NAMES),
            "purchase": "a day with at least one order",
            "time_unit": "day",
            "fit_method": f"pymc-marketing {FIT_METHOD}, flat priors (maximum likelihood)",
            "holdout_days": split.holdout_days,
            "cutoff": split.cutoff.isoformat(),
            "as_of": data.as_of.isoformat(),
            "customers": len(data.summary),
            "calibration_customers": len(split.summary),
            "heuristic_lifetime_years": HEURISTIC_LIFETIME_YEARS,
            "benchmark_segmentation": "the segmenter's choice on the split (features and k by holdout value "
            "and silhouette)",
        }
    )


def _log_fits(calibration: FittedCustomerValue, fitted: FittedCustomerValue) -> None:
    metrics: dict[str, float] = {
        "fit_seconds_purchases": fitted.seconds_purchases,
        "fit_seconds_spend": fitted.seconds_spend,
        "repeat_customers": float(fitted.repeat_customers),
    }
    for prefix, fit in (("", fitted), ("calibration_", calibration)):
        for group, values in fit.parameters.as_dict().items():
            metrics.update({f"{prefix}{group}_{name}": value for name, value in values.items()})
    mlflow.log_metrics(metrics)


def _log_plots(calibration: CustomerValueParameters, data: CustomerValueData) -> None:
    split = data.split
    predicted = model_holdout_spend(calibration, split)
    alive = predict_customers(calibration, split.summary, horizon_days=split.holdout_days).probability_alive
    mlflow.log_figure(plots.holdout_deciles(predicted, split), "plots/holdout_deciles.png")
    mlflow.log_figure(plots.probability_alive_histogram(alive, split), "plots/probability_alive.png")


def _parameters_text(parameters: CustomerValueParameters) -> str:
    values = {**parameters.as_dict()["purchases"], **parameters.as_dict()["spend"]}
    return ", ".join(f"{name}={value:.4g}" for name, value in values.items())


def _reporter(progress: bool, started: float) -> Callable[[str], None]:
    console = Console(stderr=True)

    def say(message: str) -> None:
        if progress:
            console.print(f"[dim]customer-value {time.perf_counter() - started:5.1f} s[/] {escape(message)}")

    return say
