"""`doppel gateway`: the HTTP front door (and, on the embedded bus, the worker behind it)."""
from __future__ import annotations

import logging
import sys
import threading

from doppel.app import App
from doppel.cli import CommandError, run_until_signalled


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
    return serve(args, roles=("gateway",), worker=False)


def start_gateway(app: App, functions, host: str | None = None, port: int | None = None):
    """Build the routes (failing on a missing secret), declare the topology, listen; returns the running server."""
    from gateway.routes import Gateway
    from gateway.server import GatewayServer
    gateway = Gateway(app, functions)
    settings = app.config["gateway"]
    host = host or settings["host"]
    port = settings["port"] if port is None else port
    gateway.prepare()
    try:
        server = GatewayServer(gateway, host, port)
    except OSError as exc:
        raise CommandError(f"the gateway cannot listen on {host}:{port} ({exc.strerror}); "
                           "set gateway.port in doppel.yaml (or --port) to a free port", 2) from None
    return server.start()


def serve(args, *, roles: tuple[str, ...], worker: bool) -> int:
    """Serve the gateway until SIGINT/SIGTERM; the worker too when asked or when the bus is embedded."""
    from doppel.commands_bus import _functions
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.INFO)  # a server says what it answered, as `doppel worker` does
    app = App.load(args.config, role="+".join(roles))
    functions = _functions()
    running_worker, server = None, None
    try:
        if worker or app.embedded:
            running_worker = app.worker(functions)
            running_worker.start()
            if app.embedded:
                app.broker.start()
        server = start_gateway(app, functions, getattr(args, "host", None), getattr(args, "port", None))
        bus = "the embedded in-memory bus (set DOPPEL_AMQP_URL for RabbitMQ)" if app.embedded else "RabbitMQ"
        print(f"doppel: gateway on {server.url}, {'worker and ' if running_worker else ''}publishing to {bus}",
              file=sys.stderr)
        run_until_signalled(threading.Event())
    finally:
        if server is not None:
            server.stop()
        app.close()  # stops the worker too, after the handlers it is running
    return 0
