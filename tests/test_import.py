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
from superstore_files import (
    INVOICE_SAMPLE_FILE,
    INVOICE_SAMPLE_ROWS,
    ISO_SAMPLE_FILE,
    SAMPLE_FILE,
    SAMPLE_ROWS,
    invoice_log_frame,
    write_invoice_log_csv,
    write_superstore_csv,
)

from salespulse.config import get_settings
from salespulse.dataset.geography import REGION_OF_STATE, STATE_NAMES
from salespulse.dataset.importing import ImportFailed, ImportRejected, import_file, import_into
from salespulse.dataset.mapping import Mapping, MappingError, load_mapping
from salespulse.warehouse.load import upsert_sales
from salespulse.warehouse.store import connect

REPO_ROOT = Path(__file__).resolve().parents[1]
MAPPING_FILE = REPO_ROOT / "data" / "mappings" / "superstore.yaml"
INVOICE_MAPPING_FILE = REPO_ROOT / "data" / "mappings" / "invoice_log.yaml"
US_DATE_MESSAGE = "is not a date (expected month/day/year like 1/31/2024, or ISO like 2024-01-31)"
TABLES = ("order_lines", "customers", "products", "salesmen", "distributors")


# --- helpers ---


def sample_text() -> pd.DataFrame:
    """The shipped sample with every value as the text in the file, ready to be spoiled and written back."""
    return pd.read_csv(SAMPLE_FILE, dtype=str, keep_default_na=False)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def warehouse_state(path: Path) -> dict[str, object]:
    """Row count, content fingerprint (order-independent hash of every row) and sums of each table.

    Doubles are rounded to 6 decimals: figures summed in another order (another file, another run) differ
    in the last bits, as float addition is not associative.
    """
    with duckdb.connect(str(path), read_only=True) as con:
        state: dict[str, object] = {
            table: con.execute(
                f"SELECT count(*), bit_xor(hash({rounded_row(con, table)})) FROM {table}"
            ).fetchone()
            for table in TABLES
        }
        state["sums"] = con.execute(
            "SELECT round(sum(revenue), 6), sum(quantity), round(sum(profit), 6), round(sum(cost), 6) "
            "FROM order_lines"
        ).fetchone()
    return state


def rounded_row(con: duckdb.DuckDBPyConnection, table: str) -> str:
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return "row(" + ", ".join(f"round({c}, 6)" if t == "DOUBLE" else c for c, t in columns) + ")"


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def superstore_mapping(**changes: object) -> Mapping:
    return load_mapping(MAPPING_FILE).model_copy(update=changes)


