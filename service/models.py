"""The models in service: pulling champions from the MLflow registry into the BentoML model store, loading
them, and swapping to a newly promoted champion while requests are in flight.

A request reads ``slot.current`` once and keeps that object to the end, and a swap replaces the reference
in one assignment, so a request never sees half of an old model and half of a new one and none is dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bentoml
import mlflow
from mlflow.tracking import MlflowClient

from salespulse.config import get_settings

log = logging.getLogger(__name__)

# Run metrics copied into the BentoML model's metadata, so the service can show them without the registry.
REPORTED_METRIC_PREFIXES = ("wape", "mase", "bias", "coverage", "silhouette", "davies_bouldin", "ari", "k")


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    alias: str
    trained_at: str
    run_id: str
    metrics: dict[str, float]
    bento_tag: str
    python_model: Any = field(repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "trained_at": self.trained_at,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "bento_tag": self.bento_tag,
        }


def import_champion(name: str) -> bentoml.Model:
    """Copy the registry's champion of ``name`` into the BentoML model store (once per registry version)."""
    settings = get_settings()
    # bentoml.mlflow resolves models:/ URIs through MLflow's global store settings.
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient()
    version = client.get_model_version_by_alias(name, settings.champion_alias)
    already = _stored_registry_version(name, str(version.version))
    if already is not None:
        return already
    run = client.get_run(version.run_id)
    metadata: dict[str, Any] = {
        "registry_version": str(version.version),
        "alias": settings.champion_alias,
        "run_id": version.run_id,
        "trained_at": datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC).isoformat(),
        "metrics": {
            key: float(value)
            for key, value in run.data.metrics.items()
            if key.startswith(REPORTED_METRIC_PREFIXES)
        },
    }
    import bentoml.mlflow  # the mlflow integration is only needed here

    return bentoml.mlflow.import_model(
        name,
        f"models:/{name}/{version.version}",
        labels={"registry_version": str(version.version)},
        metadata=metadata,
    )


def _stored_registry_version(name: str, registry_version: str) -> bentoml.Model | None:
    try:
        stored = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:
        return None
    for model in stored:
        if model.info.labels.get("registry_version") == registry_version:
            return model
    return None


def load_served(model: bentoml.Model) -> ServedModel:
    import bentoml.mlflow

    metadata = model.info.metadata
    pyfunc = bentoml.mlflow.load_model(model)
    return ServedModel(
        name=model.tag.name,
        version=str(metadata.get("registry_version", "")),
        alias=str(metadata.get("alias", "")),
        trained_at=str(metadata.get("trained_at", "")),
        run_id=str(metadata.get("run_id", "")),
        metrics=dict(metadata.get("metrics", {})),
        bento_tag=str(model.tag),
        python_model=pyfunc.unwrap_python_model(),
    )


class ModelSlot:
    """Holds the model a name currently serves; ``swap`` replaces it atomically."""

    def __init__(self, served: ServedModel) -> None:
        self._current = served
        self._lock = threading.Lock()

    @property
    def current(self) -> ServedModel:
        return self._current

    def reload_from_registry(self) -> dict[str, str]:
        """Import and load the registry's champion if it changed; a no-op when it is the one in service."""
        with self._lock:  # one reload at a time; readers never wait for it
            name = self._current.name
            stored = import_champion(name)
            fresh = str(stored.info.metadata.get("registry_version", ""))
            if fresh == self._current.version:
                return {"name": name, "version": fresh, "changed": "no"}
            served = load_served(stored)
            previous = self._current.version
            self._current = served
            log.info("%s: now serving version %s (was %s)", name, served.version, previous)
            return {"name": name, "version": served.version, "previous": previous, "changed": "yes"}
