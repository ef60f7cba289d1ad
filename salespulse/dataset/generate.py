"""Realistic sample sales data with known structure.

The generator is a small simulation rather than noise around a table, so that a forecaster has something to
learn and a test has something to check:

- demand = weekly x yearly seasonality x US-holiday peaks x category trend x region trend; the company is
  closed on US federal public holidays (the ``holidays`` package's list, observed days included), so
  nothing sells then and a customer acquired on one places a first order on the next open day;
- the history ends at the moment of generation (``GeneratorConfig.now``): today sells only the hours that
  have passed, so no line is dated later than when the warehouse was made;
- each customer is acquired on some day (placing a first order then), buys at a personal rate, and churns
  after a personal lifetime; new customers arrive at a growing rate;
- promotions cut a product's price for one or two weeks and lift its sales by its price elasticity;
- every customer has an account salesman; a salesman's skill scales order size and his consistency sets
  how much his daily results swing;
- some products launch during the history and some stop selling;
- every line ships to a real US address (a ``zipcodes`` zip with its city, state and coordinates): its
  customer's own, or, for some orders of the customers who have one, a second address in another state;
- the goal plan is actual monthly revenue times a planning error of a few percent.

Days are simulated in month-sized chunks that are written to the warehouse as they are made, so memory
stays bounded at any size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import holidays
import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from salespulse.config import get_settings
from salespulse.dataset.geography import REGIONS, zip_table
from salespulse.warehouse.schema import UNITED_STATES
from salespulse.warehouse.store import rebuild, warehouse_path

# A little over a million, so that the default warehouse always holds at least 1M order lines.
DEFAULT_ROWS = 1_050_000


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    customers: int = 20_000
    products: int = 600
    salesmen: int = 60
    distributors: int = 40
    days: int = 1096
    end_date: date = field(default_factory=date.today)
    rows: int = DEFAULT_ROWS
    chunk_days: int = 31
    now: datetime | None = None
    """The moment no line may be later than (wall-clock time in the warehouse time zone); None: the
    moment generation starts. An end date in the future sells nothing after it."""

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)


def warehouse_now() -> datetime:
    """The current wall-clock time in the warehouse time zone (the machine's when none is configured)."""
    zone = get_settings().warehouse_timezone
    return datetime.now(ZoneInfo(zone)).replace(tzinfo=None) if zone else datetime.now()


# Category -> (subcategories, median list price, units per line, yearly trend).
CATEGORIES: dict[str, tuple[tuple[str, ...], float, float, float]] = {
    "Technology": (("Phones", "Computers", "Accessories", "Machines", "Copiers"), 240.0, 1.6, 0.16),
    "Furniture": (("Chairs", "Tables", "Bookcases", "Furnishings"), 170.0, 1.8, -0.07),
    "Office Supplies": (
        ("Paper", "Binders", "Storage", "Art", "Appliances", "Labels", "Envelopes", "Fasteners"),
        22.0,
        3.5,
        0.04,
    ),
}
CATEGORY_SHARE = np.array([0.25, 0.20, 0.55])  # of order lines, at the start of the history
REGION_TREND = {"West": 0.12, "South": 0.05, "East": 0.01, "Central": -0.05}
WEEKDAY_FACTOR = np.array([1.12, 1.15, 1.12, 1.06, 0.98, 0.70, 0.55])  # Monday first
YEARLY_AMPLITUDE = 0.18  # peak mid-December, trough mid-June
ORDERS_PER_LINE = 1 / 2.4  # lines per order are 1 + Poisson(1.4)
TRADE_DISCOUNT = 0.05
BULK_DISCOUNT = 0.05
BULK_QUANTITY = 10
HOUR_WEIGHTS = np.array(
    [1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 19, 18, 14, 15, 17, 16, 13, 9, 7, 6, 5, 4, 3, 2], dtype=float
)
# fmt: off
FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Maria", "Steven",
    "Ashley", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin",
    "Amanda", "Brian", "Melissa",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen",
    "Hill", "Flores", "Green", "Adams",
)
# fmt: on


