"""Import of a company's own order-line exports: mapping, validation, idempotence, atomicity, CLI.

Real DuckDB files in temporary directories; the files are superstore-style exports from
tests/superstore_files.py. "Row N" is the 1-based data row (the first row after the CSV header is row 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from superstore_files import SAMPLE_FILE, SAMPLE_ROWS, write_superstore_csv

from salespulse.dataset.geography import REGION_OF_STATE, STATE_NAMES
from salespulse.dataset.importing import ImportFailed, ImportRejected, import_file
from salespulse.dataset.mapping import Mapping, MappingError, load_mapping
from salespulse.warehouse.load import upsert_sales
from salespulse.warehouse.store import connect

REPO_ROOT = Path(__file__).resolve().parents[1]
MAPPING_FILE = REPO_ROOT / "data" / "mappings" / "superstore.yaml"
TABLES = ("order_lines", "customers", "products", "salesmen", "distributors")


# --- helpers ---


def sample_text() -> pd.DataFrame:
    """The shipped sample with every value as the text in the file, ready to be spoiled and written back."""
    return pd.read_csv(SAMPLE_FILE, dtype=str, keep_default_na=False)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def warehouse_state(path: Path) -> dict[str, object]:
    """Row count, content fingerprint (order-independent hash of every row) and sums of each table."""
    with duckdb.connect(str(path), read_only=True) as con:
        state: dict[str, object] = {
            table: con.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {table} t").fetchall()[0]
            for table in TABLES
        }
        state["sums"] = con.execute(
            "SELECT sum(revenue), sum(quantity), sum(profit), sum(cost) FROM order_lines"
        ).fetchall()[0]
    return state


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def superstore_mapping(**changes: object) -> Mapping:
    return load_mapping(MAPPING_FILE).model_copy(update=changes)


# --- the shipped mapping and sample ---


def test_shipped_sample_is_what_the_generator_makes(tmp_path: Path) -> None:
    regenerated = write_superstore_csv(tmp_path / "sample.csv", SAMPLE_ROWS)
    assert regenerated.read_bytes() == SAMPLE_FILE.read_bytes()


def test_shipped_mapping_imports_the_shipped_sample(isolated_settings: Path) -> None:
    result = import_file(SAMPLE_FILE, MAPPING_FILE)

    source = pd.read_csv(SAMPLE_FILE)
    assert result.rows_read == result.inserted == SAMPLE_ROWS
    assert result.updated == result.rejected == 0
    revenue, quantity, profit, lines = query(
        isolated_settings, "SELECT sum(revenue), sum(quantity), sum(profit), count(*) FROM order_lines"
    )[0]
    assert lines == SAMPLE_ROWS
    assert revenue == pytest.approx(source["Sales"].sum(), rel=1e-12)
    assert quantity == source["Quantity"].sum()
    assert profit == pytest.approx(source["Profit"].sum(), rel=1e-12)
    assert query(isolated_settings, "SELECT count(*) FROM customers")[0][0] == source["Customer ID"].nunique()
    assert query(isolated_settings, "SELECT count(*) FROM products")[0][0] == source["Product ID"].nunique()


def test_imported_lines_are_derived_and_normalised(isolated_settings: Path) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)

    source = pd.read_csv(SAMPLE_FILE, dtype={"Postal Code": str})
    first = source.iloc[0]
    line = query(
        isolated_settings,
        "SELECT line, ordered_at, channel, salesman_id, distributor_id, unit_price, discount, revenue, cost, "
        f"profit FROM order_lines WHERE order_id = '{first['Order ID']}' AND line = 1",
    )[0]
    assert line[:5] == (1, pd.Timestamp(first["Order Date"]).to_pydatetime(), "direct", None, None)
    unit_price, discount, revenue, cost, profit = line[5:]
    assert revenue == float(first["Sales"]) and profit == float(first["Profit"])
    assert unit_price * first["Quantity"] * (1 - discount) == pytest.approx(revenue)
    assert cost == pytest.approx(revenue - profit)

    # Line numbers are positions within each order, in file order.
    expected = set(zip(source["Order ID"], source.groupby("Order ID").cumcount() + 1, strict=True))
    assert set(query(isolated_settings, "SELECT order_id, line FROM order_lines")) == expected


def test_customers_get_padded_zips_state_codes_regions_and_first_purchase(isolated_settings: Path) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)

    customers = (
        pd.DataFrame(
            query(isolated_settings, "SELECT customer_id, state, zip, region, first_purchase FROM customers"),
            columns=["customer_id", "state", "zip", "region", "first_purchase"],
        )
        .set_index("customer_id")
        .sort_index()
    )
    source = pd.read_csv(SAMPLE_FILE, dtype={"Postal Code": str})
    assert (customers["zip"].str.len() == 5).all()
    short_zip = source[source["Postal Code"].str.len() < 5].iloc[0]
    assert customers.loc[short_zip["Customer ID"], "zip"] == short_zip["Postal Code"].zfill(5)
    by_customer = source.groupby("Customer ID")
    assert (customers["region"] == by_customer["Region"].first()).all()
    assert customers["state"].str.fullmatch("[A-Z]{2}").all()
    first_purchase = (
        pd.to_datetime(source["Order Date"], format="%m/%d/%Y").groupby(source["Customer ID"]).min()
    )
    assert (customers["first_purchase"] == first_purchase).all()


def test_every_state_name_or_code_becomes_its_code_and_region(
    isolated_settings: Path, tmp_path: Path
) -> None:
    frame = sample_text()
    spellings = [*STATE_NAMES, *(code.lower() for code in REGION_OF_STATE)]
    frame["State"] = [spellings[i % len(spellings)] for i in frame.index]
    frame["Customer ID"] = "C-" + frame.index.astype(str)  # one line per customer
    frame["Region"] = ""  # derived from the state

    import_file(write_csv(frame, tmp_path / "states.csv"), MAPPING_FILE)

    stored = dict(query(isolated_settings, "SELECT customer_id, state || '/' || region FROM customers"))
    for i, spelling in enumerate(frame["State"]):
        code = STATE_NAMES.get(spelling, spelling.upper())
        assert stored[f"C-{i}"] == f"{code}/{REGION_OF_STATE[code]}", spelling


def test_products_get_list_price_and_unit_cost_from_their_lines(isolated_settings: Path) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)

    assert query(
        isolated_settings, "SELECT count(*) FROM products WHERE list_price IS NULL OR unit_cost IS NULL"
    ) == [(0,)]


# --- idempotence ---


def test_importing_twice_changes_no_figure(isolated_settings: Path) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)
    once = warehouse_state(isolated_settings)

    again = import_file(SAMPLE_FILE, MAPPING_FILE)

    assert (again.inserted, again.updated) == (0, SAMPLE_ROWS)
    assert warehouse_state(isolated_settings) == once


def test_reimport_replaces_a_changed_line(isolated_settings: Path, tmp_path: Path) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)
    (before_total,) = query(isolated_settings, "SELECT sum(revenue) FROM order_lines")[0]
    changed = sample_text()
    new_sales = f"{float(changed.loc[41, 'Sales']) + 100:.4f}"  # row 42
    changed.loc[41, "Sales"] = new_sales
    order_id, line = changed.loc[41, "Order ID"], changed.groupby("Order ID").cumcount()[41] + 1

    result = import_file(write_csv(changed, tmp_path / "changed.csv"), MAPPING_FILE)

    assert (result.inserted, result.updated) == (0, SAMPLE_ROWS)
    count, total = query(isolated_settings, "SELECT count(*), sum(revenue) FROM order_lines")[0]
    assert count == SAMPLE_ROWS
    assert total == pytest.approx(before_total + 100)
    stored = query(
        isolated_settings, f"SELECT revenue FROM order_lines WHERE order_id = '{order_id}' AND line = {line}"
    )
    assert stored == [(float(new_sales),)]


# --- validation ---


def test_bad_date_rejects_the_file_naming_row_and_column_and_changes_nothing(
    isolated_settings: Path, tmp_path: Path
) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)
    before = warehouse_state(isolated_settings)
    spoiled = sample_text()
    spoiled["Order ID"] = "NEW-" + spoiled["Order ID"]  # would all be new lines
    spoiled.loc[16, "Order Date"] = "not-a-date"  # row 17

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(spoiled, tmp_path / "bad_date.csv"), MAPPING_FILE)

    assert rejected.value.summary() == f"1 invalid row of {SAMPLE_ROWS}"
    assert rejected.value.describe(limit=20) == [
        "row 17, column 'Order Date': 'not-a-date' is not a date (expected %m/%d/%Y)"
    ]
    (error,) = rejected.value.errors
    assert (error.row, error.column, error.value) == (17, "Order Date", "not-a-date")
    assert warehouse_state(isolated_settings) == before


@pytest.mark.parametrize(
    ("row", "column", "text", "message"),
    [
        (5, "Customer ID", "", "is empty (customer_id is required)"),
        (9, "Quantity", "three", "'three' is not a whole number"),
        (9, "Quantity", "2.5", "'2.5' is not a whole number"),
        (9, "Quantity", "0", "'0' must be greater than 0"),
        (12, "Discount", "1.5", "'1.5' is not a fraction 0 <= discount < 1"),
        (12, "Sales", "12,50", "'12,50' is not a number"),
        (30, "State", "Atlantis", "'Atlantis' is not a US state"),
        (30, "Postal Code", "9021O", "'9021O' is not a US zip code"),
    ],
)
def test_each_invalid_value_is_reported_with_row_column_and_reason(
    tmp_path: Path, row: int, column: str, text: str, message: str
) -> None:
    spoiled = sample_text()
    spoiled.loc[row - 1, column] = text

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(spoiled, tmp_path / "spoiled.csv"), MAPPING_FILE)

    assert rejected.value.describe() == [f"row {row}, column {column!r}: {message}"]


def test_duplicate_or_missing_line_number_is_reported(tmp_path: Path) -> None:
    frame = sample_text()
    frame["Line"] = (frame.groupby("Order ID").cumcount() + 1).astype(str)
    frame.loc[7, ["Order ID", "Line"]] = frame.loc[2, ["Order ID", "Line"]].to_numpy()  # row 8 repeats row 3
    frame.loc[11, "Line"] = ""
    mapping = superstore_mapping(columns={**load_mapping(MAPPING_FILE).columns, "line": "Line"})

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(frame, tmp_path / "duplicate.csv"), mapping)

    order_id, line = frame.loc[2, ["Order ID", "Line"]]
    assert rejected.value.describe() == [
        f"row 8, column 'Order ID': order '{order_id}' line {line} is also in row 3",
        "row 12, column 'Line': is empty (line is required)",
    ]


def test_revenue_that_disagrees_with_price_quantity_and_discount_is_reported(tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE_FILE)
    frame["Unit Price"] = (frame["Sales"] / (frame["Quantity"] * (1 - frame["Discount"]))).round(2)
    frame.loc[3, "Sales"] = frame.loc[3, "Sales"] * 1.5
    mapping = superstore_mapping(columns={**load_mapping(MAPPING_FILE).columns, "unit_price": "Unit Price"})

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(frame, tmp_path / "inconsistent.csv"), mapping)

    (line,) = rejected.value.describe()
    assert line.startswith("row 4, column 'Sales': ")
    assert "is not quantity x unit price x (1 - discount) = " in line


def test_many_problems_are_counted_and_the_list_is_cut(tmp_path: Path) -> None:
    spoiled = sample_text()
    spoiled["Quantity"] = "many"

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(spoiled, tmp_path / "all_bad.csv"), MAPPING_FILE)

    assert rejected.value.summary() == f"{SAMPLE_ROWS} invalid rows of {SAMPLE_ROWS}"
    lines = rejected.value.describe(limit=3)
    assert lines[0] == "row 1, column 'Quantity': 'many' is not a whole number"
    assert lines[-1] == f"... and {SAMPLE_ROWS - 3} more problems"


# --- mapping problems ---


def write_mapping(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL_COLUMNS = """\
columns:
  order_id: Order ID
  ordered_at: Order Date
  customer_id: Customer ID
  product_id: Product ID
  quantity: Quantity
  revenue: Sales
