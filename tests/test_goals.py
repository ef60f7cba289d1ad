"""Goal plan import: targets by month and region, salesman, category or product, validated row by row, atomic
and idempotent, from the library and from the command line."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from salespulse.dataset.generate import GeneratorConfig, generate_warehouse
from salespulse.dataset.goals import import_goals
from salespulse.dataset.importing import ImportFailed, ImportRejected

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = GeneratorConfig(seed=5, customers=300, rows=6_000, products=30, days=120, end_date=date(2026, 6, 30))


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("goals") / "sample.duckdb"
    generate_warehouse(SMALL, path)
    return path


@pytest.fixture
def warehouse(sample_warehouse: Path, isolated_settings: Path) -> Path:
    isolated_settings.write_bytes(sample_warehouse.read_bytes())
    return isolated_settings


def members(path: Path) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        product, category = con.execute(
            "SELECT product_id, category FROM products ORDER BY 1 LIMIT 1"
        ).fetchone()
        (salesman,) = con.execute("SELECT min(salesman_id) FROM salesmen").fetchone()
    return {"product": product, "category": category, "salesman": salesman, "region": "West"}


def goals(path: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} WHERE month >= DATE '2027-01-01' ORDER BY ALL").fetchall()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_long_plan_sets_targets_at_every_level(warehouse: Path, tmp_path: Path) -> None:
    m = members(warehouse)
    plan = write(
        tmp_path / "plan.csv",
        "month,level,member,target\n"
        f'2027-01,region,{m["region"]},"$125,000.50"\n'
        f"2027-01-20,salesman,{m['salesman']},9000\n"
        f"2027-02,category,{m['category']},50000\n"
        f"02/01/2027,product,{m['product']},4500\n",
    )
    result = import_goals(plan, path=warehouse)
    assert result.rows_read == 4
    assert result.targets_by_level == {"region": 1, "salesman": 1, "category": 1, "product": 1}
    assert goals(warehouse, "region_goals") == [(date(2027, 1, 1), "West", 125_000.50)]
    assert goals(warehouse, "salesman_goals") == [(date(2027, 1, 1), m["salesman"], 9000.0)]
    assert goals(warehouse, "category_goals") == [(date(2027, 2, 1), m["category"], 50_000.0)]
    assert goals(warehouse, "product_goals") == [(date(2027, 2, 1), m["product"], 4500.0)]


def test_importing_a_plan_again_changes_nothing_and_a_new_figure_replaces_the_old(
    warehouse: Path, tmp_path: Path
) -> None:
    category = members(warehouse)["category"]
    plan = write(tmp_path / "plan.csv", f"month,category,target\n2027-03,{category},100\n")
    import_goals(plan, level="category", path=warehouse)
    import_goals(plan, level="category", path=warehouse)
    assert goals(warehouse, "category_goals") == [(date(2027, 3, 1), category, 100.0)]
    import_goals(
        write(plan, f"month,category,target\n2027-03,{category},250\n"), level="category", path=warehouse
    )
    assert goals(warehouse, "category_goals") == [(date(2027, 3, 1), category, 250.0)]


def test_a_bad_row_rejects_the_plan_naming_row_column_and_reason(warehouse: Path, tmp_path: Path) -> None:
    m = members(warehouse)
    plan = write(
        tmp_path / "plan.csv",
        "month,level,member,target\n"
        f"2027-01,region,{m['region']},1000\n"  # good, but the file is rejected whole
        "2027-01,region,Atlantis,100\n"
        "13/2027,region,West,100\n"
        "2027-01,planet,Mars,100\n"
        f"2027-01,product,{m['product']},-5\n"
        f"2027-01,category,{m['category']},lots\n"
        f"2027-04,category,{m['category']},1\n"
        f"2027-04,category,{m['category']},2\n",
    )
    with pytest.raises(ImportRejected) as rejected:
        import_goals(plan, path=warehouse)
    problems = rejected.value.describe(limit=50)
    expected = [
        "row 2, column 'member': 'Atlantis' is not known to the warehouse",
        "row 3, column 'month': '13/2027' is not a month",
        "row 4, column 'level': 'planet' is not a level",
        "row 5, column 'target': '-5' is negative",
        "row 6, column 'target': 'lots' is not a number",
        "row 7, column 'member':",
        "row 8, column 'member':",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)
    assert rejected.value.invalid_rows == 7
    assert all(goals(warehouse, t) == [] for t in ("region_goals", "product_goals", "category_goals"))


def test_a_file_that_is_not_a_plan_says_what_is_missing(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match="no 'level' column"):
        import_goals(write(tmp_path / "p.csv", "month,member,target\n2027-01,West,1\n"), path=warehouse)
    with pytest.raises(ImportFailed, match="no 'target' / 'revenue_target' / 'goal' column"):
        import_goals(
            write(tmp_path / "p.csv", "month,region\n2027-01,West\n"), level="region", path=warehouse
        )


def test_the_command_imports_a_plan_and_rejects_a_bad_one(warehouse: Path, tmp_path: Path, cli_env) -> None:
    category = members(warehouse)["category"]
    good = write(tmp_path / "good.csv", f'month,category,target\n2027-05,{category},"1,000"\n')
    command = [str(REPO_ROOT / ".venv" / "bin" / "salespulse"), "data", "import-goals"]
    ok = subprocess.run(
        [*command, str(good), "--level", "category"], env=cli_env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "Imported 1 targets" in ok.stderr
    bad = write(tmp_path / "bad.csv", "month,category,target\n2027-05,Nope,1\n")
    refused = subprocess.run(
        [*command, str(bad), "--level", "category"], env=cli_env, capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert (
        "row 1, column 'member': 'Nope' is not known" in refused.stderr
        and "Nothing was imported" in refused.stderr
    )
    assert goals(warehouse, "category_goals") == [(date(2027, 5, 1), category, 1000.0)]
