"""The one declared place for configuration.

Every setting is read from an environment variable with the ``SALESPULSE_`` prefix (or a ``.env`` file in
the project root); the defaults below are the embedded, no-server set-up. The README's configuration table is
this class.

Relative paths (the warehouse, the MLflow store, the build folder, ...) are resolved from one project root,
never from the current directory: ``SALESPULSE_HOME`` when set, else the checkout this package is installed
from (the folder holding its ``pyproject.toml``), else the current directory.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def project_root() -> Path:
    """The folder every relative path is resolved from (see the module's docstring)."""
    explicit = os.environ.get("SALESPULSE_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd().resolve()


SQLITE_PREFIX = "sqlite:///"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESPULSE_", extra="ignore")

    home: Path = Field(
        default_factory=project_root,
        description="Project root: relative paths below are resolved from it (default: the checkout).",
    )

    warehouse_path: Path = Field(
        Path("data/warehouse.duckdb"),
        description="DuckDB warehouse file (created on first use).",
    )
    warehouse_memory_limit: str = Field(
        "4GB", description="DuckDB memory limit; larger-than-memory work spills to disk."
    )
    warehouse_threads: int = Field(2, ge=1, description="DuckDB worker threads.")
    warehouse_checkpoint_threshold: str = Field(
        "256MiB",
        description="Write-ahead log size at which DuckDB folds it into the file. A checkpoint costs about "
        "0.3 s whatever the size, so a large log keeps real-time ingest smooth; replaying 100 MB after a "
        "crash takes about 0.4 s. The service also checkpoints whenever ingest pauses.",
    )
    import_reject_dir: Path = Field(
        Path("data/rejects"), description="Where `data import --skip-invalid` writes rejected rows."
    )
    warehouse_timezone: str | None = Field(
        None,
        description="IANA time zone (e.g. America/New_York) whose wall-clock times the warehouse stores: "
        "imported timestamps with a UTC offset are converted to it, and 'now' (the newest allowed line, the "
        "end of generated data) is read in it. Unset: the machine's time zone.",
    )
    import_future_tolerance_seconds: float = Field(
        3600.0,
        ge=0,
        description="How far past now an imported line may be dated (clock skew between systems) before it "
        "is rejected as future-dated.",
    )

    # PostgreSQL as the system of record (salespulse/warehouse/record.py). Unset: the embedded set-up, one
    # service process owning the DuckDB warehouse file.
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user@host:port/db) of the system of record: ingest and "
        "imports write there, from any number of service replicas, and each replica's DuckDB warehouse "
        "(SALESPULSE_WAREHOUSE_PATH, one file per replica) is an analytical copy that follows it. Unset: "
        "the DuckDB warehouse is the only store.",
    )
    replica_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="With a database URL: how often a replica looks for changes when no notification "
        "(LISTEN/NOTIFY) wakes it.",
    )
    replica_wait_seconds: float = Field(
        10.0,
        gt=0,
        description="With a database URL: how long an ingest or import waits for its own replica to show "
        "what it wrote before answering (the write is in PostgreSQL either way).",
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
    customer_value_model_name: str = Field(
        "customer-value", description="Registered name of the customer-value model (BG/NBD + Gamma-Gamma)."
    )
    champion_alias: str = Field("champion", description="Registry alias of the model in service.")
    model_source: Literal["registry", "bento"] = Field(
        "registry",
        description="What the service serves: the registry's champions, matched by run id (registry), or the "
        "models packed in the Bento (bento: the Docker image, which has no registry).",
    )
    forecast_horizon_days: int = Field(28, ge=1, description="Default forecast horizon of daily models.")
    forecast_horizon_weeks: int = Field(8, ge=1, description="Default forecast horizon of weekly models.")
    forecast_reconciliation: Literal["bottom_up", "mint_wls_struct", "mint_ols", "none"] = Field(
        "bottom_up",
        description="How the total, region, category and category x region forecasts are made to add up "
        "(salespulse.modeling.hierarchy). `train all` backtests each and says which is best: bottom-up on "
        "the sample (mean WAPE 0.118 over the levels, MinTrace 0.120, unreconciled 0.122).",
    )

    # Service.
    api_key: SecretStr | None = Field(
        None, description="Key for write and admin endpoints (header X-API-Key); unset: they refuse."
    )
    read_access: Literal["open", "keyed"] = Field(
        "open", description="Whether read endpoints are open or also need the API key."
    )
    service_host: str = Field("127.0.0.1", description="Address the service binds to.")
    service_port: int = Field(3000, description="Port the service listens on.")
    model_watch_seconds: float = Field(
        0.0, ge=0, description="Poll the registry for a new champion this often (0: only on reload)."
    )
    max_batch_customers: int = Field(10_000, ge=1, description="Largest /segment batch.")
    max_forecast_series: int = Field(500, ge=1, description="Most series in one /forecast request.")
    service_workers: int = Field(
        1, ge=1, le=64, description="Worker processes of the service (each holds the models in memory)."
    )
    build_dir: Path = Field(
        Path("build"), description="Docker build context made by `salespulse serve build`."
    )
    bentoml_home: Path = Field(
        Path(".bentoml"),
        description="BentoML model and Bento store of this checkout (BENTOML_HOME, when set, wins), so two "
        "checkouts on one machine never share models.",
    )
    api_key_file: Path = Field(
        Path("data/.api-key"), description="Where `make run` keeps the generated API key (mode 0600)."
    )
    max_body_bytes: int = Field(8_000_000, ge=1024, description="Largest request body accepted.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token of GET /metrics (header 'Authorization: Bearer <token>'), for a Prometheus "
        "scraper that should not hold the API key; the API key is accepted too. Unset: /metrics follows "
        "SALESPULSE_READ_ACCESS.",
    )
    service_log_max_bytes: int = Field(
        10_000_000, ge=10_000, description="Size at which scripts/service.sh rotates data/service.log."
    )
    service_log_backups: int = Field(
        5, ge=1, le=100, description="Rotated service logs kept (service.log.1 is the newest)."
    )

    # Sanity bounds on what clients send (salespulse/bounds.py applies them at every entry point: request
    # bodies, report parameters, queries, real-time sales and file imports).
    earliest_date: date = Field(
        date(1900, 1, 1), description="Earliest date a request, report parameter or sale may name."
    )
    latest_date: date = Field(
        date(2199, 12, 31), description="Latest date a request, report parameter or sale may name."
    )
    max_line_quantity: int = Field(
        1_000_000, ge=1, le=2_000_000_000, description="Largest quantity of one order line."
    )
    max_unit_price: float = Field(
        1e9, gt=0, le=1e15, description="Largest unit price (or cost) of a product."
    )
    max_line_revenue: float = Field(
        1e9,
        gt=0,
        le=1e15,
        description="Largest revenue (or cost) of one order line: a line above it would swamp every total.",
    )

    # Analytics (salespulse/analytics, mounted at /analytics).
    analytics_rollups: bool = Field(
        True, description="Answer queries from the exact rollup tables when they can (else from order lines)."
    )
    analytics_max_batch_lines: int = Field(
        10_000, ge=1, le=100_000, description="Most order lines in one POST /analytics/sales batch."
    )
    analytics_compact_after_rows: int = Field(
        100_000,
        ge=1,
        description="Delta rows ingest may append to a rollup before it folds them itself, in the middle "
        "of a busy stream; below that they are folded when ingest pauses.",
    )
    analytics_fold_after_lines: int = Field(
        20_000,
        ge=1,
        description="Ingested lines that may wait before they are folded into the rollups (a fold costs "
        "much the same for one batch as for twenty); reads include waiting lines either way.",
    )
    analytics_fold_after_seconds: float = Field(
        1.0,
        gt=0,
        description="Seconds an ingested line may wait before it is folded into the rollups.",
    )
    analytics_idle_seconds: float = Field(
        2.0,
        gt=0,
        description="Seconds without a POST /analytics/sales batch after which the service folds the "
        "rollups' delta rows and checkpoints the warehouse.",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> Settings:
        if self.earliest_date >= self.latest_date:
            raise ValueError("earliest_date must be before latest_date")
        return self

    @model_validator(mode="after")
    def _resolve_from_home(self) -> Settings:
        for name in ("warehouse_path", "import_reject_dir", "mlflow_artifact_root", "build_dir",
                     "bentoml_home", "api_key_file"):  # fmt: skip
            setattr(self, name, self.resolve(getattr(self, name)))
        self.mlflow_tracking_uri = self._resolve_sqlite_uri(self.mlflow_tracking_uri)
        return self

    def resolve(self, path: Path | str) -> Path:
        """``path`` made absolute against the project root (an absolute path is kept)."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.home / path

    def _resolve_sqlite_uri(self, uri: str) -> str:
        if not uri.startswith(SQLITE_PREFIX):
            return uri
        file = uri.removeprefix(SQLITE_PREFIX)
        return uri if file.startswith("/") else SQLITE_PREFIX + str(self.home / file)

    @property
    def tracking_uri(self) -> str:
        explicit = os.environ.get("MLFLOW_TRACKING_URI")
        return self._resolve_sqlite_uri(explicit) if explicit else self.mlflow_tracking_uri

    def resolved_api_key(self) -> str | None:
        """The API key: SALESPULSE_API_KEY, else the key file `make run` keeps (when readable), else None."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        try:
            return self.api_key_file.read_text().strip() or None
        except OSError:
            return None

    @property
    def bentoml_store(self) -> Path:
        return Path(os.environ.get("BENTOML_HOME") or self.bentoml_home)


@lru_cache
def get_settings() -> Settings:
    home = project_root()
    return Settings(_env_file=home / ".env")  # type: ignore[call-arg]