@dataclass(frozen=True)
class GenerationSummary:
    path: Path
    order_lines: int
    first_day: date
    last_day: date
    seconds: float


def generate_warehouse(
    config: GeneratorConfig, path: Path | str | None = None, *, progress: bool = False
) -> GenerationSummary:
    """Simulate ``config`` into a new warehouse that replaces the one at ``path`` when complete."""
    started = time.perf_counter()
    target = Path(path) if path is not None else warehouse_path()
    world = build_world(config)
    with rebuild(target) as con:
        write_dimensions(con, world)
        con.register("places_frame", world.places)
        con.execute(f"CREATE TEMP TABLE {PLACES_TABLE} AS SELECT * FROM places_frame")
        con.unregister("places_frame")
        lines = 0
        for chunk in _with_progress(simulate_days(world), config, progress):
            insert_frame(con, chunk, INSERT_CHUNK_SQL)
            lines += len(chunk)
        con.execute(f"DROP TABLE {PLACES_TABLE}")
        derive_customer_first_purchase(con)
        write_goal_plan(con, world)
    return GenerationSummary(
        path=target,
        order_lines=lines,
        first_day=config.start_date,
        last_day=world.days[-1].date(),
        seconds=time.perf_counter() - started,
    )


# The chunk arrives as a DataFrame of integer codes; ids are formatted by DuckDB, which is faster than
# building millions of Python strings. A line's geography is that of its place (PLACES_TABLE).
PLACES_TABLE = "generator_places"  # temporary: every ship-to address, numbered by ``place``
INSERT_CHUNK_SQL = f"""
INSERT INTO order_lines
SELECT printf('SO-%09d', order_no), line, ordered_at, printf('C-%07d', customer),
       printf('P-%05d', product), printf('S-%04d', salesman),
       CASE WHEN trade THEN printf('D-%04d', distributor) END,
       CASE WHEN trade THEN 'trade' ELSE 'direct' END,
       quantity, unit_price, discount, revenue, cost, revenue - cost,
       p.city, p.state, p.zip, p.region, '{UNITED_STATES}', p.latitude, p.longitude
FROM frame JOIN {PLACES_TABLE} p USING (place)
"""
SECOND_SHIP_TO_SHARE = 0.15  # of customers, who also ship to a second address in another state
SECOND_SHIP_TO_ORDERS = 0.4  # of such a customer's orders, which go to the second address
SHIP_TO_STREAM = 7  # ship-to draws use their own random stream, so they leave every other draw as it was


def insert_frame(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, sql: str) -> None:
    """Run ``sql``, which reads ``frame`` under the name ``frame``."""
    con.register("frame", frame)
    try:
        con.execute(sql)
    finally:
        con.unregister("frame")


@dataclass
class World:
    """Everything drawn once before the days are simulated: catalogue, customers, sales force, calendar."""

    config: GeneratorConfig
    rng: np.random.Generator
    days: pd.DatetimeIndex
    day_factor: np.ndarray  # seasonality x holidays, per day
    products: pd.DataFrame
    product_active: np.ndarray  # (products, days) bool
    promo_discount: np.ndarray  # (products, days) float
    category_trend: np.ndarray  # (categories, days)
    customers: pd.DataFrame
    region_trend: np.ndarray  # (regions, days)
    salesmen: pd.DataFrame
    salesman_noise: np.ndarray  # (salesmen, days) multiplicative swing of order sizes
    distributors: pd.DataFrame
    order_rate_scale: float
    cutoff: datetime  # no line is later than this
    hour_weights: np.ndarray  # (days, 24) share of a day's orders per hour; today's stop at the cutoff
    places: pd.DataFrame  # ship-to addresses: place i < customers is customer i's own, the rest second ones
    second_place: np.ndarray  # (customers,) a customer's second ship-to place, -1 for none
    ship_to_rng: np.random.Generator  # which orders go to a second address (a stream of its own)


