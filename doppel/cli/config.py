"""`doppel config show`: which configuration file is in use, how it was found, and the settings in effect."""
from __future__ import annotations

import os

from doppel.cli.output import add_output, dump

EXAMPLES = {"config": ["doppel config show", "doppel -c /etc/doppel/doppel.yaml config show -o json"],
            "config show": ["doppel config show", "DOPPEL_CONFIG=./doppel.yaml doppel config show -o json"]}
MASK = "********"
# The environment variables Doppel reads; those holding secrets are masked.
VARIABLES = ("DOPPEL_CONFIG", "DOPPEL_AMQP_URL", "DOPPEL_DB_URL", "SENTRY_DSN", "DOPPEL_OPENSTACK_NOTIFICATIONS_URL")


def register(sub) -> None:
    p = sub.add_parser("config", help="the configuration in use: show")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = actions.add_parser("show", help="the file in use, how it was found, and the effective settings (secrets "
                                        "masked)")
    add_output(q, default="yaml")
    q.set_defaults(handler=cmd_show)


def masked_url(url: str) -> str:
    """A URL with its password hidden (amqp://doppel:********@mq:5672/doppel); each of a comma-separated list."""
    from urllib.parse import urlsplit, urlunsplit
    if "," in url and "://" in url:
        return ",".join(masked_url(one.strip()) for one in url.split(","))
    try:
        parts = urlsplit(url)
        if parts.password:
            host = parts.netloc.rsplit("@", 1)[1]
            return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))
    except ValueError:
        return MASK
    return url


def cmd_show(args) -> int:
    from core.secrets import scrub, secret_values
    from doppel.config import load_config
    config = load_config(args.config)
    variables = {}
    for name in VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            variables[name] = MASK if name == "SENTRY_DSN" else masked_url(value)
    shown = {"file": str(config.path) if config.path else None, "origin": config.origin,
             "state_dir": str(config.state_dir.absolute()),
             "bus": _bus(config.amqp_urls) if config.amqp_urls else "embedded (in memory; DOPPEL_AMQP_URL unset)",
             "database": masked_url(os.environ["DOPPEL_DB_URL"]) if os.environ.get("DOPPEL_DB_URL")
             else f"sqlite file {config.state_dir.absolute() / 'doppel.db'}",
             "environment": variables, "settings": _plain(config.raw)}
    # Whatever a secret's value is, it is masked wherever it appears, and so is any field named like a secret.
    dump(scrub(shown, secret_values()), "yaml" if args.output == "table" else args.output)
    return 0


def _bus(urls: list[str]) -> str:
    if len(urls) == 1:
        return "RabbitMQ"
    return f"RabbitMQ cluster of {len(urls)} nodes (quorum queues with {len(urls)} replicas)"


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
