"""Sales: by category over time, totals by geography, distributor and product, top and bottom lists.

Every report here is one query of the semantic layer (a preset); ranks and shares are a step over its rows.
"""

from __future__ import annotations

from salespulse.analytics.reports.base import (
    BY_REVENUE,
    TOP_N,
    preset,
    with_rank,
    with_rank_and_share,
)

SALES = ["revenue", "units"]
SECTION_CATEGORY = "Sales by category"

for _grain in ("day", "week", "month", "quarter"):
    _label = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly"}[_grain]
    preset(
        f"sales-by-category-{_label}",
        f"Sales by category, {_label}",
        SECTION_CATEGORY,
        f"Revenue and units of each product category per {_grain}.",
        lambda ctx, g=_grain: {"measures": SALES, "dimensions": ["category"], "time_dimension": {"grain": g}},
    )


# --- totals by geography, distributor and product; top and bottom lists ---

SECTION_TOTALS = "Sales totals"
GEO = ["revenue", "units", "orders"]
DISTRIBUTOR_SET = {"member": "distributor", "operator": "set"}

for _name, _title, _dims, _order in (
    ("sales-by-country", "Total sales by country", ["country"], BY_REVENUE),
    ("sales-by-region", "Total sales by region", ["region"], BY_REVENUE),
    ("sales-by-city", "Total sales by city", ["city"], BY_REVENUE),
    ("sales-by-zip", "Total sales by zip code", ["zip"], BY_REVENUE),
    ("sales-by-state", "Total sales by state", ["state"], BY_REVENUE),
    (
        "sales-by-state-zip",
        "Total sales by state and zip code",
        ["state", "zip"],
        [{"member": "state"}, {"member": "revenue", "direction": "desc"}],
    ),
    ("sales-by-product", "Total sales by product", ["product", "category"], BY_REVENUE),
):
    preset(
        _name,
        _title,
        SECTION_TOTALS,
        f"Revenue, units and orders by {' and '.join(_dims)}"
        + (" (the order line's ship-to)." if "product" not in _dims else "."),
        lambda ctx, d=_dims, o=_order: {
            "measures": SALES if "product" in d else GEO,
            "dimensions": d,
            "order": o,
        },
    )

for _name, _title, _dims, _order in (
    ("sales-by-distributor", "Total sales by distributor", ["distributor"], BY_REVENUE),
    (
        "distributor-sales-by-state",
        "Distributor sales by state",
        ["distributor", "state"],
        [{"member": "distributor"}, {"member": "revenue", "direction": "desc"}],
    ),
    (
        "distributor-sales-by-product",
        "Distributor sales by product",
        ["distributor", "product"],
        [{"member": "distributor"}, {"member": "revenue", "direction": "desc"}],
    ),
):
    preset(
        _name,
        _title,
        SECTION_TOTALS,
        f"Trade-channel revenue and units by {' and '.join(_dims)} (the state is the line's ship-to).",
        lambda ctx, d=_dims, o=_order: {
            "measures": SALES,
            "dimensions": d,
            "order": o,
            "filters": [DISTRIBUTOR_SET],
        },
    )

preset(
    "distributor-ranking",
    "Distributors by revenue",
    SECTION_TOTALS,
    "Distributors ranked by revenue, with their share of trade revenue.",
    lambda ctx: {
        "measures": ["revenue", "units", "orders"],
        "dimensions": ["distributor"],
        "order": BY_REVENUE,
        "filters": [DISTRIBUTOR_SET],
    },
    post=with_rank_and_share,
    columns={"rank": "integer", "share_pct": "percent"},
)

for _entity, _dims, _measures in (
    ("products", ["product"], ["revenue", "units"]),
    ("states", ["state"], ["revenue", "units", "orders"]),
    ("zips", ["zip"], ["revenue", "units", "orders"]),
    ("customers", ["customer"], ["revenue", "orders"]),
    ("salesmen", ["salesman"], ["revenue", "orders"]),
):
    for _direction in ("top", "bottom"):
        preset(
            f"{_direction}-{_entity}",
            f"{_direction.title()} {_entity} by revenue",
            SECTION_TOTALS,
            f"The n {_entity} with the {'highest' if _direction == 'top' else 'lowest'} revenue "
            "(among those with sales in the period).",
            lambda ctx, d=_dims, m=_measures, desc=_direction == "top": {
                "measures": m,
                "dimensions": d,
                "order": [{"member": "revenue", "direction": "desc" if desc else "asc"}],
                "filters": [{"member": d[0], "operator": "set"}],
                "limit": ctx["n"],
            },
            params=(TOP_N,),
            post=with_rank,
            columns={"rank": "integer"},
        )
