"""The one declared place for configuration.

Every setting is read from an environment variable with the ``SALESPULSE_`` prefix (or a ``.env`` file in
the working directory); the defaults below are the embedded, no-server set-up. The README's configuration
table is this class.
"""

from __future__ import annotations

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
