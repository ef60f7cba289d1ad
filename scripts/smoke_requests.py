"""Smoke test of a running salespulse service: health, one forecast and one segment.

python scripts/smoke_requests.py http://127.0.0.1:3000
"""

from __future__ import annotations

import sys

import httpx


def main(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        health = client.get("/health").raise_for_status().json()
        assert health["status"] == "ready", health
        forecast = client.post("/forecast", json={"level": "total", "series": ["total"], "horizon": 7})
        points = forecast.raise_for_status().json()["series"][0]["points"]
        assert len(points) == 7 and all(p["lo_80"] <= p["forecast"] <= p["hi_80"] for p in points), points
        row = {
            "recency_days": 5,
            "frequency": 30,
            "monetary": 40_000,
            "tenure_days": 700,
            "avg_order_value": 1_300,
        }
        segment = client.post("/segment", json={"customers": [row]}).raise_for_status().json()
        assert segment["customers"][0]["segment"], segment
    segment_name = segment["customers"][0]["segment"]
    print(f"health: {health['status']}; forecast: {len(points)} days; segment: {segment_name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000")
