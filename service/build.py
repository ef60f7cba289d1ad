"""Build time: pull the champion models from the MLflow registry into the BentoML model store, build the
Bento, and lay out the Docker build context (the exported Bento and a warehouse snapshot)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import bentoml
import duckdb

from salespulse.config import get_settings
from salespulse.modeling.registry import served_model_names
from service.models import PACKED_TAGS_ENV, import_champion

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BuildResult:
    models: list[str]
    bento: str
    context: Path

    def describe(self) -> str:
        return (
            f"Champions in the BentoML store: {', '.join(self.models)}\n"
            f"Bento: {self.bento}\n"
            f"Docker build context: {self.context} (then: scripts/docker.sh build)"
        )


def import_champions() -> list[bentoml.Model]:
    return [import_champion(name) for name in served_model_names()]


def build_bento(champions: list[bentoml.Model]) -> bentoml.Bento:
    """Build the Bento with exactly these models packed (the service declares the tags it is told here,
    so a rolled-back champion is packed, not the newest model in the store)."""
    os.environ[PACKED_TAGS_ENV] = json.dumps({model.tag.name: str(model.tag) for model in champions})
    try:
        # bentofile.yaml's "file:" entries are relative to the working directory: build from the checkout.
        with contextlib.chdir(REPO_ROOT):
            return bentoml.bentos.build_bentofile("bentofile.yaml", build_ctx=str(REPO_ROOT))
    finally:
        del os.environ[PACKED_TAGS_ENV]


def export_build_context(bento: bentoml.Bento, *, warehouse: Path | None) -> Path:
    """The Docker build context: the exported Bento, the dependency pins and a consistent copy of the
    warehouse file ``warehouse`` (none: an empty folder; wheels are added by scripts/docker.sh). It is laid
    out beside the old one and swapped in when complete, so a failure leaves the old context whole."""
    build_dir = get_settings().build_dir
    scratch = build_dir.with_name(build_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "warehouse").mkdir(parents=True)
    # The exported archive carries the models; a Bento's own folder only refers to the model store.
    bentoml.export_bento(bento.tag, str(scratch / "salespulse.bento"))
    shutil.copy(REPO_ROOT / "constraints.txt", scratch / "constraints.txt")
    if warehouse is not None:
        snapshot_warehouse(warehouse, scratch / "warehouse" / "warehouse.duckdb")
    shutil.rmtree(build_dir, ignore_errors=True)
    scratch.rename(build_dir)
    return build_dir


def snapshot_warehouse(source: Path, target: Path) -> None:
    """Copy the warehouse through DuckDB, so the copy is one consistent state even while it is written."""
    target.unlink(missing_ok=True)
    with duckdb.connect() as con:
        con.execute("ATTACH ? AS source (READ_ONLY)", [str(source)])
        con.execute("ATTACH ? AS snapshot", [str(target)])
        con.execute("COPY FROM DATABASE source TO snapshot")


def build_all(*, warehouse: Path | None) -> BuildResult:
    """Champions, Bento and build context; ``warehouse`` is a readable warehouse file to snapshot (the
    command line hands it the service's snapshot while the service owns the warehouse)."""
    models = import_champions()
    bento = build_bento(models)
    context = export_build_context(bento, warehouse=warehouse)
    return BuildResult(models=[str(m.tag) for m in models], bento=str(bento.tag), context=context)
