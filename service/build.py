"""Build time: pull the champion models from the MLflow registry into the BentoML model store, build the
Bento, and lay out the Docker build context (the exported Bento and a warehouse snapshot)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import bentoml
import duckdb

from salespulse.config import get_settings
from salespulse.modeling.registry import served_model_names
from service.models import import_champion

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


def build_bento() -> bentoml.Bento:
    return bentoml.bentos.build_bentofile(str(REPO_ROOT / "bentofile.yaml"), build_ctx=str(REPO_ROOT))


def export_build_context(bento: bentoml.Bento, *, with_snapshot: bool = True) -> Path:
    """The Docker build context: the Bento's own folder, the dependency pins and a consistent copy of the
    warehouse (wheels are added by scripts/docker.sh)."""
    build_dir = get_settings().build_dir.resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    # The exported archive carries the models; a Bento's own folder only refers to the model store.
    archive = build_dir / "salespulse.bento"
    archive.unlink(missing_ok=True)
    bentoml.export_bento(bento.tag, str(archive))
    shutil.copy(REPO_ROOT / "constraints.txt", build_dir / "constraints.txt")
    snapshot_dir = build_dir / "warehouse"
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    snapshot_dir.mkdir(parents=True)
    if with_snapshot:
        snapshot_warehouse(get_settings().warehouse_path, snapshot_dir / "warehouse.duckdb")
    return build_dir


def snapshot_warehouse(source: Path, target: Path) -> None:
    """Copy the warehouse through DuckDB, so the copy is one consistent state even while it is written."""
    target.unlink(missing_ok=True)
    with duckdb.connect() as con:
        con.execute("ATTACH ? AS source (READ_ONLY)", [str(source)])
        con.execute("ATTACH ? AS snapshot", [str(target)])
        con.execute("COPY FROM DATABASE source TO snapshot")


def build_all(*, with_snapshot: bool = True) -> BuildResult:
    models = import_champions()
    bento = build_bento()
    context = export_build_context(bento, with_snapshot=with_snapshot)
    return BuildResult(models=[str(m.tag) for m in models], bento=str(bento.tag), context=context)
