"""Keeping an environment's logs after it is deleted, in the backup store, for a retention of their own.

Layout in the store (beside the backups, which live under `<env>/<backup_id>/`; `_logs` can be
no environment's name):

    _logs/<env>/<digest of the request id>/logs.tar.gz   the files as collected, secrets masked, gzip
    _logs/<env>/<digest of the request id>/logs.json     written last: env, request, production, when
                                                         collected, the span the logs cover, sizes, files,
                                                         warnings, kept_until

The key is derived from the request, so collecting again (a retried teardown) replaces
what the first attempt kept instead of keeping it twice. Secrets Doppel generated for
the environment (their prints: core.logbook) and the secrets in Doppel's own
environment are masked before anything is written: the store never holds them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tarfile
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

from clouds.backups.layout import check_env
from clouds.logs.reading import ARCHIVE_PREFIX, LineFilter, archive_lines
from core.logbook import KeptLogs, Logbook
from core.secrets import scrub, secret_values

log = logging.getLogger(__name__)

PREFIX = "_logs/"
ARCHIVE_NAME, META_NAME = "logs.tar.gz", "logs.json"


def logs_prefix(env: str, request_id: str) -> str:
    return f"{PREFIX}{check_env(env)}/{hashlib.sha256(request_id.encode()).hexdigest()[:16]}/"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


class LogKeeper:
    def __init__(self, store, logbook: Logbook, *, retention_s: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.store, self.logbook = store, logbook
        self.retention = timedelta(seconds=retention_s)
        self.clock = clock

    def remember_secrets(self, request_id: str, secrets: dict[str, str]) -> None:
        self.logbook.remember_secrets(request_id, secrets)

    def mask_for(self, request_id: str) -> Callable[[str], str]:
        """What masks a line of that request's environment: its generated secrets, and Doppel's own."""
        generated, known = self.logbook.secrets_of(request_id), secret_values()
        return lambda line: scrub(generated.mask(line), known) if known else generated.mask(line)

    # -- keeping -------------------------------------------------------------------
    def keep(self, env, cloud) -> KeptLogs | None:
        """Collect `env`'s logs (a registry Environment) through `cloud`, mask, compress and keep them.

        None when it logged nothing its production names (no logs components, or no file yet)."""
        with tempfile.TemporaryDirectory(prefix="doppel-logs-") as scratch:
            raw = Path(scratch) / "raw"
            raw.mkdir()
            collected = cloud.collect_logs(env.name, raw)
            for warning in collected.warnings:
                log.warning("env %s: logs: %s", env.name, warning)
            if not collected.files:
                return None
            archive = Path(scratch) / ARCHIVE_NAME
            files = self._write_archive(raw, collected.files, archive, self.mask_for(env.request_id))
            prefix = logs_prefix(env.name, env.request_id)
            now = self.clock()
            with archive.open("rb") as stream:
                stored = self.store.put_stream(prefix + ARCHIVE_NAME, stream)
            entry = KeptLogs(key=prefix, env=env.name, request_id=env.request_id, production=env.production,
                             store=self.store.name, span_from=env.created_at, span_to=now, size=stored.size,
                             files=len(files), kept_until=now + self.retention, deleted_at=None)
            meta = {"format": 1, "env": env.name, "request": env.request_id, "production": env.production,
                    "collected": _iso(now), "span": {"from": _iso(env.created_at), "to": _iso(now)},
                    "size": stored.size, "uncompressed_size": sum(f["bytes"] for f in files), "files": files,
                    "warnings": list(collected.warnings), "kept_until": _iso(entry.kept_until),
                    "archive": prefix + ARCHIVE_NAME}
            self.store.put_bytes(prefix + META_NAME, json.dumps(meta, indent=2, sort_keys=True).encode() + b"\n")
        self.logbook.record(entry)
        log.info("env %s: kept %d log file(s), %d bytes, until %s", env.name, len(files), stored.size,
                 _iso(entry.kept_until))
        return entry

    @staticmethod
    def _write_archive(raw: Path, names, archive: Path, mask: Callable[[str], str]) -> list[dict]:
        """A tar.gz of the collected files with every line masked; what each file was (bytes, lines, changed)."""
        described = []
        masked_dir = raw.parent / "masked"
        with tarfile.open(archive, "w:gz") as tar:
            for name in names:
                source, target = raw / name, masked_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                lines = 0
                with source.open(encoding="utf-8", errors="replace", newline="") as reader, \
                        target.open("w", encoding="utf-8", newline="") as writer:
                    for line in reader:
                        ending = line[len(line.rstrip("\r\n")):]
                        writer.write(mask(line.rstrip("\r\n")) + ending)
                        lines += 1
                modified = source.stat().st_mtime
                os.utime(target, (modified, modified))
                tar.add(target, arcname=ARCHIVE_PREFIX + name, recursive=False)
                described.append({"name": name, "bytes": target.stat().st_size, "lines": lines,
                                  "modified": _iso(datetime.fromtimestamp(modified, timezone.utc))})
        return described

    # -- reading ----------------------------------------------------------------------
    def live_lines(self, env, cloud, line_filter: LineFilter, seen: dict[str, int] | None = None) -> Iterator[str]:
        """A living environment's lines, read from it now; with `seen` (lines per file already read, updated
        here), only the lines written since (a file shorter than before was rotated: read from its start)."""
        mask = self.mask_for(env.request_id)
        seen = {} if seen is None else seen
        with tempfile.TemporaryDirectory(prefix="doppel-logs-") as scratch:
            collected = cloud.collect_logs(env.name, Path(scratch))
            for name in collected.files:
                path = Path(scratch) / name
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                start = seen.get(name, 0) if len(lines) >= seen.get(name, 0) else 0
                seen[name] = len(lines)
                modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
                yield from line_filter.lines(name, lines[start:], modified, mask)

    def kept_lines(self, entry: KeptLogs, line_filter: LineFilter) -> Iterator[str]:
        """A deleted environment's lines, from the store (masked when kept; masked again, for older archives)."""
        if line_filter.since is not None and entry.span_to < line_filter.since:
            return
        yield from archive_lines(self.store.get_stream(entry.key + ARCHIVE_NAME), line_filter,
                                 self.mask_for(entry.request_id))

    def describe(self, entry: KeptLogs) -> dict:
        """The kept logs' logs.json, as written."""
        return json.loads(self.store.get_bytes(entry.key + META_NAME))

    # -- pruning -------------------------------------------------------------------------
    def prune(self, *, dry_run: bool = False, now: datetime | None = None) -> list[KeptLogs]:
        """Delete the kept logs whose retention ran out (all with dry_run: only say which)."""
        now = now or self.clock()
        due = [entry for entry in self.logbook.kept() if entry.kept_until <= now]
        if dry_run:
            return due
        for entry in due:
            for name in (META_NAME, ARCHIVE_NAME):  # the description first: what is left is never half-listed
                self.store.delete(entry.key + name, ignore_missing=True)
            log.info("pruned the logs of env %s (request %s), kept until %s", entry.env, entry.request_id,
                     _iso(entry.kept_until))
        self.logbook.deleted(entry.key for entry in due)
        return due
