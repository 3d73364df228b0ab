# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this mark)
"""The `doppel` command line: one module per command group, registered from COMMAND_GROUPS."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from doppel.cli.common import CommandError, with_examples
from doppel.cli.output import TIME_FORMAT

# The modules of the command groups, in `doppel --help` order, with the commands each registers. A command
# line that names one of them builds (and imports) that group alone; anything else builds them all.
GROUPS = {
    "bus": ("run", "worker", "publish", "events", "dlq", "topology"), "trace": ("trace",), "env": ("env",),
    "demo": ("demo",), "backup": ("backup",), "anonymise": ("anonymise",), "schedule": ("scheduler", "schedule"),
    "dr": ("dr",), "gateway": ("gateway",), "listen": ("listen",), "reap": ("reap",), "config": ("config",),
    "db": ("db",),
}
GROUP_OF = {command: group for group, commands in GROUPS.items() for command in commands}
# The options before the command, by whether they take a value (as build_parser declares them).
_OPTIONS_WITH_VALUE = {"--config", "-c", "--log-format"}
_FLAGS = {"--verbose", "-v", "--debug"}
# The long-running roles say what they do at INFO; every other command logs only with -v.
ROLES = ("run", "worker", "scheduler", "gateway", "listen")

EPILOG = """
The bus: with DOPPEL_AMQP_URL set (amqp://user:pass@host:5672/vhost) Doppel uses
RabbitMQ; unset, it uses the embedded in-memory bus, and commands that publish
also run the chain they start in-process before returning.
The database: DOPPEL_DB_URL (sqlite:///... or postgresql+psycopg://...); unset, a
SQLite file under the state directory (./.doppel/). After installing a new Doppel,
`doppel db upgrade` brings its schema up. Errors go to Sentry when SENTRY_DSN is set.
Exit codes: 0 done, 1 failed, 2 a usage or configuration mistake (the message says
what to correct), 3 still running when --timeout ran out.

Examples:
  doppel demo
  doppel env create perf-test --from shop --ttl 8h
  doppel env list -o json
  doppel config show
Shell completion (bash): eval "$(register-python-argcomplete doppel)"
"""


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed
    try:
        return installed("doppel")
    except PackageNotFoundError:
        return "unknown (not installed; pip install -e . installs it)"


class VersionAction(argparse.Action):
    """`doppel --version`: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print Doppel's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"doppel {version()}")
        parser.exit()


def main(argv=None) -> int:
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions; only then is argcomplete imported
        import argcomplete
        argcomplete.autocomplete(build_parser())
    parser = build_parser(command_named(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    setup_logging(args)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except CommandError as exc:
        print(f"doppel: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `doppel events | head`: the reader left; leave quietly as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - a person reads one line, not a traceback (--debug shows it)
        from core.errors import ConfigError
        if isinstance(exc, ConfigError):
            print(f"doppel: {exc}", file=sys.stderr)
            return 2
        if args.debug:
            raise
        from doppel.cli.failures import explain
        message, code = explain(exc)
        print(f"doppel: {message}", file=sys.stderr)
        return code


def setup_logging(args) -> None:
    verbose = args.verbose or (1 if args.debug else 0)
    if verbose >= 2 or args.debug:
        level = logging.DEBUG
    elif verbose or args.command in ROLES:
        level = logging.INFO
    else:
        level = logging.CRITICAL + 1  # the command says what went wrong itself, once
    from doppel.logs import setup
    setup(level, args.log_format, TIME_FORMAT)


def command_named(argv) -> str | None:
    """The command `argv` runs (`env` in `doppel -v env list`), when it is plainly one of GROUP_OF's; else None
    (help, a mistake, an abbreviated option), for which every group is built and argparse says what it says."""
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word in _OPTIONS_WITH_VALUE and rest:
            rest.pop(0)
        elif word in _FLAGS or word.startswith(("--config=", "--log-format=")) or (
                word.startswith("-v") and set(word[1:]) == {"v"}) or (word.startswith("-c") and len(word) > 2):
            continue
        else:
            return word if word in GROUP_OF else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or, given a command, the top level and that command's group only (the same
    parser for that command's arguments, without importing the twelve other groups)."""
    parser = argparse.ArgumentParser(
        prog="doppel", description="Production doubles on demand, and production back when it falls.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--config", "-c", help="the configuration file (default: $DOPPEL_CONFIG, else the first of "
                                               "./doppel.yaml, ~/.config/doppel/doppel.yaml, /etc/doppel/doppel.yaml;"
                                               " `doppel config show` says which)")
    parser.add_argument("--verbose", "-v", action="count", default=0, help="log what happens (-vv: debug detail)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure, for a bug report")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines for people (text, the default) or one JSON object a line, each with its "
                             "chain's correlation id, event id, function and environment (json)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name in [GROUP_OF[command]] if command else GROUPS:
        __import__(f"doppel.cli.{name}")  # not importlib.import_module, which `python -X importtime` does not see
        group = sys.modules[f"doppel.cli.{name}"]
        group.register(sub)
        with_examples(sub, group.EXAMPLES)
    return parser


if __name__ == "__main__":
    sys.exit(main())