def build_world(config: GeneratorConfig) -> World:
    rng = np.random.default_rng(config.seed)
    cutoff = config.now or warehouse_now()
    last_day = min(config.end_date, cutoff.date())
    if last_day < config.start_date:
        raise ValueError(
            f"the history would start on {config.start_date}, after now ({cutoff:%Y-%m-%d %H:%M})"
        )
    days = pd.date_range(config.start_date, last_day, freq="D")
    years = np.arange(len(days)) / 365.25
    hour_weights = _hour_weights(days, cutoff)
    day_factor = seasonality(days) * hour_weights.sum(axis=1)
    products = _draw_products(config, rng, days)
    customers = _draw_customers(config, rng)
    _open_acquisitions(customers, day_factor)
    salesmen = _draw_salesmen(config, rng, customers, days)
    distributors = _draw_distributors(config, rng)
    _assign_accounts(rng, customers, salesmen, distributors)
    consistency = salesmen["volatility"].to_numpy()[:, None]
    salesman_noise = np.exp(rng.normal(-(consistency**2) / 2, consistency, (len(salesmen), len(days))))
    category_trend = np.exp(np.outer([spec[3] for spec in CATEGORIES.values()], years))
    region_trend = np.exp(np.outer([REGION_TREND[r] for r in REGIONS], years))
    ship_to_rng = np.random.default_rng([config.seed, SHIP_TO_STREAM])
    places, second_place = _draw_ship_to_places(ship_to_rng, customers)
    world = World(
        config=config,
        rng=rng,
        days=days,
        day_factor=day_factor,
        products=products,
        product_active=_product_activity(products, days),
        promo_discount=_draw_promotions(rng, len(products), len(days)),
        category_trend=category_trend,
        customers=customers,
        region_trend=region_trend,
        salesmen=salesmen,
        salesman_noise=salesman_noise,
        distributors=distributors,
        order_rate_scale=1.0,
        cutoff=cutoff,
        hour_weights=hour_weights,
        places=places,
        second_place=second_place,
        ship_to_rng=ship_to_rng,
    )
    world.order_rate_scale = _calibrate_order_rate(world)
    return world


def _hour_weights(days: pd.DatetimeIndex, cutoff: datetime) -> np.ndarray:
    """Each day's share of orders per hour (rows sum to 1), the cutoff's day only up to the cutoff."""
    weights = np.tile(HOUR_WEIGHTS / HOUR_WEIGHTS.sum(), (len(days), 1))
    if days[-1].date() == cutoff.date():
        elapsed = np.clip(cutoff.hour + cutoff.minute / 60 + cutoff.second / 3600 - np.arange(24), 0, 1)
        weights[-1] *= elapsed  # the current hour counts for the part that has passed
    return weights


def _open_acquisitions(customers: pd.DataFrame, day_factor: np.ndarray) -> None:
    """Move acquisitions that fall on a closed day (or after the cutoff) to the next open day: every newly
    acquired customer orders on arrival, which a closed shop cannot take."""
    open_days = np.flatnonzero(day_factor > 0)
    acquired = customers["acquired"].to_numpy().copy()
    inside = (acquired >= 0) & (acquired < len(day_factor))
    following = np.searchsorted(open_days, acquired[inside])
    beyond_history = len(day_factor) + 1
    moved = np.where(
        following < len(open_days), open_days[np.minimum(following, len(open_days) - 1)], beyond_history
    )
    shift = np.zeros(len(acquired), dtype=np.int64)
    shift[inside] = moved - acquired[inside]
    customers["acquired"] = acquired + shift
    customers["churned"] = customers["churned"].to_numpy() + shift


def seasonality(days: pd.DatetimeIndex) -> np.ndarray:
    """Weekly x yearly x holiday factor per day (about 1 on average)."""
    weekly = WEEKDAY_FACTOR[days.dayofweek] / WEEKDAY_FACTOR.mean()
    yearly = 1 + YEARLY_AMPLITUDE * np.cos(2 * np.pi * (days.dayofyear.to_numpy() - 350) / 365.25)
    return weekly * yearly * holiday_factor(days)


