"""What a function is handed: everything it may touch, built once at start-up.

`emit` is bound per event by the worker, so what a function emits carries its
chain's correlation id and a deterministic id (a re-run emits the same ids, and
the next function's ledger absorbs the duplicate).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from marshmallow import ValidationError

from core.audit import AuditTrail
from core.catalogue import Catalogue
from core.cloud import CloudDriver
from core.dns import DnsProvider
from core.dr_state import DrStates
from core.errors import PermanentError
from core.registry import Registry
from schemas.envelope import Event, derived_id
from schemas.events import clip_out, validate_out


class BackupService(Protocol):
    """Backups as functions see them: the configured object store behind the catalogue (clouds/backups/service.py)."""
    catalogue: Catalogue

    def back_up(self, env: str, source, *, reason: str, backup_id: str | None = None,
                now: datetime | None = None): ...

    def restore(self, backup_id: str, target: Path, env: str | None = None,
                databases: Mapping[str, Any] | None = None):
        """Restore into the directory `target`; server databases where `databases` (the driver's
        database_targets) says."""

    def verify(self, backup_id: str, env: str | None = None, scratch_dir: Path | None = None): ...

    def prune(self, env: str, *, dry_run: bool = False, now: datetime | None = None): ...

    def newest(self, env: str, *, verified_only: bool = False): ...


class LogStore(Protocol):
    """Where environments' logs are kept after they are deleted (clouds/logs/keeper.py)."""

    def remember_secrets(self, request_id: str, secrets: Mapping[str, str]) -> None:
        """Keep what masking needs of the secrets generated for a request (their prints, never the values)."""

    def keep(self, env, cloud):
        """Collect the living environment `env`'s logs through `cloud` and keep them; None if it logged nothing."""

    def prune(self, *, dry_run: bool = False, now: datetime | None = None) -> list: ...


class JobControl(Protocol):
    """What functions ask of the scheduler's tables (scheduler/control.py): TTL expiries and pauses."""

    def schedule_expiry(self, env: str, at: datetime) -> None: ...

    def cancel_expiry(self, env: str) -> bool: ...

    def pause_jobs(self, selector, reason: str): ...

    def resume_jobs(self, selector) -> list: ...


class ChatClient(Protocol):
    """Where notify's lines go (clouds/chat.py): the configured webhooks, and a chat command's reply address."""

    def send(self, text: str) -> int: ...

    def reply(self, response_url: str, text: str) -> bool: ...


class HealthProbe(Protocol):
    """What the DR functions ask of a restored copy (clouds/probes.py); each answer lists what is wrong, [] when
    nothing is."""

    def files(self, production: Mapping[str, Any], root: Path, policy: Mapping[str, Any]) -> list[str]:
        """The copy at `root` of the production (its doppel.yaml entry): paths there, databases sound."""

    def http(self, policy: Mapping[str, Any]) -> list[str]:
        """The policy's health URL answers as expected (none configured: nothing wrong)."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Deps:
    """Built once per process (doppel/app.py); a part a process does not use may be None."""
    config: Mapping[str, Any] | None = None  # doppel.yaml, validated
    cloud: CloudDriver | None = None
    registry: Registry | None = None
    audit: AuditTrail | None = None
    backups: BackupService | None = None
    logs: LogStore | None = None
    scheduler: JobControl | None = None
    dr: DrStates | None = None
    chat: ChatClient | None = None
    dns_for: Callable[[Mapping[str, Any]], DnsProvider] | None = None  # a DR policy -> its DNS provider
    probe: HealthProbe | None = None
    clock: Callable[[], datetime] = _utcnow
    source: str = "doppel"
    _cause: Event | None = None
    _emitter: str = ""
    _counter: Iterator[int] | None = None
    _emits: tuple[str, ...] | None = None  # what the bound function declares it may emit (None: unchecked)

    def for_event(self, event: Event, function: str, key: str, emits: tuple[str, ...] | None = None) -> "Deps":
        """These deps bound to one event of one function: what it emits joins the event's chain, and only
        the types in `emits` (the function's EMITS) may be emitted."""
        # A shallow copy with five fields set: dataclasses.replace (or copy.copy) costs ten times as much, and
        # this runs for every delivery.
        bound = object.__new__(Deps)
        bound.__dict__.update(self.__dict__)
        bound._cause, bound._emitter, bound._counter = event, f"{function}:{key}", itertools.count()
        bound._emits = emits
        bound.source = f"doppel/{function}"
        return bound

    def emit(self, event_type: str, **data) -> Event:
        """An event to publish once the handler returns it; validated strictly here (an over-long reason is
        shortened first, so the `*.failed` that carries it is still sent)."""
        if self._emits is not None and event_type not in self._emits:
            raise PermanentError(f"{self._emitter} emitted {event_type}, which its function does not declare "
                                 f"(EMITS: {', '.join(self._emits) or 'none'}); add it to EMITS or emit another type")
        data = clip_out(event_type, {k: v for k, v in data.items() if v is not None})
        try:
            validate_out(event_type, data)
        except ValidationError as exc:
            raise PermanentError(f"{self._emitter or 'caller'} built an invalid {event_type}: {exc.messages}") from exc
        cause = self._cause
        if cause is None:
            return Event(type=event_type, source=self.source, data=data, time=self.clock())
        index = next(self._counter)
        return Event(type=event_type, source=self.source, data=data, time=self.clock(),
                     id=derived_id(self._emitter, cause.id, event_type, str(index), at=cause.time),
                     correlationid=cause.correlationid)
