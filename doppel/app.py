"""Wiring: the configuration, the database, the broker and the deps, built once per process."""
from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.secrets import redact
from doppel.config import Config, load_config

if TYPE_CHECKING:  # each part is imported when first built: a command imports only what it uses
    from bus.ledger import Ledger
    from bus.retry import RetryPolicy
    from bus.worker import Worker
    from core.audit import AuditTrail
    from core.deps import Deps

log = logging.getLogger(__name__)


@dataclass
class App:
    config: Config
    role: str = "cli"
    fast_forward: bool = False  # in-memory bus: skip retry delays (tests)
    _workers: list = field(default_factory=list)
    _closed: set = field(default_factory=set)  # ids of the parts closed already
    _on_close: list = field(default_factory=list)  # run first by close(), e.g. the metrics server's shutdown

    @classmethod
    def load(cls, config_path=None, role: str = "cli", **kwargs) -> "App":
        config = load_config(config_path)
        if config.path is None:  # say so, rather than silently work on an empty configuration
            print(f"doppel: note: {config.origin}", file=sys.stderr)
        return cls(config, role=role, **kwargs)

    # -- parts, built on first use -----------------------------------------------
    @cached_property
    def engine(self):
        """The state database, at this code's schema revision: made so when brand-new, else SchemaNotCurrent
        (a ConfigError) saying to run `doppel db upgrade`."""
        from core.db import redact_url
        from doppel.migrations import ensure_current
        ensure_current(self.unchecked_engine, redact_url(str(self.unchecked_engine.url)))
        return self.unchecked_engine

    def check_schema(self) -> None:
        """Refuse to go on (SchemaNotCurrent) unless the database is at this code's revision: a role's first
        step, before it connects to anything else."""
        _checked = self.engine  # built once, checked on the way

    @cached_property
    def unchecked_engine(self):
        """The state database as it is (`doppel db` reads and upgrades it through this)."""
        from sqlalchemy.exc import ArgumentError

        from core.db import database_url, make_engine, redact_url
        try:
            url = database_url(self.config.state_dir)
        except OSError as exc:
            raise ConfigError(f"state_dir {self.config.state_dir} (from {self.config.where}) cannot be made: "
                              f"{exc.strerror} ({exc.filename}); set state_dir to a directory this user may "
                              "write, or DOPPEL_DB_URL to a database") from None
        log.debug("database %s", redact_url(url))
        try:
            return make_engine(url)
        except ArgumentError as exc:  # not a URL, or one no driver speaks
            raise ConfigError(f"DOPPEL_DB_URL is not a database URL ({exc}); write e.g. "
                              "sqlite:////var/lib/doppel/doppel.db or postgresql://doppel@db.example/doppel, "
                              "or unset it for the SQLite file under state_dir") from None

    @cached_property
    def ledger(self) -> "Ledger":
        from bus.ledger import Ledger
        return Ledger(self.engine)

    @cached_property
    def audit(self) -> "AuditTrail":
        from core.audit import AuditTrail
        return AuditTrail(self.engine)

    @property
    def embedded(self) -> bool:
        return not self.config.amqp_urls

    @cached_property
    def broker(self):
        if self.embedded:
            from bus.memory import MemoryBroker, ParkingTable
            broker = MemoryBroker(fast_forward=self.fast_forward, parking=ParkingTable(self.engine))
        else:
            from bus.rabbitmq import RabbitBroker
            broker = RabbitBroker(self.config.amqp_urls)
        return broker

    @cached_property
    def retry(self) -> "RetryPolicy":
        from bus.retry import RetryPolicy
        section = self.config["bus"]["retry"]
        return RetryPolicy(attempts=section["attempts"], first_delay_ms=int(section["first_delay"] * 1000),
                           factor=section["factor"], max_delay_ms=int(section["max_delay"] * 1000))

    def init_sentry(self) -> bool:
        """Start reporting errors to Sentry when SENTRY_DSN is set (once per process); whether it is on."""
        return self.sentry_enabled

    @cached_property
    def sentry_enabled(self) -> bool:
        from doppel.sentry import init_sentry
        sentry = self.config["sentry"]
        return init_sentry(self.role, sentry["environment"], sentry.get("release"))

    @cached_property
    def registry(self):
        from core.registry import Registry
        return Registry(self.engine)

    @cached_property
    def cloud(self):
        from clouds.factory import make_driver
        return make_driver(self.config)

    @cached_property
    def catalogue(self):
        from core.catalogue import Catalogue
        return Catalogue(self.engine)

    @cached_property
    def metrics(self):
        """What this process counts for Prometheus (served by doppel.metrics.serve on the role's port)."""
        from core.metrics import Metrics
        return Metrics()

    def on_close(self, step) -> None:
        self._on_close.append(step)

    def _backup_made(self, env: str, size: int, seconds: float) -> None:
        if env in self.config["productions"]:  # an environment's last backup is not a production's RPO
            self.metrics.backup_made(env, size, seconds)

    @cached_property
    def backups(self):
        from clouds.backups.retention import RetentionPolicy
        from clouds.backups.service import Backups
        from clouds.stores import make_store
        section = self.config["backups"]
        store = make_store(section["store"]) if section["store"] else self.cloud.object_store()
        return Backups(store, self.catalogue, compression=section["compression"],
                       retention=RetentionPolicy.from_dict(section["retention"]), on_backup=self._backup_made)

    @cached_property
    def logs(self):
        """Environments' logs, kept in the backup store after they are deleted (clouds/logs)."""
        from clouds.logs import LogKeeper
        from core.logbook import Logbook
        return LogKeeper(self.backups.store, Logbook(self.engine), retention_s=self.config["logs"]["retention"])

    @cached_property
    def dr_states(self):
        from core.dr_state import DrStates
        return DrStates(self.engine)

    @cached_property
    def deps(self) -> "Deps":
        from clouds.chat import WebhookChat
        from clouds.probes import HostProbe
        from core.deps import Deps
        from scheduler.control import Scheduler
        return Deps(config=self.config, audit=self.audit, registry=self.registry, cloud=self.cloud,
                    backups=self.backups, logs=self.logs, scheduler=Scheduler(self.engine, self.config["schedules"]),
                    dr=self.dr_states, chat=WebhookChat(self.config["notify"]), dns_for=self.dns_for,
                    probe=HostProbe(), source=self.config["source"])

    def dns_for(self, policy: dict):
        """A DR policy's DNS provider; by default the local driver's records file."""
        from clouds.dns import make_dns_provider
        from clouds.local.dns import LocalDnsProvider
        spec = policy["dns"].get("provider")
        if spec:
            return make_dns_provider(spec)
        if self.cloud.name == "local":
            return self.cloud.dns
        return LocalDnsProvider(Path(self.config.state_dir) / "local")

    def worker(self, functions) -> "Worker":
        from bus.worker import Worker
        from doppel.sentry import SentryReporter
        bus = self.config["bus"]
        worker = Worker(self.broker, functions, self.ledger, self.deps, retry=self.retry,
                        lease_s=bus["lease"], prefetch=bus["prefetch"],
                        reporter=SentryReporter(self.sentry_enabled), metrics=self.metrics)
        self._workers.append(worker)
        return worker

    def close(self) -> None:
        """Stop in dependency order, whatever order the parts were built in: the broker (which waits for the
        handlers it is running, their leases still renewed), the workers' own threads, then the ledger."""
        broker, ledger = (self.__dict__.get(name) for name in ("broker", "ledger"))
        parts = [part for part in (broker, ledger) if part is not None and id(part) not in self._closed]
        steps, self._on_close = list(self._on_close), []
        steps += [broker.close] if broker in parts else []
        steps += [worker.stop for worker in self._workers]
        steps += [ledger.close] if ledger in parts else []
        self._workers = []
        self._closed.update(id(part) for part in parts)
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - closing must go on
                log.exception("while closing")


def identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def safe(text: str) -> str:
    """Text with every known secret value masked, for printing."""
    return redact(text)
