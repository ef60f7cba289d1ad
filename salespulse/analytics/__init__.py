"""The analytics layer: a declared semantic model of the sales data, compiled to parameterized SQL, answered
from exact rollups when they can, and the named reports on top. See engine.AnalyticsEngine."""

from salespulse.analytics.engine import AnalyticsEngine, IngestResult
from salespulse.analytics.errors import AnalyticsError
from salespulse.analytics.ingest import SalesBatch
from salespulse.analytics.query import Query

__all__ = ["AnalyticsEngine", "AnalyticsError", "IngestResult", "Query", "SalesBatch"]
