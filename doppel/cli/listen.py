"""`doppel listen openstack`: the role that turns OpenStack's notifications into Doppel's poll ticks.

Not a function: it consumes from OpenStack's RabbitMQ (its own vhost, oslo.messaging
notifications), not from Doppel's bus, and publishes `poll.tick` events to Doppel's
bus so the `poll` function moves environments on as soon as OpenStack says an
operation finished (see clouds/openstack/notifications.py for why a tick).
"""
from __future__ import annotations

import os

from doppel import roles
from doppel.cli.common import CommandError

URL_ENV = "DOPPEL_OPENSTACK_NOTIFICATIONS_URL"
EXAMPLES = {"listen": [f"{URL_ENV}=amqp://doppel:PASS@controller:5672/openstack doppel listen openstack",
                       "doppel listen openstack --url amqp://doppel:PASS@controller:5672/ --exchange heat"]}


def register(sub) -> None:
    p = sub.add_parser("listen", help="turn a cloud's own notifications into Doppel events (a Procfile role)")
    p.add_argument("cloud", choices=["openstack"], help="whose notifications to read")
    p.add_argument("--url", help=f"OpenStack's RabbitMQ, amqp://user:pass@host:5672/vhost (default: ${URL_ENV})")
    p.add_argument("--exchange", action="append", dest="exchanges",
                   help="a service's control exchange to read (repeatable; default: heat nova glance cinder openstack)")
    p.add_argument("--topic", default="notifications", help="the services' notification topic (default: notifications)")
    p.set_defaults(handler=cmd_listen)


def cmd_listen(args) -> int:
    from clouds.openstack.notifications import EXCHANGES
    from doppel.app import App
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise CommandError(f"doppel listen openstack needs OpenStack's RabbitMQ: pass --url or set {URL_ENV}", 2)
    roles.run_listener(App.load(args.config, role="listen"), url, args.exchanges or EXCHANGES, args.topic)
    return 0
