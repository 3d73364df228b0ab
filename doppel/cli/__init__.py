"""The `doppel` command line: one module per command group, registered from COMMAND_GROUPS."""
from __future__ import annotations

import argparse
import logging
import sys

from core.errors import ConfigError
from doppel.cli import anonymise, backup, bus, demo, dr, env, gateway, listen, reap, schedule
from doppel.cli.common import CommandError

# In `doppel --help` order.
COMMAND_GROUPS = (bus, env, demo, backup, anonymise, schedule, dr, gateway, listen, reap)

EPILOG = """
The bus: with DOPPEL_AMQP_URL set (amqp://user:pass@host:5672/vhost) Doppel uses
RabbitMQ; unset, it uses the embedded in-memory bus, and commands that publish
also run the chain they start in-process before returning.
The database: DOPPEL_DB_URL (any SQLAlchemy URL); unset, a SQLite file under the
state directory (./.doppel/). Errors go to Sentry when SENTRY_DSN is set.
"""


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO if args.command in ("run", "worker") else logging.WARNING
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.secrets import RedactingFilter
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except ConfigError as exc:
        print(f"doppel: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"doppel: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `doppel events | head`: the reader left; leave quietly as Unix tools do
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doppel", description="Production doubles on demand, and production back when it falls.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "-c", help="the configuration file (default: $DOPPEL_CONFIG, else ./doppel.yaml)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
