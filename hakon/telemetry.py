"""Hakon's own metrics, exposed at `/metrics` in the Prometheus text format.

One registry per running service (not the process-global default), so tests
that build several apps in one process never see each other's counters.
Modules register their instruments on `Telemetry.registry`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hakon import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Telemetry:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "hakon_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "hakon_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "hakon_rate_limited_requests",
            "Requests refused with 429 by the per-token rate limiter, by bucket.",
            ["bucket"],
            registry=self.registry,
        )
        build = Gauge(
            "hakon_build_info",
            "Always 1; labelled with the version.",
            ["version"],
            registry=self.registry,
        )
        build.labels(__version__).set(1)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
