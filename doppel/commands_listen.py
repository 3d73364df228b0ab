"""`doppel listen openstack`: the role that turns OpenStack's notifications into Doppel's poll ticks.

Not a function: it consumes from OpenStack's RabbitMQ (its own vhost, oslo.messaging
notifications), not from Doppel's bus, and publishes `poll.tick` events to Doppel's
bus so the `poll` function moves environments on as soon as OpenStack says an
operation finished (see clouds/openstack/notifications.py for why a tick).
"""
from __future__ import annotations

import logging
import os
import threading

from doppel.cli import CommandError, run_until_signalled

log = logging.getLogger(__name__)
URL_ENV = "DOPPEL_OPENSTACK_NOTIFICATIONS_URL"


def register(sub) -> None:
    p = sub.add_parser("listen", help="turn a cloud's own notifications into Doppel events (a Procfile role)")
    p.add_argument("cloud", choices=["openstack"], help="whose notifications to read")
    p.add_argument("--url", help=f"OpenStack's RabbitMQ, amqp://user:pass@host:5672/vhost (default: ${URL_ENV})")
    p.add_argument("--exchange", action="append", dest="exchanges",
                   help="a service's control exchange to read (repeatable; default: heat nova glance cinder openstack)")
    p.add_argument("--topic", default="notifications", help="the services' notification topic (default: notifications)")
    p.set_defaults(handler=cmd_listen)


def tick_for(completion, source: str = "doppel/listen-openstack"):
    """The poll.tick a completion becomes; its id is derived from the notification's, so a redelivery is one tick."""
    from doppel.commands_bus import build_event
    from schemas.envelope import derived_id
    event_id = derived_id("listen-openstack", completion.message_id) if completion.message_id else None
    return build_event("poll.tick", {"target": completion.target}, source=source, event_id=event_id)


def cmd_listen(args) -> int:
    from bus import topology
    from bus.worker import event_message
    from clouds.openstack.notifications import EXCHANGES, NotificationListener
    from doppel.app import App
    from doppel.commands_bus import _functions
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise CommandError(f"doppel listen openstack needs OpenStack's RabbitMQ: pass --url or set {URL_ENV}", 2)
    app = App.load(args.config, role="listen")
    if app.embedded:
        raise CommandError("doppel listen needs Doppel's RabbitMQ (DOPPEL_AMQP_URL): the embedded bus lives in one "
                           "process, and the listener's ticks must reach the workers", 2)
    app.broker.declare(topology.queues_for(_functions(), app.retry))
    listener = NotificationListener(url, exchanges=args.exchanges or EXCHANGES, topic=args.topic)
    stop = threading.Event()

    def publish(completion) -> None:
        app.broker.publish([event_message(tick_for(completion))])

    thread = threading.Thread(target=listener.run, args=(publish, stop), name="doppel-listen", daemon=True)
    thread.start()
    try:
        run_until_signalled(stop)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        app.close()
    return 0
