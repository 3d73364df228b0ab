"""The worker's sweeps.

Every `sweep_every_s` the worker publishes again, to its function's
queue, each event whose claim ran out more than `redrive_after_s` ago with no
delivery taking it over: its message was lost (see bus.ledger). The ledger hands
each such claim to one worker, and the claim keeps a re-drive exactly-once in
effect. Then it runs the `sweep(deps, ledger, publish, lease_s)` of its
functions that have one (the environment chain's fails environments that no work
will move on; `publish` publishes a list of events with confirms).

A mixin of the Worker (bus.worker), whose broker, ledger and functions it uses.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from bus import topology
from bus.ledger import Redrive
from core.broker import DEFAULT_EXCHANGE, H_REDRIVEN_AT, H_ROUTING_KEY, Message, event_message
from schemas.envelope import Event

log = logging.getLogger(__name__)


class _Sweeps:
    def _sweep_forever(self) -> None:
        while not self._stop.wait(self.sweep_every_s):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the broker or the database away: the next sweep tries again
                log.exception("sweep failed; the next one, in %g s, tries again", self.sweep_every_s)

    def sweep(self) -> int:
        """Publish again the events whose claims ran out unclaimed, then run the functions' sweeps; how many
        events were published again."""
        by_name = {function.NAME: function for function in self.functions}
        redriven = sum(self._redrive(by_name[r.function], r)
                       for r in self.ledger.take_redrives(list(by_name), self.redrive_after_s))
        hooks = {id(hook): hook for f in self.functions if (hook := getattr(f, "sweep", None)) is not None}
        for hook in hooks.values():
            hook(self.deps, self.ledger, self._publish_events, self.lease_s)
        return redriven

    def _publish_events(self, events: list[Event]) -> None:
        if events:
            self.broker.publish([event_message(e) for e in events])

    def _redrive(self, function, redrive: Redrive) -> bool:
        late = self.ledger.now() - redrive.lease_until
        if redrive.event is None:
            log.error("%s: the claim on %s ran out %.0f s ago and no delivery took it over, but it keeps no event "
                      "(made before claims kept theirs, or by a sweep) to publish again%s", function.NAME, redrive.key,
                      late, f"; publish {redrive.event_type} {redrive.event_id} again by hand"
                      if redrive.event_id else "")
            return False
        headers = {H_ROUTING_KEY: redrive.event_type, H_REDRIVEN_AT: datetime.now(timezone.utc).isoformat()}
        self.broker.publish([Message(exchange=DEFAULT_EXCHANGE, routing_key=topology.function_queue(function.NAME),
                                     body=redrive.event, message_id=redrive.event_id or "", headers=headers,
                                     timestamp=int(time.time()), correlation_id=redrive.correlation_id)])
        self.stats.add("redriven", function.NAME)
        log.warning("%s: published %s %s again: its claim ran out %.0f s ago and no delivery took it over",
                    function.NAME, redrive.event_type, redrive.event_id, late)
        return True
