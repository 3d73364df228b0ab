"""How commands print objects: tables with headers for people, `-o json|yaml` for scripts, one timestamp format.

People read local time with its zone (`2025-03-01 14:05:09 CET`); json and yaml
carry ISO 8601 in UTC (`2025-03-01T13:05:09Z`). Nothing here imports more than
the standard library, so `doppel --help` stays quick.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

FORMATS = ("table", "json", "yaml")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"  # the one format people see, in tables and in log lines


def add_output(parser, default: str = "table") -> None:
    """`-o table|json|yaml` (the openstack client's convention); `--json` stays as a short form of `-o json`."""
    parser.add_argument("-o", "--output", choices=FORMATS, default=default,
                        help=f"table for people, json or yaml for scripts (default {default})")
    parser.add_argument("--json", dest="output", action="store_const", const="json", help="the same as -o json")


def when(moment: datetime | None) -> str:
    """A moment for people: local time with its zone; '-' for none."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # What moment.astimezone().strftime() prints (both read the C library's local time, offset and zone name),
    # in a third of the time: astimezone() builds a tzinfo per call, and a table of a thousand rows has 2,000 cells.
    return time.strftime(TIME_FORMAT, time.localtime(moment.timestamp()))


def iso(moment: datetime | None) -> str | None:
    """A moment for scripts: ISO 8601 in UTC, to the second."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plain(value):
    """`value` as json and yaml can hold it: moments in ISO 8601 UTC, tuples as lists."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def cell(value, width: int = 60) -> str:
    """`value` for one column of a table: one line of printable characters, at most `width` of them
    (an ellipsis marks a cut), so no field, however long or strange, can run over the table."""
    if isinstance(value, datetime):
        value = when(value)
    text = ("-" if value is None or value == "" else str(value))[:width + 1]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def table(rows: list[dict], columns, out=None) -> None:
    """Rows under a header line; `columns` is a sequence of (key, TITLE) or (key, TITLE, width)."""
    out = out or sys.stdout
    columns = [(c[0], c[1], c[2] if len(c) > 2 else 60) for c in columns]
    cells = [[cell(row.get(key), width) for key, _, width in columns] for row in rows]
    widths = [max(len(title), *(len(r[i]) for r in cells)) if cells else len(title)
              for i, (_, title, _) in enumerate(columns)]
    for line in [[title for _, title, _ in columns], *cells]:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip(), file=out)


def dump(value, fmt: str, out=None) -> None:
    """A list or an object as json or yaml."""
    out = out or sys.stdout
    value = plain(value)
    if fmt == "json":
        print(json.dumps(value, indent=2, sort_keys=False, default=str), file=out)
    else:
        import yaml
        print(yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip(), file=out)


def emit(rows: list[dict], columns, fmt: str, *, empty: str | None = None, out=None) -> None:
    """A list of objects in the asked format; for people, a table (or `empty` on stderr when there is none)."""
    if fmt != "table":
        dump(rows, fmt, out)
    elif rows:
        table(rows, columns, out)
    elif empty:
        print(empty, file=sys.stderr)
