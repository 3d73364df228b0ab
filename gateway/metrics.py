"""Counters the gateway exposes at `GET /metrics`, through prometheus_client, in Prometheus' text format."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """One registry per gateway (never the process-wide default), so two gateways in a process count apart."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self._published = Counter("doppel_gateway_events_published", "Events the broker confirmed, by route.",
                                  ["route"], registry=self.registry)
        self._rejected = Counter("doppel_gateway_requests_rejected", "Requests refused, by reason.", ["reason"],
                                 registry=self.registry)
        self._answered = Counter("doppel_gateway_requests", "Requests answered, by route and HTTP status.",
                                 ["route", "status"], registry=self.registry)

    def published(self, route: str, count: int = 1) -> None:
        self._published.labels(route=route).inc(count)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason=reason).inc()

    def answered(self, route: str, status: int) -> None:
        self._answered.labels(route=route, status=str(status)).inc()

    def value(self, family: str, *labels: str) -> int:
        """A counter's value by its exposed name (`..._total`) and label values, in the order declared."""
        names = {"doppel_gateway_events_published_total": ("route",),
                 "doppel_gateway_requests_rejected_total": ("reason",),
                 "doppel_gateway_requests_total": ("route", "status")}[family]
        return int(self.registry.get_sample_value(family, dict(zip(names, labels))) or 0)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
