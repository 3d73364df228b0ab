"""Each role's Prometheus endpoint, and the gauges read from the state database when Prometheus scrapes.

A role serves its process's registry (core.metrics: what it counted) on its own port,
`metrics.ports.<role>` in doppel.yaml. What is read rather than counted comes from
these collectors, at scrape time, so it is right whichever process changed it:

- every role that consumes or publishes: queue depths (each function's queue and its
  dead-letter queue);
- the scheduler: the lease (who holds it, and whether this replica does), environments
  by state and how long the longest-waiting one of each state has been there, DR state
  per production, and per production the newest backup, the newest verified one, and
  the RPO gauge: how much data a failover now would lose, against its objective.

docs/observability.md lists the families and the alert rules built on them.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Callable

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.errors import ConfigError

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class QueueCollector(Collector):
    """Messages waiting in each function's queue and dead-letter queue, as the broker counts them."""

    def __init__(self, broker, functions):
        from bus import topology
        self.broker = broker
        self.queues = [(f.NAME, topology.function_queue(f.NAME), topology.dead_queue(f.NAME)) for f in functions]

    def collect(self):
        ready = GaugeMetricFamily("doppel_queue_depth", "Messages waiting in a function's queue.",
                                  labels=["function"])
        dead = GaugeMetricFamily("doppel_dead_letter_depth", "Messages parked in a function's dead-letter queue.",
                                 labels=["function"])
        for name, queue, dead_queue in self.queues:
            for family, which in ((ready, queue), (dead, dead_queue)):
                depth = _quietly(f"the depth of {which}", lambda which=which: self.broker.depth(which))
                if depth is not None:
                    family.add_metric([name], depth)
        yield ready
        yield dead


class LeaseCollector(Collector):
    """Which scheduler replica holds the lease (from the database), and whether this one does."""

    def __init__(self, engine, lease):
        self.engine, self.lease = engine, lease

    def collect(self):
        from scheduler.lease import read_lease
        held = GaugeMetricFamily("doppel_scheduler_lease_held", "1 when this scheduler replica holds the lease.",
                                 labels=["replica"])
        held.add_metric([self.lease.holder], 1.0 if self.lease.valid() else 0.0)
        yield held
        row = _quietly("the scheduler lease", lambda: read_lease(self.engine))
        holder = GaugeMetricFamily("doppel_scheduler_lease_holder",
                                   "1 for the replica the lease row names, while its lease runs.", labels=["holder"])
        if row is not None and not row.released and row.expires_at > _utcnow().timestamp():
            holder.add_metric([row.holder], 1.0)
        yield holder


