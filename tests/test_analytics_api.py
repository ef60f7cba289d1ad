"""The analytics HTTP app (FastAPI TestClient): errors as 4xx JSON, the API key, real-time sales, and rollups
that stay exact through every kind of ingest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from analytics_support import assert_rows, build_warehouse, copy_warehouse, open_engine, sale
from fastapi.testclient import TestClient

from salespulse.analytics import rollups
from salespulse.analytics.engine import AnalyticsEngine
from salespulse.analytics.reports import REGISTRY, run_report
from salespulse.analytics.reports.base import FILTER_PARAMS
from salespulse.analytics.semantic import COMPONENTS, ROLLUPS, Rollup
from salespulse.config import get_settings
from service.analytics_api import create_analytics_app

KEY = "test-key-123"


@pytest.fixture(scope="module")
def source_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_warehouse(tmp_path_factory.mktemp("api"))
    open_engine(path)._con.close()  # the copies start with their rollups built
    return path


@pytest.fixture
def engine(source_warehouse: Path, tmp_path: Path) -> Iterator[AnalyticsEngine]:
    """Each test writes to its own copy of the warehouse."""
    engine = open_engine(copy_warehouse(source_warehouse, tmp_path), compact_after_rows=40)
    yield engine
    engine._con.close()


@pytest.fixture
def client(engine: AnalyticsEngine, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("SALESPULSE_API_KEY", KEY)
    get_settings.cache_clear()
    return TestClient(create_analytics_app(engine))


def warehouse_digest(engine: AnalyticsEngine) -> list[dict]:
    return engine.fetch(
        "SELECT count(*) AS n, sum(revenue) AS revenue, sum(hash(order_id, line, quantity)) AS h "
        "FROM order_lines"
    )


def total(client: TestClient, **spec: Any) -> dict[str, Any]:
    response = client.post("/query", json={"measures": ["revenue", "orders", "units"], **spec})
    assert response.status_code == 200, response.text
    return response.json()["rows"][0]


# --- reading ---


def test_meta_lists_what_can_be_asked(client: TestClient) -> None:
    meta = client.get("/meta").json()
    assert {"revenue", "margin_pct", "goal_attainment_pct", "repeat_customer_rate_pct"} <= {
        m["name"] for m in meta["measures"]
    }
    assert {"category", "zip", "distributor", "customer_segment"} <= {d["name"] for d in meta["dimensions"]}
    assert "order" not in {d["name"] for d in meta["dimensions"]}  # internal
    assert meta["time_dimension"]["grains"] == ["day", "week", "month", "quarter", "year"]
    assert {r["name"] for r in meta["reports"]} == set(REGISTRY)


def test_every_report_is_a_documented_route_with_an_example(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for name, report in REGISTRY.items():
        operation = spec["paths"][f"/reports/{name}"]["get"]
        assert operation["summary"] == report.title and operation["description"]
        example = operation["responses"]["200"]["content"]["application/json"]["example"]
        assert example["report"] == name and example["rows"] and example["columns"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert {p.name for p in report.all_params} <= set(parameters)  # the filters it takes, and no other
        assert {p.name for p in FILTER_PARAMS if p not in report.filter_params}.isdisjoint(parameters)
        assert all(
            parameters[p.name]["schema"].get("examples") for p in report.params if p.example is not None
        )
    assert "examples" in str(spec["components"]["schemas"]["Query"])


def test_big_answers_serialized_by_duckdb_are_the_same_json(
    client: TestClient, engine: AnalyticsEngine
) -> None:
    for name in ("sales-by-zip", "sales-by-category-weekly"):
        over_http = client.get(f"/reports/{name}", params={"region": ["South"]}).json()
        direct = run_report(engine, name, {"region": ["South"]})
        assert over_http["columns"] == direct["columns"] and over_http["params"] == direct["params"]
        assert over_http["rows"] == direct["rows"]  # floats print the same: shortest round-trip both ways
    query = {"measures": ["revenue", "orders"], "dimensions": ["state"], "time_dimension": {"grain": "month"}}
    assert client.post("/query", json=query).json()["rows"] == engine.run_query(query)["rows"]


def test_report_route_answers_like_the_engine(client: TestClient, engine: AnalyticsEngine) -> None:
    response = client.get(
        "/reports/top-states", params={"n": 5, "region": ["West", "East"], "start": "2025-01-01"}
    )
    assert response.status_code == 200
    direct = run_report(engine, "top-states", {"n": 5, "region": ["West", "East"], "start": "2025-01-01"})
    assert response.json()["rows"] == direct["rows"]
    assert len(direct["rows"]) == 5


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"measures": ["revenue", "turnover"]}, "measures[1]", "valid measures are: average_order_value"),
        ({"measures": ["revenue"], "dimensions": ["colour"]}, "dimensions[0]", "valid dimensions are:"),
        ({"measures": ["revenue"], "time_dimension": {"grain": "hourly"}}, "time_dimension.grain", "'day'"),
        (
            {"measures": ["revenue"], "time_dimension": {"date_range": ["2025-05-01", "2025-04-01"]}},
            "time_dimension.date_range",
            "inverted",
        ),
        (
            {"measures": ["revenue"], "filters": [{"member": "region", "operator": "equals"}]},
            "filters[0]",
            "exactly 1",
        ),
        ({"measures": ["goal"], "dimensions": ["channel"]}, "dimensions", "goal plan"),
        ({"measures": ["revenue"], "limit": 0}, "limit", "greater than or equal to 1"),
        ({"measures": "revenue"}, "measures", "valid list"),
        ({"measures": ["revenue"], "sql": "SELECT 1"}, "sql", "Extra inputs"),
    ],
)
def test_bad_queries_get_422_naming_the_field(client: TestClient, body: dict, field: str, words: str) -> None:
    response = client.post("/query", json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["field"] == field and words in p["message"] for p in problems), problems
    assert "Traceback" not in response.text


def test_bad_report_parameters_get_422(client: TestClient) -> None:
    for route, params, field in (
        ("/reports/top-products", {"n": "many"}, "n"),
        ("/reports/top-products", {"limit": 3}, "limit"),
        ("/reports/sales-by-state", {"start": "2025-06-01", "end": "2025-01-01"}, "end"),
        ("/reports/seasonality", {"profile": "minute_of_hour"}, "profile"),
        ("/reports/goal-attainment-by-region", {"product": "P-00001"}, "product"),  # not a filter it takes
    ):
        response = client.get(route, params=params)
        assert response.status_code == 422, (route, response.text)
        assert response.json()["detail"][0]["field"] == field
    assert client.get("/reports/no-such-report").status_code == 404


def test_malformed_json_is_a_422_not_a_500(client: TestClient) -> None:
    response = client.post("/query", content=b'{"measures": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request"


def test_sql_in_a_filter_is_just_a_value(client: TestClient, engine: AnalyticsEngine) -> None:
    before = warehouse_digest(engine)
    for value in ("West'; DROP TABLE order_lines; --", "' OR 1=1 --", 'x") UNION SELECT * FROM customers --'):
        response = client.post(
            "/query",
            json={
                "measures": ["revenue", "orders"],
                "dimensions": ["region"],
                "filters": [{"member": "region", "operator": "in", "values": [value]}],
            },
        )
        # No such region: nothing matches, and a note says so.
        assert response.status_code == 200 and response.json()["rows"] == []
        assert response.json()["notes"][0].startswith(f"filters[0].values: no region {value!r}")
        # A report's filter is just a value too: no such category.
        response = client.get("/reports/sales-by-state", params={"category": value})
        assert response.status_code == 200 and response.json()["rows"] == []
        assert response.json()["notes"][0].startswith(f"category: no category {value!r}")
    assert warehouse_digest(engine) == before


def test_an_unknown_member_matches_nothing_and_a_note_names_the_parameter(client: TestClient) -> None:
    """The OpenAPI document can list no members that imports and sales change: a value the data does not
    have is a valid request that matches nothing, and the note lists the values there are."""
    west = client.get("/reports/sales-by-state", params={"region": ["West"]}).json()
    response = client.get("/reports/sales-by-state", params={"region": ["West", "Atlantis"]})
    assert response.status_code == 200 and response.json()["rows"] == west["rows"] != []
    (note,) = response.json()["notes"]
    assert note.startswith("region: no region 'Atlantis' in the data")
    assert "Central, East, South, West" in note
    response = client.get("/reports/top-products", params={"channel": "fax"})
    assert response.status_code == 422 and response.json()["detail"][0]["field"].startswith("channel")
    ok = client.get("/reports/top-products", params={"channel": "trade", "state": ["CA"], "n": 3})
    assert ok.status_code == 200 and len(ok.json()["rows"]) == 3


def test_members_of_an_ingested_batch_count_from_the_next_request(client: TestClient) -> None:
    route, drones = "/reports/sales-by-state", {"category": "Drones"}
    assert client.get(route, params=drones).json()["notes"][0].startswith("category: no category 'Drones'")
    batch = {
        "lines": [sale("DRONE-1", 1, product_id="P-DRONE")],
        "products": [
            {"product_id": "P-DRONE", "product_name": "Drone", "category": "Drones", "subcategory": "Quad"}
        ],
    }
    response = client.post("/sales", json=batch, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    answer = client.get(route, params=drones)
    assert answer.status_code == 200 and answer.json()["rows"][0]["revenue"] == pytest.approx(90.0)
    assert answer.json()["notes"] == []


# --- real-time sales ---


def test_sales_need_the_api_key(
    client: TestClient, engine: AnalyticsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = warehouse_digest(engine)
    body = {"lines": [sale("RT-1", 1)]}
    assert client.post("/sales", json=body).status_code == 401
    wrong = client.post("/sales", json=body, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 403 and wrong.json()["detail"][0]["field"] == "x-api-key"
    monkeypatch.delenv("SALESPULSE_API_KEY")
    get_settings.cache_clear()
    assert (
        client.post("/sales", json=body, headers={"X-API-Key": KEY}).status_code == 403
    )  # no key configured
    assert warehouse_digest(engine) == before


def test_a_new_sale_is_in_the_next_query_and_resending_changes_nothing(client: TestClient) -> None:
    before = total(client)
    region_before = total(
        client, filters=[{"member": "customer", "operator": "equals", "values": ["C-0000007"]}]
    )
    lines = [
        sale("RT-100", 1),
        sale("RT-100", 2, product_id="P-00011", quantity=3, unit_price=20.0, discount=0),
    ]
    response = client.post("/sales", json={"lines": lines}, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    assert response.json() | {"seconds": 0} == {
        "lines": 2,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "rollups_rebuilt": False,
        "seconds": 0,
        "batches_in_transaction": 1,
    }
    added = 2 * 50.0 * 0.9 + 3 * 20.0
    after = total(client)
    assert after["revenue"] == pytest.approx(before["revenue"] + added, rel=1e-12)
    assert (after["orders"], after["units"]) == (before["orders"] + 1, before["units"] + 5)
    mine = total(client, filters=[{"member": "customer", "operator": "equals", "values": ["C-0000007"]}])
    assert mine["orders"] == region_before["orders"] + 1
    day = total(client, time_dimension={"date_range": ["2025-06-30", "2025-06-30"]})
    again = client.post("/sales", json={"lines": lines}, headers={"X-API-Key": KEY})
    assert again.json()["unchanged"] == 2 and again.json()["inserted"] == 0
    assert total(client) == after
    assert total(client, time_dimension={"date_range": ["2025-06-30", "2025-06-30"]}) == day


def test_a_batch_with_one_bad_line_is_rejected_whole(client: TestClient, engine: AnalyticsEngine) -> None:
    before = warehouse_digest(engine)
    lines = [sale("RT-200", 1), sale("RT-200", 2, quantity=0), sale("RT-201", 1, ordered_at="yesterday")]
    response = client.post("/sales", json={"lines": lines}, headers={"X-API-Key": KEY})
    assert response.status_code == 422
    fields = [p["field"] for p in response.json()["detail"]]
    assert fields == ["lines[1].quantity", "lines[2].ordered_at"]
    duplicate = client.post(
        "/sales", json={"lines": [sale("RT-3", 1), sale("RT-3", 1)]}, headers={"X-API-Key": KEY}
    )
    assert duplicate.status_code == 422 and "lines 0 and 1" in duplicate.json()["detail"][0]["message"]
    wrong_revenue = client.post(
        "/sales", json={"lines": [sale("RT-4", 1, revenue=1.0)]}, headers={"X-API-Key": KEY}
    )
    assert wrong_revenue.status_code == 422 and wrong_revenue.json()["detail"][0]["field"] == "lines[0]"
    assert warehouse_digest(engine) == before


def test_oversized_bodies_and_batches_are_refused(
    client: TestClient, engine: AnalyticsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = warehouse_digest(engine)
    monkeypatch.setenv("SALESPULSE_MAX_BODY_BYTES", "2048")
    get_settings.cache_clear()
    big = {"lines": [sale("RT-5", n) for n in range(1, 40)]}
    response = client.post("/sales", json=big, headers={"X-API-Key": KEY})
    assert response.status_code == 413 and response.json()["error"] == "request too large"
    monkeypatch.delenv("SALESPULSE_MAX_BODY_BYTES")
    get_settings.cache_clear()
    engine.max_batch_lines = 10
    response = client.post("/sales", json=big, headers={"X-API-Key": KEY})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "lines"
    assert warehouse_digest(engine) == before


# --- the rollups stay exact whatever a batch does ---

CHECKS = [
    {"measures": ["orders", "revenue"], "dimensions": ["state"]},
    {"measures": ["orders"], "dimensions": ["region"], "time_dimension": {"grain": "month"}},
    {
        "measures": ["revenue", "units"],
        "dimensions": ["category", "subcategory", "channel"],
        "time_dimension": {"grain": "day", "date_range": ["2025-06-01", "2025-07-31"]},
    },
    {
        "measures": ["revenue", "units", "profit", "orders"],
        "dimensions": ["category", "region"],
        "time_dimension": {"grain": "day", "date_range": ["2025-06-01", "2025-07-31"]},
    },
    {
        "measures": ["revenue", "orders", "customers", "purchase_days", "first_sale", "last_sale"],
        "dimensions": ["customer"],
    },
    {"measures": ["revenue", "orders"], "dimensions": ["zip", "state"], "time_dimension": {"grain": "month"}},
    {
        "measures": ["revenue", "orders"],
        "dimensions": ["salesman", "channel"],
        "time_dimension": {"grain": "week"},
    },
    {"measures": ["revenue", "units"], "dimensions": ["distributor", "product"]},
    {"measures": ["revenue", "orders"], "dimensions": ["customer_segment"]},
]


def assert_rollups_exact(engine: AnalyticsEngine) -> None:
    for spec in CHECKS:
        query = {"limit": 50_000, **spec}
        fast, base = engine.run_query(query), engine.run_query(query, use_rollups=False)
        keys = (["period"] if "time_dimension" in spec else []) + spec["dimensions"]
        frame = pd.DataFrame(base["rows"])
        assert_rows(fast["rows"], frame, keys=keys, columns=[c for c in frame.columns if c not in keys])
    # As reads see each rollup (with the lines not folded yet), then the table itself once they are folded.
    assert_tables_equal_a_fresh_build(engine, lambda rollup: rollups.with_unfolded(rollup))
    engine.fold()
    assert_tables_equal_a_fresh_build(engine, lambda rollup: rollup.name)


def assert_tables_equal_a_fresh_build(engine: AnalyticsEngine, relation: Callable[[Rollup], str]) -> None:
    with engine.cursor() as con:
        for rollup in ROLLUPS:  # folded, each rollup equals a fresh build
            merged = ", ".join(
                f"round({c}, 4)" if c in ("revenue", "profit", "costed_revenue") else c
                for c in rollup.components
            )
            folded = (
                f"SELECT {', '.join(rollup.key)}, "
                + ", ".join(f"{COMPONENTS[c].merge}({c}) AS {c}" for c in rollup.components)
                + f" FROM {relation(rollup)} GROUP BY ALL"
            )
            fresh = rollups.rollup_select(rollup)
            keys = ", ".join(rollup.key)
            (difference,) = con.execute(
                f"SELECT count(*) FROM ((SELECT {keys}, {merged} FROM ({folded}) EXCEPT "
                f"SELECT {keys}, {merged} FROM ({fresh})) UNION ALL (SELECT {keys}, {merged} FROM ({fresh}) "
                f"EXCEPT SELECT {keys}, {merged} FROM ({folded})))"
            ).fetchall()[0]
            assert difference == 0, rollup.name


def test_rollups_stay_exact_through_every_kind_of_batch(client: TestClient, engine: AnalyticsEngine) -> None:
    def post(lines: list[dict], **extra: Any) -> dict:
        response = client.post("/sales", json={"lines": lines, **extra}, headers={"X-API-Key": KEY})
        assert response.status_code == 200, response.text
        return response.json()

    # new orders, of a known and of a new customer (with his address), on a new day and a past one
    post(
        [
            sale("RT-1", 1),
            sale("RT-1", 2, product_id="P-00020"),
            sale("RT-2", 1, ordered_at="2025-07-02T09:00"),
        ]
    )
    post(
        [sale("RT-3", 1, customer_id="C-NEW-1", distributor_id="D-0001", ordered_at="2024-11-05T10:00")],
        customers=[{"customer_id": "C-NEW-1", "state": "OR", "zip": "97201", "city": "Portland"}],
    )
    # a new line added to an order stored long ago, and a line of it replaced with other values
    stored = engine.fetch(
        "SELECT * FROM order_lines "
        "WHERE order_id = (SELECT min(order_id) FROM order_lines WHERE order_id LIKE 'SO-%')"
    )
    old = stored[0]
    moved = {k: old[k] for k in ("order_id", "line", "customer_id", "quantity", "unit_price", "discount")}
    result = post(
        [
            {**moved, "ordered_at": "2024-12-24T12:00:00", "product_id": "P-00030", "salesman_id": "S-0002"},
            sale(old["order_id"], 99, customer_id=old["customer_id"], ordered_at=f"{old['ordered_at']}"),
        ]
    )
    assert (result["inserted"], result["updated"]) == (1, 1)
    assert_rollups_exact(engine)
    # one order over two days, with and without a distributor: orders can no longer be added up over days
    # or distributors, and the router stops doing so
    post([sale("RT-MIX", 1, distributor_id="D-0002"), sale("RT-MIX", 2, ordered_at="2025-07-03T10:00:00")])
    assert {"day", "distributor_id"}.isdisjoint(engine.state.uniform)
    assert_rollups_exact(engine)
    # a sale dated before a customer's first purchase: his first purchase, and so his rows, move
    backdated = post([sale("RT-OLD", 1, customer_id="C-0000008", ordered_at="2023-01-05T10:00:00")])
    assert not backdated["rollups_rebuilt"]
    assert_rollups_exact(engine)
    # the same again: nothing changes
    assert post([sale("RT-1", 1), sale("RT-1", 2, product_id="P-00020")])["unchanged"] == 2
    # a customer moves to another state: his stored lines keep where they shipped (no rollup row moves), and
    # his new line without an address of its own ships to the new one
    shipped_before = engine.fetch(
        "SELECT order_id, line, ship_state FROM order_lines WHERE customer_id = 'C-0000011' ORDER BY ALL"
    )
    moved_customer = post(
        [sale("RT-9", 1, customer_id="C-0000011")],
        customers=[{"customer_id": "C-0000011", "state": "TX", "zip": "73301", "city": "Austin"}],
    )
    assert not moved_customer["rollups_rebuilt"]
    shipped_after = engine.fetch(
        "SELECT order_id, line, ship_state FROM order_lines WHERE customer_id = 'C-0000011' ORDER BY ALL"
    )
    assert [row for row in shipped_after if row["order_id"] != "RT-9"] == shipped_before
    assert [row["ship_state"] for row in shipped_after if row["order_id"] == "RT-9"] == ["TX"]
    assert_rollups_exact(engine)
    # a product first seen on a line (category 'Unknown'), then described: its rows move to the category
    post([sale("RT-P1", 1, product_id="P-NEW-1")])
    described = post(
        [sale("RT-P2", 1, product_id="P-NEW-1")],
        products=[
            {
                "product_id": "P-NEW-1",
                "product_name": "Phone X",
                "category": "Technology",
                "subcategory": "Phones",
            }
        ],
    )
    assert described["rollups_rebuilt"]
    assert_rollups_exact(engine)
    for batch in range(12):
        post([sale(f"RT-B{batch}", n, product_id=f"P-{n:05d}") for n in range(1, 6)])
    assert_rollups_exact(engine)
    with engine.cursor() as con:
        before = sum(con.execute(f"SELECT count(*) FROM {r.name}").fetchall()[0][0] for r in ROLLUPS)
        engine.compact()  # fold the appended delta rows: fewer rows, the same answers
        after = sum(con.execute(f"SELECT count(*) FROM {r.name}").fetchall()[0][0] for r in ROLLUPS)
    assert after < before
    assert_rollups_exact(engine)


def test_random_batches_keep_the_rollups_exact(engine: AnalyticsEngine) -> None:
    """A seeded mix of what a live feed sends: new orders of known and new customers, several orders of one
    customer on one day, lines added to stored orders, replaced lines (changed, unchanged, or given to
    another customer) and a backdated sale. After each few batches every rollup equals a fresh build; at the
    end the kept fingerprint matches the data and every customer's first purchase is his earliest line."""
    import random

    from salespulse.analytics.ingest import SalesBatch

    rng = random.Random(20261121)
    customers = [r["customer_id"] for r in engine.fetch("SELECT customer_id FROM customers ORDER BY 1")]
    products = [r["product_id"] for r in engine.fetch("SELECT product_id FROM products ORDER BY 1")]
    recent = engine.fetch(
        "SELECT order_id, line, customer_id, strftime(ordered_at, '%Y-%m-%dT%H:%M:%S') AS at "
        "FROM order_lines WHERE ordered_at >= TIMESTAMP '2025-06-25' ORDER BY order_id, line"
    )

    def new_line(order: str, line: int, customer: str, at: str) -> dict[str, Any]:
        return sale(
            order, line, customer_id=customer, ordered_at=at, product_id=rng.choice(products),
            quantity=rng.randint(1, 5),
        )  # fmt: skip

    sent: list[dict[str, Any]] = []
    for batch in range(20):
        lines: list[dict[str, Any]] = []
        for order in range(rng.randint(1, 6)):  # new orders, often of the same few customers and days
            customer = rng.choice([*customers[:30], f"C-RAND-{batch % 4}"])
            at = f"2025-06-{rng.randint(27, 30)}T{rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}:00"
            lines += [new_line(f"RND-{batch}-{order}", n, customer, at) for n in range(1, rng.randint(2, 4))]
        stored = rng.choice(recent)
        same = {"customer_id": stored["customer_id"], "ordered_at": stored["at"]}
        kind = rng.choice(["add", "replace", "move", "resend", "backdate"])
        if kind == "add":  # another line on a stored order
            lines.append(sale(stored["order_id"], 50 + batch, **same))
        elif kind == "replace":  # a stored line given another product and quantity
            changes = {"product_id": rng.choice(products), "quantity": rng.randint(6, 9)}
            lines.append(sale(stored["order_id"], stored["line"], **same, **changes))
        elif kind == "move":  # a stored line given to another customer (first purchases of both may move)
            lines.append(
                sale(stored["order_id"], stored["line"], **same | {"customer_id": rng.choice(customers)})
            )
        elif kind == "backdate":  # earlier than the customer's first purchase
            lines.append(new_line(f"RND-OLD-{batch}", 1, rng.choice(customers), "2023-02-01T09:00:00"))
        elif sent:  # a line sent before, unchanged
            lines.append(sent[-1])
        engine.ingest(SalesBatch.model_validate({"lines": lines}))
        sent = lines
        if batch % 5 == 4:
            assert_rollups_exact(engine)
    assert engine.refresh() is False  # the fingerprint kept batch by batch is the data's
    stale = engine.fetch(
        "SELECT c.customer_id FROM customers c LEFT JOIN "
        "(SELECT customer_id, min(ordered_at) AS first FROM order_lines GROUP BY 1) o USING (customer_id) "
        "WHERE c.first_purchase IS DISTINCT FROM o.first"
    )
    assert stale == []


