"""Where a delivery goes when its handler did not finish it: a delay queue to be tried again, or parked.

A mixin of the Worker (bus.worker), whose broker, ledger, retry policy, stats and reporter it uses."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from bus import topology
from core.broker import (
    DEFAULT_EXCHANGE,
    H_ATTEMPT,
    H_ERROR,
    H_ERROR_KIND,
    H_FUNCTION,
    H_PARKED_AT,
    H_ROUTING_KEY,
    Message,
    event_message,
)
from core.errors import Deferred
from core.secrets import redact
from schemas.envelope import Event

log = logging.getLogger(__name__)
MAX_ERROR_HEADER = 2000  # AMQP headers are not the place for a whole traceback


class _Outcomes:
    def _delay(self, function, delivery, attempt: int, reason: str, *, step: int, count_attempt: bool) -> None:
        message = delivery.message
        headers = dict(message.headers)
        headers.update({H_ATTEMPT: attempt + 1 if count_attempt else attempt,
                        H_ERROR: reason[:MAX_ERROR_HEADER],
                        H_ROUTING_KEY: headers.get(H_ROUTING_KEY, message.routing_key)})
        step = min(step, len(self.retry.delays_ms())) or 1
        self.broker.publish([Message(exchange=DEFAULT_EXCHANGE, routing_key=topology.delay_queue(function.NAME, step),
                                     body=message.body, message_id=message.message_id, headers=headers,
                                     timestamp=int(time.time()), correlation_id=message.correlation_id,
                                     content_type=message.content_type)])
        self.stats.add("retried" if count_attempt else "deferred", function.NAME)
        delivery.ack()

    def _defer(self, function, delivery, event: Event, key: str, owner: str, attempt: int, exc: Deferred) -> None:
        """The handler asked to come back later: release the claim (as a retry does, so the redelivery claims it
        again) and send the message through the delay queue nearest to the wait asked, its attempt not counted."""
        reason = redact(str(exc))
        self.ledger.fail(function.NAME, key, owner, reason)
        log.info("%s: %s %s %s", function.NAME, event.type, event.id, reason)
        self._delay(function, delivery, attempt, reason, step=self.retry.step_nearest(exc.seconds),
                    count_attempt=False)

    def _give_up(self, function, delivery, event: Event, kind: str, reason: str, attempt: int,
                 reported: bool = False) -> None:
        """Run the function's compensation (which may emit *.failed), then park the message."""
        on_failure = getattr(function, "on_failure", None)
        if on_failure is not None:
            try:
                deps = self.deps.for_event(event, function.NAME, "failure", function.EMITS)
                compensation = on_failure(event, reason, deps) or []
                self.broker.publish([event_message(e) for e in compensation])
                self.metrics.published_by(function.NAME, len(compensation))
            except Exception as exc:  # noqa: BLE001 - the park below must still happen
                log.exception("%s: compensation for %s failed", function.NAME, event.id)
                reason = redact(f"{reason}; compensation failed too: {type(exc).__name__}: {exc}")
        self._park(function, delivery, event, kind, reason, attempt, reported=reported)

    def _park(self, function, delivery, event: Event | None, kind: str, reason: str, attempt: int,
              reported: bool = False) -> None:
        message = delivery.message
        headers = dict(message.headers)
        headers.update({H_ERROR: reason[:MAX_ERROR_HEADER], H_ERROR_KIND: kind, H_FUNCTION: function.NAME,
                        H_ATTEMPT: attempt, H_PARKED_AT: datetime.now(timezone.utc).isoformat(),
                        H_ROUTING_KEY: headers.get(H_ROUTING_KEY, message.routing_key)})
        self.broker.publish([Message(exchange=DEFAULT_EXCHANGE, routing_key=topology.dead_queue(function.NAME),
                                     body=message.body, message_id=message.message_id, headers=headers,
                                     timestamp=int(time.time()), correlation_id=message.correlation_id,
                                     content_type=message.content_type)])
        self.stats.add("parked" if kind != "invalid" else "invalid", function.NAME)
        self.metrics.park(function.NAME, kind)
        log.warning("%s: parked %s (%s): %s", function.NAME, message.message_id, kind, reason)
        if not reported:
            tags = self._tags(function, event) if event else {"function": function.NAME,
                                                             "event_id": message.message_id or ""}
            self.reporter.report(f"{function.NAME} parked {message.message_id} ({kind}): {reason}", tags=tags)
        delivery.ack()

    @staticmethod
    def _tags(function, event: Event) -> dict:
        return {"function": function.NAME, "event_type": event.type, "event_id": event.id,
                "correlation_id": event.correlationid}
