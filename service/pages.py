"""The service's own pages: the root page (product, version, links), the dashboard and API docs that work
offline.

BentoML's root page is its Swagger UI with a Google Tag Manager script and external badge images, and
FastAPI's /docs and /redoc load Swagger UI, ReDoc, a favicon and Google fonts from CDNs: blank without the
internet, and a tracker besides. Here every page is served from this process; the browser libraries are
npm packages pinned by web/package-lock.json and copied into service/dashboard/vendor/ at setup time
(scripts/vendor_web.sh).

A route on the app mounted at "/" wins over BentoML's own index: BentoML adds its mounts before its index
route, and a mount answers every path one of its routes matches.
"""

from __future__ import annotations

import html
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger("bentoml.salespulse")

DASHBOARD_DIR = Path(__file__).parent / "dashboard"
VENDOR = "/dashboard/vendor"
FAVICON = "/dashboard/favicon.svg"


def product_version() -> str:
    try:
        return version("salespulse")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def add_pages(app: FastAPI, *, service_spec_url: str = "/docs.json") -> None:
    """The root page, the dashboard (static files) and offline /docs and /redoc on ``app``, the app mounted
    at "/". The docs show ``service_spec_url``: BentoML's spec of the whole service."""
    if not (DASHBOARD_DIR / "vendor").is_dir():
        log.warning(
            "%s/vendor is missing: run scripts/vendor_web.sh (the dashboard and docs need it)", DASHBOARD_DIR
        )

    @app.get("/", include_in_schema=False)
    def root_page() -> HTMLResponse:
        return HTMLResponse(render_root_page(product_version()))

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> FileResponse:
        # The page itself, so that /dashboard?region=West (a shared view) needs no redirect.
        return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount(
        "/dashboard", StaticFiles(directory=DASHBOARD_DIR, html=True, check_dir=False), name="dashboard"
    )
    serve_docs_offline(app, spec_url=service_spec_url, title="salespulse API")


def serve_docs_offline(app: FastAPI, *, spec_url: str | None = None, title: str | None = None) -> None:
    """Replace the app's CDN-loading /docs and /redoc with pages that load the vendored Swagger UI and ReDoc.
    Without ``spec_url``, the app's own spec under its mount path (``/analytics/openapi.json``)."""
    docs, redoc = app.docs_url or "/docs", app.redoc_url or "/redoc"
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in (docs, redoc)]
    page_title = title or app.title

    def page(request: Request, template: str, viewer: str) -> HTMLResponse:
        mounted_at = request.scope.get("root_path", "").rstrip("/")
        spec = spec_url or mounted_at + (app.openapi_url or "/openapi.json")
        return HTMLResponse(
            template.format(
                title=html.escape(f"{page_title} - {viewer}"),
                spec=html.escape(spec),
                version=html.escape(product_version()),
                favicon=FAVICON,
                vendor=VENDOR,
            )
        )

    @app.get(docs, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return page(request, SWAGGER_PAGE, "Swagger UI")

    @app.get(redoc, include_in_schema=False)
    def redoc_page(request: Request) -> HTMLResponse:
        return page(request, REDOC_PAGE, "ReDoc")


# The docs pages: the vendored viewer, and /dashboard/docs.js to fetch and clean the spec (see there why).
SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="{favicon}" type="image/svg+xml">
<link rel="stylesheet" href="{vendor}/swagger-ui/swagger-ui.css"></head>
<body data-spec="{spec}" data-version="{version}"><div id="swagger-ui"></div>
<script src="{vendor}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/dashboard/docs.js"></script>
<script>window.salespulseDocs.swagger();</script>
</body></html>
"""
REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="{favicon}" type="image/svg+xml">
<style>body {{ margin: 0; }}</style></head>
<body data-spec="{spec}" data-version="{version}"><div id="redoc"></div>
<script src="{vendor}/redoc/redoc.standalone.js"></script>
<script src="/dashboard/docs.js"></script>
<script>window.salespulseDocs.redoc();</script>
</body></html>
"""


def render_root_page(product: str) -> str:
    links = [
        ("/dashboard", "Dashboard", "KPIs, charts, map, goals, customers, forecasts and an explorer"),
        ("/docs", "API docs (Swagger UI)", "every endpoint of the service, with examples to try"),
        ("/redoc", "API docs (ReDoc)", "the same, as one readable page"),
        ("/analytics/docs", "Analytics API (Swagger UI)", "the query layer and the named reports"),
        ("/analytics/redoc", "Analytics API (ReDoc)", "the same, as one readable page"),
        ("/docs.json", "OpenAPI document", "the service's spec, for tools"),
        ("/health", "Health", "whether models and warehouse are loaded"),
    ]
    items = "\n".join(
        f'<li><a href="{href}">{html.escape(label)}</a> <span>{html.escape(what)}</span></li>'
        for href, label, what in links
    )
    return ROOT_PAGE.format(version=html.escape(product), items=items, favicon=FAVICON)


ROOT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>salespulse {version}</title>
<link rel="icon" href="{favicon}" type="image/svg+xml">
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1d2733; background: #f5f7fa; }}
  main {{ max-width: 44rem; margin: 3rem auto; padding: 0 1.25rem; }}
  h1 {{ margin: 0; font-size: 2rem; }}
  .version {{ color: #5b6675; font-size: 1rem; font-weight: normal; }}
  ul {{ list-style: none; padding: 0; }}
  li {{ background: #fff; border: 1px solid #dde3ea; border-radius: 6px; margin: .5rem 0;
        padding: .75rem 1rem; }}
  a {{ color: #0b5cad; font-weight: 600; }}
  a:focus {{ outline: 3px solid #e69f00; outline-offset: 2px; }}
  li span {{ display: block; color: #5b6675; font-size: .9rem; }}
</style>
</head>
<body>
<main>
<h1>salespulse <span class="version">version {version}</span></h1>
<p>Sales intelligence as a service: sales forecasts, customer segments and the analytics sales teams ask
for, from one warehouse.</p>
<ul>
{items}
</ul>
</main>
</body>
</html>
"""
