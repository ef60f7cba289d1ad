"""A real-time batch of sales: validated line by line before anything is written.

A batch with any invalid line is rejected whole; pydantic's error locations (``lines.17.quantity``) name the
line index and the field. Derived values follow the file import's rules: revenue is quantity x unit price x
(1 - discount) unless given (and then it must agree within 1%), profit is revenue - cost, the channel is
'trade' when a distributor is named, and a customer's region follows from the state.

Geography follows the import's rules too. A line may say where it was shipped to (city, state, zip, region,
country, coordinates); a line that says nothing takes the address its customer has in the batch (and, once
the engine fills it from its cache of the customers' addresses, the stored one). US enrichment applies where
the country is the US, or is not given and the state is a US state: the state becomes its two-letter code
and must be one, a zip must have five digits, the region follows from the state and the coordinates from
the zip. Elsewhere nothing is checked and everything is kept as written.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from salespulse.bounds import (
    Documented,
    StrictFloat,
    check_datetime,
    datetime_schema,
    iso_datetime,
    line_amount,
    line_quantity,
    line_revenue_error,
    strict_int,
    trimmed_text,
    unit_price,
)
from salespulse.config import get_settings
from salespulse.dataset.geography import REGION_OF_STATE, REGIONS, state_code, zip_table
from salespulse.warehouse.schema import LINE_GEOGRAPHY_COLUMNS, UNITED_STATES, US_SPELLINGS

REVENUE_TOLERANCE = 0.01  # the file import's tolerance between revenue and quantity x price x (1 - discount)
MAX_BATCH_LINES = 100_000  # an absolute cap; the engine enforces the configured (smaller) one

# Ids are plain text on one line (no NUL, newline or other control character: salespulse.bounds); ids and
# texts are stored without the white space around them, and must have something else.
Key = trimmed_text(64, plain=True)
Text = trimmed_text(200, plain=False)


def _country(value: str) -> str:
    return UNITED_STATES if value.upper() in US_SPELLINGS else value


def _validated(info: ValidationInfo, part: str) -> str | None:
    """An address part validated before this field: a customer's ``state``, a line's ``ship_state``."""
    return info.data.get(part, info.data.get(f"ship_{part}"))


def _in_the_us(info: ValidationInfo) -> bool | None:
    """True for a US address, False for another country's, None when the country is not given (fields are
    validated in order: country comes before state, zip and region)."""
    country = _validated(info, "country")
    return None if country is None else country == UNITED_STATES


def _us_address(info: ValidationInfo) -> bool:
    """In the US by its country, or without a country by its (validated) US state."""
    in_the_us = _in_the_us(info)
    return in_the_us if in_the_us is not None else _validated(info, "state") in REGION_OF_STATE


# The address validators run on optional fields: an absent part (None) has nothing to check.


def _state_in_its_country(value: str | None, info: ValidationInfo) -> str | None:
    """A US state becomes its code; the US must have one; another country's state is kept as written."""
    if value is None:
        return None
    in_the_us = _in_the_us(info)
    code = state_code(value) if in_the_us is not False else None
    if in_the_us and code is None:
        raise PydanticCustomError("state", "'{value}' is not a US state", {"value": value})
    return code or value