def content_line(product_id: str, occurrence: int) -> int:
    """The documented line number of the occurrence-th line of a product in its order (README)."""
    with duckdb.connect() as con:
        (line,) = con.execute(
            "SELECT CAST(1 + md5_number(? || '#' || ?) % 2147483646 AS INTEGER)", [product_id, occurrence]
        ).fetchone()
    return line


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
        f"profit FROM order_lines WHERE order_id = '{first['Order ID']}' "
        f"AND product_id = '{first['Product ID']}'",
    )[0]
    expected_line = content_line(first["Product ID"], 1)
    assert line[:5] == (
        expected_line,
        pd.Timestamp(first["Order Date"]).to_pydatetime(),
        "direct",
        None,
        None,
    )
    unit_price, discount, revenue, cost, profit = line[5:]
    assert revenue == float(first["Sales"]) and profit == float(first["Profit"])
    assert unit_price * first["Quantity"] * (1 - discount) == pytest.approx(revenue)
    assert cost == pytest.approx(revenue - profit)

    # Line numbers follow the documented content rule: the n-th line of a product in an order (ranked by
    # quantity, unit price, discount, revenue, cost and profit) gets the number made from "<product>#<n>".
    repeats = source.groupby(["Order ID", "Product ID"]).size()
    assert repeats.max() > 1  # the sample has a product twice in an order
    expected = {
        (order, content_line(product, n), product)
        for (order, product), count in repeats.items()
        for n in range(1, count + 1)
    }
    assert set(query(isolated_settings, "SELECT order_id, line, product_id FROM order_lines")) == expected


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
    order_id, product_id = changed.loc[41, "Order ID"], changed.loc[41, "Product ID"]

    result = import_file(write_csv(changed, tmp_path / "changed.csv"), MAPPING_FILE)

    assert (result.inserted, result.updated) == (0, SAMPLE_ROWS)
    count, total = query(isolated_settings, "SELECT count(*), sum(revenue) FROM order_lines")[0]
    assert count == SAMPLE_ROWS
    assert total == pytest.approx(before_total + 100)
    stored = query(
        isolated_settings,
        f"SELECT revenue FROM order_lines WHERE order_id = '{order_id}' AND product_id = '{product_id}'",
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
        f"row 17, column 'Order Date': 'not-a-date' {US_DATE_MESSAGE}"
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
        (
            12,
            "Sales",
            "12,50",
            """'12,50' is not a number (a decimal comma? set `decimal: ","` in the mapping)""",
        ),
        (12, "Sales", "1,2,3", "'1,2,3' is not a number"),
        (12, "Sales", "$12.5.0", "'$12.5.0' is not a number"),
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
        f"Order Date: 'not-a-date' {US_DATE_MESSAGE}",
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


# --- real exports as they are: dates, numbers, delimiters, time zones, keys ---


def test_superstore_export_imports_with_the_shipped_mapping_whether_dates_are_us_or_iso(
    tmp_path: Path,
) -> None:
    us, iso = tmp_path / "us.duckdb", tmp_path / "iso.duckdb"
    import_file(SAMPLE_FILE, MAPPING_FILE, path=us)
    result = import_file(ISO_SAMPLE_FILE, MAPPING_FILE, path=iso)

    assert result.inserted == SAMPLE_ROWS
    assert warehouse_state(iso) == warehouse_state(us)


def test_day_first_dates_are_detected(tmp_path: Path) -> None:
    us, day_first = tmp_path / "us.duckdb", tmp_path / "day_first.duckdb"
    frame = sample_text()
    month, day, year = frame["Order Date"].str.split("/", expand=True).T.to_numpy()
    frame["Order Date"] = day + "/" + month + "/" + year
    import_file(SAMPLE_FILE, MAPPING_FILE, path=us)

    import_file(write_csv(frame, tmp_path / "day_first.csv"), MAPPING_FILE, path=day_first)

    assert warehouse_state(day_first) == warehouse_state(us)


def test_a_date_column_that_reads_both_ways_is_refused_with_examples_and_the_setting(tmp_path: Path) -> None:
    frame = sample_text()
    frame["Order Date"] = [f"{1 + i % 12}/{1 + i % 11}/2016" for i in frame.index]  # no day above 12

    with pytest.raises(ImportFailed) as failed:
        import_file(write_csv(frame, tmp_path / "ambiguous.csv"), MAPPING_FILE)

    message = str(failed.value)
    assert "'Order Date' read both month first and day first" in message
    assert "for example '1/1/2016', " in message
    assert '`date_format: "%m/%d/%Y"` for month first (US)' in message
    assert '`date_format: "%d/%m/%Y"` for day first' in message


def test_amounts_with_currency_symbols_and_thousands_separators(
    isolated_settings: Path, tmp_path: Path
) -> None:
    plain = pd.read_csv(SAMPLE_FILE)
    frame = sample_text()
    frame["Sales"] = [f"${value:,.4f}" for value in plain["Sales"]]
    frame["Profit"] = [f"(${-value:,.4f})" if value < 0 else f"${value:,.4f}" for value in plain["Profit"]]
    assert frame["Sales"].str.contains(",").any() and frame["Profit"].str.startswith("(").any()

    result = import_file(write_csv(frame, tmp_path / "dollars.csv"), MAPPING_FILE)

    assert result.inserted == SAMPLE_ROWS
    revenue, profit = query(isolated_settings, "SELECT sum(revenue), sum(profit) FROM order_lines")[0]
    assert revenue == pytest.approx(plain["Sales"].sum(), rel=1e-12)
    assert profit == pytest.approx(plain["Profit"].sum(), rel=1e-12)


def test_decimal_commas_with_the_decimal_option_and_a_sniffed_semicolon(
    isolated_settings: Path, tmp_path: Path
) -> None:
    plain = pd.read_csv(SAMPLE_FILE)
    frame = sample_text()
    for column in ("Sales", "Profit"):
        frame[column] = [
            f"{v:,.4f}".replace(",", " ").replace(".", ",").replace(" ", ".") for v in plain[column]
        ]
    frame["Discount"] = frame["Discount"].str.replace(".", ",")
    assert frame["Sales"].str.fullmatch(r"\d{1,3}(\.\d{3})+,\d{4}").any()  # 1.234,5000
    path = tmp_path / "european.csv"
    frame.to_csv(path, sep=";", index=False)

    result = import_file(path, superstore_mapping(decimal=","))

    assert result.inserted == SAMPLE_ROWS
    revenue, profit, discount = query(
        isolated_settings, "SELECT sum(revenue), sum(profit), sum(discount) FROM order_lines"
    )[0]
    assert revenue == pytest.approx(plain["Sales"].sum(), rel=1e-12)
    assert profit == pytest.approx(plain["Profit"].sum(), rel=1e-12)
    assert discount == pytest.approx(plain["Discount"].sum(), rel=1e-12)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_timestamps_with_utc_offsets_are_converted_to_the_warehouse_zone(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    monkeypatch.setenv("SALESPULSE_WAREHOUSE_TIMEZONE", zone)
    get_settings.cache_clear()
    frame = invoice_log_frame(INVOICE_SAMPLE_ROWS)
    instants = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M").dt.tz_localize("Europe/Paris")
    written = [  # 2010-12-10T22:07:00+01:00, 2010-12-10 22:07:00+0100, 2010-12-10T21:07:00Z
        lambda t: t.isoformat(),
        lambda t: t.strftime("%Y-%m-%d %H:%M:%S%z"),
        lambda t: t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    frame["InvoiceDate"] = [written[i % 3](t) for i, t in enumerate(instants)]
    frame["InvoiceNo"] = frame["InvoiceNo"] + "-" + frame.index.astype(str)  # one line per order

    import_file(write_csv(frame, tmp_path / "offsets.csv"), INVOICE_MAPPING_FILE)

    stored = dict(query(isolated_settings, "SELECT order_id, ordered_at FROM order_lines"))
    expected = instants.dt.tz_convert(zone).dt.tz_localize(None)
    assert [stored[order] for order in frame["InvoiceNo"]] == [t.to_pydatetime() for t in expected]


def test_naive_iso_timestamps_are_kept_as_wall_clock_times(isolated_settings: Path, tmp_path: Path) -> None:
    frame = invoice_log_frame(20)
    frame["InvoiceDate"] = "2011-03-05T14:30:00"

    import_file(write_csv(frame, tmp_path / "naive.csv"), INVOICE_MAPPING_FILE)

    assert query(isolated_settings, "SELECT DISTINCT ordered_at FROM order_lines") == [
        (pd.Timestamp("2011-03-05 14:30").to_pydatetime(),)
    ]


def aligned(frame: pd.DataFrame) -> str:
    """A whitespace-aligned export: text left-aligned, numbers right-aligned, two spaces between columns."""
    widths = {c: max(len(c), frame[c].astype(str).str.len().max()) for c in frame.columns}
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}

    def cell(column: str, value: object) -> str:
        text = "" if value is None else str(value)
        return text.rjust(widths[column]) if column in numeric else text.ljust(widths[column])

    header = "  ".join(c.ljust(widths[c]) for c in frame.columns)
    rows = [
        "  ".join(cell(c, v) for c, v in zip(frame.columns, row, strict=True)) for row in frame.to_numpy()
    ]
    return "\n".join([header.rstrip(), *(row.rstrip() for row in rows)]) + "\n"


def test_whitespace_aligned_file_imports_like_the_csv(tmp_path: Path) -> None:
    frame = invoice_log_frame(INVOICE_SAMPLE_ROWS)
    from_csv, from_text = tmp_path / "csv.duckdb", tmp_path / "text.duckdb"
    import_file(
        write_invoice_log_csv(tmp_path / "invoices.csv", INVOICE_SAMPLE_ROWS),
        INVOICE_MAPPING_FILE,
        path=from_csv,
    )
    text_file = tmp_path / "invoices.txt"
    text_file.write_text(aligned(frame), encoding="utf-8")
    assert "  WHITE HANGING HEART T-LIGHT HOLDER  " in text_file.read_text()

    result = import_file(text_file, INVOICE_MAPPING_FILE, path=from_text)

    assert result.inserted == INVOICE_SAMPLE_ROWS
    assert warehouse_state(from_text) == warehouse_state(from_csv)


def test_an_empty_cell_of_an_aligned_file_stays_in_its_column(tmp_path: Path) -> None:
    frame = invoice_log_frame(30)
    frame["CustomerID"] = frame["CustomerID"].astype(object)
    frame.loc[6, "CustomerID"] = None  # row 7
    text_file = tmp_path / "invoices.txt"
    text_file.write_text(aligned(frame), encoding="utf-8")

    with pytest.raises(ImportRejected) as rejected:
        import_file(text_file, INVOICE_MAPPING_FILE)

    assert rejected.value.describe() == ["row 7, column 'CustomerID': is empty (customer_id is required)"]


def test_order_id_is_derived_from_declared_fields_when_the_export_has_none(
    isolated_settings: Path, tmp_path: Path
) -> None:
    frame = invoice_log_frame(INVOICE_SAMPLE_ROWS)
    mapping = load_mapping(INVOICE_MAPPING_FILE)
    columns = {field: column for field, column in mapping.columns.items() if field != "order_id"}
    without_ids = mapping.model_copy(
        update={"columns": columns, "order_id_from": ["customer_id", "ordered_at"]}
    )

    result = import_file(write_csv(frame.drop(columns="InvoiceNo"), tmp_path / "no_ids.csv"), without_ids)

    assert result.inserted == INVOICE_SAMPLE_ROWS
    orders = dict(query(isolated_settings, "SELECT order_id, count(*) FROM order_lines GROUP BY 1"))
    assert len(orders) == frame["InvoiceNo"].nunique()
    first = frame.iloc[0]
    assert f"{first['CustomerID']} / 2010-12-10 22:07:00" in orders


def test_order_id_from_unknown_or_unmapped_fields_is_refused() -> None:
    mapping = load_mapping(INVOICE_MAPPING_FILE).model_dump()
    del mapping["columns"]["order_id"]
    with pytest.raises(ValueError, match="does not map: salesman_id"):
        Mapping.model_validate({**mapping, "order_id_from": ["customer_id", "salesman_id"]})
    with pytest.raises(ValueError, match="cannot make the order id from 'line'"):
        Mapping.model_validate({**mapping, "order_id_from": ["line"]})
    with pytest.raises(ValueError, match=r"required field.*order_id"):
        Mapping.model_validate(mapping)


def shuffled(frame: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_a_re_sorted_re_export_changes_no_figure_and_no_lines_product(
    isolated_settings: Path, tmp_path: Path
) -> None:
    import_file(SAMPLE_FILE, MAPPING_FILE)
    before = warehouse_state(isolated_settings)
    products = set(query(isolated_settings, "SELECT order_id, line, product_id FROM order_lines"))
    re_export = shuffled(sample_text())
    re_export["Row ID"] = (re_export.index + 1).astype(str)  # renumbered, as a re-export does

    result = import_file(write_csv(re_export, tmp_path / "re_sorted.csv"), MAPPING_FILE)

    assert (result.inserted, result.updated) == (0, SAMPLE_ROWS)
    assert warehouse_state(isolated_settings) == before
    assert set(query(isolated_settings, "SELECT order_id, line, product_id FROM order_lines")) == products


def test_a_re_sorted_invoice_log_with_repeated_products_keeps_every_line(
    isolated_settings: Path, tmp_path: Path
) -> None:
    frame = invoice_log_frame(INVOICE_SAMPLE_ROWS)
    assert frame.duplicated(["InvoiceNo", "StockCode"]).any()  # a product twice in one invoice
    import_file(write_csv(frame, tmp_path / "log.csv"), INVOICE_MAPPING_FILE)
    before = warehouse_state(isolated_settings)

    result = import_file(write_csv(shuffled(frame), tmp_path / "re_sorted.csv"), INVOICE_MAPPING_FILE)

    assert (result.inserted, result.updated) == (0, INVOICE_SAMPLE_ROWS)
    assert warehouse_state(isolated_settings) == before


def test_a_mapped_line_id_keys_the_lines(isolated_settings: Path, tmp_path: Path) -> None:
    frame = sample_text()
    frame["Line ID"] = ["L-" + row_id if int(row_id) % 2 else row_id for row_id in frame["Row ID"]]
    mapping = superstore_mapping(columns={**load_mapping(MAPPING_FILE).columns, "line_id": "Line ID"})
    import_file(write_csv(frame, tmp_path / "ids.csv"), mapping)
    before = warehouse_state(isolated_settings)

    result = import_file(write_csv(shuffled(frame), tmp_path / "re_sorted.csv"), mapping)

    assert (result.inserted, result.updated) == (0, SAMPLE_ROWS)
    assert warehouse_state(isolated_settings) == before
    assert query(
        isolated_settings,
        f"SELECT count(*) FROM order_lines WHERE line = 2 AND order_id = '{frame.loc[1, 'Order ID']}'",
    ) == [(1,)]


def test_a_repeated_line_id_is_reported(tmp_path: Path) -> None:
    frame = sample_text()
    frame["Line ID"] = "L-" + frame["Row ID"]
    frame.loc[1, "Line ID"] = frame.loc[0, "Line ID"]  # rows 1 and 2 are the same order
    mapping = superstore_mapping(columns={**load_mapping(MAPPING_FILE).columns, "line_id": "Line ID"})

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(frame, tmp_path / "ids.csv"), mapping)

    assert rejected.value.describe() == [
        f"row 2, column 'Line ID': order '{frame.loc[0, 'Order ID']}' line id 'L-1' is also in row 1"
    ]


def test_a_future_dated_line_is_rejected_with_its_row(isolated_settings: Path, tmp_path: Path) -> None:
    frame = sample_text()
    frame.loc[4, "Order Date"] = "1/5/2031"  # row 5

    with pytest.raises(ImportRejected) as rejected:
        import_file(write_csv(frame, tmp_path / "future.csv"), MAPPING_FILE)

    (problem,) = rejected.value.describe()
    assert problem.startswith("row 5, column 'Order Date': '1/5/2031' is in the future (now is ")
    assert not isolated_settings.exists()


def test_a_line_within_the_future_tolerance_is_accepted(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = invoice_log_frame(10)
    soon = pd.Timestamp.now() + pd.Timedelta(minutes=30)  # the machine's zone is the warehouse zone here
    frame["InvoiceDate"] = soon.strftime("%Y-%m-%d %H:%M:%S")
    path = write_csv(frame, tmp_path / "soon.csv")

    assert import_file(path, INVOICE_MAPPING_FILE).inserted == 10

    monkeypatch.setenv("SALESPULSE_IMPORT_FUTURE_TOLERANCE_SECONDS", "0")
    get_settings.cache_clear()
    with pytest.raises(ImportRejected, match="10 invalid rows"):
        import_file(path, INVOICE_MAPPING_FILE)


def test_a_rejected_or_failed_first_import_leaves_no_warehouse_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "warehouse.duckdb"
    spoiled = sample_text()
    spoiled.loc[0, "Quantity"] = "many"

    with pytest.raises(ImportRejected):
        import_file(write_csv(spoiled, tmp_path / "bad.csv"), MAPPING_FILE, path=target)
    with pytest.raises(ImportFailed):
        import_file(
            SAMPLE_FILE,
            write_mapping(tmp_path / "m.yaml", MINIMAL_COLUMNS.replace("Sales", "Nope")),
            path=target,
        )

    assert list(target.parent.glob("*")) == []


def test_import_into_uses_the_callers_connection_in_one_transaction(isolated_settings: Path) -> None:
    seen_inside: list[int] = []
    with connect() as con:
        result = import_into(
            con,
            INVOICE_SAMPLE_FILE,
            INVOICE_MAPPING_FILE,
            before_commit=lambda c: seen_inside.append(
                c.execute("SELECT count(*) FROM order_lines").fetchone()[0]
            ),
        )
        still_open = con.execute("SELECT count(*) FROM order_lines").fetchone()[0]
        leftovers = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = 'import_staged'"
        ).fetchone()[0]

    assert result.inserted == seen_inside[0] == still_open == INVOICE_SAMPLE_ROWS
    assert leftovers == 0


def test_shipped_invoice_log_mapping_imports_its_sample(isolated_settings: Path) -> None:
    result = import_file(INVOICE_SAMPLE_FILE, INVOICE_MAPPING_FILE)

    source = pd.read_csv(INVOICE_SAMPLE_FILE)
    assert (result.rows_read, result.inserted) == (INVOICE_SAMPLE_ROWS, INVOICE_SAMPLE_ROWS)
    revenue, first_day, orders = query(
        isolated_settings, "SELECT sum(revenue), min(ordered_at), count(DISTINCT order_id) FROM order_lines"
    )[0]
    assert revenue == pytest.approx((source["Quantity"] * source["UnitPrice"]).sum(), rel=1e-12)
    assert first_day == pd.to_datetime(source["InvoiceDate"], format="%m/%d/%Y %H:%M").min().to_pydatetime()
    assert orders == source["InvoiceNo"].nunique()


def test_mapping_refuses_contradictory_number_and_key_options() -> None:
    base = load_mapping(MAPPING_FILE).model_dump()
    with pytest.raises(ValueError, match="thousands: ',' is also the decimal mark"):
        Mapping.model_validate({**base, "decimal": ",", "thousands": ","})
    with pytest.raises(ValueError, match=r"either line .* or line_id"):
        Mapping.model_validate(
            {**base, "columns": {**base["columns"], "line": "Row ID", "line_id": "Row ID"}}
        )


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
    assert f"row 17, column 'Order Date': 'not-a-date' {US_DATE_MESSAGE}" in bad.stderr

    unknown = write_mapping(
        tmp_path / "m.yaml", MINIMAL_COLUMNS.replace("columns:\n", "columns:\n  colour: Segment\n")
    )
    failed = run_cli(cli_env, SAMPLE_FILE, "-m", unknown, "--warehouse", warehouse)
    assert failed.returncode == 1
    assert "'colour'" in failed.stderr
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


# --- geography: each line's own ship-to ---

SHIP_TO = ("ship_city", "ship_state", "ship_zip", "ship_region", "ship_country")


def stored_ship_to(path: Path) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            f"SELECT order_id, product_id, quantity, round(revenue, 4) AS revenue, {', '.join(SHIP_TO)}, "
            "ship_latitude, ship_longitude FROM order_lines"
        ).df()


def file_ship_to(frame: pd.DataFrame) -> pd.DataFrame:
    """The file's own columns as the warehouse stores them: state codes, five-digit zips."""
    return pd.DataFrame(
        {
            "order_id": frame["Order ID"],
            "product_id": frame["Product ID"],
            "quantity": frame["Quantity"].astype(int),
            "revenue": frame["Sales"].astype(float).round(4),
            "ship_city": frame["City"],
            "ship_state": frame["State"].map(STATE_NAMES),
            "ship_zip": frame["Postal Code"].str.zfill(5),
            "ship_region": frame["Region"],
            "ship_country": frame["Country"],
        }
    )


def sorted_rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return sorted(frame[columns].itertuples(index=False, name=None))


@pytest.mark.parametrize("dates", ["iso", "us"])
def test_a_customer_who_ships_to_several_states_has_each_line_where_it_went(
    tmp_path: Path, dates: str
) -> None:
    file = write_superstore_csv(tmp_path / "orders.csv", 3_000, seed=5, dates=dates, ship_elsewhere=0.3)
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)  # the file's own text
    assert frame.groupby("Customer ID")["State"].nunique().max() > 2  # the case the test is about
    warehouse = tmp_path / "w.duckdb"

    import_file(file, MAPPING_FILE, path=warehouse)

    stored, expected = stored_ship_to(warehouse), file_ship_to(frame)
    columns = ["order_id", "product_id", "quantity", "revenue", *SHIP_TO]
    assert sorted_rows(stored, columns) == sorted_rows(expected, columns)  # row by row, as a multiset
    assert stored["ship_latitude"].notna().all() and stored["ship_longitude"].notna().all()  # from the zips
    for level in (["ship_region"], ["ship_state"], ["ship_state", "ship_city"], ["ship_zip"]):
        in_file = expected.groupby(level)["revenue"].sum().round(2)
        in_warehouse = stored.groupby(level)["revenue"].sum().round(2)
        pd.testing.assert_series_equal(in_warehouse, in_file)  # to the cent


