"""Progress of long transfers (backups, restores, verifies) on stderr: done, total, percentage, rate."""
from __future__ import annotations

import sys
import time


def size(count: float) -> str:
    """Bytes for people, in binary units: '512.0 KiB', '1.00 GiB'."""
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}" if unit == "GiB" else f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


class LiveProgress:
    """Bytes, total, percentage and rate of a transfer on stderr: one updating line on a terminal, a line
    every 5 s otherwise (and always the last one)."""

    def __init__(self, what: str, total: int | None):
        self.what, self.total, self.tty = what, total or None, sys.stderr.isatty()
        self.every = 0.2 if self.tty else 5.0
        self._last, self._finished = 0.0, False

    def __call__(self, done: int, rate: float) -> None:
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if self._finished or (now - self._last < self.every and not finished):
            return
        self._last, self._finished = now, finished
        if self.total is not None:
            self.total = max(self.total, done)  # the total is an estimate for backups (tar headers, a database's
            # online copy); the last line never reads more than 100%
        print(("\r" if self.tty else "") + self.line(done, rate), end="" if self.tty else "\n", file=sys.stderr,
              flush=True)

    def line(self, done: int, rate: float) -> str:
        if self.total:
            share = min(100.0, 100.0 * done / self.total)
            left = f", {(self.total - done) / rate:.0f} s left" if rate > 0 and done < self.total else ""
            return f"  {self.what}: {size(done)} of {size(self.total)} ({share:.0f}%), {size(rate)}/s{left}"
        return f"  {self.what}: {size(done)}, {size(rate)}/s"


def show_progress(app) -> None:
    """Long transfers of this process (on the embedded bus, the worker's too) show their progress here."""
    app.backups.progress = LiveProgress
