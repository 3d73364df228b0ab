"""What a role counts as it goes, for Prometheus: events through the worker, scheduler fires, backups made.

One `Metrics` per process (doppel/app.py builds it), on its own registry rather than
prometheus_client's process-wide default, so two in one process count apart. What is
read from the database rather than counted (environments by state, DR state, the age
of the newest backup, queue depths, the scheduler's lease) is collected when
Prometheus scrapes, by doppel/metrics.py. docs/observability.md lists every family.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Handlers take from milliseconds (notify) to an hour (a big backup).
HANDLER_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 900, 3600)
BACKUP_BUCKETS = (1, 5, 30, 60, 300, 900, 1800, 3600, 7200, 14400)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter("doppel_events_consumed", "Deliveries a worker took from a function's queue.",
                                ["function"], registry=r)
        self.handled = Counter("doppel_events_handled", "Events a function handled to the end (acked).",
                               ["function"], registry=r)
        self.published = Counter("doppel_events_published", "Events a function emitted and the broker confirmed.",
                                 ["function"], registry=r)
        self.retried = Counter("doppel_events_retried", "Failed attempts sent to a delay queue to be tried again.",
                               ["function"], registry=r)
        self.deferred = Counter("doppel_events_deferred", "Events a handler asked to see again later (not failures).",
                                ["function"], registry=r)
        self.duplicates = Counter("doppel_events_duplicate", "Deliveries of events already handled (acked unrun).",
                                  ["function"], registry=r)
        self.parked = Counter("doppel_events_parked", "Messages parked in a function's dead-letter queue, by why: "
                              "invalid, permanent, exhausted, abandoned.", ["function", "kind"], registry=r)
        self.handler_seconds = Histogram("doppel_handler_duration_seconds", "Time a function's handler ran.",
                                         ["function"], buckets=HANDLER_BUCKETS, registry=r)
        self.fires = Counter("doppel_scheduler_fires", "Events the scheduler published, by type.", ["type"],
                             registry=r)
        self.backup_bytes = Counter("doppel_backup_bytes", "Bytes written to the backup store, by production.",
                                    ["production"], registry=r)
        self.backup_seconds = Histogram("doppel_backup_duration_seconds", "Time a backup of a production took.",
                                        ["production"], buckets=BACKUP_BUCKETS, registry=r)

        # Children by (family name, label values), made once: `labels()` costs more than the count itself, and
        # the worker counts four or five things per event.
        self._children: dict[tuple, object] = {}

    def _child(self, family, *values: str):
        key = (family._name, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)
        return child

    # -- the worker ---------------------------------------------------------------------
    def outcome(self, name: str, function: str, count: int = 1) -> None:
        """One of the worker's own counts (bus.worker.Stats): handled, retried, deferred, duplicate."""
        family = _OUTCOMES.get(name)
        if family is not None:
            self._child(getattr(self, family), function).inc(count)

    def park(self, function: str, kind: str) -> None:
        self._child(self.parked, function, kind).inc()

    def handler_ran(self, function: str, seconds: float) -> None:
        self._child(self.handler_seconds, function).observe(seconds)

    def consumed_from(self, function: str, count: int) -> None:
        self._child(self.consumed, function).inc(count)

    def published_by(self, function: str, count: int) -> None:
        if count:
            self._child(self.published, function).inc(count)

    # -- the scheduler and backups ------------------------------------------------------
    def fired(self, event_type: str) -> None:
        self._child(self.fires, event_type).inc()

    def backup_made(self, production: str, size: int, seconds: float) -> None:
        self._child(self.backup_bytes, production).inc(size)
        self._child(self.backup_seconds, production).observe(seconds)

    def value(self, name: str, **labels) -> float:
        """A sample's value by its exposed name (`doppel_events_parked_total`), 0 when it was never counted."""
        return self.registry.get_sample_value(name, labels) or 0.0


_OUTCOMES = {"handled": "handled", "retried": "retried", "deferred": "deferred", "duplicate": "duplicates"}
