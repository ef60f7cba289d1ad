"""The mapping file of an import: which column of a company's export is which warehouse field.

A mapping is a small YAML file, for example (data/mappings/superstore.yaml is a complete one)::

    columns:              # warehouse field: column name in the file
      order_id: Order ID
      ordered_at: Order Date
      customer_id: Customer ID
      product_id: Product ID
      quantity: Quantity
      revenue: Sales
    date_format: "%m/%d/%Y"   # strptime format of the date column; ISO dates when absent
    defaults:                 # a constant for a field the file lacks (or leaves empty on a row)
      channel: direct
    format: csv               # csv or parquet; by default from the file's suffix
    csv: {delimiter: ",", encoding: utf-8}

Required fields: order_id, ordered_at, customer_id, product_id, quantity, and unit_price or revenue (the
other one is derived). Everything else is optional; what the file does not have stays unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

# Every field a mapping may name, with what it means; the order is the order of validation messages.
WAREHOUSE_FIELDS: dict[str, str] = {
    "order_id": "order identifier",
    "line": "line number within the order (default: position of the row within its order, in file order)",
    "ordered_at": "order date or timestamp",
    "customer_id": "customer identifier",
    "customer_name": "customer name",
    "city": "customer city",
    "state": "customer state (name or two-letter code)",
    "zip": "customer zip code (numbers are zero-padded to five digits)",
    "region": "sales region (default: from the state)",
    "product_id": "product identifier",
    "product_name": "product name",
    "category": "product category",
    "subcategory": "product sub-category",
    "salesman_id": "salesman identifier",
    "distributor_id": "distributor identifier (trade channel)",
    "channel": "direct or trade (default: trade when there is a distributor, else direct)",
    "quantity": "units sold, a whole number > 0",
    "unit_price": "price per unit before discount (default: revenue / (quantity x (1 - discount)))",
    "discount": "fraction of the price taken off, 0 <= discount < 1 (default 0)",
    "revenue": "quantity x unit_price x (1 - discount) (default: computed)",
    "cost": "cost of the line (default: revenue - profit)",
    "profit": "revenue - cost (default: computed from cost)",
}
REQUIRED_FIELDS: tuple[str, ...] = ("order_id", "ordered_at", "customer_id", "product_id", "quantity")
PRICE_FIELDS: tuple[str, ...] = ("unit_price", "revenue")

FileFormat = Literal["csv", "parquet"]
SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class MappingError(ValueError):
    """The mapping file is not usable, or does not fit the file it is applied to."""


class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = ","
    encoding: str = "utf-8"


class Mapping(BaseModel):
    """A validated mapping; build it with :func:`load_mapping` or directly from a dict."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str]
    date_format: str | None = None
    defaults: dict[str, str | int | float] = {}
    format: FileFormat | None = None
    csv: CsvOptions = CsvOptions()

    @field_validator("columns", "defaults")
    @classmethod
    def _only_warehouse_fields(cls, value: dict[str, object]) -> dict[str, object]:
        unknown = [name for name in value if name not in WAREHOUSE_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown warehouse field(s) {', '.join(map(repr, unknown))}; "
                f"the fields are: {', '.join(WAREHOUSE_FIELDS)}"
            )
        return value

    @model_validator(mode="after")
    def _required_fields_present(self) -> Mapping:
        missing = [name for name in REQUIRED_FIELDS if not self.provides(name)]
        if not any(self.provides(name) for name in PRICE_FIELDS):
            missing.append(" or ".join(PRICE_FIELDS))
        if missing:
            raise ValueError(f"required field(s) not mapped: {', '.join(missing)}")
        return self

    def provides(self, field: str) -> bool:
        """Whether the file or a default gives this field a value (else it is derived or unknown)."""
        return field in self.columns or field in self.defaults

    def source_format(self, file: Path) -> FileFormat:
        if self.format is not None:
            return self.format
        try:
            return SUFFIX_FORMATS[file.suffix.lower()]
        except KeyError:
            raise MappingError(
                f"cannot tell the format of {file.name} from its suffix; "
                f"set `format: csv` or `format: parquet` in the mapping"
            ) from None

    def check_columns_exist(self, file_columns: list[str]) -> None:
        missing = {field: column for field, column in self.columns.items() if column not in file_columns}
        if missing:
            wanted = ", ".join(f"{column!r} (for {field})" for field, column in missing.items())
            raise MappingError(
                f"the mapping names column(s) the file does not have: {wanted}. "
                f"The file's columns are: {', '.join(map(repr, file_columns))}"
            )


def load_mapping(path: Path | str) -> Mapping:
    """Read and validate a mapping YAML file; every problem is a MappingError naming the file."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MappingError(f"cannot read mapping {path}: {error}") from None
    if not isinstance(content, dict):
        raise MappingError(f"mapping {path} must be a YAML mapping with a `columns:` section")
    try:
        return Mapping.model_validate(content)
    except ValidationError as error:
        raise MappingError(f"invalid mapping {path}: {_describe_validation_error(error)}") from None


def _describe_validation_error(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            section = CsvOptions if problem["loc"][0] == "csv" else Mapping
            problems.append(f"unknown key {where!r} (known keys: {', '.join(section.model_fields)})")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
