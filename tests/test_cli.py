"""The command line fails like a good CLI: choices checked by the parser (exit 2, one line), one-line messages
for a missing or locked warehouse and an unreachable registry, a traceback only with --debug, paths from one
project root, and no warehouse replaced by accident."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.serve import venv_tool
from salespulse.config import Settings
from salespulse.warehouse import owner
from salespulse.warehouse.store import connect

REPO_ROOT = Path(__file__).resolve().parents[1]
SALESPULSE = str(REPO_ROOT / ".venv" / "bin" / "salespulse")
TINY_SAMPLE = ["--rows", "2000", "--customers", "200", "--products", "20", "--days", "60"]


def salespulse(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SALESPULSE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_wrong_choice_is_a_usage_error_in_one_line(cli_env):
    result = salespulse("train", "forecaster", "--level", "bogus", env=cli_env)
    assert_one_line_error(result, 2, "--level", "'bogus'", "product_region")


def test_help_lists_the_choices(cli_env):
    text = salespulse("train", "forecaster", "--help", env=cli_env).stdout
    for level in ("product_region", "product", "category", "region", "category_region", "total"):
        assert level in text
    assert "D|W" in text.replace(" ", "")


def test_a_missing_warehouse_is_one_line(cli_env, isolated_settings):
    for command in (["data", "info"], ["train", "segmenter"], ["serve", "build"]):
        result = salespulse(*command, env=cli_env)
        assert_one_line_error(result, 1, f"no warehouse at {isolated_settings}")


def test_a_locked_warehouse_is_one_line_naming_the_holder(cli_env, isolated_settings):
    holder = connect(isolated_settings)  # this test process holds DuckDB's write lock
    try:
        result = salespulse("data", "info", env=cli_env)
    finally:
        holder.close()
    assert_one_line_error(result, 1, "in use by process", str(os.getpid()))


def test_an_unreachable_registry_is_one_line(cli_env):
    env = {**cli_env, "SALESPULSE_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = salespulse("train", "segmenter", env=env)
    assert_one_line_error(result, 1, "MLflow server", "does not answer")


def test_debug_shows_the_traceback(cli_env):
    result = salespulse("--debug", "data", "info", env=cli_env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "WarehouseMissing" in result.stderr


def test_paths_come_from_the_project_root_not_the_working_directory(cli_env, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(), elsewhere.mkdir()
    env = {
        **cli_env,
        "SALESPULSE_HOME": str(home),
        "SALESPULSE_MLFLOW_TRACKING_URI": "sqlite:///mlruns/mlflow.db",
    }
    env.pop("SALESPULSE_WAREHOUSE_PATH")
    env.pop("MLFLOW_TRACKING_URI", None)
    status = salespulse("train", "status", env=env, cwd=elsewhere)
    assert_one_line_error(status, 1, f"no MLflow store at {home / 'mlruns' / 'mlflow.db'}")
    info = salespulse("data", "info", env=env, cwd=elsewhere)
    assert_one_line_error(info, 1, str(home / "data" / "warehouse.duckdb"))
    assert list(elsewhere.iterdir()) == [] and list(home.iterdir()) == []  # asking created nothing

    monkeypatch.delenv("SALESPULSE_WAREHOUSE_PATH")
    settings = Settings(home=home)
    assert settings.warehouse_path == home / "data" / "warehouse.duckdb"
    assert settings.tracking_uri == f"sqlite:///{home}/mlruns/mlflow.db"
    assert settings.bentoml_home == home / ".bentoml"


def test_tools_come_from_the_environment_not_path():
    assert venv_tool("bentoml") == str(Path(sys.executable).parent / "bentoml")


@pytest.mark.slow
def test_a_warehouse_with_sales_is_never_replaced_by_accident(cli_env, isolated_settings):
    assert salespulse("data", "generate", "--if-empty", *TINY_SAMPLE, env=cli_env).returncode == 0
    lines = connect(isolated_settings, read_only=True).execute("SELECT count(*) FROM order_lines").fetchone()
    kept = salespulse("data", "generate", "--if-empty", "--seed", "7", *TINY_SAMPLE, env=cli_env)
    assert kept.returncode == 0 and "Keeping the warehouse" in kept.stderr
    refused = salespulse("data", "generate", "--seed", "7", *TINY_SAMPLE, env=cli_env)
    assert_one_line_error(refused, 1, "--replace")
    with connect(isolated_settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM order_lines").fetchone() == lines

    # A running service owns it: not even --replace replaces it then.
    owner.claim(isolated_settings, url="http://127.0.0.1:9", instance="test")
    try:
        under_service = salespulse("data", "generate", "--replace", *TINY_SAMPLE, env=cli_env)
    finally:
        owner.release(isolated_settings)
    assert_one_line_error(under_service, 1, "owns", "make stop")
    replaced = salespulse("data", "generate", "--replace", "--seed", "7", *TINY_SAMPLE, env=cli_env)
    assert replaced.returncode == 0, replaced.stderr