class StateCollector(Collector):
    """Environments by state, DR state and the backups' age per production, read from the database."""

    def __init__(self, config, registry, dr_states, catalogue, clock: Callable[[], datetime] = _utcnow):
        self.config, self.registry, self.dr_states, self.catalogue = config, registry, dr_states, catalogue
        self.clock = clock

    def collect(self):
        now = self.clock()
        yield from self._environments(now)
        yield from self._dr()
        yield from self._backups(now)

    def _environments(self, now: datetime):
        from core.registry import NEXT
        count = GaugeMetricFamily("doppel_environments", "Environments in each state.", labels=["state"])
        waiting = GaugeMetricFamily("doppel_environment_oldest_state_seconds",
                                    "How long the environment longest in each state has been in it.",
                                    labels=["state"])
        census = _quietly("the environment registry", self.registry.census)
        if census is not None:
            for state in NEXT:
                number, oldest = census.get(state, (0, None))
                count.add_metric([state], number)
                waiting.add_metric([state], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        stuck = GaugeMetricFamily("doppel_environment_stuck_after_seconds",
                                  "bus.stuck_after: an environment half-made this long with no work on it is stuck.")
        stuck.add_metric([], self.config["bus"]["stuck_after"])
        yield from (count, waiting, stuck)

    def _dr(self):
        from core.dr_state import FAILED_OVER, FAILING_BACK, FAILING_OVER, NORMAL, PENDING, SYNCING
        family = GaugeMetricFamily("doppel_dr_state", "1 for each production's DR state, 0 for the others.",
                                   labels=["production", "state"])
        since = GaugeMetricFamily("doppel_dr_state_since_timestamp_seconds", "When the production entered it.",
                                  labels=["production"])
        rows = _quietly("the DR state", self.dr_states.all)
        if rows is not None:  # a production with a DR policy and no row yet is `normal`
            rows += [self.dr_states.get(p) for p in sorted(set(self.config["dr"]) - {r.production for r in rows})]
        for row in rows or []:
            for state in (NORMAL, PENDING, SYNCING, FAILING_OVER, FAILED_OVER, FAILING_BACK):
                family.add_metric([row.production, state], 1.0 if row.state == state else 0.0)
            since.add_metric([row.production], row.since.timestamp())
        yield from (family, since)

    def _backups(self, now: datetime):
        newest = GaugeMetricFamily("doppel_backup_newest_timestamp_seconds",
                                   "When the newest backup of a production was taken.", labels=["production"])
        verified = GaugeMetricFamily("doppel_backup_last_verified_timestamp_seconds",
                                     "When the newest backup that verified was taken.", labels=["production"])
        rpo = GaugeMetricFamily("doppel_rpo_seconds", "The data a failover now would lose: the age of the newest "
                                "backup the production's DR policy would restore (+Inf: none).",
                                labels=["production"])
        objective = GaugeMetricFamily("doppel_rpo_objective_seconds", "The most data a production may lose "
                                      "(metrics.rpo_objective).", labels=["production"])
        section = self.config["metrics"]
        for production in sorted(self.config["productions"]):
            entries = _quietly(f"the backups of {production}", lambda p=production: self.catalogue.list(p))
            if entries is None:
                continue
            good = [e for e in entries if e.verify_ok]
            if entries:
                newest.add_metric([production], entries[-1].created_at.timestamp())
            if good:
                verified.add_metric([production], good[-1].created_at.timestamp())
            # The backup a failover would restore (schemas.dr's choices): only verified ones unless told otherwise.
            choice = self.config["dr"].get(production, {}).get("backup", "newest")
            usable = {"verified_only": good, "newest_verified": good or entries}.get(choice, entries)
            age = (now - usable[-1].created_at).total_seconds() if usable else math.inf
            rpo.add_metric([production], max(0.0, age))
            limit = section["productions"].get(production, {}).get("rpo_objective", section["rpo_objective"])
            objective.add_metric([production], limit)
        yield from (newest, verified, rpo, objective)


class Ticks(Collector):
    """The listener's one count: poll ticks it turned cloud notifications into."""

    def __init__(self):
        self.count = 0

    def collect(self):
        family = CounterMetricFamily("doppel_listener_ticks", "Cloud notifications published as poll ticks.")
        family.add_metric([], self.count)
        yield family


def expose(app, role: str, *, functions=(), service=None, gateway=None, ticks: Ticks | None = None) -> int | None:
    """Serve the process's registry, with the collectors of what runs in it, on `metrics.ports.<role>` (none set:
    nothing); the port it listens on. `functions`: queues to watch; `service`: the scheduler; `gateway`: its own
    counters."""
    section = app.config["metrics"]
    port = section["ports"].get(role)
    if not port:
        return None
    registry = app.metrics.registry
    if functions:
        registry.register(QueueCollector(app.broker, functions))
    if service is not None:
        registry.register(LeaseCollector(app.engine, service.lease))
        registry.register(StateCollector(app.config, app.registry, app.dr_states, app.catalogue))
    if gateway is not None:
        registry.register(gateway.metrics.registry)
    if ticks is not None:
        registry.register(ticks)
    try:
        server, _thread = start_http_server(port, addr=section["host"], registry=app.metrics.registry)
    except OSError as exc:
        raise ConfigError(f"the {role}'s metrics cannot listen on {section['host']}:{port} ({exc.strerror}); set "
                          f"metrics.ports.{role} in doppel.yaml to a free port, or remove it") from None
    app.on_close(server.shutdown)
    port = server.server_address[1]
    log.info("doppel: %s metrics on http://%s:%d/metrics", role, section["host"], port)
    return port


def _quietly(what: str, read):
    """`read()`, or None when it fails: a scrape answers with what it has, and the log says what is missing."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - a database or broker away must not fail the whole scrape
        log.warning("metrics: could not read %s (%s: %s)", what, type(exc).__name__, exc)
        return None