def test_a_restart_keeps_the_rollups_and_an_outside_import_rebuilds_them(
    engine: AnalyticsEngine, client: TestClient
) -> None:
    client.post("/sales", json={"lines": [sale("RT-7", 1)]}, headers={"X-API-Key": KEY})
    assert engine.refresh() is False  # the fingerprint kept per batch matches the data
    with engine.cursor() as con:  # another door writes while the engine is not looking
        con.execute("UPDATE order_lines SET quantity = quantity + 1 WHERE order_id = 'RT-7'")
        con.execute("UPDATE customers SET region = 'East' WHERE customer_id = 'C-0000012'")
    assert engine.refresh() is True
    with engine.cursor() as con:
        con.execute("UPDATE products SET category = 'Garden' WHERE product_id = 'P-00010'")
    assert engine.refresh() is True
    assert_rollups_exact(engine)


def test_queries_run_while_a_batch_is_written(engine: AnalyticsEngine) -> None:
    """Reads on their own cursors see a whole batch or none of it, never half."""
    import threading

    from salespulse.analytics.ingest import SalesBatch

    before = engine.run_query({"measures": ["lines"]})["rows"][0]["lines"]
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(engine.run_query({"measures": ["lines"]})["rows"][0]["lines"])

    reader = threading.Thread(target=read)
    reader.start()
    for batch in range(5):
        engine.ingest(SalesBatch.model_validate({"lines": [sale(f"RT-C{batch}", n) for n in range(1, 21)]}))
    stop.set()
    reader.join()
    assert seen and all((n - before) % 20 == 0 for n in seen)
    assert engine.run_query({"measures": ["lines"]})["rows"][0]["lines"] == before + 100