def _zip_in_its_country(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    if _us_address(info) and not (len(value) == 5 and value.isdigit()):
        raise PydanticCustomError("zip", "'{value}' is not a five-digit zip code", {"value": value})
    return value


def _region_in_its_country(value: str | None, info: ValidationInfo) -> str | None:
    """A US customer's region is one of the sales regions (elsewhere a region is whatever the source says)."""
    if value is None:
        return None
    if _us_address(info) and value not in REGIONS:
        raise PydanticCustomError(
            "region",
            "'{value}' is not a region; regions are {valid}",
            {"value": value, "valid": ", ".join(REGIONS)},
        )
    return value


def _plain_time(value: datetime) -> datetime:
    """The warehouse stores naive timestamps; an aware one is converted to UTC first. The day must be within
    the supported dates (salespulse.bounds)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return check_datetime(value)


SaneDateTime = Annotated[
    datetime, BeforeValidator(iso_datetime), AfterValidator(_plain_time), Documented(datetime_schema)
]
# Numbers are strict (a JSON string "3" is refused, not coerced) and finite, within the sanity bounds of
# salespulse.bounds (settings): one line of quantity 1e7 x price 1e12 would swamp every total.
Price = unit_price(ge=0)
Amount = line_amount(ge=0)
Country = Annotated[Text, AfterValidator(_country)]
Latitude = Annotated[StrictFloat, Field(ge=-90, le=90)]
Longitude = Annotated[StrictFloat, Field(ge=-180, le=180)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SaleLine(Strict):
    order_id: Key
    line: strict_int(ge=1, le=1_000_000) = Field(  # type: ignore[valid-type]
        description="Line number within the order; with order_id, the key."
    )
    ordered_at: SaneDateTime = Field(
        description="YYYY-MM-DDThh:mm[:ss[.ffffff]], in the warehouse's time, or with Z "
        "or an offset (+02:00) to be converted to UTC; the day, in UTC, within the supported dates "
        "(SALESPULSE_EARLIEST_DATE to SALESPULSE_LATEST_DATE)."
    )
    customer_id: Key
    product_id: Key
    salesman_id: Key | None = None
    distributor_id: Key | None = None
    channel: Literal["direct", "trade"] | None = Field(
        None, description="Defaults to 'trade' when a distributor is named, else 'direct'."
    )
    quantity: line_quantity(gt=0) = Field(  # type: ignore[valid-type]
        description="At most SALESPULSE_MAX_LINE_QUANTITY (default 1,000,000)."
    )
    unit_price: Price = Field(description="At most SALESPULSE_MAX_UNIT_PRICE (default 1e9).")
    discount: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.0
    revenue: Amount | None = Field(
        None,
        description="Defaults to quantity x unit_price x (1 - discount); at most SALESPULSE_MAX_LINE_REVENUE "
        "(default 1e9), given or derived.",
    )
    cost: Amount | None = None
    profit: StrictFloat | None = Field(None, description="Defaults to revenue - cost when the cost is given.")
    # Where the line was shipped to; without any of it, the line takes its customer's address.
    ship_city: Text | None = None
    ship_country: Country | None = Field(None, description="As written; US spellings become 'United States'.")
    ship_state: Text | None = Field(None, description="In the US a state name or code (stored as the code).")
    ship_zip: Text | None = Field(None, description="In the US five digits (the coordinates follow from it).")
    ship_region: Text | None = Field(None, description="Defaults, in the US, to the state's sales region.")
    ship_latitude: Latitude | None = None
    ship_longitude: Longitude | None = None

    _state_in_its_country = field_validator("ship_state")(_state_in_its_country)
    _zip_in_its_country = field_validator("ship_zip")(_zip_in_its_country)

    @model_validator(mode="after")
    def _check_revenue(self) -> Self:
        expected = self.quantity * self.unit_price * (1 - self.discount)
        too_much = line_revenue_error(expected if self.revenue is None else max(self.revenue, expected))
        if too_much is not None:
            raise too_much
        if self.revenue is not None and abs(self.revenue - expected) > REVENUE_TOLERANCE * max(
            expected, 0.01
        ):
            raise PydanticCustomError(
                "revenue",
                "revenue {revenue} disagrees with quantity x unit_price x (1 - discount) = {expected}",
                {"revenue": self.revenue, "expected": round(expected, 2)},
            )
        if self.cost is not None and self.profit is not None:
            revenue = self.revenue if self.revenue is not None else expected
            if abs(revenue - self.cost - self.profit) > REVENUE_TOLERANCE * max(revenue, 0.01):
                raise PydanticCustomError("profit", "profit is not revenue - cost", {})
        return self


class CustomerInfo(Strict):
    customer_id: Key
    customer_name: Text | None = None
    city: Text | None = None
    country: Country | None = None
    state: Text | None = None
    zip: Text | None = None
    region: Text | None = None

    _state_in_its_country = field_validator("state")(_state_in_its_country)
    _zip_in_its_country = field_validator("zip")(_zip_in_its_country)
    _region_in_its_country = field_validator("region")(_region_in_its_country)


class ProductInfo(Strict):
    product_id: Key
    product_name: Text | None = None
    category: Text | None = None
    subcategory: Text | None = None
    list_price: Price | None = None
    unit_cost: Price | None = None


def _unique(items: list, key: str, what: str) -> list:
    seen: dict[object, int] = {}
    for index, item in enumerate(items):
        value = getattr(item, key) if key != "line_key" else (item.order_id, item.line)
        if value in seen:
            raise PydanticCustomError(
                "duplicate",
                "{what} {first} and {second} have the same {key} {value}",
                {
                    "what": what,
                    "first": seen[value],
                    "second": index,
                    "key": key.replace("line_key", "order_id and line"),
                    "value": str(value),
                },
            )
        seen[value] = index
    return items


def _batch_limit() -> dict[str, int]:
    """The configured largest batch, which the engine enforces (the model's own cap is absolute)."""
    return {"maxItems": min(get_settings().analytics_max_batch_lines, MAX_BATCH_LINES)}


class SalesBatch(Strict):
    """Order lines to append (or replace, by order_id + line), with what is known of customers/products."""

    lines: Annotated[list[SaleLine], Documented(_batch_limit)] = Field(
        min_length=1,
        max_length=MAX_BATCH_LINES,
        description="At most SALESPULSE_ANALYTICS_MAX_BATCH_LINES (default 10,000); each order_id + line "
        "once.",
    )
    customers: list[CustomerInfo] = Field(
        default_factory=list, max_length=MAX_BATCH_LINES, description="Each customer_id once."
    )
    products: list[ProductInfo] = Field(
        default_factory=list, max_length=MAX_BATCH_LINES, description="Each product_id once."
    )

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "lines": [
                        {
                            "order_id": "WEB-2025-000123",
                            "line": 1,
                            "ordered_at": "2025-06-30T14:05:00",
                            "customer_id": "C-0000042",
                            "product_id": "P-00007",
                            "salesman_id": "S-0003",
                            "quantity": 2,
                            "unit_price": 129.0,
                            "discount": 0.1,
                            "cost": 150.0,
                        }
                    ],
                    "customers": [{"customer_id": "C-0000042", "state": "CA", "zip": "94105"}],
                }
            ]
        },
    )

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, lines: list[SaleLine]) -> list[SaleLine]:
        return _unique(lines, "line_key", "lines")

    @field_validator("customers")
    @classmethod
    def _unique_customers(cls, customers: list[CustomerInfo]) -> list[CustomerInfo]:
        return _unique(customers, "customer_id", "customers")

    @field_validator("products")
    @classmethod
    def _unique_products(cls, products: list[ProductInfo]) -> list[ProductInfo]:
        return _unique(products, "product_id", "products")


