"""Schemathesis hooks for the whole service: the analytics rules (tests/schemathesis_hooks.py) and those of
the prediction and admin endpoints that an OpenAPI document cannot state. Load with
``PYTHONPATH=tests SCHEMATHESIS_HOOKS=schemathesis_service_hooks`` (tests/test_api_contract.py; a package
named "tests" that a library installs would shadow ``tests.…``).

As there, only *positive* cases are changed, as little as the rule needs, and each rule is said in the
description of what it binds; the service answers a request that breaks it with a 422 naming the field:

- /forecast: the horizon's limit depends on the frequency; a promotion ends on or after its start.
- /segment: a customer's tenure covers its recency; /predict/customers: recency is at most T.
- /admin/import, /admin/import-goals, /admin/snapshot name files on the service's machine: the fuzzer's
  files are the shipped samples and new files under SALESPULSE_FUZZ_SCRATCH, never the machine's own.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import schemathesis
import schemathesis_hooks  # noqa: F401 - registers the analytics rules

from salespulse.features.series import MAX_HORIZON

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EXPORT = REPO_ROOT / "data" / "examples" / "superstore_sample.csv"
SAMPLE_MAPPING = REPO_ROOT / "data" / "mappings" / "superstore.yaml"
SAMPLE_GOALS = REPO_ROOT / "data" / "examples" / "goal_plan_sample.csv"
_snapshots = itertools.count()


def scratch() -> Path:
    folder = Path(os.environ.get("SALESPULSE_FUZZ_SCRATCH") or "/tmp/salespulse-fuzz")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    rule = SERVICE_RULES.get(case.operation.path)
    if rule is not None and case.operation.method.upper() == "POST" and isinstance(case.body, dict):
        rule(case.body)
    return case


def forecast(body: dict[str, Any]) -> None:
    limit = MAX_HORIZON[body.get("freq") or "D"]
    if isinstance(body.get("horizon"), int | float) and body["horizon"] > limit:
        body["horizon"] = limit
    for promotion in body.get("promotions") or []:
        _ordered(promotion, "start", "end")


def segment(body: dict[str, Any]) -> None:
    for customer in body.get("customers") or []:
        _ordered(customer, "recency_days", "tenure_days")


def predict_customers(body: dict[str, Any]) -> None:
    for customer in body.get("customers") or []:
        _ordered(customer, "recency", "T")


def _ordered(record: dict[str, Any], smaller: str, larger: str) -> None:
    """``smaller`` not above ``larger``: swapped when they are the wrong way round."""
    if record[smaller] > record[larger]:
        record[smaller], record[larger] = record[larger], record[smaller]


def import_export(body: dict[str, Any]) -> None:
    body["file"], body["mapping"] = str(SAMPLE_EXPORT), str(SAMPLE_MAPPING)


def import_goals(body: dict[str, Any]) -> None:
    body["file"] = str(SAMPLE_GOALS)
    body.pop("level", None)  # the sample names each row's level


def write_snapshot(body: dict[str, Any]) -> None:
    body["path"] = str(scratch() / f"snapshot-{os.getpid()}-{next(_snapshots)}.duckdb")


SERVICE_RULES = {
    "/forecast": forecast,
    "/segment": segment,
    "/predict/customers": predict_customers,
    "/admin/import": import_export,
    "/admin/import-goals": import_goals,
    "/admin/snapshot": write_snapshot,
}
