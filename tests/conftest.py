"""Shared fixtures: every test gets its own warehouse file, never the developer's data/warehouse.duckdb."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from salespulse.config import get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = REPO_ROOT / ".venv" / "bin"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the warehouse (and other writable paths) into the test's own temporary directory."""
    monkeypatch.setenv("SALESPULSE_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("SALESPULSE_IMPORT_REJECT_DIR", str(tmp_path / "rejects"))
    get_settings.cache_clear()
    yield tmp_path / "warehouse.duckdb"
    get_settings.cache_clear()


@pytest.fixture
def cli_env(isolated_settings: Path) -> dict[str, str]:
    """Environment for running the real `salespulse` console script in a subprocess."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real MLflow tracking store and registry (SQLite) of the test module's own."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SALESPULSE_MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("SALESPULSE_MLFLOW_ARTIFACT_ROOT", str(root / "artifacts"))
        get_settings.cache_clear()
        yield root
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A real PostgreSQL server on 127.0.0.1 for this test process (tests/postgres_support.py)."""
    from postgres_support import start_postgres

    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: object) -> str:
    """A new empty database of the session's PostgreSQL server, for one test."""
    return postgres_server.new_database()  # type: ignore[attr-defined]
