"""The one declared place for configuration.

Every setting is read from an environment variable with the ``SALESPULSE_`` prefix (or a ``.env`` file in
the working directory); the defaults below are the embedded, no-server set-up. The README's configuration
table is this class.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESPULSE_", env_file=".env", extra="ignore")

    warehouse_path: Path = Field(
        Path("data/warehouse.duckdb"),
        description="DuckDB warehouse file (created on first use).",
    )
    warehouse_memory_limit: str = Field(
        "4GB", description="DuckDB memory limit; larger-than-memory work spills to disk."
    )
    warehouse_threads: int = Field(2, ge=1, description="DuckDB worker threads.")
    import_reject_dir: Path = Field(
        Path("data/rejects"), description="Where `data import --skip-invalid` writes rejected rows."
    )

    # MLflow. The standard MLFLOW_TRACKING_URI variable, when set, wins over mlflow_tracking_uri.
    mlflow_tracking_uri: str = Field(
        "sqlite:///mlruns/mlflow.db",
        description="Tracking and registry store; a local SQLite file by default, or a server's http:// URL.",
    )
    mlflow_artifact_root: Path = Field(
        Path("mlruns/artifacts"), description="Artifact folder for the local store (a server keeps its own)."
    )
    mlflow_experiment: str = Field("salespulse", description="MLflow experiment of the training runs.")
    forecaster_model_name: str = Field("sales-forecaster", description="Registered name of the forecaster.")
    segmenter_model_name: str = Field("customer-segmenter", description="Registered name of the segmenter.")
    champion_alias: str = Field("champion", description="Registry alias of the model in service.")

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or self.mlflow_tracking_uri


@lru_cache
def get_settings() -> Settings:
    return Settings()