def test_concurrent_batches_are_each_written_whole(engine: AnalyticsEngine) -> None:
    """Batches sent at once may share a transaction (group commit); each is still counted and exact."""
    import threading

    from salespulse.analytics.ingest import SalesBatch

    before = engine.run_query({"measures": ["lines", "revenue"]})["rows"][0]
    results = []

    def send(sender: int) -> None:
        for batch in range(3):
            lines = [sale(f"RT-G{sender}-{batch}", n, customer_id=f"C-{n:07d}") for n in range(1, 51)]
            results.append(engine.ingest(SalesBatch.model_validate({"lines": lines})))

    threads = [threading.Thread(target=send, args=(sender,)) for sender in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 18 and all(r.inserted == 50 for r in results)
    after = engine.run_query({"measures": ["lines", "revenue"]})["rows"][0]
    assert after["lines"] == before["lines"] + 900
    assert after["revenue"] == pytest.approx(before["revenue"] + 900 * 90.0, rel=1e-12)
    assert_rollups_exact(engine)


def test_a_pause_in_ingest_folds_the_rollups_and_checkpoints(engine: AnalyticsEngine, tmp_path: Path) -> None:
    """Below the inline threshold, delta rows wait for a pause; then the housekeeper folds them and writes
    the log into the file, and the answers stay the same."""
    import time

    from salespulse.analytics.ingest import SalesBatch

    engine.compact_after_rows = 1_000_000
    wal = tmp_path / "copy.duckdb.wal"  # the engine fixture's warehouse
    with engine.cursor() as con:
        con.execute("CHECKPOINT")
    rows_before = sum(engine.state.rollups.values())
    for batch in range(4):
        engine.ingest(SalesBatch.model_validate({"lines": [sale(f"RT-H{batch}", n) for n in range(1, 6)]}))
    assert engine._unfolded_lines == 20 and sum(engine.state.rollups.values()) == rows_before
    engine.fold()  # what the folder does a moment after a batch
    grown = sum(engine.state.rollups.values())
    assert grown > rows_before and wal.exists() and wal.stat().st_size > 0
    engine.start_housekeeping(idle_seconds=0.2)
    try:
        deadline = time.monotonic() + 30
        while (engine._appended or engine._unsaved) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop_housekeeping()
    assert not engine._appended and not engine._unsaved and not engine._unfolded_lines
    assert sum(engine.state.rollups.values()) < grown
    assert not wal.exists() or wal.stat().st_size == 0
    assert_rollups_exact(engine)


def test_a_server_killed_while_ingesting_keeps_every_acknowledged_batch_whole(
    source_warehouse: Path, tmp_path: Path
) -> None:
    """SIGKILL the real analytics server while four senders stream batches into it. On restart every batch
    it acknowledged is there, no batch is there in part, and the rollups agree with the order lines."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    import httpx
    from service_support import REPO_ROOT, free_port

    warehouse = copy_warehouse(source_warehouse, tmp_path)
    port = free_port()
    env = dict(os.environ, SALESPULSE_WAREHOUSE_PATH=str(warehouse), SALESPULSE_API_KEY=KEY)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.analytics_api:create_analytics_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO_ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/meta", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        acknowledged: list[str] = []
        stop = threading.Event()

        def send(sender: int) -> None:
            with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": KEY}) as client:
                for batch in range(1_000):
                    if stop.is_set():
                        return
                    tag = f"K{sender}x{batch}"
                    lines = [sale(f"{tag}-{n // 5}", n % 5 + 1, customer_id=f"C-{n:07d}") for n in range(50)]
                    try:
                        response = client.post("/sales", json={"lines": lines})
                    except httpx.HTTPError:
                        return  # the server is gone
                    assert response.status_code == 200, response.text
                    acknowledged.append(tag)

        senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for thread in senders:
            thread.start()
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(server.pid, signal.SIGKILL)  # mid-stream: some batch is being written
        stop.set()
        for thread in senders:
            thread.join()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    assert len(acknowledged) >= 40
    engine = open_engine(warehouse)  # replays the write-ahead log; rebuilds the rollups if they lag
    try:
        stored = {
            row["tag"]: row["lines"]
            for row in engine.fetch(
                "SELECT split_part(order_id, '-', 1) AS tag, count(*) AS lines FROM order_lines "
                "WHERE order_id LIKE 'K%x%' GROUP BY 1"
            )
        }
        assert set(acknowledged) <= set(stored)
        assert set(stored.values()) == {50}, "a batch was stored in part"
        assert_rollups_exact(engine)
    finally:
        engine._con.close()


def test_the_app_can_be_given_its_engine_after_it_is_created(engine: AnalyticsEngine) -> None:
    """As the BentoML service does: the app exists at import, the engine comes with the service."""
    app = create_analytics_app()
    client = TestClient(app)  # no lifespan: a mounted app's does not run either
    assert client.get("/meta").status_code == 503
    example = client.get("/openapi.json").json()["paths"]["/reports/sales-by-zip"]["get"]["responses"]["200"]
    assert example["content"]["application/json"]["example"]["rows"][0]["zip"] == "94105"
    app.state.engine = engine
    assert client.get("/reports/top-states", params={"n": 2}).json()["rows"][0]["rank"] == 1


def test_a_query_of_goal_measures_alone_is_answered(client: TestClient, engine: AnalyticsEngine) -> None:
    # Only plan-side measures and no split left the facts side with nothing to select (it was a 500).
    response = client.post("/query", json={"measures": ["goal", "goal_to_date"]})
    assert response.status_code == 200, response.text
    (row,) = response.json()["rows"]
    with engine.cursor() as con:
        (planned,) = con.execute("SELECT sum(revenue_target) FROM region_goals").fetchone()
    assert row["goal"] == pytest.approx(planned)
    assert 0 < row["goal_to_date"] <= row["goal"]


def test_the_customer_models_inputs_are_kept_until_the_next_ingest(engine: AnalyticsEngine) -> None:
    """The model's purchase summary (a group-by of every order line by customer and day) is computed once
    per warehouse state: the same report again reuses it, and a sale ingested since moves the answer."""
    from salespulse.analytics.ingest import SalesBatch
    from salespulse.modeling.customer_value import (
        BgNbdParameters,
        CustomerValueParameters,
        GammaGammaParameters,
    )

    engine.use_customer_model(
        CustomerValueParameters(BgNbdParameters(0.8, 40.0, 0.6, 4.0), GammaGammaParameters(4.0, 3.5, 600.0))
    )
    params = {"n": 5_000}
    first = run_report(engine, "customer-lifetime-value", params)
    assert first["summary"]["method"].startswith("customer-value model")
    kept = len(engine._frames[1])
    again = run_report(engine, "customer-lifetime-value", params)
    assert again["rows"] == first["rows"] and len(engine._frames[1]) == kept  # answered from the kept frame
    customer = first["rows"][-1]["customer"]  # the least valuable: a big new purchase moves him up
    before = {r["customer"]: r["lifetime_value"] for r in first["rows"]}[customer]
    big = sale("CV-1", 1, customer_id=customer, unit_price=9e3)
    engine.ingest(SalesBatch.model_validate({"lines": [big]}))
    after = run_report(engine, "customer-lifetime-value", params)
    assert {r["customer"]: r["lifetime_value"] for r in after["rows"]}[customer] > before


# --- deferred folds: new orders wait in agg_unfolded, reads include them, a fold empties it ---


def ingest_lines(engine: AnalyticsEngine, lines: list[dict[str, Any]], **extra: Any) -> None:
    from salespulse.analytics.ingest import SalesBatch

    engine.ingest(SalesBatch.model_validate({"lines": lines, **extra}))


def test_new_orders_wait_unfolded_and_every_read_includes_them(engine: AnalyticsEngine) -> None:
    rows_before = dict(engine.state.rollups)
    revenue_before = total_revenue(engine)
    ingest_lines(engine, [sale("RT-W1", 1), sale("RT-W1", 2), sale("RT-W2", 1, customer_id="C-NEW-W")])
    assert engine._unfolded_lines == 3 and engine.state.rollups == rows_before  # no rollup row written yet
    assert engine.state.relations  # the compiler reads the rollups with their unfolded lines
    assert total_revenue(engine) == pytest.approx(revenue_before + 3 * 90.0)
    assert_rollups_exact(engine)  # as read before the fold, and as stored after it
    assert engine._unfolded_lines == 0 and not engine.state.relations
    assert total_revenue(engine) == pytest.approx(revenue_before + 3 * 90.0)


def total_revenue(engine: AnalyticsEngine) -> float:
    rows = engine.run_query({"measures": ["revenue"], "dimensions": ["region"]})["rows"]
    return sum(row["revenue"] for row in rows)


def test_a_batch_that_cannot_wait_folds_the_waiting_lines_first(engine: AnalyticsEngine) -> None:
    """A line added to a waiting order, a replaced line, a first purchase moved earlier, a described
    customer: each such batch is written the classic way, once the waiting lines are folded, and every
    read stays exact."""
    moved = {"customer_id": "C-0000011", "state": "TX", "zip": "73301", "city": "Austin"}
    cases: list[tuple[list[dict[str, Any]], dict[str, Any]]] = [
        ([sale("RT-X0", 2)], {}),  # completes the order that waits
        ([sale("RT-X0", 1, quantity=5)], {}),  # replaces a stored line
        ([sale("RT-X2", 1, customer_id="C-0000008", ordered_at="2023-01-05T10:00:00")], {}),
        ([sale("RT-X3", 1, customer_id="C-0000011")], {"customers": [moved]}),
    ]
    for number, (lines, extra) in enumerate(cases):
        ingest_lines(engine, [sale(f"RT-X{number}", 1)] if number == 0 else [sale(f"RT-W{number}", 1)])
        assert engine._unfolded_lines == 1
        ingest_lines(engine, lines, **extra)
        assert engine._unfolded_lines == 0, lines
        assert_rollups_exact(engine)


def test_every_snapshot_agrees_with_the_order_lines_while_folds_race_the_writer(
    engine: AnalyticsEngine,
) -> None:
    """A writer streams new orders (the same customers again on the same day, new customers, several
    days) while the folder folds every few batches, and a reader checks, each time in one snapshot, that
    every rollup as read (with its unfolded lines) adds up to what the order lines hold: lines, revenue,
    orders, customers per month and purchase days."""
    import threading

    engine.fold_after_seconds = 0.05
    engine.start_housekeeping(idle_seconds=60)
    stop = threading.Event()
    checks: list[int] = []
    failures: list[str] = []

    def read() -> None:
        with engine.cursor() as con:
            while not stop.is_set():
                con.begin()
                try:
                    expected = con.execute(TRUTH).fetchall()[0]
                    for rollup in ROLLUPS:
                        got = con.execute(rollup_totals(rollup)).fetchall()[0]
                        want = [expected[i] for i in totals_wanted(rollup)]
                        if list(got) != pytest.approx(want, rel=1e-12):
                            failures.append(f"{rollup.name}: {got} != {want}")
                finally:
                    con.rollback()
                checks.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for batch in range(40):
            customer = f"C-{batch % 7 + 1:07d}" if batch % 3 else f"C-RACE-{batch}"
            day = f"2025-07-{batch % 4 + 10:02d}T{batch % 9 + 8:02d}:00:00"
            ingest_lines(
                engine,
                [
                    sale(f"RT-R{batch}-{o}", n, customer_id=customer, ordered_at=day)
                    for o in range(2)
                    for n in (1, 2)
                ],
            )
    finally:
        stop.set()
        reader.join()
        engine.stop_housekeeping()
    assert not failures, failures[:5]
    assert len(checks) >= 5
    assert_rollups_exact(engine)


TRUTH = """
    SELECT count(*), sum(revenue), count(DISTINCT order_id),
        (SELECT count(DISTINCT (customer_id, date_trunc('month', ordered_at))) FROM order_lines),
        (SELECT count(DISTINCT (customer_id, CAST(ordered_at AS DATE))) FROM order_lines)
    FROM order_lines
"""


def totals_wanted(rollup: Rollup) -> list[int]:
    """Which of TRUTH's columns a rollup's totals answer (see rollup_totals)."""
    wanted = [0, 1]
    if rollup.fields == ("customer_id",):  # an order has one customer: its orders add up
        wanted.append(2)
    if "customers" in rollup.components and "region" not in rollup.fields:
        wanted.append(3)
    if "purchase_days" in rollup.components:
        wanted.append(4)
    return wanted


def rollup_totals(rollup: Rollup) -> str:
    columns = ["sum(lines)", "sum(revenue)"]
    if rollup.fields == ("customer_id",):
        columns.append("sum(orders)")
    if "customers" in rollup.components and "region" not in rollup.fields:
        columns.append("sum(customers)")
    if "purchase_days" in rollup.components:
        columns.append("sum(purchase_days)")
    return f"SELECT {', '.join(columns)} FROM {rollups.with_unfolded(rollup)} r"


def test_lines_left_unfolded_by_a_stop_are_read_and_folded_after_a_restart(
    source_warehouse: Path, tmp_path: Path
) -> None:
    path = copy_warehouse(source_warehouse, tmp_path)
    engine = open_engine(path)
    ingest_lines(engine, [sale("RT-S1", 1), sale("RT-S2", 1, customer_id="C-NEW-S")])
    assert engine._unfolded_lines == 2
    engine._con.close()  # as a killed process leaves it: the lines committed, not folded
    engine = open_engine(path)
    try:
        assert engine._unfolded_lines == 2 and engine.state.relations  # kept, no rebuild
        assert not engine.refresh()
        assert_rollups_exact(engine)
    finally:
        engine._con.close()
