"""`doppel gateway`: the HTTP front door (and, on the embedded bus, the worker behind it)."""
from __future__ import annotations

import logging

from doppel import roles

EXAMPLES = {"gateway": ["doppel gateway", "doppel gateway --host 0.0.0.0 --port 8080"]}


def register(sub) -> None:
    p = sub.add_parser("gateway", help="serve the HTTP front door: CloudEvents, Aodh hooks, chat-ops, status",
                       description="Serve POST /events, POST /hooks/aodh/<secret>, POST /chat/slack, "
                                   "POST /chat/mattermost, GET /status/envs, GET /health and GET /metrics "
                                   "(docs/gateway.md). With DOPPEL_AMQP_URL it only publishes; on the embedded "
                                   "bus it runs the worker too.")
    p.add_argument("--host", help="listen address (default: gateway.host, 127.0.0.1)")
    p.add_argument("--port", type=_port, help="listen port (default: gateway.port, 8080; 0 picks a free one)")
    p.set_defaults(handler=cmd_gateway)


def _port(text: str) -> int:
    import argparse
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port; write a number from 0 to 65535")
    return int(text)


def cmd_gateway(args) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)  # a server says what it answered, as `doppel worker` does
    from doppel.app import App
    roles.run_gateway(App.load(args.config, role="gateway"), roles.functions_named(), worker=False,
                      host=args.host, port=args.port)
    return 0