LINE_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("line", pa.int32()),
        ("ordered_at", pa.timestamp("us")),
        ("customer_id", pa.string()),
        ("product_id", pa.string()),
        ("salesman_id", pa.string()),
        ("distributor_id", pa.string()),
        ("channel", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price", pa.float64()),
        ("discount", pa.float64()),
        ("revenue", pa.float64()),
        ("cost", pa.float64()),
        ("profit", pa.float64()),
        ("ship_city", pa.string()),
        ("ship_state", pa.string()),
        ("ship_zip", pa.string()),
        ("ship_region", pa.string()),
        ("ship_country", pa.string()),
        ("ship_latitude", pa.float64()),
        ("ship_longitude", pa.float64()),
    ]
)
"""The ORDER_LINES columns with their warehouse types, so a batch compares equal to what it stored."""
ADDRESS_PARTS = ("city", "state", "zip", "region", "country")
"""What a customer's address in the batch gives a line of his that has no geography (as ship_<part>)."""
_US_STATES = pa.array(REGION_OF_STATE.keys())


def lines_table(batch: SalesBatch) -> pa.Table:
    """The batch as the warehouse's order-line columns, with the derived values filled in."""
    lines = batch.lines
    revenue = [
        line.revenue if line.revenue is not None else line.quantity * line.unit_price * (1 - line.discount)
        for line in lines
    ]
    cost = [
        line.cost if line.cost is not None else (r - line.profit if line.profit is not None else None)
        for line, r in zip(lines, revenue, strict=True)
    ]
    columns = {
        name: [getattr(line, name) for line in lines]
        for name in LINE_SCHEMA.names
        if name in SaleLine.model_fields
    }
    columns.update(
        revenue=revenue,
        cost=cost,
        profit=[r - c if c is not None else None for r, c in zip(revenue, cost, strict=True)],
        channel=[line.channel or ("trade" if line.distributor_id else "direct") for line in lines],
    )
    table = pa.table({name: columns[name] for name in LINE_SCHEMA.names}, schema=LINE_SCHEMA)
    return with_us_enrichment(_with_customer_addresses(table, customers_table(batch)))