date_format: "%m/%d/%Y"
"""


def test_unknown_field_in_mapping_is_named(tmp_path: Path) -> None:
    mapping = write_mapping(
        tmp_path / "m.yaml", MINIMAL_COLUMNS.replace("columns:\n", "columns:\n  colour: Segment\n")
    )

    with pytest.raises(
        ImportFailed, match=r"unknown warehouse field\(s\) 'colour'; the fields are: order_id"
    ):
        import_file(SAMPLE_FILE, mapping)


def test_mapped_column_missing_from_the_file_is_named(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path / "m.yaml", MINIMAL_COLUMNS.replace("Order Date", "Date Ordered"))

    with pytest.raises(ImportFailed, match=r"does not have: 'Date Ordered' \(for ordered_at\)"):
        import_file(SAMPLE_FILE, mapping)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL_COLUMNS.replace("  quantity: Quantity\n", ""), "required field(s) not mapped: quantity"),
        (
            MINIMAL_COLUMNS.replace("  revenue: Sales\n", ""),
            "required field(s) not mapped: unit_price or revenue",
        ),
        (MINIMAL_COLUMNS + "delimitter: ';'\n", "unknown key 'delimitter'"),
        ("- just a list\n", "must be a YAML mapping with a `columns:` section"),
    ],
)
def test_unusable_mapping_says_why(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(MappingError, match=r"invalid mapping|must be a YAML") as error:
        load_mapping(write_mapping(tmp_path / "m.yaml", text))
    assert message in str(error.value)


# --- partial imports, other formats, missing optional parts ---


def test_skip_invalid_imports_good_rows_and_writes_the_bad_ones_with_reasons(
    isolated_settings: Path, tmp_path: Path
) -> None:
    spoiled = sample_text()
    spoiled.loc[16, "Order Date"] = "not-a-date"
    spoiled.loc[99, "Discount"] = "1.5"

    result = import_file(write_csv(spoiled, tmp_path / "spoiled.csv"), MAPPING_FILE, skip_invalid=True)

    assert (result.rows_read, result.inserted, result.rejected) == (SAMPLE_ROWS, SAMPLE_ROWS - 2, 2)
    assert query(isolated_settings, "SELECT count(*) FROM order_lines")[0][0] == SAMPLE_ROWS - 2
    assert result.reject_file is not None and result.reject_file.parent == tmp_path / "rejects"
    rejects = pd.read_csv(result.reject_file, dtype=str, keep_default_na=False)
    assert list(rejects.columns) == [*spoiled.columns, "row_number", "reason"]
    assert rejects["row_number"].tolist() == ["17", "100"]
    assert rejects["Order Date"].tolist()[0] == "not-a-date"
    assert rejects["reason"].tolist() == [
        "Order Date: 'not-a-date' is not a date (expected %m/%d/%Y)",
        "Discount: '1.5' is not a fraction 0 <= discount < 1",
    ]
    assert "Skipped 2 invalid rows" in result.describe()


def test_parquet_export_imports_like_the_csv(isolated_settings: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE_FILE)
    frame["Order Date"] = pd.to_datetime(frame["Order Date"], format="%m/%d/%Y")  # typed, as Parquet keeps it
    frame.to_parquet(tmp_path / "orders.parquet")

    result = import_file(tmp_path / "orders.parquet", MAPPING_FILE)

    assert result.inserted == SAMPLE_ROWS
    revenue, zips, first_day = query(
        isolated_settings,
        "SELECT sum(revenue), min(length(zip)), min(ordered_at) "
        "FROM order_lines JOIN customers USING (customer_id)",
    )[0]
    assert revenue == pytest.approx(frame["Sales"].sum(), rel=1e-12)
    assert zips == 5
    assert first_day == frame["Order Date"].min().to_pydatetime()


def test_mapping_without_salesman_distributor_or_cost_leaves_them_unknown(
    isolated_settings: Path, tmp_path: Path
) -> None:
    result = import_file(SAMPLE_FILE, write_mapping(tmp_path / "m.yaml", MINIMAL_COLUMNS))

    assert result.inserted == SAMPLE_ROWS
    assert query(
        isolated_settings,
        "SELECT count(salesman_id), count(distributor_id), count(cost), count(profit), "
        "count(*) FILTER (channel = 'direct'), count(*) FILTER (discount = 0) FROM order_lines",
    ) == [(0, 0, 0, 0, SAMPLE_ROWS, SAMPLE_ROWS)]
    # A product known only by its id gets stand-in names until a later import brings the real ones.
    product_id, name, category = query(
        isolated_settings, "SELECT product_id, product_name, category FROM products LIMIT 1"
    )[0]
    assert (name, category) == (product_id, "Unknown")

    import_file(SAMPLE_FILE, MAPPING_FILE)
    assert query(isolated_settings, "SELECT count(*) FROM products WHERE category = 'Unknown'") == [(0,)]


def test_distributor_lines_are_trade_and_create_salesmen_and_distributors(
    isolated_settings: Path, tmp_path: Path
) -> None:
    frame = sample_text()
    frame["Rep"] = "S-" + (frame.index % 4).astype(str)
    frame["Distributor"] = ["D-1" if i % 3 == 0 else "" for i in frame.index]
    mapping = superstore_mapping(
        columns={**load_mapping(MAPPING_FILE).columns, "salesman_id": "Rep", "distributor_id": "Distributor"},
        defaults={},
    )

    import_file(write_csv(frame, tmp_path / "trade.csv"), mapping)

    assert query(isolated_settings, "SELECT channel, count(*) FROM order_lines GROUP BY ALL ORDER BY 1") == [
        ("direct", SAMPLE_ROWS - SAMPLE_ROWS // 3),
        ("trade", SAMPLE_ROWS // 3),
    ]
    assert query(isolated_settings, "SELECT count(*) FROM salesmen") == [(4,)]
    assert query(isolated_settings, "SELECT distributor_id FROM distributors") == [("D-1",)]


# --- the shared write path ---


def order_line(
    order_id: str, ordered_at: str, customer_id: str = "C1", **values: object
) -> dict[str, object]:
    line = {
        "order_id": order_id, "line": 1, "ordered_at": pd.Timestamp(ordered_at), "customer_id": customer_id,
        "product_id": "P1", "channel": "direct", "quantity": 2, "unit_price": 10.0, "discount": 0.0,
        "revenue": 20.0, "cost": 12.0, "profit": 8.0,
    }  # fmt: skip
    return line | values


def test_upsert_sales_keeps_known_values_and_maintains_derived_columns(isolated_settings: Path) -> None:
    with connect() as con:
        first = upsert_sales(
            con,
            pd.DataFrame([order_line("A", "2024-03-01")]),
            customers=pd.DataFrame({"customer_id": ["C1"], "city": ["Boston"], "zip": ["02110"]}),
        )
        second = upsert_sales(
            con,
            pd.DataFrame([order_line("B", "2024-01-15"), order_line("A", "2024-03-01", revenue=30.0)]),
            customers=pd.DataFrame({"customer_id": ["C1"], "city": [None], "zip": ["02111"]}),
        )
        customer = con.execute("SELECT city, zip, first_purchase FROM customers").fetchall()
        product = con.execute("SELECT product_name, list_price, unit_cost FROM products").fetchall()
        revenue = con.execute("SELECT sum(revenue) FROM order_lines").fetchall()

    assert (first.inserted, first.updated, first.new_dimension_rows["customers"]) == (1, 0, 1)
    assert (second.inserted, second.updated, second.new_dimension_rows["customers"]) == (1, 1, 0)
    assert customer == [("Boston", "02111", pd.Timestamp("2024-01-15").to_pydatetime())]
    assert product == [("P1", 10.0, 6.0)]
    assert revenue == [(50.0,)]


def test_replacing_a_customers_earliest_line_recomputes_the_first_purchase(isolated_settings: Path) -> None:
    with connect() as con:
        upsert_sales(con, pd.DataFrame([order_line("A", "2024-01-01"), order_line("B", "2024-02-01")]))
        upsert_sales(con, pd.DataFrame([order_line("A", "2024-05-01")]))  # a corrected date
        first_purchase = con.execute("SELECT first_purchase FROM customers").fetchall()

    assert first_purchase == [(pd.Timestamp("2024-02-01").to_pydatetime(),)]


def test_a_line_moved_to_another_customer_moves_both_first_purchases(isolated_settings: Path) -> None:
    def first_purchases(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
        return dict(con.execute("SELECT customer_id, first_purchase FROM customers").fetchall())

    with connect() as con:
        upsert_sales(
            con,
            pd.DataFrame(
                [order_line("A", "2024-01-01", "C1"), order_line("B", "2024-03-01", "C1"),
                 order_line("X", "2024-02-01", "C3"), order_line("C", "2024-06-01", "C2")]
            ),
        )  # fmt: skip
        # A and X were the earliest lines of C1 and C3 (X their only one); both now belong to C2.
        upsert_sales(
            con, pd.DataFrame([order_line("A", "2024-01-01", "C2"), order_line("X", "2024-02-01", "C2")])
        )
        moved = first_purchases(con)

    assert moved == {
        "C1": pd.Timestamp("2024-03-01").to_pydatetime(),
        "C2": pd.Timestamp("2024-01-01").to_pydatetime(),
        "C3": None,
    }


# --- command line ---


def run_cli(cli_env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `salespulse data import ARGS`; its output is unwrapped (rich wraps to the terminal width)."""
    done = subprocess.run(
        ["salespulse", "data", "import", *map(str, args)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    done.stderr = " ".join(done.stderr.split())
    return done


@pytest.mark.slow
def test_cli_imports_a_file_and_rejects_a_bad_one(cli_env: dict[str, str], tmp_path: Path) -> None:
    warehouse = tmp_path / "cli.duckdb"
    done = run_cli(cli_env, SAMPLE_FILE, "--mapping", MAPPING_FILE, "--warehouse", warehouse)
    assert done.returncode == 0, done.stderr
    assert f"Imported {SAMPLE_ROWS} of {SAMPLE_ROWS} rows" in done.stderr

    spoiled = sample_text()
    spoiled.loc[16, "Order Date"] = "not-a-date"
    bad = run_cli(
        cli_env, write_csv(spoiled, tmp_path / "bad.csv"), "-m", MAPPING_FILE, "--warehouse", warehouse
    )
    assert bad.returncode == 1
    assert "1 invalid row of 300" in bad.stderr
    assert "row 17, column 'Order Date': 'not-a-date' is not a date (expected %m/%d/%Y)" in bad.stderr

    unknown = write_mapping(
        tmp_path / "m.yaml", MINIMAL_COLUMNS.replace("columns:\n", "columns:\n  colour: Segment\n")
    )
    failed = run_cli(cli_env, SAMPLE_FILE, "-m", unknown, "--warehouse", warehouse)
    assert failed.returncode == 1
    assert "Cannot import" in failed.stderr and "'colour'" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.mark.slow
def test_cli_help_explains_the_mapping(cli_env: dict[str, str]) -> None:
    shown = run_cli(cli_env, "--help")
    assert shown.returncode == 0
    assert "--mapping" in shown.stdout and "data/mappings/superstore.yaml" in shown.stdout


# --- atomicity ---


@pytest.mark.slow
def test_killed_import_leaves_the_warehouse_as_it_was(cli_env: dict[str, str], tmp_path: Path) -> None:
    warehouse = tmp_path / "atomic.duckdb"
    import_file(SAMPLE_FILE, MAPPING_FILE, path=warehouse)
    before = warehouse_state(warehouse)
    big_file = write_superstore_csv(tmp_path / "big.csv", 400_000, seed=7)

    importer = subprocess.Popen(
        [
            "salespulse",
            "data",
            "import",
            str(big_file),
            "--mapping",
            str(MAPPING_FILE),
            "--warehouse",
            str(warehouse),
        ],
        env=cli_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert importer.stderr is not None
    seen = []
    for line in importer.stderr:  # the importer says so just after BEGIN
        seen.append(line)
        if line.startswith("Writing "):
            os.kill(importer.pid, signal.SIGKILL)
            break
    importer.wait(timeout=60)

    assert importer.returncode == -signal.SIGKILL, "".join(seen)
    assert not any(line.startswith("Imported") for line in seen)
    assert warehouse_state(warehouse) == before
    with connect(warehouse) as con:  # still opens for writing, and takes the next import
        assert con.execute("SELECT count(*) FROM order_lines").fetchall() == [(SAMPLE_ROWS,)]
