"""Reading log lines back from a kept archive, through --since and --grep, with secrets masked."""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from core.stores import ChunkReader

# A line that starts with a time ("2026-12-02T18:00:01Z ...", "[2026-12-02 18:00:01,123] ..."): what --since reads.
_LEADING_TIME = re.compile(r"^\W{0,2}(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,]\d+)?\s?(Z|[+-]\d{2}:?\d{2})?")
ARCHIVE_PREFIX = "files/"


def line_time(line: str) -> datetime | None:
    """The time a line starts with, if it starts with one (UTC when it names no zone)."""
    match = _LEADING_TIME.match(line)
    if not match:
        return None
    zone = match.group(3) or "+00:00"
    zone = "+00:00" if zone == "Z" else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}{zone}")
    except ValueError:
        return None


@dataclass
class LineFilter:
    """Which lines to print: those at or after `since` (a line with no time of its own goes with the line before
    it; at a file's start, with the file's last change), and those `grep` finds."""
    since: datetime | None = None
    grep: re.Pattern | None = None

    def lines(self, name: str, lines: Iterable[str], modified: datetime | None,
              mask: Callable[[str], str]) -> Iterator[str]:
        keep = self.since is None or modified is None or modified >= self.since
        for raw in lines:
            line = mask(raw.rstrip("\r\n"))
            if self.since is not None:
                stamp = line_time(line)
                if stamp is not None:
                    keep = stamp >= self.since
            if keep and (self.grep is None or self.grep.search(line)):
                yield f"{name}: {line}"


def archive_lines(chunks: Iterator[bytes], line_filter: LineFilter, mask: Callable[[str], str]) -> Iterator[str]:
    """The lines of a kept archive (a tar.gz stream from the store), filtered and masked."""
    with tarfile.open(fileobj=ChunkReader(chunks), mode="r|gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(ARCHIVE_PREFIX):
                continue
            handle = tar.extractfile(member)
            text = (raw.decode("utf-8", errors="replace") for raw in handle)
            modified = datetime.fromtimestamp(member.mtime, timezone.utc)
            yield from line_filter.lines(member.name[len(ARCHIVE_PREFIX):], text, modified, mask)

