"""Exports in public layouts, made up but realistic, for the import tests and benchmark.

The superstore layout is that of the common public "superstore" sales file: one row per order line,
customers with real US city/state/zip combinations (from the offline zip table), several lines per order,
dates like 11/8/2016 (or 2016-11-08, as other copies write them), zips stored as numbers (2920 for 02920),
and Sales = Quantity x price x (1 - Discount) rounded to 4 decimals. City, State, Postal Code and Region are
where the order was shipped: the customer's own address, or with ``ship_elsewhere`` for that share of the
orders another place, so that customers order to several states as in real exports.

The invoice-log layout is that of the public "online retail" file: InvoiceNo, StockCode, Description,
Quantity, InvoiceDate (12/1/2010 8:26), UnitPrice, CustomerID, Country; an invoice may list a stock code
twice.

``python tests/superstore_files.py`` rewrites the shipped examples in data/examples/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from salespulse.dataset.geography import STATE_NAMES, zip_table

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
SAMPLE_FILE = EXAMPLES / "superstore_sample.csv"
SAMPLE_ROWS = 300
ISO_SAMPLE_FILE = EXAMPLES / "superstore_sample_iso_dates.csv"  # the same lines, dates as 2015-09-13
INVOICE_SAMPLE_FILE = EXAMPLES / "invoice_log_sample.csv"
INVOICE_SAMPLE_ROWS = 120
DateStyle = Literal["us", "iso"]

COLUMNS = [
    "Row ID", "Order ID", "Order Date", "Ship Date", "Ship Mode", "Customer ID", "Customer Name", "Segment",
    "Country", "City", "State", "Postal Code", "Region", "Product ID", "Category", "Sub-Category",
    "Product Name", "Sales", "Quantity", "Discount", "Profit",
]  # fmt: skip
SUBCATEGORIES = {
    "Furniture": ["Bookcases", "Chairs", "Furnishings", "Tables"],
    "Office Supplies": [
        "Appliances", "Art", "Binders", "Envelopes", "Fasteners", "Labels", "Paper", "Storage", "Supplies",
    ],
    "Technology": ["Accessories", "Copiers", "Machines", "Phones"],
}  # fmt: skip
CATEGORY_PRICE = {"Furniture": 180.0, "Office Supplies": 25.0, "Technology": 250.0}  # median unit price
BRANDS = ["Acme", "Fellowes", "Avery", "Hon", "Bretford", "Logitech", "Xerox", "Eldon", "Global", "Cisco"]
FIRST_NAMES = [
    "Claire",
    "Darrin",
    "Sean",
    "Brosina",
    "Andrew",
    "Irene",
    "Harold",
    "Pete",
    "Alejandro",
    "Zuschuss",
]
LAST_NAMES = [
    "Gute",
    "Van Huff",
    "O'Donnell",
    "Hoffman",
    "Allen",
    "Maddox",
    "Pawlan",
    "Kriz",
    "Grove",
    "Carroll",
]
SHIP_MODES = ["Standard Class", "Second Class", "First Class", "Same Day"]
SEGMENTS = ["Consumer", "Corporate", "Home Office"]
DISCOUNTS = [0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8]
DISCOUNT_WEIGHTS = [0.48, 0.02, 0.01, 0.37, 0.03, 0.03, 0.02, 0.03, 0.01]
STATE_NAME_OF_CODE = {code: name for name, code in STATE_NAMES.items()}


def superstore_frame(
    rows: int, *, seed: int = 0, dates: DateStyle = "us", ship_elsewhere: float = 0.0
) -> pd.DataFrame:
    """``rows`` order lines in the superstore layout, all columns as the file would show them."""
    rng = np.random.default_rng(seed)
    customers = _customers(rng, count=int(np.clip(rows // 12, 10, 50_000)))
    products = _products(rng, count=int(np.clip(rows // 5, 10, 5_000)))

    # Orders of 1 to 8 lines (about 2 on average, as in the public file), cut to exactly `rows` lines.
    lines_per_order = np.minimum(rng.geometric(0.5, size=rows), 8)
    order_of_line = np.repeat(np.arange(rows), lines_per_order)[:rows]
    orders = order_of_line.max() + 1
    order_dates = pd.Timestamp("2014-01-03") + pd.to_timedelta(rng.integers(0, 1460, size=orders), unit="D")
    order_customer = rng.integers(0, len(customers), size=orders)
    order_prefix = rng.choice(["CA", "US"], size=orders, p=[0.8, 0.2])
    order_ids = (
        pd.Series(order_prefix)
        + "-"
        + pd.Series(order_dates.year.astype(str))
        + "-"
        + pd.Series(np.arange(100_000, 100_000 + orders)).astype(str)
    )
    ship_dates = order_dates + pd.to_timedelta(rng.integers(0, 8, size=orders), unit="D")

    product = products.iloc[rng.integers(0, len(products), size=rows)].reset_index(drop=True)
    customer = customers.iloc[order_customer[order_of_line]].reset_index(drop=True)
    ship_to = (
        _ship_to(customers, order_customer, ship_elsewhere, seed).iloc[order_of_line].reset_index(drop=True)
    )
    quantity = np.minimum(rng.geometric(0.3, size=rows), 14)
    discount = rng.choice(DISCOUNTS, size=rows, p=DISCOUNT_WEIGHTS)
    sales = np.round(quantity * product["price"].to_numpy() * (1 - discount), 4)
    profit = np.round(sales - quantity * product["unit_cost"].to_numpy(), 4)

    frame = pd.DataFrame(
        {
            "Row ID": np.arange(1, rows + 1),
            "Order ID": order_ids.to_numpy()[order_of_line],
            "Order Date": _written_dates(order_dates, dates)[order_of_line],
            "Ship Date": _written_dates(ship_dates, dates)[order_of_line],
            "Ship Mode": rng.choice(SHIP_MODES, size=orders, p=[0.6, 0.19, 0.16, 0.05])[order_of_line],
            "Customer ID": customer["id"],
            "Customer Name": customer["name"],
            "Segment": customer["segment"],
            "Country": "United States",
            "City": ship_to["city"],
            "State": ship_to["state"],
            "Postal Code": ship_to["postal_code"],
            "Region": ship_to["region"],
            "Product ID": product["id"],
            "Category": product["category"],
            "Sub-Category": product["subcategory"],
            "Product Name": product["name"],
            "Sales": sales,
            "Quantity": quantity,
            "Discount": discount,
            "Profit": profit,
        }
    )
    return frame[COLUMNS]


def write_superstore_csv(
    path: Path, rows: int, *, seed: int = 0, dates: DateStyle = "us", ship_elsewhere: float = 0.0
) -> Path:
    """Write a superstore-style CSV (through DuckDB, which is fast for the benchmark's millions of rows)."""
    frame = superstore_frame(rows, seed=seed, dates=dates, ship_elsewhere=ship_elsewhere)
    with duckdb.connect() as con:
        con.register("superstore", frame)
        quoted_path = str(path).replace("'", "''")
        con.execute(f"COPY superstore TO '{quoted_path}' (HEADER)")
    return path


def _ship_to(
    customers: pd.DataFrame, order_customer: np.ndarray, ship_elsewhere: float, seed: int
) -> pd.DataFrame:
    """Each order's ship-to address (city, state, postal code, region): its customer's, or for a
    ``ship_elsewhere`` share of the orders another customer's place. A random stream of its own leaves every
    other column as it is without ``ship_elsewhere``."""
    rng = np.random.default_rng([seed, 1])
    elsewhere = rng.random(len(order_customer)) < ship_elsewhere
    place = np.where(elsewhere, rng.integers(0, len(customers), size=len(order_customer)), order_customer)
    return customers.iloc[place][["city", "state", "postal_code", "region"]].reset_index(drop=True)


def _customers(rng: np.random.Generator, count: int) -> pd.DataFrame:
    places = zip_table().sample(n=min(count, 400), random_state=rng.integers(2**31)).reset_index(drop=True)
    first = rng.choice(FIRST_NAMES, size=count)
    last = rng.choice(LAST_NAMES, size=count)
    place = places.iloc[rng.integers(0, len(places), size=count)].reset_index(drop=True)
    initials = pd.Series([f"{a[0]}{b[0]}" for a, b in zip(first, last, strict=True)])
    return pd.DataFrame(
        {
            "id": initials + "-" + pd.Series(np.arange(10_000, 10_000 + count)).astype(str),
            "name": pd.Series(first) + " " + pd.Series(last),
            "segment": rng.choice(SEGMENTS, size=count, p=[0.52, 0.30, 0.18]),
            "city": place["city"],
            "state": place["state"].map(STATE_NAME_OF_CODE),
            "postal_code": place["zip"].astype(int),  # the public file stores zips as numbers
            "region": place["region"],
        }
    )


def _products(rng: np.random.Generator, count: int) -> pd.DataFrame:
    pairs = [(category, sub) for category, subs in SUBCATEGORIES.items() for sub in subs]
    chosen = [pairs[i] for i in rng.integers(0, len(pairs), size=count)]
    category = pd.Series([c for c, _ in chosen])
    subcategory = pd.Series([s for _, s in chosen])
    price = np.round(category.map(CATEGORY_PRICE).to_numpy() * rng.lognormal(0.0, 0.6, size=count), 2)
    ids = (
        category.str[:3].str.upper()
        + "-"
        + subcategory.str[:2].str.upper()
        + "-"
        + pd.Series(np.arange(10_000_000, 10_000_000 + count)).astype(str)
    )
    model = pd.Series(rng.integers(100, 9999, size=count)).astype(str)
    return pd.DataFrame(
        {
            "id": ids,
            "category": category,
            "subcategory": subcategory,
            "name": pd.Series(rng.choice(BRANDS, size=count)) + " " + subcategory + " " + model,
            "price": price,
            "unit_cost": np.round(price * rng.uniform(0.45, 0.9, size=count), 2),
        }
    )


def _written_dates(dates: pd.DatetimeIndex, style: DateStyle) -> np.ndarray:
    """us: 11/8/2016 (month/day/year without zero padding); iso: 2016-11-08."""
    if style == "iso":
        return dates.strftime("%Y-%m-%d").to_numpy()
    return (dates.month.astype(str) + "/" + dates.day.astype(str) + "/" + dates.year.astype(str)).to_numpy()


INVOICE_COLUMNS = [
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country",
]  # fmt: skip
ITEMS = [
    "WHITE HANGING HEART T-LIGHT HOLDER", "WHITE METAL LANTERN", "CREAM CUPID HEARTS COAT HANGER",
    "KNITTED UNION FLAG HOT WATER BOTTLE", "RED WOOLLY HOTTIE WHITE HEART.", "SET 7 BABUSHKA NESTING BOXES",
    "GLASS STAR FROSTED T-LIGHT HOLDER", "HAND WARMER UNION JACK", "HAND WARMER RED POLKA DOT",
    "ASSORTED COLOUR BIRD ORNAMENT", "POPPY'S PLAYHOUSE BEDROOM", "FELTCRAFT PRINCESS CHARLOTTE DOLL",
    "IVORY KNITTED MUG COSY", "BOX OF 6 ASSORTED COLOUR TEASPOONS", "BOX OF VINTAGE JIGSAW BLOCKS",
    "ALARM CLOCK BAKELIKE RED", "LUNCH BAG RED RETROSPOT", "JUMBO BAG PINK POLKADOT",
    "PAPER CHAIN KIT 50'S CHRISTMAS", "SET OF 3 CAKE TINS PANTRY DESIGN, LARGE",
]  # fmt: skip
COUNTRIES = ["United Kingdom", "France", "Germany", "EIRE", "Netherlands"]


def invoice_log_frame(rows: int, *, seed: int = 0) -> pd.DataFrame:
    """``rows`` invoice lines in the online-retail layout, all columns as the file would show them."""
    rng = np.random.default_rng(seed)
    lines_per_invoice = np.minimum(rng.geometric(0.3, size=rows), 9)
    invoice_of_line = np.repeat(np.arange(rows), lines_per_invoice)[:rows]
    invoices = invoice_of_line.max() + 1
    minutes = np.sort(rng.integers(0, 373 * 24 * 60, size=invoices))
    invoice_times = pd.Timestamp("2010-12-01 08:00") + pd.to_timedelta(minutes, unit="min")
    numbers = rng.integers(20_000, 90_000, size=len(ITEMS))
    suffixes = rng.choice(["", "", "A", "B"], size=len(ITEMS))
    codes = [f"{number}{suffix}" for number, suffix in zip(numbers, suffixes, strict=True)]
    prices = np.round(rng.lognormal(1.0, 0.7, size=len(ITEMS)), 2)
    item = rng.integers(0, len(ITEMS), size=rows)
    customers = rng.integers(12_346, 18_288, size=invoices)
    country = rng.choice(COUNTRIES, size=invoices, p=[0.84, 0.05, 0.05, 0.03, 0.03])
    return pd.DataFrame(
        {
            "InvoiceNo": (536_365 + np.arange(invoices)).astype(str)[invoice_of_line],
            "StockCode": np.array(codes)[item],
            "Description": np.array(ITEMS)[item],
            "Quantity": rng.choice([1, 2, 3, 4, 6, 8, 12, 24], size=rows),
            "InvoiceDate": _invoice_times(invoice_times)[invoice_of_line],
            "UnitPrice": prices[item],
            "CustomerID": customers.astype(str)[invoice_of_line],
            "Country": country[invoice_of_line],
        }
    )[INVOICE_COLUMNS]


def _invoice_times(times: pd.DatetimeIndex) -> np.ndarray:
    """12/1/2010 8:26 style: month/day/year hour:minute without zero padding of month, day or hour."""
    dates = _written_dates(times, "us")
    return dates + " " + times.hour.astype(str).to_numpy() + ":" + times.strftime("%M").to_numpy()


def write_invoice_log_csv(path: Path, rows: int, *, seed: int = 0) -> Path:
    invoice_log_frame(rows, seed=seed).to_csv(path, index=False)
    return path


if __name__ == "__main__":
    write_superstore_csv(SAMPLE_FILE, SAMPLE_ROWS)
    write_superstore_csv(ISO_SAMPLE_FILE, SAMPLE_ROWS, dates="iso")
    write_invoice_log_csv(INVOICE_SAMPLE_FILE, INVOICE_SAMPLE_ROWS)
    print(f"wrote {SAMPLE_FILE}, {ISO_SAMPLE_FILE} and {INVOICE_SAMPLE_FILE}")