def holiday_factor(days: pd.DatetimeIndex) -> np.ndarray:
    """Closed (0) on US federal public holidays; peaks on Black Friday, Cyber Monday and the run-up to
    Christmas."""
    us_holidays = holidays.country_holidays("US", years=sorted(set(days.year)))
    factor = np.ones(len(days))
    for i, day in enumerate(days.date):
        if day in us_holidays:
            factor[i] = 0.0
            continue
        thanksgiving = _thanksgiving(day.year)
        if day == thanksgiving + timedelta(days=1):
            factor[i] = 2.4  # Black Friday
        elif day == thanksgiving + timedelta(days=4):
            factor[i] = 1.9  # Cyber Monday
        elif day.month == 12 and 10 <= day.day <= 23:
            factor[i] *= 1.3
    return factor


def _thanksgiving(year: int) -> date:
    november_first = date(year, 11, 1)
    first_thursday = november_first + timedelta(days=(3 - november_first.weekday()) % 7)
    return first_thursday + timedelta(weeks=3)


def _draw_products(config: GeneratorConfig, rng: np.random.Generator, days: pd.DatetimeIndex) -> pd.DataFrame:
    n = config.products
    category_index = rng.choice(len(CATEGORIES), size=n, p=[0.3, 0.25, 0.45])
    specs = list(CATEGORIES.values())
    names = list(CATEGORIES)
    subcategory = [specs[c][0][rng.integers(len(specs[c][0]))] for c in category_index]
    median_price = np.array([specs[c][1] for c in category_index])
    list_price = np.round(median_price * rng.lognormal(0, 0.6, n), 2).clip(0.99)
    launch_offset = np.where(
        rng.random(n) < 0.15, _days_into(rng, days, n, margin=30), -rng.integers(1, 900, n)
    )
    discontinue_offset = np.where(
        rng.random(n) < 0.12, np.maximum(launch_offset, 0) + _days_into(rng, days, n, margin=30), 10**6
    )
    start = days[0].date()
    return pd.DataFrame(
        {
            "product": np.arange(n),
            "product_name": [f"{sub} {_model_name(rng)}" for sub in subcategory],
            "category": [names[c] for c in category_index],
            "category_index": category_index,
            "subcategory": subcategory,
            "list_price": list_price,
            "unit_cost": np.round(list_price * rng.uniform(0.45, 0.78, n), 2),
            "popularity": rng.lognormal(0, 1.0, n),
            "units_per_line": np.array([specs[c][2] for c in category_index]),
            "elasticity": rng.uniform(1.2, 2.8, n),
            "launched_on": [start + timedelta(days=int(o)) for o in launch_offset],
            "discontinued_on": [
                start + timedelta(days=int(o)) if o < len(days) else None for o in discontinue_offset
            ],
            "launch_offset": launch_offset,
            "discontinue_offset": discontinue_offset,
        }
    )


