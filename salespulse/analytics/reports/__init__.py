"""The named reports, by domain; each module declares its reports into one registry.

* ``base``: how a report is declared (parameters, the filters from the semantic layer, column formats) and
  the registry; ``context``: running one (its queries through the semantic layer, the member checks, the
  result); ``periods``: selling days and months, one rule for every running or partial period.
* The domains: ``sales``, ``kpis``, ``goals``, ``products``, ``customers``, ``sales_force``, ``trends`` and
  ``locations``.

Most reports are one query of the semantic layer (a preset); the analyses that are not a plain group-by
(ABC, affinity, RFM, churn, CLV, consistency, seasonality, underperformers, change explained, the KPI cards)
are queries of the same layer plus a parameterized SQL step over their results, so they inherit the router
(rollups), the filters and the validation. Every report takes the filters the semantic layer declares
(region, country, state, category, subcategory, product, channel, salesman, distributor, customer_segment)
and a time filter: ``start``/``end``, or ``as_of`` for the cards that look at "this month" or "this week".
"""

# Importing a domain registers its reports, in this order (the order of GET /reports and the OpenAPI).
# isort: off
from salespulse.analytics.reports import sales, kpis, goals, products, customers, sales_force, trends  # noqa: F401
from salespulse.analytics.reports import locations  # noqa: F401

# isort: on
from salespulse.analytics.reports.base import REGISTRY, Param, Report, ReportParams, get_report, params_model
from salespulse.analytics.reports.context import ReportContext, run_report

__all__ = [
    "REGISTRY",
    "Param",
    "Report",
    "ReportContext",
    "ReportParams",
    "get_report",
    "params_model",
    "run_report",
]