def test_a_customers_address_is_that_of_his_latest_line(tmp_path: Path) -> None:
    file = write_superstore_csv(tmp_path / "orders.csv", 600, seed=2, dates="iso", ship_elsewhere=0.5)
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    latest = frame.assign(at=pd.to_datetime(frame["Order Date"]), row=range(len(frame)))
    latest = latest.sort_values(["at", "row"]).groupby("Customer ID").last()
    warehouse = tmp_path / "w.duckdb"

    import_file(file, MAPPING_FILE, path=warehouse)

    customers = dict(query(warehouse, "SELECT customer_id, state FROM customers"))
    assert customers == latest["State"].map(STATE_NAMES).to_dict()


def test_other_countries_keep_their_geography_as_written(tmp_path: Path) -> None:
    frame = sample_text().head(4)
    frame["Country"] = ["Canada", "Australia", "USA", "United States"]
    frame["State"] = ["Ontario", "WA", "Texas", "CA"]
    frame["Postal Code"] = ["M5V 2T6", "6000", "78701", "94105"]
    frame["City"] = ["Toronto", "Perth", "Austin", "San Francisco"]
    frame["Region"] = ["", "", "", ""]
    warehouse = tmp_path / "w.duckdb"

    import_file(write_csv(frame, tmp_path / "world.csv"), MAPPING_FILE, path=warehouse)

    rows = query(
        warehouse,
        f"SELECT {', '.join(SHIP_TO)}, ship_latitude IS NOT NULL FROM order_lines ORDER BY ship_city",
    )
    assert rows == [
        ("Austin", "TX", "78701", "Central", "United States", True),
        ("Perth", "WA", "6000", None, "Australia", False),  # WA here is Western Australia: no US region
        ("San Francisco", "CA", "94105", "West", "United States", True),
        ("Toronto", "Ontario", "M5V 2T6", None, "Canada", False),
    ]


