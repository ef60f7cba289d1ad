"""What can be asked: the semantic layer and the reports, described for GET /meta and the OpenAPI examples."""

from __future__ import annotations

from typing import Any

from salespulse.analytics.compiler import Compiler, WarehouseState, goal_dimensions
from salespulse.analytics.query import INTERNAL, LIMITS, TIME_OUTPUT, Query
from salespulse.analytics.reports import REGISTRY, Report, ReportContext, params_model
from salespulse.analytics.semantic import (
    DATA_FLAG_MESSAGES,
    DIMENSIONS,
    GOAL_PLANS,
    MEASURES,
    META_NOTES,
    PUBLIC_DIMENSIONS,
    RFM_SEGMENT_RULES,
    CompareTo,
    Grain,
    Operator,
)

EXAMPLE_VALUES: dict[str, Any] = {
    "currency": 125_430.5,
    "number": 1.25,
    "integer": 42,
    "percent": 12.5,
    "date": "2025-06-01",
    "text": "…",
    "boolean": True,
    # Each dimension's declared example, then the columns of reports that are no dimension.
    **{name: d.example for name, d in DIMENSIONS.items() if d.example is not None},
    "goal_basis": "pro-rated: 12 of 27 selling days",
    "product_name": "Phones Pro 501",
    "customer_name": "Mary Smith",
    "salesman_name": "James Brown",
    "distributor_name": "Fresno Wholesale",
    "segment": "Champions",
    "class": "A",
    "idle": "60+ days",
    "latitude": 37.79,
    "longitude": -122.4,
    TIME_OUTPUT: "2025-06-01",
}


def _unavailable(needs: tuple[str, ...] | str | None, state: WarehouseState) -> str | None:
    flags = (needs,) if isinstance(needs, str) else needs or ()
    missing = [DATA_FLAG_MESSAGES[f] for f in flags if f not in state.flags]
    return "; ".join(missing) or None


def describe(state: WarehouseState) -> dict[str, Any]:
    """Everything that can be asked of the warehouse in ``state`` (the engine's): GET /meta."""
    return {
        "measures": [
            {
                "name": m.name,
                "format": m.format,
                "description": m.description,
                "unavailable": _unavailable(m.needs, state),
            }
            for m in MEASURES.values()
        ],
        "dimensions": [
            {
                "name": d.name,
                "type": d.type,
                "description": d.description,
                "label": d.label,
                "members": list(d.values) if d.values else None,
                "report_filter": d.filter,
                "unavailable": _unavailable(d.needs, state),
            }
            for d in PUBLIC_DIMENSIONS.values()
        ],
        "time_dimension": {"name": "ordered_at", "grains": [g.value for g in Grain], "output": TIME_OUTPUT},
        "filter_operators": [o.value for o in Operator],
        "compare": [c.value for c in CompareTo],
        "limits": {
            "max_rows": LIMITS.max_rows,
            "max_filter_values": LIMITS.max_values,
            "max_members": LIMITS.max_members,
        },
        "customer_segments": [{"segment": n, "rule": r, "meaning": m} for n, r, m in RFM_SEGMENT_RULES],
        # Goal measures come from one plan at a time: the dimensions each can be split and filtered by.
        "goal_plans": [
            {"level": plan.level, "table": plan.table, "dimensions": goal_dimensions(plan)}
            for plan in GOAL_PLANS.values()
        ],
        "data": {
            "first_day": state.bounds[0].isoformat() if state.bounds else None,
            "last_day": state.bounds[1].isoformat() if state.bounds else None,
            "has": sorted(state.flags),
        },
        "reports": [describe_report(r) for r in REGISTRY.values()],
        "notes": META_NOTES,
    }


def describe_report(report: Report) -> dict[str, Any]:
    return {
        "name": report.name,
        "route": f"/reports/{report.name}",
        "title": report.title,
        "section": report.section,
        "description": report.description,
        "params": [
            {
                "name": p.name,
                "type": _type_name(p.type),
                "default": _plain(p.default),
                "description": p.description,
                "example": _plain(p.example),
            }
            for p in report.all_params
        ],
    }


def report_columns(report: Report) -> dict[str, str]:
    """The output columns of a report and their formats, without data (for documentation): a preset's come
    from compiling its query with the default parameters, the others' are declared."""
    if report.template is None:
        return dict(report.columns)
    spec = report.template(ReportContext(None, report, params_model(report)()))  # type: ignore[arg-type]
    query = Query.model_validate(spec, context=INTERNAL)
    everything = WarehouseState(flags=frozenset(DATA_FLAG_MESSAGES))
    columns = {c.name: c.format for c in Compiler(everything, use_rollups=False).compile(query).columns}
    return {**columns, **report.columns}


def example_response(report: Report) -> dict[str, Any]:
    columns = report_columns(report)
    row = {name: EXAMPLE_VALUES.get(name, EXAMPLE_VALUES.get(fmt, 1.0)) for name, fmt in columns.items()}
    return {
        "report": report.name,
        "title": report.title,
        "params": {p.name: _plain(p.default) for p in report.all_params},
        "columns": [{"name": n, "format": f} for n, f in columns.items()],
        "rows": [row],
        "summary": {},
        "notes": [],
        "elapsed_ms": 12.3,
    }


def _type_name(annotation: Any) -> str:
    return (
        str(annotation)
        .replace("typing.", "")
        .replace("datetime.", "")
        .replace("<class '", "")
        .replace("'>", "")
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
