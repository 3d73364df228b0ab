"""Counters the gateway exposes at `GET /metrics`, in Prometheus' text format (version 0.0.4)."""
from __future__ import annotations

import threading
from collections import Counter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAMILIES = (
    ("doppel_gateway_events_published_total", "Events the broker confirmed, by route.", ("route",)),
    ("doppel_gateway_requests_rejected_total", "Requests refused, by reason.", ("reason",)),
    ("doppel_gateway_requests_total", "Requests answered, by route and HTTP status.", ("route", "status")),
)


def _escape(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters; one instance per gateway."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {name: Counter() for name, _, _ in _FAMILIES}

    def published(self, route: str, count: int = 1) -> None:
        self._add("doppel_gateway_events_published_total", (route,), count)

    def rejected(self, reason: str) -> None:
        self._add("doppel_gateway_requests_rejected_total", (reason,))

    def answered(self, route: str, status: int) -> None:
        self._add("doppel_gateway_requests_total", (route, str(status)))

    def value(self, family: str, *labels: str) -> int:
        with self._lock:
            return self._counts[family][tuple(labels)]

    def _add(self, family: str, labels: tuple, count: int = 1) -> None:
        with self._lock:
            self._counts[family][labels] += count

    def render(self) -> str:
        """Every family with HELP and TYPE lines, samples sorted, a newline at the end."""
        lines = []
        with self._lock:
            for name, help_text, label_names in _FAMILIES:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                for labels, value in sorted(self._counts[name].items()):
                    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(label_names, labels))
                    lines.append(f"{name}{{{pairs}}} {value}")
        return "\n".join(lines) + "\n"
