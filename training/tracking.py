"""MLflow set-up, model registration and the champion/challenger gate shared by every training pipeline."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from salespulse.config import get_settings


def configure_mlflow() -> str:
    """Point MLflow at the configured store and make sure the experiment exists; returns the tracking URI."""
    settings = get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(settings.mlflow_experiment) is None:
        # A local store keeps artifacts in the configured folder; a server decides for itself.
        local = not uri.startswith(("http://", "https://"))
        artifact_location = settings.mlflow_artifact_root.resolve().as_uri() if local else None
        mlflow.create_experiment(settings.mlflow_experiment, artifact_location=artifact_location)
    mlflow.set_experiment(settings.mlflow_experiment)
    return uri


BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas")
"""Distributions every logged model needs; each model adds its own."""

MODEL_CODE = '''"""Builds the {name} when MLflow loads the model; only salespulse is imported."""

from mlflow.models import set_model

from {module} import {name}

set_model({name}())
'''


def log_model_from_code(
    *,
    model_class: type[mlflow.pyfunc.PythonModel],
    artifact_name: str,
    save_artifact: Callable[[Path], None],
    registered_model_name: str,
    signature: Any,
    input_example: Any,
    requirements: tuple[str, ...],
) -> mlflow.models.model.ModelInfo:
    """Log a pyfunc model as "models from code" (MLflow 3's recommended form: no pickled Python object) to
    the active run and register it.

    The model's code is a tiny module that imports only ``model_class`` (from ``salespulse``) and calls
    ``set_model``; the fitted state is the folder ``save_artifact`` writes, handed to the model's
    ``load_context`` as ``artifact_name``. ``requirements`` are distribution names, pinned to the installed
    versions. They are declared rather than inferred: inference loads the model in a subprocess (seconds)
    and would list salespulse, the project itself, which no index can install.
    """
    pins = [f"{dist}=={version(dist)}" for dist in (*BASE_REQUIREMENTS, *requirements)]
    with tempfile.TemporaryDirectory() as scratch:
        code = Path(scratch) / f"{artifact_name}_model.py"
        code.write_text(MODEL_CODE.format(module=model_class.__module__, name=model_class.__name__))
        artifact = Path(scratch) / artifact_name
        save_artifact(artifact)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=code,
            artifacts={artifact_name: str(artifact)},
            signature=signature,
            input_example=input_example,
            registered_model_name=registered_model_name,
            pip_requirements=pins,
        )


def champion_version(name: str) -> ModelVersion | None:
    """The registered version that currently holds the champion alias, if any."""
    try:
        return MlflowClient().get_model_version_by_alias(name, get_settings().champion_alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class GateDecision:
    model_name: str
    version: str
    metric: str
    challenger_score: float
    champion_score: float | None
    champion_version: str | None
    promoted: bool
    baselines: dict[str, float] = field(default_factory=dict)  # the baselines' scores on the same backtest
    higher_is_better: bool = False

    @property
    def beats_baselines(self) -> bool:
        """No baseline scores better than the challenger (a tie counts as no worse)."""
        return all(
            not _is_better(score, self.challenger_score, self.higher_is_better)
            for score in self.baselines.values()
        )

    def describe(self) -> str:
        against = "".join(f", {name} {score:.4f}" for name, score in self.baselines.items())
        if not self.beats_baselines:
            return (
                f"{self.model_name} v{self.version} kept as challenger: {self.metric} "
                f"{self.challenger_score:.4f} loses to a baseline ({against.lstrip(', ')})"
            )
        if self.champion_score is None:
            first = f"{self.model_name} v{self.version} is the first champion"
            return f"{first} ({self.metric} {self.challenger_score:.4f}{against})"
        verdict = "promoted to champion" if self.promoted else "kept as challenger"
        return (
            f"{self.model_name} v{self.version} {verdict}: {self.metric} {self.challenger_score:.4f} "
            f"vs champion v{self.champion_version} {self.champion_score:.4f}{against} on the same backtest"
        )


def gate_and_promote(
    model_name: str,
    version: str,
    metric: str,
    challenger_score: float,
    score_champion: Callable[[ModelVersion], float],
    *,
    higher_is_better: bool,
    baselines: dict[str, float] | None = None,
) -> GateDecision:
    """Give ``version`` the champion alias only if it beats the current champion and is no worse than any
    of ``baselines`` (naive methods scored on the same backtest): a model that loses to seasonal naive is
    never served, even as the first champion.

    ``score_champion`` evaluates the current champion on the challenger's own backtest (same data, same
    windows), so the scores are comparable. The decision and every score are logged to the active run and
    tagged on the new version.
    """
    baselines = dict(baselines or {})
    current = champion_version(model_name)
    is_itself = current is not None and str(current.version) == str(version)
    champion_score = score_champion(current) if current is not None and not is_itself else None
    beats_baselines = all(not _is_better(b, challenger_score, higher_is_better) for b in baselines.values())
    beats_champion = champion_score is None or _is_better(challenger_score, champion_score, higher_is_better)
    promoted = beats_baselines and beats_champion and not math.isnan(challenger_score)
    decision = GateDecision(
        model_name=model_name,
        version=str(version),
        metric=metric,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=str(current.version) if current is not None else None,
        promoted=promoted,
        baselines=baselines,
        higher_is_better=higher_is_better,
    )
    client = MlflowClient()
    if promoted:
        client.set_registered_model_alias(model_name, get_settings().champion_alias, str(version))
    _record_decision(client, decision)
    return decision


def _is_better(challenger: float, champion: float, higher_is_better: bool) -> bool:
    if math.isnan(challenger):
        return False
    if math.isnan(champion):
        return True
    return challenger > champion if higher_is_better else challenger < champion


def _record_decision(client: MlflowClient, decision: GateDecision) -> None:
    mlflow.log_metric(f"gate_challenger_{decision.metric}", decision.challenger_score)
    if decision.champion_score is not None:
        mlflow.log_metric(f"gate_champion_{decision.metric}", decision.champion_score)
    for name, score in decision.baselines.items():
        mlflow.log_metric(f"gate_{name}_{decision.metric}", score)
    mlflow.set_tags(
        {
            "gate.decision": "promoted" if decision.promoted else "rejected",
            "gate.champion_version": decision.champion_version or "none",
            "gate.summary": decision.describe(),
        }
    )
    tags = {
        "gate.decision": "promoted" if decision.promoted else "rejected",
        f"backtest.{decision.metric}": f"{decision.challenger_score:.6f}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(decision.model_name, decision.version, key, value)
