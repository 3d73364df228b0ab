"""`doppel gateway`: the HTTP front door (and, on the embedded bus, the worker behind it)."""
from __future__ import annotations

import logging

from doppel import roles
from doppel.app import App


def register(sub) -> None:
    p = sub.add_parser("gateway", help="serve the HTTP front door: CloudEvents, Aodh hooks, chat-ops, status",
                       description="Serve POST /events, POST /hooks/aodh/<secret>, POST /chat/slack, "
                                   "POST /chat/mattermost, GET /status/envs, GET /health and GET /metrics "
                                   "(docs/gateway.md). With DOPPEL_AMQP_URL it only publishes; on the embedded "
                                   "bus it runs the worker too.")
    p.add_argument("--host", help="listen address (default: gateway.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: gateway.port, 8080; 0 picks a free one)")
    p.set_defaults(handler=cmd_gateway)


def cmd_gateway(args) -> int:
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)  # a server says what it answered, as `doppel worker` does
    roles.run_gateway(App.load(args.config, role="gateway"), roles.functions_named(), worker=False,
                      host=args.host, port=args.port)
    return 0
