"""Publishing: the confirm-mode channel and what it still owes each publish() call.

Confirms. RabbitMQ numbers the messages of a confirm-mode channel 1, 2, 3...
and confirms them by that number, so the publisher must count exactly what went
out. Every message is checked against AMQP's limits (`check_sendable`) in the
caller's thread, before it is handed to the I/O thread: one that cannot be sent
raises Unsendable and nothing of its batch is sent. A message is counted only
once pika has written it; if pika raises anyway (it encodes all of a message's
frames before writing any), nothing went out and the count holds. A channel
whose count may be off (a publish that failed half-way, a confirm for a number
never sent, or no confirm for CONFIRM_GIVE_UP_S) is never used again: what it
owed fails ("may or may not have been enqueued"), it is closed, and a new one
opens. `publisher_state()` tells /health whether publishing works right now.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

from pika import spec

from bus.rabbitmq.amqp import _fail, _succeed, amqp_properties, describe
from core.broker import DEFAULT_EXCHANGE, Message, PublishError, Unsendable

log = logging.getLogger(__name__)


# -- publishing -------------------------------------------------------------------

@dataclass(eq=False)
class _Batch:
    """One publish() call: its caller waits on `future` until every message is confirmed."""
    messages: Sequence[Message]
    future: Future = field(default_factory=Future)
    unconfirmed: int = 0
    sent_at: float = 0.0  # time.monotonic() when it went out; the age of what is still unconfirmed
    # Built by the caller's thread, so the I/O thread only encodes and sends.
    properties: list = field(init=False)

    def __post_init__(self):
        self.properties = [amqp_properties(message) for message in self.messages]

    def confirmed(self) -> None:
        self.unconfirmed -= 1
        if self.unconfirmed == 0:
            _succeed(self.future, None)


@dataclass(eq=False)
class _Sent:
    batch: _Batch
    message: Message
    returned: bool = False


class _ConfirmChannel:
    """The confirm-mode channel every publish goes through, and what it still owes confirms for.

    Lives on the I/O thread. Batches that arrive while the channel is down wait
    here and go out when it reopens, unless their caller has given up.
    """

    def __init__(self, on_lost: Callable[[], None]):
        self._on_lost = on_lost
        self._channel = None
        self._last_tag = 0  # delivery tags count 1, 2, 3... per channel once confirms are on
        self._unconfirmed: dict[int, _Sent] = {}
        self._waiting: list[_Batch] = []
        self._broken: str | None = None  # why the open channel is being replaced; its confirms no longer count
        self.opened = 0  # channels opened so far (the first, then one after each loss or replacement)
        self.replaced = 0  # channels given up because their confirms could no longer be matched

    def open(self, connection) -> None:
        if self._channel is not None and not self._channel.is_closed:
            return
        self._broken = None
        self.opened += 1
        self._channel = connection.channel(on_open_callback=self._on_open)
        self._channel.add_on_close_callback(self._on_closed)

    def send(self, batch: _Batch) -> None:
        if self._channel is None or not self._channel.is_open or self._last_tag < 0:
            self._waiting.append(batch)
            return
        if not batch.future.set_running_or_notify_cancel():
            return  # the caller timed out while we were disconnected: send nothing
        batch.unconfirmed, batch.sent_at = len(batch.messages), time.monotonic()
        channel = self._channel
        connection, publish, unconfirmed = channel.connection, channel.basic_publish, self._unconfirmed
        tag = self._last_tag
        for sent, (message, properties) in enumerate(zip(batch.messages, batch.properties)):
            frames_before = connection.frames_sent
            exchange = message.exchange
            try:
                # mandatory only on the default exchange: a message to a missing queue must come back
                # as an error; on the topic exchange an unbound type is dropped, as AMQP intends.
                publish(exchange, message.routing_key, message.body, properties,
                        mandatory=exchange == DEFAULT_EXCHANGE)
            except Exception as exc:  # noqa: BLE001 - check_sendable should have caught it; keep the count true
                self._last_tag = tag
                self._publish_failed(batch, message, sent, exc, connection.frames_sent == frames_before)
                return
            # RabbitMQ numbers what it received: count a message only once it went out.
            tag += 1
            unconfirmed[tag] = _Sent(batch, message)
        self._last_tag = tag

    def _publish_failed(self, batch: _Batch, message: Message, sent: int, error: Exception,
                        nothing_written: bool) -> None:
        """basic_publish raised: fail the batch; replace the channel unless the count is known to hold."""
        earlier = f"; {sent} earlier message(s) of its batch were sent" if sent else ""
        cause = describe(error)[:300]  # pika's errors can quote the whole over-long value
        if nothing_written and self._channel is not None and self._channel.is_open:
            # pika encodes all of a message's frames before writing the first: nothing of it went out,
            # and nothing was counted for it. Encoding fails the same way every time.
            _fail(batch.future, Unsendable(message.message_id, "the message", f"was refused by pika ({cause}); "
                                           f"nothing of it was sent{earlier}"))
            return
        _fail(batch.future, PublishError(f"publishing {message.message_id} failed half-way ({cause}){earlier}; "
                                         "it may or may not have been enqueued"))
        self.replace(f"a publish failed half-way: {cause}")

    def replace(self, why: str) -> None:
        """Stop trusting this channel: fail what it owes, close it; a new channel opens once it has closed."""
        channel = self._channel
        if channel is None or self._broken is not None:
            return
        self._broken, self._last_tag = why, -1  # new batches wait for the new channel
        self.replaced += 1
        log.error("replacing the publish channel: %s", why)
        self._fail_unconfirmed(f"the publish channel was replaced before RabbitMQ confirmed {{unconfirmed}} of "
                               f"{{total}} message(s) ({why}); they may or may not have been enqueued")
        if channel.is_open:
            channel.close()

    def oldest_unconfirmed_s(self) -> float:
        """How long the oldest message still owed a confirm has waited (0 when none is)."""
        for sent in self._unconfirmed.values():  # insertion order is send order
            return time.monotonic() - sent.batch.sent_at
        return 0.0

    def state(self) -> dict:
        if self._broken is not None:
            channel = "being replaced"
        elif self._channel is None or self._channel.is_closed:
            channel = "closed"
        elif self._channel.is_open and self._last_tag >= 0:
            channel = "confirming"
        else:
            channel = "opening"
        return {"channel": channel, "unconfirmed": len(self._unconfirmed),
                "oldest_unconfirmed_s": round(self.oldest_unconfirmed_s(), 3), "waiting": len(self._waiting),
                "channels_opened": self.opened, "channels_replaced": self.replaced}

    def abandon_waiting(self, error: PublishError) -> None:
        waiting, self._waiting = self._waiting, []
        for batch in waiting:
            _fail(batch.future, error)

    def _on_open(self, channel) -> None:
        self._last_tag = -1  # not ready until Confirm.SelectOk
        channel.add_on_return_callback(self._on_returned)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirming())

    def _on_confirming(self) -> None:
        self._last_tag = 0
        waiting, self._waiting = self._waiting, []
        for batch in waiting:
            self.send(batch)

    def _on_confirm(self, frame) -> None:
        if self._broken is not None:
            return  # the channel is being replaced; what it owed has failed already
        method = frame.method
        if method.delivery_tag > self._last_tag:
            self.replace(f"RabbitMQ confirmed message {method.delivery_tag}, but this channel sent only "
                         f"{self._last_tag}")
            return
        nack, pop = isinstance(method, spec.Basic.Nack), self._unconfirmed.pop
        for tag in self._settled_tags(method.delivery_tag, method.multiple):
            sent = pop(tag)
            if nack:
                _fail(sent.batch.future, PublishError(
                    f"RabbitMQ refused {sent.message.message_id} for {sent.message.routing_key!r} (nack); "
                    "the queue may be over its length limit or the node out of disk"))
            else:
                sent.batch.confirmed()
        if nack:
            # Next time on a new channel: RabbitMQ 3.10 can go on refusing every publish of a channel opened while a
            # quorum queue was electing a leader (seen for minutes after a cluster node stopped), though a new
            # channel on the same connection is accepted at once.
            self.replace("RabbitMQ refused a message (nack)")

    def _settled_tags(self, tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [tag] if tag in self._unconfirmed else []
        settled = []
        for pending in self._unconfirmed:  # insertion order is tag order
            if pending > tag:
                break
            settled.append(pending)
        return settled

    def _on_returned(self, _channel, method, properties, _body) -> None:
        """An unroutable mandatory message; its ack follows, so find it among the unconfirmed."""
        for sent in self._unconfirmed.values():
            message = sent.message
            if not sent.returned and (message.exchange, message.routing_key, message.message_id) == (
                    method.exchange, method.routing_key, properties.message_id):
                sent.returned = True
                _fail(sent.batch.future, PublishError(
                    f"RabbitMQ returned {message.message_id}: no queue {message.routing_key!r} "
                    f"to deliver it to ({method.reply_text}); declare the topology first"))
                return

    def _on_closed(self, channel, reason) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        self._fail_unconfirmed(f"the publish channel closed before RabbitMQ confirmed {{unconfirmed}} of "
                               f"{{total}} message(s) ({describe(reason)}); they may or may not have been enqueued")
        self._on_lost()

    def _fail_unconfirmed(self, template: str) -> None:
        lost, self._unconfirmed = self._unconfirmed, {}
        for batch in {id(sent.batch): sent.batch for sent in lost.values()}.values():
            _fail(batch.future, PublishError(template.format(unconfirmed=batch.unconfirmed,
                                                             total=len(batch.messages))))
