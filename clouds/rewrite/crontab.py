"""Disabling a clone's crontab: scheduled work belongs to Doppel's scheduler, not to copies.

Every active line is commented out behind a recognisable prefix, so the file keeps
its content (someone can see what production runs) and re-running is a no-op.
"""
from __future__ import annotations

from pathlib import Path

from clouds.rewrite.configfile import replace_text

DISABLED_PREFIX = "# disabled by doppel: "


def disable_crontab_text(text: str) -> tuple[str, int]:
    """The crontab with every active line commented out, and how many lines that was."""
    lines = text.splitlines(keepends=True)
    disabled = 0
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines[index] = DISABLED_PREFIX + line
            disabled += 1
    return "".join(lines), disabled


def disable_crontab_file(path: Path) -> int:
    """Disable the crontab file at `path` (or every file in a cron.d-style directory); returns lines disabled."""
    path = Path(path)
    targets = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    total = 0
    for target in targets:
        text = target.read_text()
        new_text, count = disable_crontab_text(text)
        if count:
            replace_text(target, new_text)
        total += count
    return total

