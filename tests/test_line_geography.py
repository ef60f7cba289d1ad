"""Real-time lines carry their own geography (ship-to), checked and enriched only in the US, and a line that
says nothing takes its customer's address: from the batch, or as stored (warehouse.load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from salespulse.analytics.ingest import SalesBatch, customers_table, lines_table
from salespulse.warehouse.load import complete_line_geography, upsert_sales
from salespulse.warehouse.schema import LINE_GEOGRAPHY_COLUMNS
from salespulse.warehouse.store import connect

SHIP_TO = ["ship_city", "ship_state", "ship_zip", "ship_region", "ship_country"]


def line(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "order_id": "O-1", "line": number, "ordered_at": "2025-06-30T10:00:00", "customer_id": "C-1",
        "product_id": "P-1", "quantity": 1, "unit_price": 10.0, **changes,
    }  # fmt: skip


def ship_to(table: pa.Table) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in SHIP_TO), strict=True))


def test_a_line_keeps_where_it_went_and_us_lines_are_enriched() -> None:
    batch = SalesBatch.model_validate(
        {
            "lines": [
                line(1, ship_state="california", ship_zip="94105", ship_city="San Francisco"),
                line(2, ship_country="usa", ship_state="TX"),
                line(3, ship_country="Canada", ship_state="Ontario", ship_zip="M5V 2T6", ship_city="Toronto"),
                line(4, ship_country="Australia", ship_state="WA", ship_region="Oceania"),
            ]
        }
    )
    table = lines_table(batch)

    assert ship_to(table) == [
        ("San Francisco", "CA", "94105", "West", "United States"),
        (None, "TX", None, "Central", "United States"),
        ("Toronto", "Ontario", "M5V 2T6", None, "Canada"),
        (None, "WA", None, "Oceania", "Australia"),  # Western Australia, not Washington
    ]
    latitude = table.column("ship_latitude").to_pylist()
    assert latitude[0] == pytest.approx(37.79, abs=0.05) and latitude[1:] == [None, None, None]


@pytest.mark.parametrize(
    ("changes", "location", "message"),
    [
        ({"ship_country": "United States", "ship_state": "Ontario"}, "ship_state", "is not a US state"),
        ({"ship_state": "CA", "ship_zip": "9410"}, "ship_zip", "is not a five-digit zip code"),
        ({"ship_latitude": 95.0}, "ship_latitude", "less than or equal to 90"),
    ],
)
def test_a_wrong_us_address_is_refused_naming_the_field(
    changes: dict[str, Any], location: str, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        SalesBatch.model_validate({"lines": [line(1, **changes)]})
    (error,) = refused.value.errors()
    assert error["loc"] == ("lines", 0, location) and message in error["msg"]


def test_a_line_without_geography_takes_its_customers_address_from_the_batch() -> None:
    batch = SalesBatch.model_validate(
        {
            "lines": [line(1), line(2, ship_country="France"), line(3, customer_id="C-2")],
            "customers": [{"customer_id": "C-1", "city": "Albany", "state": "NY", "zip": "12207"}],
        }
    )
    table = lines_table(batch)

    assert ship_to(table) == [
        ("Albany", "NY", "12207", "East", "United States"),
        (None, None, None, None, "France"),  # a line that says anything keeps only what it says
        (None, None, None, None, None),  # no address in the batch: the stored one, when the engine asks
    ]
    assert customers_table(batch).column("country").to_pylist() == ["United States"]


def test_stored_customers_complete_the_lines_that_say_nothing(isolated_settings: Path) -> None:
    with connect() as con:
        con.execute(
            "INSERT INTO customers (customer_id, city, state, zip, region, latitude, longitude, country) "
            "VALUES ('C-1', 'Albany', 'NY', '12207', 'East', 42.65, -73.76, 'United States')"
        )
        batch = SalesBatch.model_validate(
            {"lines": [line(1), line(2, ship_city="Lyon", ship_country="France"), line(3, customer_id="C-9")]}
        )
        table = lines_table(batch)

        completed = complete_line_geography(con, table)

        assert completed.schema == table.schema
        assert completed.column("line").to_pylist() == [1, 2, 3]  # in the batch's order
        assert ship_to(completed) == [
            ("Albany", "NY", "12207", "East", "United States"),
            ("Lyon", None, None, None, "France"),
            (None, None, None, None, None),  # an unknown customer has no address
        ]
        assert completed.column("ship_latitude").to_pylist()[0] == 42.65
        located = lines_table(SalesBatch.model_validate({"lines": [line(1, ship_country="France")]}))
        assert complete_line_geography(con, located) is located  # nothing to do, no join paid


def test_upsert_fills_lines_without_geography_only_when_asked(isolated_settings: Path) -> None:
    lines = pd.DataFrame(
        [
            line(1, ordered_at=pd.Timestamp("2025-06-30"), channel="direct", discount=0.0, revenue=10.0),
            line(2, ordered_at=pd.Timestamp("2025-06-30"), channel="direct", discount=0.0, revenue=10.0),
        ]
    )
    customer = pd.DataFrame({"customer_id": ["C-1"], "city": ["Austin"], "state": ["TX"]})
    with connect() as con:
        upsert_sales(con, lines.head(1), customers=customer)
        upsert_sales(con, lines.tail(1), customers=customer, geography_from_customers=True)
        stored = con.execute(
            f"SELECT line, {', '.join(LINE_GEOGRAPHY_COLUMNS[:2])} FROM order_lines ORDER BY line"
        ).fetchall()
    assert stored == [(1, None, None), (2, "Austin", "TX")]
