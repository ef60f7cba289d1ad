"""The models in service: pulling champions from the MLflow registry into the BentoML model store, loading
them, and swapping to a newly promoted champion while requests are in flight.

A model is identified by the registry, never by a version number alone: a BentoML model is labelled with the
MLflow run id and model source of the registered version it was copied from, and the service serves the one
whose labels match the version that holds the champion alias now (after a rollback too). Run ids are unique
across stores, so two checkouts on one machine can't serve each other's models.

A request reads ``slot.current`` once and keeps that object to the end, and a swap replaces the reference
in one assignment, so a request never sees half of an old model and half of a new one and none is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bentoml
import mlflow
from mlflow.tracking import MlflowClient

from salespulse.config import get_settings
from salespulse.modeling.registry import RegistryUnavailable, SlotSpec, check_registry

log = logging.getLogger("bentoml.salespulse")  # BentoML shows its own loggers at INFO

# Run metrics copied into the BentoML model's metadata, so the service can show them without the registry.
REPORTED_METRIC_PREFIXES = (
    "wape", "mase", "bias", "coverage", "silhouette", "davies_bouldin", "ari", "k",
    "holdout", "heuristic", "segment_means", "served_holdout",
)  # fmt: skip


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

    def describe_identity(self) -> str:
        return f"{self.name} v{self.version} (run {self.run_id}, {self.bento_tag})"

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


PACKED_TAGS_ENV = "SALESPULSE_PACKED_MODEL_TAGS"
"""Set by `salespulse serve build` while it builds the Bento: the exact champion tags to pack (JSON)."""


def packed_tag(name: str) -> str:
    """The BentoML tag the service declares for ``name``: the champion's exact tag while `serve build`
    packs the Bento, else the newest (inside a built Bento there is only one model of each name)."""
    return json.loads(os.environ.get(PACKED_TAGS_ENV) or "{}").get(name, f"{name}:latest")


def registry_client() -> MlflowClient:
    """A client of the configured registry (RegistryUnavailable, in one line, when it can't be asked)."""
    uri = get_settings().tracking_uri
    check_registry(uri)
    # bentoml.mlflow resolves models:/ URIs through MLflow's global store settings.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient()


def import_champion(name: str) -> bentoml.Model:
    """Copy the registry's champion of ``name`` into the BentoML model store, unless the model of that very
    registered version (same run, same model source) is there already."""
    settings = get_settings()
    client = registry_client()
    try:
        version = client.get_model_version_by_alias(name, settings.champion_alias)
    except mlflow.exceptions.MlflowException as error:
        raise RegistryUnavailable(
            f"no {settings.champion_alias} of {name} in the registry: {error}"
        ) from None
    already = _stored_copy_of(name, version.run_id, str(version.source))
    if already is not None:
        return already
    run = client.get_run(version.run_id)
    metadata: dict[str, Any] = {
        "registry_version": str(version.version),
        "model_source": str(version.source),
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
        labels={"registry_version": str(version.version), "run_id": version.run_id},
        metadata=metadata,
    )


def model_to_serve(spec: SlotSpec, packed: bentoml.Model) -> bentoml.Model:
    """The registry's champion (SALESPULSE_MODEL_SOURCE=registry, the default), or the model packed in the
    Bento (=bento: a Docker image has no registry)."""
    if get_settings().model_source == "bento":
        return packed
    return import_champion(spec.model_name)


def _stored_copy_of(name: str, run_id: str, source: str) -> bentoml.Model | None:
    try:
        stored = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:
        return None
    for model in stored:
        same_run = model.info.labels.get("run_id") == run_id
        if same_run and model.info.metadata.get("model_source") == source:
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
            if str(stored.tag) == self._current.bento_tag:
                return {"name": name, "version": fresh, "changed": "no"}
            served = load_served(stored)
            previous = self._current.version
            self._current = served
            log.info("%s: now serving version %s (was %s)", name, served.version, previous)
            return {"name": name, "version": served.version, "previous": previous, "changed": "yes"}