def test_an_invoice_log_keeps_each_lines_country(tmp_path: Path) -> None:
    frame = invoice_log_frame(INVOICE_SAMPLE_ROWS)
    warehouse = tmp_path / "w.duckdb"

    import_file(write_csv(frame, tmp_path / "invoices.csv"), INVOICE_MAPPING_FILE, path=warehouse)

    by_country = dict(query(warehouse, "SELECT ship_country, count(*) FROM order_lines GROUP BY 1"))
    assert by_country == frame["Country"].value_counts().to_dict()
    assert query(warehouse, "SELECT count(*) FROM order_lines WHERE ship_city IS NOT NULL") == [(0,)]


def test_lines_of_an_export_without_geography_take_their_customers_address(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    import_file(SAMPLE_FILE, MAPPING_FILE, path=warehouse)  # customers get their addresses
    later = sample_text()
    later["Order ID"] = "LATER-" + later["Order ID"]
    without_geography = superstore_mapping(
        columns={
            field: column
            for field, column in load_mapping(MAPPING_FILE).columns.items()
            if field not in ("city", "state", "zip", "region", "country")
        }
    )

    import_file(write_csv(later, tmp_path / "later.csv"), without_geography, path=warehouse)

    differs = " OR ".join(f"o.ship_{part} IS DISTINCT FROM c.{part}" for part in ("city", "state", "zip"))
    mismatched = query(
        warehouse,
        "SELECT count(*) FROM order_lines o JOIN customers c USING (customer_id) "
        f"WHERE o.order_id LIKE 'LATER-%' AND ({differs})",
    )
    assert mismatched == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM order_lines WHERE ship_state IS NULL") == [(0,)]
