"""The mapping file of an import: which column of a company's export is which warehouse field.

A mapping is a small YAML file, for example (data/mappings/superstore.yaml is a complete one)::

    columns:              # warehouse field: column name in the file
      order_id: Order ID
      ordered_at: Order Date
      customer_id: Customer ID
      product_id: Product ID
      quantity: Quantity
      revenue: Sales
    date_format: "%m/%d/%Y"   # strptime format of the date column; detected when absent (see below)
    decimal: "."              # decimal mark of numbers: "." (default) or ","
    thousands: ","            # thousands separator: ",", ".", " ", "'" or "" (default: the other mark)
    defaults:                 # a constant for a field the file lacks (or leaves empty on a row)
      channel: direct
    format: csv               # csv or parquet; by default from the file's suffix
    csv: {delimiter: ",", encoding: utf-8}   # delimiter: sniffed when absent; "whitespace" for aligned
    source:               # only for `salespulse data sync` from a database table (file imports ignore it)
      table: sales.order_lines
      watermark: updated_at   # a column that grows when a row is added or changed
      key: [id]               # tiebreak among rows of one watermark value; default: the primary key

Required fields: order_id (or ``order_id_from``: the fields an order id is made of, when the export has
none, e.g. ``[customer_id, ordered_at]``), ordered_at, customer_id, product_id, quantity, and unit_price or
revenue (the other one is derived). Everything else is optional; what the file does not have stays unknown.

Geography (city, state, zip, region, country, coordinates) belongs to each line: exports write the ship-to
per line, and a customer may order to several places. The US is recognized by its country, or, without a
country, by a US state; only there are states and zip codes checked and enriched (state code, region from the
state, coordinates from the zip). Other countries' values are kept as written.

Dates without ``date_format`` are detected per column: ISO (2024-01-31, with a time and a UTC offset or
not), dates with month names (31-Jan-2024), and numeric dates month first (1/31/2024, US) or day first
(31/1/2024, 31.1.2024). A column whose numeric dates read both ways (no day above 12) is refused with
examples and the ``date_format`` to set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

# Every field a mapping may name, with what it means; the order is the order of validation messages.
WAREHOUSE_FIELDS: dict[str, str] = {
    "order_id": "order identifier",
    "line": "line number within the order, a whole number (default: derived from line_id, else from content)",
    "line_id": "the export's own id of the line, unique within its order (the line number is made from it)",
    "ordered_at": "order date or timestamp",
    "customer_id": "customer identifier",
    "customer_name": "customer name",
    # Where the line was shipped to (its own geography; the customer's address is that of his latest line).
    # A line with none of these takes its customer's address (the stored one when the file has none).
    "city": "ship-to city of the line",
    "state": "ship-to state (in the US a name or two-letter code, stored as the code; elsewhere as written)",
    "zip": "ship-to zip or postal code (in the US numbers are zero-padded to five digits)",
    "region": "sales region (default, in the US: from the state)",
    "country": "ship-to country (US spellings become 'United States'; no country and a US state: the US)",
    "latitude": "ship-to latitude (default, in the US: from the zip code)",
    "longitude": "ship-to longitude (default, in the US: from the zip code)",
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

# Fields that cannot make up a derived order id: the id itself and the line keys below it.
NOT_ORDER_ID_PARTS: tuple[str, ...] = ("order_id", "line", "line_id")
DecimalMark = Literal[".", ","]
ThousandsSeparator = Literal[",", ".", " ", "'", ""]
WHITESPACE = "whitespace"  # csv.delimiter of a file whose columns are aligned with spaces

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

    delimiter: str | None = None
    """None: sniffed by DuckDB (comma, semicolon, pipe, tab), or aligned columns when the header line
    has none of those; "whitespace": columns aligned with spaces."""
    encoding: str = "utf-8"


class SyncSource(BaseModel):
    """Where `salespulse data sync` reads the order lines (see salespulse/dataset/sync.py); the command's
    options override each key. File imports ignore this section, so one mapping serves both."""

    model_config = ConfigDict(extra="forbid")

    table: str | None = None
    """The table (or view), as SQL writes it: ``order_lines``, ``sales.order_lines``, ``"Order Lines"``."""
    query: str | None = None
    """A SELECT to read instead of a table (a join, a filter); it needs ``key``."""
    watermark: str | None = None
    """A column whose value grows when a row is added or changed (updated_at, a sequence id)."""
    key: list[str] = []
    """Columns that tell apart the rows of one watermark value; default: the table's primary key."""

    @model_validator(mode="after")
    def _one_origin(self) -> SyncSource:
        if self.table and self.query:
            raise ValueError("source: give table or query, not both")
        return self


class Mapping(BaseModel):
    """A validated mapping; build it with :func:`load_mapping` or directly from a dict."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str]
    order_id_from: list[str] = []
    date_format: str | None = None
    decimal: DecimalMark = "."
    thousands: ThousandsSeparator | None = None
    defaults: dict[str, str | int | float] = {}
    format: FileFormat | None = None
    csv: CsvOptions = CsvOptions()
    source: SyncSource = SyncSource()

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

    @field_validator("order_id_from")
    @classmethod
    def _order_id_parts_are_fields(cls, value: list[str]) -> list[str]:
        wrong = [name for name in value if name not in WAREHOUSE_FIELDS or name in NOT_ORDER_ID_PARTS]
        if wrong:
            raise ValueError(
                f"cannot make the order id from {', '.join(map(repr, wrong))}; name warehouse fields "
                f"such as customer_id and ordered_at"
            )
        return value

    @model_validator(mode="after")
    def _numbers_are_unambiguous(self) -> Mapping:
        if self.thousands_separator == self.decimal:
            raise ValueError(f"thousands: {self.thousands!r} is also the decimal mark")
        return self

    @model_validator(mode="after")
    def _line_keys_are_consistent(self) -> Mapping:
        if self.provides("line") and self.provides("line_id"):
            raise ValueError("map either line (a number) or line_id (the export's line id), not both")
        if self.order_id_from and self.provides("order_id"):
            raise ValueError("order_id is mapped and order_id_from is given: keep one")
        unmapped = [name for name in self.order_id_from if not self.provides(name)]
        if unmapped:
            raise ValueError(f"order_id_from names field(s) the mapping does not map: {', '.join(unmapped)}")
        return self

    @model_validator(mode="after")
    def _required_fields_present(self) -> Mapping:
        missing = [name for name in REQUIRED_FIELDS if not self.provides(name) and not self.derives(name)]
        if not any(self.provides(name) for name in PRICE_FIELDS):
            missing.append(" or ".join(PRICE_FIELDS))
        if missing:
            raise ValueError(f"required field(s) not mapped: {', '.join(missing)}")
        return self

    def provides(self, field: str) -> bool:
        """Whether the file or a default gives this field a value (else it is derived or unknown)."""
        return field in self.columns or field in self.defaults

    def derives(self, field: str) -> bool:
        """Whether the mapping says how to make this field from others (only order_id can be)."""
        return field == "order_id" and bool(self.order_id_from)

    @property
    def thousands_separator(self) -> str:
        """The thousands separator in effect: as set, else the mark that is not the decimal one."""
        if self.thousands is not None:
            return self.thousands
        return "," if self.decimal == "." else "."

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
            section = {"csv": CsvOptions, "source": SyncSource}.get(str(problem["loc"][0]), Mapping)
            problems.append(f"unknown key {where!r} (known keys: {', '.join(section.model_fields)})")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