def _days_into(rng: np.random.Generator, days: pd.DatetimeIndex, n: int, *, margin: int) -> np.ndarray:
    """Random day offsets inside the history, ``margin`` days away from both ends where it is long enough."""
    low = min(margin, len(days) // 3)
    return rng.integers(low, max(len(days) - low, low + 1), n)


def _model_name(rng: np.random.Generator) -> str:
    prefix = ("Pro", "Max", "Eco", "Ultra", "Basic", "Prime", "Flex", "Core", "Neo", "Aero")
    return f"{prefix[rng.integers(len(prefix))]} {rng.integers(100, 999)}"


def _product_activity(products: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    day_index = np.arange(len(days))
    launched = products["launch_offset"].to_numpy()[:, None] <= day_index
    still_sold = day_index < products["discontinue_offset"].to_numpy()[:, None]
    return launched & still_sold


def _draw_promotions(rng: np.random.Generator, n_products: int, n_days: int) -> np.ndarray:
    """About one promotion per product per half year, 7-14 days long, 10-30% off."""
    discount = np.zeros((n_products, n_days), dtype=np.float64)
    n_promos = rng.poisson(n_days / 180, n_products)
    for product, count in enumerate(n_promos):
        for _ in range(count):
            start = rng.integers(0, n_days)
            discount[product, start : start + rng.integers(7, 15)] = rng.choice([0.1, 0.15, 0.2, 0.25, 0.3])
    return discount


def _draw_customers(config: GeneratorConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = config.customers
    places = (
        zip_table().sample(n=n, replace=True, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    )
    # 35% were already customers when the history starts; the rest arrive at a growing rate.
    existing = rng.random(n) < 0.35
    arrival = np.sqrt(rng.random(n)) * config.days  # density rising linearly over the history
    acquired = np.where(existing, -rng.integers(1, 720, n), arrival.astype(int))
    lifetime = rng.exponential(1000, n).astype(int) + 30
    return pd.DataFrame(
        {
            "customer": np.arange(n),
            "customer_name": [
                f"{FIRST_NAMES[i]} {LAST_NAMES[j]}"
                for i, j in zip(
                    rng.integers(len(FIRST_NAMES), size=n), rng.integers(len(LAST_NAMES), size=n), strict=True
                )
            ],
            "city": places["city"],
            "state": places["state"],
            "zip": places["zip"],
            "region": places["region"],
            "region_index": places["region"].map({r: i for i, r in enumerate(REGIONS)}).to_numpy(),
            "latitude": places["latitude"],
            "longitude": places["longitude"],
            "acquired": acquired,
            "churned": acquired + lifetime,
            "order_rate": rng.gamma(0.9, 1.0, n),
            "size": rng.lognormal(0, 0.35, n),
            "trade_share": np.where(rng.random(n) < 0.35, 0.85, 0.1),
        }
    )


def _draw_ship_to_places(
    rng: np.random.Generator, customers: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """Ship-to addresses: each customer's own, and for SECOND_SHIP_TO_SHARE of them a second one in another
    state (a branch, a warehouse), as real exports have: sales by state then differ from customers' states."""
    columns = ["city", "state", "zip", "region", "latitude", "longitude"]
    own = customers[columns]
    movers = np.flatnonzero(rng.random(len(customers)) < SECOND_SHIP_TO_SHARE)
    zips = zip_table()
    drawn = zips.iloc[rng.integers(len(zips), size=len(movers))].reset_index(drop=True)
    same_state = drawn["state"].to_numpy() == own["state"].to_numpy()[movers]
    movers = movers[~same_state]  # a second address in the same state would not move any state's sales
    second = drawn.loc[~same_state, columns].reset_index(drop=True)
    second_place = np.full(len(customers), -1)
    second_place[movers] = len(customers) + np.arange(len(movers))
    places = pd.concat([own, second], ignore_index=True)
    places.insert(0, "place", np.arange(len(places)))
    return places, second_place


def _draw_salesmen(
    config: GeneratorConfig, rng: np.random.Generator, customers: pd.DataFrame, days: pd.DatetimeIndex
) -> pd.DataFrame:
    n = config.salesmen
    region_share = customers["region"].value_counts(normalize=True).reindex(REGIONS).fillna(0).to_numpy()
    # At least one salesman per region, the rest in proportion to customers.
    per_region = np.maximum(1, np.round(region_share * (n - len(REGIONS))).astype(int) + 1)
    region = np.repeat(np.arange(len(REGIONS)), per_region)[:n]
    count = len(region)
    hired_during = rng.random(count) < 0.25
    hire_offset = np.where(
        hired_during, _days_into(rng, days, count, margin=30), -rng.integers(60, 3650, count)
    )
    hire_offset[np.unique(region, return_index=True)[1]] = -3650  # each region has a veteran
    start = days[0].date()
    return pd.DataFrame(
        {
            "salesman": np.arange(count),
            "salesman_name": [
                f"{FIRST_NAMES[rng.integers(len(FIRST_NAMES))]} {LAST_NAMES[rng.integers(len(LAST_NAMES))]}"
                for _ in range(count)
            ],
            "region_index": region,
            "region": [REGIONS[r] for r in region],
            "hire_date": [start + timedelta(days=int(o)) for o in hire_offset],
            "hire_offset": hire_offset,
            "skill": rng.lognormal(0, 0.3, count),
            "volatility": rng.uniform(0.05, 0.7, count),
        }
    )


def _draw_distributors(config: GeneratorConfig, rng: np.random.Generator) -> pd.DataFrame:
    places = (
        zip_table()
        .sample(n=config.distributors, replace=False, random_state=int(rng.integers(2**31)))
        .reset_index(drop=True)
    )
    suffix = ("Distribution", "Supply Co.", "Wholesale", "Trading", "Logistics")
    return pd.DataFrame(
        {
            "distributor": np.arange(len(places)),
            "distributor_name": [f"{c} {suffix[rng.integers(len(suffix))]}" for c in places["city"]],
            "city": places["city"],
            "state": places["state"],
            "zip": places["zip"],
            "latitude": places["latitude"],
            "longitude": places["longitude"],
        }
    )


def _assign_accounts(
    rng: np.random.Generator, customers: pd.DataFrame, salesmen: pd.DataFrame, distributors: pd.DataFrame
) -> None:
    """Each customer gets a salesman of its region and its nearest distributor."""
    account = np.empty(len(customers), dtype=np.int64)
    for region_index, members in customers.groupby("region_index").groups.items():
        team = salesmen.index[salesmen["region_index"] == region_index].to_numpy()
        account[members] = rng.choice(team, size=len(members))
    customers["salesman"] = account
    distance = np.hypot(
        customers["latitude"].to_numpy()[:, None] - distributors["latitude"].to_numpy(),
        customers["longitude"].to_numpy()[:, None] - distributors["longitude"].to_numpy(),
    )
    customers["distributor"] = distance.argmin(axis=1)


def _calibrate_order_rate(world: World) -> float:
    """Scale personal order rates so the whole history expects ``config.rows`` order lines."""
    customers = world.customers
    rate = customers["order_rate"].to_numpy()
    region = customers["region_index"].to_numpy()
    expected_orders = sum(
        (rate * world.region_trend[region, day] * _active_customers(world, day)).sum() * world.day_factor[day]
        for day in range(len(world.days))
    )
    newcomers = np.count_nonzero((customers["acquired"] >= 0) & (customers["acquired"] < len(world.days)))
    wanted_orders = max(world.config.rows * ORDERS_PER_LINE - newcomers, 1.0)
    return wanted_orders / max(expected_orders, 1e-9)


def _active_customers(world: World, day: int) -> np.ndarray:
    customers = world.customers
    return (customers["acquired"].to_numpy() <= day) & (day < customers["churned"].to_numpy())


def simulate_days(world: World) -> Iterator[pd.DataFrame]:
    """Yield order lines chunk by chunk (a month of days at a time)."""
    order_no = 0
    n_days = len(world.days)
    for chunk_start in range(0, n_days, world.config.chunk_days):
        frames = []
        for day in range(chunk_start, min(chunk_start + world.config.chunk_days, n_days)):
            lines = _simulate_day(world, day, order_no)
            if lines is not None:
                order_no = int(lines["order_no"].max()) + 1
                frames.append(lines)
        if frames:
            yield pd.concat(frames, ignore_index=True)


def _simulate_day(world: World, day: int, first_order_no: int) -> pd.DataFrame | None:
    buyers = _draw_buyers(world, day)
    if len(buyers) == 0:
        return None
    rng = world.rng
    lines_per_order = 1 + rng.poisson(1.4, len(buyers))
    order_no = np.repeat(first_order_no + np.arange(len(buyers)), lines_per_order)
    customer = np.repeat(buyers, lines_per_order)
    line = (
        np.arange(len(order_no))
        - np.repeat(np.cumsum(lines_per_order) - lines_per_order, lines_per_order)
        + 1
    )
    product = _draw_products_for_lines(world, day, world.customers["region_index"].to_numpy()[customer])
    return _price_lines(world, day, order_no, line, customer, product, lines_per_order)


def _draw_buyers(world: World, day: int) -> np.ndarray:
    """Customers ordering today: a Poisson number from the active ones, plus every newly acquired one."""
    customers = world.customers
    active = _active_customers(world, day)
    region_boost = world.region_trend[customers["region_index"].to_numpy(), day]
    weight = customers["order_rate"].to_numpy() * region_boost * active
    expected = weight.sum() * world.order_rate_scale * world.day_factor[day]
    count = world.rng.poisson(expected)
    regulars = (
        world.rng.choice(len(customers), size=count, p=weight / weight.sum()) if count else np.empty(0, int)
    )
    newcomers = np.flatnonzero(customers["acquired"].to_numpy() == day)
    return np.concatenate([newcomers, regulars])


def _draw_products_for_lines(world: World, day: int, region: np.ndarray) -> np.ndarray:
    products = world.products
    category = products["category_index"].to_numpy()
    promo = world.promo_discount[:, day]
    elasticity_boost = (1 - promo) ** -products["elasticity"].to_numpy()
    weight = (
        products["popularity"].to_numpy()
        * world.product_active[:, day]
        * elasticity_boost
        * world.category_trend[category, day]
    )
    # Weights are normalised within each category, then categories mixed by their (trending) share, so a
    # promotion moves sales within its category more than it grows the whole basket.
    category_mass = np.bincount(category, weights=weight, minlength=len(CATEGORIES))
    share = CATEGORY_SHARE * world.category_trend[:, day]
    p = weight / np.where(category_mass[category] > 0, category_mass[category], 1) * share[category]
    p = p / p.sum()
    return world.rng.choice(len(products), size=len(region), p=p)


def _price_lines(
    world: World,
    day: int,
    order_no: np.ndarray,
    line: np.ndarray,
    customer: np.ndarray,
    product: np.ndarray,
    lines_per_order: np.ndarray,
) -> pd.DataFrame:
    rng = world.rng
    customers, products, salesmen = world.customers, world.products, world.salesmen
    salesman = _salesman_on_duty(world, day, customers["salesman"].to_numpy()[customer])
    trade_order = (
        rng.random(len(lines_per_order))
        < customers["trade_share"].to_numpy()[customer][np.cumsum(lines_per_order) - lines_per_order]
    )
    trade = np.repeat(trade_order, lines_per_order)
    mean_units = (
        products["units_per_line"].to_numpy()[product]
        * customers["size"].to_numpy()[customer]
        * salesmen["skill"].to_numpy()[salesman]
        * world.salesman_noise[salesman, day]
        * (1 + trade)
    )
    quantity = 1 + rng.poisson(np.maximum(mean_units - 1, 0.05))
    discount = np.round(
        world.promo_discount[product, day]
        + TRADE_DISCOUNT * trade
        + BULK_DISCOUNT * (quantity >= BULK_QUANTITY),
        2,
    )
    unit_price = products["list_price"].to_numpy()[product]
    order_time = _order_times(world, day, len(lines_per_order))
    place = np.repeat(
        _ship_to_places(world, customer[np.cumsum(lines_per_order) - lines_per_order]), lines_per_order
    )
    return pd.DataFrame(
        {
            "order_no": order_no,
            "line": line.astype(np.int32),
            "ordered_at": np.repeat(order_time, lines_per_order),
            "customer": customer,
            "product": product,
            "salesman": salesman,
            "distributor": customers["distributor"].to_numpy()[customer],
            "trade": trade,
            "quantity": quantity.astype(np.int32),
            "unit_price": unit_price,
            "discount": discount,
            "revenue": quantity * unit_price * (1 - discount),
            "cost": quantity * products["unit_cost"].to_numpy()[product],
            "place": place,
        }
    )


def _ship_to_places(world: World, order_customer: np.ndarray) -> np.ndarray:
    """Where each order ships: the customer's own address, or for some orders of a customer with a second
    address, that one (all lines of an order ship together)."""
    second = world.second_place[order_customer]
    elsewhere = (second >= 0) & (world.ship_to_rng.random(len(order_customer)) < SECOND_SHIP_TO_ORDERS)
    return np.where(elsewhere, second, order_customer)


def _salesman_on_duty(world: World, day: int, account_salesman: np.ndarray) -> np.ndarray:
    """The account salesman once hired; before that, the region's longest-serving salesman covers."""
    salesmen = world.salesmen
    hired = salesmen["hire_offset"].to_numpy() <= day
    veteran = salesmen.sort_values("hire_offset").groupby("region_index")["salesman"].first()
    cover = veteran.reindex(salesmen["region_index"]).to_numpy()
    return np.where(hired[account_salesman], account_salesman, cover[account_salesman])


def _order_times(world: World, day: int, n: int) -> np.ndarray:
    """Order times of the day by the hourly pattern; on the cutoff's day, never later than the cutoff."""
    weights = world.hour_weights[day]
    hour = world.rng.choice(24, size=n, p=weights / weights.sum())
    seconds_into_hour = np.full(n, 3600)
    if world.days[day].date() == world.cutoff.date():
        cutoff = world.cutoff
        seconds_into_hour[hour == cutoff.hour] = cutoff.minute * 60 + cutoff.second + 1
    seconds = hour * 3600 + world.rng.integers(0, seconds_into_hour)
    return world.days[day].to_datetime64() + seconds.astype("timedelta64[s]")


def _with_progress(
    chunks: Iterator[pd.DataFrame], config: GeneratorConfig, show: bool
) -> Iterator[pd.DataFrame]:
    if not show:
        yield from chunks
        return
    columns = (
        TextColumn("[bold]Generating sales[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("months · {task.fields[lines]:,} lines"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("generate", total=-(-config.days // config.chunk_days), lines=0)
        lines = 0
        for chunk in chunks:
            yield chunk
            lines += len(chunk)
            bar.update(task, advance=1, lines=lines)


def write_dimensions(con: duckdb.DuckDBPyConnection, world: World) -> None:
    insert_frame(
        con,
        world.products,
        """INSERT INTO products SELECT printf('P-%05d', product), product_name, category, subcategory,
                  list_price, unit_cost, launched_on, discontinued_on FROM frame""",
    )
    insert_frame(
        con,
        world.customers,
        f"""INSERT INTO customers (customer_id, customer_name, city, state, zip, region, latitude, longitude,
                                   country)
            SELECT printf('C-%07d', customer), customer_name, city, state, zip, region, latitude, longitude,
                   '{UNITED_STATES}' FROM frame""",
    )
    insert_frame(
        con,
        world.salesmen,
        "INSERT INTO salesmen SELECT printf('S-%04d', salesman), salesman_name, region, hire_date FROM frame",
    )
    insert_frame(
        con,
        world.distributors,
        """INSERT INTO distributors SELECT printf('D-%04d', distributor), distributor_name, city, state, zip,
                  latitude, longitude FROM frame""",
    )


def derive_customer_first_purchase(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """UPDATE customers SET first_purchase = f.first
           FROM (SELECT customer_id, min(ordered_at) AS first FROM order_lines GROUP BY customer_id) f
           WHERE customers.customer_id = f.customer_id"""
    )


def write_goal_plan(con: duckdb.DuckDBPyConnection, world: World) -> None:
    """Monthly targets: actual revenue (projected to a full month for the current one) times a planning
    error of mean +3% and spread 7%, drawn per target so the plan is near but never equal to actuals."""
    last_day = world.days[-1]
    full_month = last_day.days_in_month / last_day.day
    for table, key in (("region_goals", "o.ship_region"), ("salesman_goals", "o.salesman_id")):
        actual = con.execute(
            f"""SELECT date_trunc('month', o.ordered_at)::DATE AS month, {key} AS member,
                       sum(o.revenue) AS revenue
                FROM order_lines o
                GROUP BY ALL ORDER BY month, member"""
        ).df()
        last_month = actual["month"] == actual["month"].max()
        projected = actual["revenue"] * np.where(last_month, full_month, 1.0)
        actual["target"] = np.round(projected * world.rng.normal(1.03, 0.07, len(actual)), -2)
        insert_frame(con, actual, f"INSERT INTO {table} SELECT month, member, target FROM frame")
