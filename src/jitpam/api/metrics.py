"""The server's Prometheus metrics (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jitpam_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "jitpam_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.decisions = Counter(
            "jitpam_check_decisions_total", "Access checks", ["allowed"], registry=self.registry
        )
