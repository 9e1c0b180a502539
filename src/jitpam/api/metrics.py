"""The server's Prometheus metrics (``GET /metrics``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jitpam.services.connectors import ConnectorGauges

log = logging.getLogger("jitpam.metrics")

LABELS = ["organization", "connector"]


class ConnectorCollector(Collector):
    """Each connector's state, read from the store when the metrics are scraped."""

    def __init__(self, read: Callable[[], list[ConnectorGauges]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        failures = GaugeMetricFamily(
            "jitpam_connector_failures",
            "Passes of the connector in a row that failed, whole or in part",
            labels=LABELS,
        )
        still = GaugeMetricFamily(
            "jitpam_connector_still_present",
            "Removals the connector could not make: access that should be gone and is not",
            labels=LABELS,
        )
        drift = GaugeMetricFamily(
            "jitpam_connector_drift",
            "Members of the connector's targets that no grant needs and jitpam did not add",
            labels=LABELS,
        )
        since = GaugeMetricFamily(
            "jitpam_connector_seconds_since_success",
            "Seconds since the connector's last pass that succeeded (absent: none yet)",
            labels=LABELS,
        )
        try:
            rows = self.read()
        except Exception:  # the other metrics are still worth serving
            log.exception("connector metrics could not be read")
            rows = []
        for row in rows:
            labels = [row.organization, row.connector]
            failures.add_metric(labels, row.failures)
            still.add_metric(labels, row.still_present)
            drift.add_metric(labels, row.drift)
            if row.since_success is not None:
                since.add_metric(labels, row.since_success)
        yield from (failures, still, drift, since)


class Metrics:
    def __init__(self, *, connectors: Callable[[], list[ConnectorGauges]] | None = None) -> None:
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
        if connectors is not None:
            self.registry.register(ConnectorCollector(connectors))
