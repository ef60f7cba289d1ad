"""CSV and Excel (xlsx) downloads of the analytics API's answers: every named report and every query (the
dashboard's explorer views are queries), so analysts stop re-keying numbers.

    GET  /export/report/<name>.xlsx?region=West&start=2025-01-01     (the report's own parameters)
    POST /export/query.csv                                           (body: an /analytics/query query)

The routes ask the analytics app itself, in process, for the JSON a client would get, and write that out. So
a download holds exactly the figures of its JSON, goes through the same validation and access check (a bad
parameter is the same 422), and keeps working while the reports behind /analytics are reorganised.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime
from typing import Any, Literal

import httpx
from fastapi import Body, FastAPI, Path, Request
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from salespulse.analytics.query import Query as AnalyticsQuery
from salespulse.analytics.reports import REGISTRY
from salespulse.analytics.reports.base import get_report
from salespulse.schemas import ErrorBody

ExportFormat = Literal["csv", "xlsx"]
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Excel number formats for the column formats the analytics API declares (ColumnInfo.format). Percentages
# are sent as percent points (12.5 means 12.5%), so the cell keeps the number and only shows the sign.
EXCEL_FORMATS = {
    "currency": "#,##0.00",
    "number": "#,##0.####",
    "integer": "#,##0",
    "percent": '0.0"%"',
    "date": "yyyy-mm-dd",
}
# Excel's own limits and taboos for a sheet name.
_SHEET_NAME_TABOO = re.compile(r"[\[\]:*?/\\]")
_WIDTH_SAMPLE_ROWS = 200
# Refusals in the service's one error shape (those of the analytics app are passed on as they are).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 413, 422)
}


def add_export_routes(app: FastAPI, analytics: FastAPI) -> None:
    """The download routes, on ``app`` (the read app), answered from the ``analytics`` app's JSON."""

    @app.get(
        "/export/report/{name}.{fmt}",
        tags=["exports"],
        summary="A named report as CSV or Excel",
        response_class=Response,
        responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}, **ERRORS},
    )
    async def export_report(
        fmt: ExportFormat,
        request: Request,
        name: str = Path(
            description="A report's name (GET /analytics/reports lists them); another is 404.",
            json_schema_extra={"enum": sorted(REGISTRY)},
        ),
    ) -> Response:
        """The rows of `GET /analytics/reports/<name>` with the same query parameters, as CSV or as an Excel
        workbook (a sheet of rows with typed cells, and an "about" sheet: parameters, summary, notes)."""
        get_report(name)  # an unknown name is a 404 here, before it is put in a URL (it may not fit one)
        answer = await _ask(
            analytics, "GET", f"/reports/{name}", request, params=request.query_params.multi_items()
        )
        if answer.status_code != 200:
            return _passed_on(answer)
        result = answer.json()
        return _download(result, fmt, result.get("report", name), result.get("title", name))

    @app.post(
        "/export/query.{fmt}",
        tags=["exports"],
        summary="A query of the semantic layer as CSV or Excel",
        response_class=Response,
        responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}, **ERRORS},
    )
    async def export_query(
        fmt: ExportFormat,
        request: Request,
        query: AnalyticsQuery = Body(..., examples=[{"measures": ["revenue"], "dimensions": ["region"]}]),
    ) -> Response:
        """The rows of `POST /analytics/query` for the same body, as CSV or as an Excel workbook."""
        # The body is documented (and checked) as the query it is; the analytics app gets it as it was sent.
        body = await request.body()
        answer = await _ask(analytics, "POST", "/query", request, content=body)
        if answer.status_code != 200:
            return _passed_on(answer)
        result = {**answer.json(), "params": {"query": json.loads(body)}}
        return _download(result, fmt, "query", "Query of the semantic layer")


