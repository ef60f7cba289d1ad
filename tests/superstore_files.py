"""Superstore-style order-line exports, made up but realistic, for the import tests and benchmark.

The layout is that of the common public "superstore" sales file: one row per order line, customers with
real US city/state/zip combinations (from the offline zip table), several lines per order, dates like
11/8/2016, zips stored as numbers (2920 for 02920), and Sales = Quantity x price x (1 - Discount)
rounded to 4 decimals.

``python tests/superstore_files.py`` rewrites the shipped example, data/examples/superstore_sample.csv.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from salespulse.dataset.geography import STATE_NAMES, zip_table

SAMPLE_FILE = Path(__file__).resolve().parents[1] / "data" / "examples" / "superstore_sample.csv"
SAMPLE_ROWS = 300

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


def superstore_frame(rows: int, *, seed: int = 0) -> pd.DataFrame:
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
    quantity = np.minimum(rng.geometric(0.3, size=rows), 14)
    discount = rng.choice(DISCOUNTS, size=rows, p=DISCOUNT_WEIGHTS)
    sales = np.round(quantity * product["price"].to_numpy() * (1 - discount), 4)
    profit = np.round(sales - quantity * product["unit_cost"].to_numpy(), 4)

    frame = pd.DataFrame(
        {
            "Row ID": np.arange(1, rows + 1),
            "Order ID": order_ids.to_numpy()[order_of_line],
            "Order Date": _us_dates(order_dates)[order_of_line],
            "Ship Date": _us_dates(ship_dates)[order_of_line],
            "Ship Mode": rng.choice(SHIP_MODES, size=orders, p=[0.6, 0.19, 0.16, 0.05])[order_of_line],
            "Customer ID": customer["id"],
            "Customer Name": customer["name"],
            "Segment": customer["segment"],
            "Country": "United States",
            "City": customer["city"],
            "State": customer["state"],
            "Postal Code": customer["postal_code"],
            "Region": customer["region"],
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


def write_superstore_csv(path: Path, rows: int, *, seed: int = 0) -> Path:
    """Write a superstore-style CSV (through DuckDB, which is fast for the benchmark's millions of rows)."""
    frame = superstore_frame(rows, seed=seed)
    with duckdb.connect() as con:
        con.register("superstore", frame)
        quoted_path = str(path).replace("'", "''")
        con.execute(f"COPY superstore TO '{quoted_path}' (HEADER)")
    return path


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


def _us_dates(dates: pd.DatetimeIndex) -> np.ndarray:
    """11/8/2016 style: month/day/year without zero padding."""
    return (dates.month.astype(str) + "/" + dates.day.astype(str) + "/" + dates.year.astype(str)).to_numpy()


if __name__ == "__main__":
    write_superstore_csv(SAMPLE_FILE, SAMPLE_ROWS)
    print(f"wrote {SAMPLE_FILE}")
