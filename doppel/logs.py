"""Log lines for people (text) or for a log pipeline (`--log-format json`, one JSON object a line).

Every line of a chain carries its correlation id, event id, event type, function and
environment (core.logcontext puts them on the record while a handler runs); a text
line shows them in brackets, a JSON line as fields. Either way the whole line,
traceback included, is masked for secrets before it is written.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from core.logcontext import FIELDS, ChainFilter
from core.secrets import RedactingFilter, redact

FORMATS = ("text", "json")


class TextFormatter(logging.Formatter):
    def __init__(self, datefmt: str):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt=datefmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if getattr(record, "correlation_id", None):
            chain = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None))
            head, _, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{head} [{chain}]" + (f"\n{rest}" if rest else "")
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One object a line: time (UTC, ISO 8601), level, logger, message, the chain fields, the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def setup(level: int, fmt: str, datefmt: str) -> None:
    """Log to stderr at `level` in `fmt` (text or json), every line with its chain and without secrets."""
    logging.basicConfig(level=level)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter(datefmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
        # once per handler: main() may run many times in one process (tests, embedding), and each filter
        # added again would mask every line again
        for kind in (ChainFilter, RedactingFilter):
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())