async def _ask(
    analytics: FastAPI,
    method: str,
    path: str,
    request: Request,
    *,
    params: list[tuple[str, str]] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    # The caller's key goes along, so the analytics app applies its own read-access rule.
    headers = {k: v for k, v in request.headers.items() if k.lower() == "x-api-key"}
    if content is not None:
        headers["content-type"] = "application/json"
    transport = httpx.ASGITransport(app=analytics)
    async with httpx.AsyncClient(transport=transport, base_url="http://analytics", timeout=120) as client:
        return await client.request(method, path, params=params, content=content, headers=headers)


def _passed_on(answer: httpx.Response) -> Response:
    """An error of the analytics app, as it answered it (the service's one error shape)."""
    return Response(answer.content, status_code=answer.status_code, media_type="application/json")


def _download(result: dict[str, Any], fmt: ExportFormat, name: str, title: str) -> Response:
    columns = column_formats(result)
    rows = result.get("rows", [])
    if fmt == "csv":
        content = rows_to_csv(columns, rows)
    else:
        content = rows_to_xlsx(columns, rows, name=name, about=about_rows(result, title))
    filename = f"salespulse-{_safe(name)}-{date.today().isoformat()}.{fmt}"
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def column_formats(result: dict[str, Any]) -> dict[str, str]:
    """Column name → declared format, in the answer's order; columns of the rows it does not declare
    (there should be none) come last as text."""
    formats = {c["name"]: c.get("format", "text") for c in result.get("columns", [])}
    for row in result.get("rows", [])[:1]:
        for key in row:
            formats.setdefault(key, "text")
    return formats


def rows_to_csv(columns: dict[str, str], rows: list[dict[str, Any]]) -> bytes:
    """UTF-8 with a byte-order mark, which is what makes Excel read accents right; numbers as the JSON has
    them (no thousands separators, a dot for decimals)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def rows_to_xlsx(
    columns: dict[str, str], rows: list[dict[str, Any]], *, name: str, about: list[tuple[str, Any]]
) -> bytes:
    """A workbook: the rows on the first sheet (header in bold and frozen, numbers and dates as typed
    cells with the declared number format), what they are on an "about" sheet."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_name(name)
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for row in rows:
        sheet.append([excel_value(row.get(c), fmt) for c, fmt in columns.items()])
    for index, (column, fmt) in enumerate(columns.items(), start=1):
        letter = get_column_letter(index)
        if fmt in EXCEL_FORMATS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = EXCEL_FORMATS[fmt]
        sheet.column_dimensions[letter].width = _width(column, rows, fmt)

    info = workbook.create_sheet("about")
    for key, value in about:
        info.append([key, cell_text(value) if isinstance(value, str) else value])
        info.cell(info.max_row, 1).font = Font(bold=True)
    info.column_dimensions["A"].width = 24
    info.column_dimensions["B"].width = 100

    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def about_rows(result: dict[str, Any], title: str) -> list[tuple[str, Any]]:
    """What the rows are: title, parameters, summary figures and the report's notes, one per line."""
    rows: list[tuple[str, Any]] = [
        ("title", title),
        ("downloaded at", datetime.now().replace(microsecond=0).isoformat(sep=" ")),
        ("rows", len(result.get("rows", []))),
    ]
    params = {k: v for k, v in (result.get("params") or {}).items() if v not in (None, [], "")}
    rows += [(f"parameter: {k}", _plain(v)) for k, v in params.items()]
    rows += [(f"summary: {k}", _plain(v)) for k, v in (result.get("summary") or {}).items()]
    rows += [("note", note) for note in result.get("notes", [])]
    if result.get("source"):
        rows.append(("answered from", result["source"]))
    return rows


def excel_value(value: Any, fmt: str) -> Any:
    """A JSON value as an Excel cell value: dates as dates, numbers as numbers, lists and objects as JSON."""
    if value is None:
        return None
    if fmt == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, str):
        return cell_text(value)
    if isinstance(value, bool | int | float):
        return value
    return cell_text(_plain(value))


def cell_text(text: str) -> str:
    """Text an Excel cell can hold: the control characters the file format forbids become U+FFFD (a sale
    recorded with one must not make its report impossible to download)."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)


def sheet_name(name: str) -> str:
    return _SHEET_NAME_TABOO.sub("-", name)[:31] or "rows"


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "export"


def _width(column: str, rows: list[dict[str, Any]], fmt: str) -> float:
    shown = [
        f"{v:,.2f}" if fmt == "currency" and isinstance(v, int | float) else str(v)
        for v in (row.get(column) for row in rows[:_WIDTH_SAMPLE_ROWS])
        if v is not None
    ]
    longest = max([len(column), *map(len, shown)])
    return min(max(longest + 2, 8), 60)
