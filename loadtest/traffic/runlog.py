"""The run's own record, beside Locust's per-request statistics: requests, failures and latency per user
type (Locust counts by request name only), the model versions that answered, what the planners and analysts
asked for, and the sales posted. Written as JSON when the test stops (``--run-report``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def bucket(milliseconds: float) -> int:
    """Response times rounded like Locust rounds them (two significant digits above 100 ms): the record
    stays small however long the run."""
    if milliseconds < 100:
        return round(milliseconds)
    if milliseconds < 1000:
        return round(milliseconds, -1)
    return round(milliseconds, -2)


@dataclass
class Latencies:
    requests: int = 0
    failures: int = 0
    times: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0

    def add(self, milliseconds: float, failed: bool) -> None:
        self.requests += 1
        self.failures += failed
        self.times[bucket(milliseconds)] += 1
        self.slowest = max(self.slowest, milliseconds)

    def percentile(self, share: float) -> int | None:
        if not self.requests:
            return None
        wanted, seen = share * self.requests, 0
        for value in sorted(self.times):
            seen += self.times[value]
            if seen >= wanted:
                return value
        return max(self.times)

    def summary(self, seconds: float) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "requests_per_s": round(self.requests / seconds, 2) if seconds > 0 else None,
            "p50_ms": self.percentile(0.5),
            "p95_ms": self.percentile(0.95),
            "max_ms": round(self.slowest),
        }


@dataclass
class RunLog:
    started: float = field(default_factory=time.monotonic)
    stopped: float | None = None
    by_user_type: dict[str, Latencies] = field(default_factory=dict)
    by_request: dict[str, Counter[str]] = field(default_factory=dict)  # user type -> request names
    versions: dict[str, Counter[str]] = field(default_factory=dict)
    asked: dict[str, Counter[str]] = field(default_factory=dict)  # e.g. forecast levels, reports
    sales: dict[str, float] = field(default_factory=lambda: {"batches": 0, "lines": 0, "revenue": 0.0})
    disabled: dict[str, str] = field(default_factory=dict)

    def request(self, user_type: str, name: str, milliseconds: float, failed: bool) -> None:
        self.by_user_type.setdefault(user_type, Latencies()).add(milliseconds, failed)
        self.by_request.setdefault(user_type, Counter())[name] += 1

    def saw_version(self, model: str, version: str) -> None:
        self.versions.setdefault(model, Counter())[version] += 1

    def ask(self, what: str, value: str) -> None:
        self.asked.setdefault(what, Counter())[value] += 1

    def posted(self, lines: int, revenue: float) -> None:
        self.sales["batches"] += 1
        self.sales["lines"] += lines
        self.sales["revenue"] += revenue

    def versions_seen(self) -> dict[str, dict[str, int]]:
        return {model: dict(counter) for model, counter in self.versions.items()}

    def report(self) -> dict[str, Any]:
        seconds = (self.stopped or time.monotonic()) - self.started
        return {
            "seconds": round(seconds, 1),
            "user_types": {name: stats.summary(seconds) for name, stats in sorted(self.by_user_type.items())},
            "requests": {name: dict(counter) for name, counter in sorted(self.by_request.items())},
            "asked": {what: dict(sorted(counter.items())) for what, counter in sorted(self.asked.items())},
            "model_versions": self.versions_seen(),
            "sales_posted": {**self.sales, "revenue": round(self.sales["revenue"], 2)},
            "disabled": self.disabled,
        }
