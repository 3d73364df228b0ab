"""The long-running roles of the Procfile: worker, scheduler, gateway, listener, and all of them in one process.

Each role takes a built App, starts its parts, serves until SIGINT or SIGTERM,
then stops them in order. The CLI only parses arguments and calls these; a role
that cannot start raises ConfigError with what to change.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module for every command; the app only when one runs
    from doppel.app import App

EMBEDDED_BUS = "the embedded in-memory bus (set DOPPEL_AMQP_URL for RabbitMQ)"


def functions_named(only: str | None = None) -> list:
    """The functions a role serves: all of them, or those of a comma-separated `--only` list."""
    import functions
    try:
        return functions.select(only)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def run_until_signalled(stop: threading.Event) -> None:
    """Block until SIGINT or SIGTERM (the Procfile's processes are stopped with SIGTERM), or until `stop` is set."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def run_worker(app: App, functions: list) -> None:
    """Consume events and run `functions` until signalled."""
    from doppel.metrics import expose
    app.check_schema()
    worker = app.worker(functions)
    expose(app, "worker", functions=functions)  # first: a port taken stops the role before it takes any work
    worker.start()
    if app.embedded:
        app.broker.start()
        print(f"doppel: serving on {EMBEDDED_BUS}", file=sys.stderr)
    try:
        run_until_signalled(threading.Event())
    finally:
        app.close()  # stops the worker too, after the handlers it is running


def start_gateway(app: App, functions: list, host: str | None = None, port: int | None = None, *,
                  metrics_role: str | None = None, service=None):
    """Build the routes (failing on a missing secret), declare the topology, listen; returns the running server.
    With `metrics_role`, that role's metrics port serves the gateway's counters too."""
    from doppel.metrics import expose
    from gateway.routes import Gateway
    from gateway.server import GatewayServer
    gateway = Gateway(app, functions)
    if metrics_role:
        expose(app, metrics_role, functions=functions, gateway=gateway, service=service)
    settings = app.config["gateway"]
    host = host or settings["host"]
    port = settings["port"] if port is None else port
    gateway.prepare()
    try:
        server = GatewayServer(gateway, host, port)
    except OSError as exc:
        raise ConfigError(f"the gateway cannot listen on {host}:{port} ({exc.strerror}); "
                          "set gateway.port in doppel.yaml (or --port) to a free port") from None
    return server.start()


def run_gateway(app: App, functions: list, *, worker: bool, host: str | None = None,
                port: int | None = None) -> None:
    """Serve the gateway until signalled; the worker too when asked or when the bus is embedded."""
    app.check_schema()
    running_worker, server = None, None
    try:
        if worker or app.embedded:
            running_worker = app.worker(functions)
            running_worker.start()
            if app.embedded:
                app.broker.start()
        server = start_gateway(app, functions, host, port, metrics_role="gateway")
        bus = EMBEDDED_BUS if app.embedded else "RabbitMQ"
        print(f"doppel: gateway on {server.url}, {'worker and ' if running_worker else ''}publishing to {bus}",
              file=sys.stderr)
        run_until_signalled(threading.Event())
    finally:
        if server is not None:
            server.stop()
        app.close()  # stops the worker too, after the handlers it is running


def run_scheduler(app: App) -> None:
    """Emit timed events until signalled; one scheduler holds the lease, the others stand by."""
    app.check_schema()
    from scheduler.service import SchedulerService
    if app.embedded:
        raise ConfigError("the scheduler publishes to RabbitMQ and DOPPEL_AMQP_URL is not set; set it "
                          "(amqp://user:pass@host:5672/vhost), or use `doppel run` for everything in one process")
    from doppel.metrics import expose
    app.init_sentry()
    service = SchedulerService.from_app(app)
    expose(app, "scheduler", service=service)
    stop = threading.Event()
    loop = threading.Thread(target=service.run, args=(stop,), name="doppel-scheduler")
    loop.start()
    try:
        run_until_signalled(stop)
    finally:
        stop.set()
        service.stop_soon()
        loop.join()
        app.close()


def run_all(app: App, functions: list) -> None:
    """Every role in one process: worker, scheduler and gateway (the embedded bus's usual shape)."""
    app.check_schema()
    from scheduler.service import SchedulerService
    stop = threading.Event()
    worker, server, service, scheduler_loop = app.worker(functions), None, None, None
    try:
        worker.start()
        if app.embedded:
            app.broker.start()
        service = SchedulerService.from_app(app)
        scheduler_loop = threading.Thread(target=service.run, args=(stop,), name="doppel-scheduler", daemon=True)
        scheduler_loop.start()
        server = start_gateway(app, functions, metrics_role="worker", service=service)
        bus = EMBEDDED_BUS if app.embedded else "RabbitMQ"
        print(f"doppel: worker, scheduler, and gateway on {server.url}, on {bus}", file=sys.stderr)
        run_until_signalled(stop)
    finally:
        stop.set()
        if server is not None:
            server.stop()
        if service is not None:
            service.stop_soon()
            scheduler_loop.join(timeout=15)
        app.close()  # stops the worker too, after the handlers it is running


def run_listener(app: App, url: str, exchanges: list[str], topic: str) -> None:
    """Turn OpenStack's notifications into poll ticks on Doppel's bus until signalled."""
    app.check_schema()
    from bus import topology
    from clouds.openstack.notifications import NotificationListener, tick_for
    from core.broker import event_message
    from doppel.metrics import Ticks, expose
    if app.embedded:
        raise ConfigError("doppel listen needs Doppel's RabbitMQ (DOPPEL_AMQP_URL): the embedded bus lives in one "
                          "process, and the listener's ticks must reach the workers")
    app.broker.declare(topology.queues_for(functions_named(), app.retry))
    listener = NotificationListener(url, exchanges=exchanges, topic=topic)
    stop = threading.Event()
    ticks = Ticks()
    expose(app, "listener", ticks=ticks)

    def publish(completion) -> None:
        app.broker.publish([event_message(tick_for(completion))])
        ticks.count += 1

    thread = threading.Thread(target=listener.run, args=(publish, stop), name="doppel-listen", daemon=True)
    thread.start()
    try:
        run_until_signalled(stop)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        app.close()


def quiet_pika(verbose: bool) -> None:
    """A role says what it does at INFO; pika's own chatter stays at WARNING."""
    if not verbose:
        logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("pika").setLevel(logging.WARNING)
