"""A real-time batch of sales: validated line by line before anything is written.

A batch with any invalid line is rejected whole; pydantic's error locations (``lines.17.quantity``) name the
line index and the field. Derived values follow the file import's rules: revenue is quantity x unit price x
(1 - discount) unless given (and then it must agree within 1%), profit is revenue - cost, the channel is
'trade' when a distributor is named, and a customer's region follows from the state.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Annotated, Literal, Self

import pyarrow as pa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from salespulse.dataset.geography import REGION_OF_STATE, REGIONS, state_code

REVENUE_TOLERANCE = 0.01  # the file import's tolerance between revenue and quantity x price x (1 - discount)
MAX_BATCH_LINES = 100_000  # an absolute cap; the engine enforces the configured (smaller) one

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("finite", "must be a finite number", {})
    return value


def _state(value: str) -> str:
    code = state_code(value)
    if code is None:
        raise PydanticCustomError("state", "'{value}' is not a US state", {"value": value})
    return code


def _zip(value: str) -> str:
    cleaned = value.strip()
    if not (len(cleaned) == 5 and cleaned.isdigit()):
        raise PydanticCustomError("zip", "'{value}' is not a five-digit zip code", {"value": value})
    return cleaned


def _region(value: str) -> str:
    if value not in REGIONS:
        raise PydanticCustomError(
            "region",
            "'{value}' is not a region; regions are {valid}",
            {"value": value, "valid": ", ".join(REGIONS)},
        )
    return value


def _plain_time(value: datetime) -> datetime:
    """The warehouse stores naive timestamps; an aware one is converted to UTC first."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if not 1900 <= value.year <= 2200:
        raise PydanticCustomError("ordered_at", "{year} is not a plausible year", {"year": value.year})
    return value


Money = Annotated[float, Field(ge=0, le=1e12), AfterValidator(_finite)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SaleLine(Strict):
    order_id: Key
    line: int = Field(ge=1, le=1_000_000, description="Line number within the order; with order_id, the key.")
    ordered_at: Annotated[datetime, AfterValidator(_plain_time)]
    customer_id: Key
    product_id: Key
    salesman_id: Key | None = None
    distributor_id: Key | None = None
    channel: Literal["direct", "trade"] | None = Field(
        None, description="Defaults to 'trade' when a distributor is named, else 'direct'."
    )
    quantity: int = Field(gt=0, le=10_000_000)
    unit_price: Money
    discount: Annotated[float, Field(ge=0, lt=1), AfterValidator(_finite)] = 0.0
    revenue: Money | None = Field(None, description="Defaults to quantity x unit_price x (1 - discount).")
    cost: Money | None = None
    profit: Annotated[float, AfterValidator(_finite)] | None = Field(
        None, description="Defaults to revenue - cost when the cost is given."
    )

    @model_validator(mode="after")
    def _check_revenue(self) -> Self:
        expected = self.quantity * self.unit_price * (1 - self.discount)
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
    state: Annotated[str, AfterValidator(_state)] | None = None
    zip: Annotated[str, AfterValidator(_zip)] | None = None
    region: Annotated[str, AfterValidator(_region)] | None = None


class ProductInfo(Strict):
    product_id: Key
    product_name: Text | None = None
    category: Text | None = None
    subcategory: Text | None = None
    list_price: Money | None = None
    unit_cost: Money | None = None


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


class SalesBatch(Strict):
    """Order lines to append (or replace, by order_id + line), with what is known of customers/products."""

    lines: list[SaleLine] = Field(min_length=1, max_length=MAX_BATCH_LINES)
    customers: list[CustomerInfo] = Field(default_factory=list, max_length=MAX_BATCH_LINES)
    products: list[ProductInfo] = Field(default_factory=list, max_length=MAX_BATCH_LINES)

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
    ]
)
"""The ORDER_LINES columns with their warehouse types, so a batch compares equal to what it stored."""


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
    return pa.table({name: columns[name] for name in LINE_SCHEMA.names}, schema=LINE_SCHEMA)


def customers_table(batch: SalesBatch) -> pa.Table | None:
    if not batch.customers:
        return None
    records = []
    for customer in batch.customers:
        record = customer.model_dump()
        if record["region"] is None and record["state"] is not None:
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
