"""Errors of the analytics layer; each carries what an HTTP client needs: a status, a title and details."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: str
    """Where the problem is, e.g. ``measures[0]`` or ``lines[17].quantity``."""
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class AnalyticsError(Exception):
    status = 422
    title = "invalid request"

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class QueryError(AnalyticsError):
    """The query is well-formed but asks for something the model cannot answer (e.g. goal by category)."""

    title = "query cannot be answered"


class DataUnavailable(AnalyticsError):
    """The data lacks what the query needs (no salesman, distributor or cost on any line)."""

    title = "data unavailable"


class ReportNotFound(AnalyticsError):
    status = 404
    title = "unknown report"


class BatchRejected(AnalyticsError):
    """A sales batch has invalid lines; nothing was written."""

    title = "batch rejected"