def _with_customer_addresses(lines: pa.Table, customers: pa.Table | None) -> pa.Table:
    """Lines that say nothing of where they went take the address their customer has in the batch."""
    if customers is None:
        return lines
    silent = _without_geography(lines)
    if not pc.any(silent).as_py():
        return lines
    position = pc.index_in(lines.column("customer_id"), value_set=customers.column("customer_id"))
    for part in ADDRESS_PARTS:
        address = pc.take(customers.column(part), position)
        lines = _replaced(lines, f"ship_{part}", pc.if_else(silent, address, lines.column(f"ship_{part}")))
    return lines


def _without_geography(lines: pa.Table) -> pa.ChunkedArray:
    silent = pc.is_null(lines.column(LINE_GEOGRAPHY_COLUMNS[0]))
    for name in LINE_GEOGRAPHY_COLUMNS[1:]:
        silent = pc.and_(silent, pc.is_null(lines.column(name)))
    return silent


def with_us_enrichment(table: pa.Table) -> pa.Table:
    """US lines (the country, or no country and a US state): country 'United States', the region from the
    state and the coordinates from the zip, where not given. Vectorized: no work per line in Python."""
    if pc.all(_without_geography(table)).as_py():
        return table  # the usual real-time batch: nothing to enrich
    state, country = table.column("ship_state"), table.column("ship_country")
    us_state = pc.is_in(state, value_set=_US_STATES)
    country = pc.if_else(pc.and_(pc.is_null(country), us_state), UNITED_STATES, country)
    in_the_us = pc.fill_null(pc.equal(country, UNITED_STATES), False)
    table = _replaced(table, "ship_country", country)
    region = pc.take(pa.array(REGION_OF_STATE.values()), pc.index_in(state, value_set=_US_STATES))
    table = _filled(table, "ship_region", region, in_the_us)
    unlocated = pc.and_(pc.is_valid(table.column("ship_zip")), pc.is_null(table.column("ship_latitude")))
    if pc.any(pc.and_(in_the_us, unlocated)).as_py():  # the zip table is read only when it is needed
        zips, latitudes, longitudes = _zip_coordinates()
        at = pc.index_in(table.column("ship_zip"), value_set=zips)
        for name, values in (("ship_latitude", latitudes), ("ship_longitude", longitudes)):
            table = _filled(table, name, pc.take(values, at), in_the_us)
    return table


@lru_cache
def _zip_coordinates() -> tuple[pa.Array, pa.Array, pa.Array]:
    """Zip codes and their coordinates (read from the offline zipcodes package once, on first use)."""
    zips = zip_table()
    return pa.array(zips["zip"]), pa.array(zips["latitude"]), pa.array(zips["longitude"])


def _filled(
    table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray, where: pa.ChunkedArray
) -> pa.Table:
    """The column with its NULLs replaced by ``values`` on the rows ``where`` holds."""
    current = table.column(name)
    wanted = pc.and_(where, pc.is_null(current))
    return _replaced(table, name, pc.if_else(wanted, values, current))


def _replaced(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), values.cast(table.schema.field(index).type))


def customers_table(batch: SalesBatch) -> pa.Table | None:
    if not batch.customers:
        return None
    records = []
    for customer in batch.customers:
        record = customer.model_dump()
        if record["country"] is None and record["state"] in REGION_OF_STATE:
            record["country"] = UNITED_STATES
        if record["region"] is None and record["country"] == UNITED_STATES:
            record["region"] = REGION_OF_STATE.get(record["state"])
        records.append(record)
    return pa.Table.from_pylist(
        records, schema=pa.schema([(n, pa.string()) for n in CustomerInfo.model_fields])
    )


def products_table(batch: SalesBatch) -> pa.Table | None:
    if not batch.products:
        return None
    fields = [
        (n, pa.float64() if n in ("list_price", "unit_cost") else pa.string())
        for n in ProductInfo.model_fields
    ]
    return pa.Table.from_pylist([p.model_dump() for p in batch.products], schema=pa.schema(fields))


def batch_days(batch: SalesBatch) -> tuple[date, date]:
    days = [line.ordered_at.date() for line in batch.lines]
    return min(days), max(days)
