"""OpenStack's own notifications, read from its RabbitMQ, turned into Doppel poll ticks.

OpenStack services publish oslo.messaging notifications (driver messagingv2) to a
topic exchange per service (`nova`, `heat`, `glance`, `openstack` ...) with the
routing key `<topic>.<priority>` (`notifications.info`). The listener binds its own
durable queue to those exchanges — it never takes the services' own
`notifications.info` queues, which other consumers (Ceilometer) may read.

Why a tick and not `stack.ready` itself: a notification says that *something*
finished, in each service's own payload shape; the `poll` function already knows
how to read the cloud's state and move each environment on, with compensation on
failure. So a relevant notification becomes a `poll.tick` whose `target` is the
environment it names (or `openstack` when the payload does not say), and `poll`
does the work. Duplicates (a tick and a notification both) are absorbed by the
next function's ledger. With notifications off, the scheduler's ticks do the same.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from schemas.envelope import Event, derived_id

log = logging.getLogger(__name__)

# Completion (and failure) notifications of the operations Doppel starts.
RELEVANT = (
    "orchestration.stack.create.end", "orchestration.stack.create.error",
    "orchestration.stack.update.end", "orchestration.stack.update.error",
    "orchestration.stack.delete.end",
    "compute.instance.snapshot.end",
    "image.activate", "image.upload",
    "snapshot.create.end", "snapshot.create.error",
)
EXCHANGES = ("heat", "nova", "glance", "cinder", "openstack")
QUEUE = "doppel.openstack.notifications"
_SNAPSHOT_NAME = re.compile(r"^snap-(?P<env>.+)-[0-9a-f]{12}(-.*)?$")


@dataclass(frozen=True)
class Completion:
    """A notification that something Doppel waits for finished: which, and for which env (if it says)."""
    event_type: str
    target: str
    message_id: str


def translate(body: bytes | str) -> Completion | None:
    """The completion a notification body reports, or None when it is not one Doppel waits for."""
    try:
        message = json.loads(body)
        if "oslo.message" in message:  # messagingv2 wraps the notification in an envelope
            message = json.loads(message["oslo.message"])
    except (ValueError, TypeError):
        return None
    event_type = message.get("event_type", "")
    if event_type not in RELEVANT:
        return None
    payload = message.get("payload") or {}
    return Completion(event_type=event_type, target=_env_of(payload) or "openstack",
                      message_id=str(message.get("message_id") or ""))


def tick_for(completion: Completion, source: str = "doppel/listen-openstack") -> Event:
    """The poll.tick a completion becomes; its id is derived from the notification's, so a redelivery is one tick."""
    event_id = derived_id("listen-openstack", completion.message_id) if completion.message_id else None
    return Event(type="poll.tick", source=source, data={"target": completion.target},
                 **({"id": event_id} if event_id else {}))


def _env_of(payload: dict) -> str | None:
    """The Doppel environment a payload is about: from the stack's name, or the image's tags or name."""
    name = payload.get("stack_name") or ""
    if name.startswith("doppel-"):
        return name[len("doppel-"):]
    properties = payload.get("properties") or payload.get("metadata") or {}
    if isinstance(properties, dict) and properties.get("doppel-env"):
        return str(properties["doppel-env"])
    for key in ("name", "image_name", "display_name"):
        match = _SNAPSHOT_NAME.match(str(payload.get(key) or ""))
        if match:
            return match.group("env")
    return None


class NotificationListener:
    """Consumes OpenStack's notifications from its RabbitMQ vhost (pika, blocking, one thread)."""

    def __init__(self, url: str, *, exchanges: Iterable[str] = EXCHANGES, topic: str = "notifications",
                 queue: str = QUEUE):
        self.url = url
        self.exchanges = tuple(exchanges)
        self.topic = topic
        self.queue = queue
        self._connection = None
        self._channel = None

    def connect(self) -> None:
        """Open the connection and bind the listener's queue to every service's notification exchange."""
        import pika
        self._connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self._channel = self._connection.channel()
        self._channel.queue_declare(self.queue, durable=True, arguments={"x-max-length": 10_000})
        for exchange in self.exchanges:
            self._declare_exchange(exchange)
            for priority in ("info", "error"):
                self._channel.queue_bind(self.queue, exchange, routing_key=f"{self.topic}.{priority}")

    def _declare_exchange(self, exchange: str) -> None:
        """Use the service's exchange as it is; make it (as oslo.messaging would) if the service has not yet."""
        import pika.exceptions
        try:
            self._channel.exchange_declare(exchange, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            self._channel = self._connection.channel()
            self._channel.exchange_declare(exchange, exchange_type="topic", durable=False)

    def drain(self, seconds: float = 1.0) -> list[Completion]:
        """Every relevant notification that arrives within `seconds` (acked once read)."""
        import pika.exceptions
        found: list[Completion] = []
        try:
            if self._channel is None:
                self.connect()
            self._consume_once(found.append, seconds)
        except pika.exceptions.AMQPError as exc:
            log.warning("OpenStack notifications: connection lost (%s); reconnecting on the next call", exc)
            self.close()
        return found

    def run(self, on_completion: Callable[[Completion], None], stop) -> None:
        """Hand each relevant notification to `on_completion` until `stop` is set; ack after it returns.

        A lost connection (RabbitMQ restarted) is re-opened; unacked notifications come again.
        """
        import pika.exceptions
        while not stop.is_set():
            try:
                if self._channel is None:
                    self.connect()
                self._consume_once(on_completion)
            except pika.exceptions.AMQPError as exc:
                log.warning("OpenStack notifications: connection lost (%s); reconnecting in 2s", exc)
                self.close()
                stop.wait(2.0)

    def _consume_once(self, on_completion: Callable[[Completion], None], seconds: float = 1.0) -> None:
        for method, _properties, body in self._channel.consume(self.queue, inactivity_timeout=seconds):
            if method is None:
                break
            completion = translate(body)
            if completion is not None:
                log.info("OpenStack says %s (env %s)", completion.event_type, completion.target)
                on_completion(completion)
            self._channel.basic_ack(method.delivery_tag)
        self._channel.cancel()

    def close(self) -> None:
        """Close the connection; one already lost is simply forgotten."""
        import pika.exceptions
        try:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
        except pika.exceptions.AMQPError:
            pass
        self._connection = self._channel = None
