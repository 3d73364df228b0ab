"""The worker: deliveries in, a function run at most once in effect per event, its events out, then the ack.

For each delivery: read the envelope and validate the data (an event that cannot
be read or is invalid, whatever the error, is parked at once, never retried);
claim (function, idempotency key) in the ledger (a completed key is acked without
running); run the handler off the broker's I/O thread; publish what it returned
and wait for the broker's confirms; record the key as done; and only then ack. A
failure is retried through the function's delay queues with the attempt count in
the headers, and parked with its reason after the last attempt, or at once when
it is permanent.

Batches. The broker hands over the deliveries that arrived together; their
events are read and claimed in one ledger transaction, then their handlers run
one after another on the batch's thread, which records the handled ones as done
in one transaction when it runs out of events, and acks them. So that a slow
handler does not hold up the rest of its batch, a watchdog gives claimed events
that have waited longer than STALL_S to a helper thread, and has the ledger's
writer thread record completions that have waited that long.

Sweeps: see bus.worker_sweeps; retrying and parking: bus.worker_outcomes.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bus import topology
from bus.ledger import ABANDONED_REASON, MAX_TAKEOVERS, Claim, Ledger
from bus.retry import RetryPolicy
from bus.worker_outcomes import _Outcomes
from bus.worker_sweeps import _Sweeps
from core.broker import H_ATTEMPT, Message, PublishError, Unsendable, event_message
from core.errors import Deferred, PermanentError
from core.logcontext import chain_context
from core.metrics import Metrics
from core.secrets import redact
from schemas.envelope import EnvelopeError, Event, from_amqp
from schemas.events import UnknownEventType, validate_in

log = logging.getLogger(__name__)
STALL_S = 0.02  # a claimed event waiting this long behind a running handler goes to a helper thread
MAX_HELPERS = 16


def default_key(event: Event) -> str:
    return f"{event.source}:{event.id}"


class InvalidEvent(ValueError):
    pass


@dataclass
class Reporter:
    """Where parked messages and unexpected errors are reported (Sentry when configured)."""
    def report(self, message: str, *, tags: dict, error: BaseException | None = None) -> None:
        log.error("%s %s", message, tags)


@dataclass
class Stats:
    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _keys: dict = field(default_factory=dict)  # (name, function) -> "name:function", made once
    metrics: Metrics | None = None  # the process's Prometheus families, when it has them

    def add(self, name: str, function: str, count: int = 1) -> None:
        key = self._keys.get((name, function))
        if key is None:
            key = self._keys[(name, function)] = f"{name}:{function}"
        with self.lock:
            self.counts[name] += count
            self.counts[key] += count
        if self.metrics is not None:
            self.metrics.outcome(name, function, count)


class _Batch:
    """The claimed events of one delivered batch; its thread returns once all have run, wherever they ran."""

    def __init__(self, count: int):
        self.left = count
        self.lock = threading.Lock()
        self.all_run = threading.Event()

    def one_run(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.all_run.set()


@dataclass(eq=False, slots=True)
class _Job:
    """One claimed event, waiting for its handler to run."""
    function: object
    delivery: object
    event: Event
    key: str
    owner: str
    attempt: int
    batch: _Batch | None = None
    queued_at: float = 0.0


class Worker(_Outcomes, _Sweeps):
    def __init__(self, broker, functions, ledger: Ledger, deps, *, retry: RetryPolicy | None = None,
                 lease_s: float = 30.0, prefetch: int = 32, reporter: Reporter | None = None,
                 sweep_every_s: float | None = None, redrive_after_s: float | None = None,
                 metrics: Metrics | None = None):
        """`sweep_every_s` and `redrive_after_s` default to the lease: a lost message is published again
        between one and two leases after its claim ran out."""
        self.broker, self.functions, self.ledger, self.deps = broker, list(functions), ledger, deps
        self.retry = retry or RetryPolicy()
        self.lease_s, self.prefetch = lease_s, prefetch
        self.sweep_every_s = sweep_every_s if sweep_every_s is not None else lease_s
        self.redrive_after_s = redrive_after_s if redrive_after_s is not None else lease_s
        self.reporter = reporter or Reporter()
        self.metrics = metrics or Metrics()
        self.stats = Stats(metrics=self.metrics)
        self._active: dict[tuple[str, str], tuple[str, float]] = {}
        self._active_lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._sweeper: threading.Thread | None = None
        # Ledger owners: unique per claim across workers; a counter is cheaper than a uuid per delivery.
        self._owner_prefix = uuid.uuid4().hex
        self._claims = itertools.count(1)
        # Claimed events whose handler has not started; any batch thread or helper takes the oldest.
        self._ready: deque[_Job] = deque()
        self._ready_changed = threading.Condition()
        self._helpers: ThreadPoolExecutor | None = None
        self._helpers_starting = 0  # submitted, not yet taking jobs: no second one while one is on its way
        self._helpers_running = 0
        self._watchdog: threading.Thread | None = None
        self._watchdog_asleep = False  # waiting for the next job without a timeout: wake it when jobs wait
        # Handlers that returned, whose completion is not yet written (guarded by _ready_changed too): the
        # thread that runs out of jobs writes them all; the watchdog does if they wait longer than STALL_S.
        self._done: list[tuple] = []
        self._done_since = 0.0

    # -- lifecycle -------------------------------------------------------------
    def declare(self) -> None:
        self.broker.declare(topology.queues_for(self.functions, self.retry))
        outdated = self.broker.queues_as_found
        for name in sorted(outdated):
            log.warning("%s was declared by an older Doppel, without a delivery limit: a message that keeps coming "
                        "back is not parked after %d redeliveries there, unless a policy gives it the limit "
                        "(`doppel topology --declare` prints the command)", name, topology.DELIVERY_LIMIT)

    def start(self) -> None:
        self.declare()
        self._renewer = threading.Thread(target=self._renew_leases, name="doppel-lease-renewer", daemon=True)
        self._renewer.start()
        self._helpers = ThreadPoolExecutor(MAX_HELPERS, thread_name_prefix="doppel-helper")
        self._watchdog = threading.Thread(target=self._watch_ready, name="doppel-worker-watchdog", daemon=True)
        self._watchdog.start()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="doppel-worker-sweep", daemon=True)
        self._sweeper.start()
        for function in self.functions:
            self.broker.consume_batches(topology.function_queue(function.NAME),
                                        lambda deliveries, fn=function: self.on_deliveries(fn, deliveries),
                                        prefetch=self.prefetch)

    def stop(self) -> None:
        self._stop.set()
        with self._ready_changed:
            self._ready_changed.notify_all()
        if self._helpers is not None:
            self._helpers.shutdown(wait=False)

    # -- a batch of deliveries ------------------------------------------------------
    def on_deliveries(self, function, deliveries) -> None:
        """Read and claim them all in one ledger transaction, run what is ours, return once all have run."""
        jobs = []
        key_of = getattr(function, "idempotency_key", default_key)
        self.metrics.consumed_from(function.NAME, len(deliveries))
        for delivery in deliveries:
            attempt = _attempt(delivery.message)
            try:
                event = self._read(delivery.message)
                key = self._key(key_of, event)
            except InvalidEvent as exc:
                self._park(function, delivery, None, "invalid", redact(str(exc)), attempt)
                continue
            jobs.append(_Job(function, delivery, event, key, f"{self._owner_prefix}.{next(self._claims)}", attempt))
        if not jobs:
            return
        claims = self.ledger.claim_many([(function.NAME, job.key, job.owner, job.event) for job in jobs],
                                        self.lease_s, [_event_json(job.delivery.message) for job in jobs])
        mine = []
        for job, claim in zip(jobs, claims):
            if claim is Claim.RUN:
                mine.append(job)
            elif claim is Claim.DONE:
                self.stats.add("duplicate", function.NAME)
                job.delivery.ack()
            elif claim is Claim.ABANDONED:  # its claims kept running out: compensate and park, do not run
                self._give_up(function, job.delivery, job.event, "abandoned",
                              ABANDONED_REASON.format(times=MAX_TAKEOVERS + 1), job.attempt)
            else:  # another worker holds it; if that worker died, its lease runs out and a later try takes over
                self._delay(function, job.delivery, job.attempt, "claimed by another worker", step=1,
                            count_attempt=False)
        if not mine:
            return
        batch, now = _Batch(len(mine)), time.monotonic()
        with self._active_lock:
            for job in mine:
                self._active[(function.NAME, job.key)] = (job.owner, now)
        with self._ready_changed:
            for job in mine:
                job.batch, job.queued_at = batch, now
            self._ready.extend(mine)
            if len(self._ready) > 1 and self._watchdog_asleep:
                self._ready_changed.notify()  # the watchdog keeps an eye on what waits
        self._run_ready()
        batch.all_run.wait()

    def _run_ready(self) -> None:
        """Run claimed events, oldest first, until none is waiting; then record the handled ones as done and ack."""
        while True:
            with self._ready_changed:
                if not self._ready:
                    break
                job = self._ready.popleft()
            try:
                self._run(job.function, job.delivery, job.event, job.key, job.owner, job.attempt)
            except Exception:  # noqa: BLE001 - e.g. parking failed: this one goes back, the others run on
                log.exception("%s: handling %s failed unexpectedly; putting it back", job.function.NAME, job.event.id)
                self._forget_active(job.function.NAME, job.key, job.owner)
                if not job.delivery.settled:
                    job.delivery.nack(requeue=True)
            finally:
                job.batch.one_run()
        self._write_done(wait=True)

    def _watch_ready(self) -> None:
        """Give waiting claimed events to a helper thread when they wait longer than STALL_S."""
        while not self._stop.is_set():
            with self._ready_changed:
                overdue = self._done and time.monotonic() - self._done_since >= STALL_S
            if overdue:  # their thread is in a slow handler: the writer thread writes them
                self._write_done(wait=False)
            with self._ready_changed:
                if not self._ready:
                    self._watchdog_asleep = True
                    self._ready_changed.wait(STALL_S if self._done else None)
                    self._watchdog_asleep = False
                    continue
                waited = time.monotonic() - self._ready[0].queued_at
                if waited < STALL_S or self._helpers_starting or self._helpers_running >= MAX_HELPERS:
                    self._ready_changed.wait(max(STALL_S - waited, STALL_S / 4))
                    continue
                self._helpers_starting += 1
                self._helpers_running += 1
            try:
                self._helpers.submit(self._help)
            except RuntimeError:  # shut down: stopping
                return

    def _help(self) -> None:
        with self._ready_changed:
            self._helpers_starting -= 1
        try:
            self._run_ready()
        finally:
            with self._ready_changed:
                self._helpers_running -= 1
                self._ready_changed.notify()

    # -- one event ----------------------------------------------------------------
    def _run(self, function, delivery, event: Event, key: str, owner: str, attempt: int) -> None:
        """Run a claimed event's handler (its claim is in _active); settle its delivery, now or after the commit."""
        completing = False  # once true, _completed releases the claim's lease and settles the delivery
        context = chain_context(event, function.NAME)
        try:
            emitted = self._handle(function, event, key)
            if emitted:
                self.broker.publish([event_message(e) for e in emitted])
                self.metrics.published_by(function.NAME, len(emitted))
        except (PermanentError, Unsendable) as exc:  # Unsendable: what it emitted cannot be sent, ever
            reason = redact(str(exc))
            self.ledger.fail(function.NAME, key, owner, reason)
            self._give_up(function, delivery, event, "permanent", reason, attempt)
        except Deferred as exc:
            self._defer(function, delivery, event, key, owner, attempt, exc)
        except PublishError as exc:
            # The broker is away: the claim is released and the message comes back on reconnect.
            log.warning("%s: could not publish the events of %s (%s); it will be redelivered", function.NAME, event.id,
                        redact(str(exc)))
            self.ledger.fail(function.NAME, key, owner, redact(f"publish failed: {exc}"))
            delivery.nack(requeue=True)
        except Exception as exc:  # noqa: BLE001 - anything unexpected is worth a retry
            if getattr(exc, "permanent", False):  # e.g. a driver's "no such production": retrying cannot help
                reason = redact(str(exc))
                self.ledger.fail(function.NAME, key, owner, reason)
                self._give_up(function, delivery, event, "permanent", reason, attempt)
                return
            reason = redact(f"{type(exc).__name__}: {exc}")
            self.ledger.fail(function.NAME, key, owner, reason)
            if attempt >= self.retry.attempts:
                self.reporter.report(f"{function.NAME} failed {attempt} times on {event.type} {event.id}: {reason}",
                                     tags=self._tags(function, event), error=exc)
                self._give_up(function, delivery, event, "exhausted", reason, attempt, reported=True)
            else:
                log.warning("%s: attempt %d of %d failed on %s %s: %s", function.NAME, attempt,
                            self.retry.attempts, event.type, event.id, reason)
                self._delay(function, delivery, attempt, reason, step=attempt, count_attempt=True)
        else:
            # The ack waits for the ledger's commit, written with others' once this thread runs out of jobs
            # (or by the watchdog, if the next handler is slow).
            with self._ready_changed:
                if not self._done:
                    self._done_since = time.monotonic()
                    if self._watchdog_asleep:
                        self._ready_changed.notify()
                self._done.append((function, delivery, key, owner, [[e.type, e.id] for e in emitted]))
            completing = True
        finally:
            context.close()
            if not completing:
                self._forget_active(function.NAME, key, owner)

    def _handle(self, function, event: Event, key: str) -> list:
        """What the handler returned; its run timed for the metrics, and logged with -vv."""
        started = time.perf_counter()
        try:
            return function.handle(event, self.deps.for_event(event, function.NAME, key, function.EMITS)) or []
        finally:
            took = time.perf_counter() - started
            self.metrics.handler_ran(function.NAME, took)
            log.debug("%s: ran on %s %s in %.3f s", function.NAME, event.type, event.id, took)

    def _write_done(self, wait: bool) -> None:
        """Record the handled events as done in one transaction (here, or on the ledger's writer thread), then ack."""
        with self._ready_changed:
            done, self._done = self._done, []
        if not done:
            return
        rows = [(function.NAME, key, owner, {"emitted": emitted}) for function, _d, key, owner, emitted in done]

        def settle(error: BaseException | None) -> None:
            if error is None:  # counted before the acks (whoever sees an ack sees its count), once per function
                for name, count in Counter(function.NAME for function, *_rest in done).items():
                    self.stats.add("handled", name, count)
            for function, delivery, key, owner, _emitted in done:
                self._completed(function, delivery, key, owner, error)
        if not wait:
            self.ledger.complete_many_later(rows, then=settle)
            return
        try:
            self.ledger.complete_many(rows)
        except Exception as exc:  # noqa: BLE001 - each delivery goes back; the handlers' effects are idempotent
            settle(exc)
        else:
            settle(None)

    def _completed(self, function, delivery, key: str, owner: str, error: BaseException | None) -> None:
        """After the ledger write of a completion (counted as handled already): ack, or put the message back if
        the write failed."""
        self._forget_active(function.NAME, key, owner)
        if error is not None:
            log.error("%s: could not record %s as done (%s); it will be redelivered", function.NAME,
                      delivery.message.message_id, redact(str(error)))
            delivery.nack(requeue=True)
            return
        delivery.ack()

    def _forget_active(self, name: str, key: str, owner: str) -> None:
        with self._active_lock:
            if self._active.get((name, key), (None,))[0] == owner:
                del self._active[(name, key)]

    # -- outcomes --------------------------------------------------------------
    def _read(self, message: Message) -> Event:
        """The delivered event, validated; InvalidEvent, with the reason, for anything that cannot be read.

        Any error counts, not only the envelope's own: a body nested too deeply for the JSON parser
        (RecursionError), an integer too long to convert (ValueError), an attribute of an unexpected type
        (AttributeError, TypeError). Put back, such a message would come back at once, for ever."""
        try:
            event = from_amqp(message.body, message.headers, message.content_type)
            errors = validate_in(event.type, event.data)
        except (EnvelopeError, UnknownEventType) as exc:
            raise InvalidEvent(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - see above: whatever it is, the message is unreadable
            raise InvalidEvent(f"unreadable message ({len(message.body)} bytes): {_short(exc)}") from exc
        if errors:
            raise InvalidEvent(f"{event.type} {event.id} fails its schema: {errors}")
        return event

    @staticmethod
    def _key(key_of, event: Event) -> str:
        """The event's idempotency key; an event the function cannot key is as unreadable as a broken one."""
        try:
            return f"{key_of(event)}"
        except Exception as exc:  # noqa: BLE001 - e.g. a key built from data its schema lets be absent
            raise InvalidEvent(f"{event.type} {event.id}: no idempotency key can be made of it: {_short(exc)}") \
                from exc

    # -- leases ----------------------------------------------------------------
    def _renew_leases(self) -> None:
        period = self.lease_s / 3
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._active_lock:
                due = [(name, key, owner) for (name, key), (owner, since) in self._active.items()
                       if now - since >= period]
            for name, key, owner in due:
                try:
                    if not self.ledger.renew(name, key, owner, self.lease_s):
                        log.warning("%s: lost the claim on %s (lease ran out)", name, key)
                except Exception:  # noqa: BLE001 - a database hiccup must not kill the renewer
                    log.exception("lease renewal failed")


# Header prefixes of the CloudEvents AMQP bindings' binary mode (see schemas.envelope.from_amqp).
_BINARY_MODE = ("ce-", "cloudEvents:", "cloudEvents_")


def _event_json(message: Message) -> str | None:
    """The event as structured-mode JSON when the message body is just that (so the ledger need not serialise
    it again); None for binary mode, where the body is only the data."""
    if not message.content_type.startswith("application/cloudevents") or \
            any(name.startswith(_BINARY_MODE) for name in message.headers):
        return None
    try:
        return message.body.decode()
    except UnicodeDecodeError:  # JSON in UTF-16 or -32: serialised by the ledger instead
        return None


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception as `Type: message`, cut short: the message of a bad input may quote the whole input."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "..."


def _attempt(message: Message) -> int:
    """The attempt number a message carries; 1 when it carries none or one that is not a number."""
    try:
        return max(1, int(message.headers.get(H_ATTEMPT, 1)))
    except (TypeError, ValueError):
        return 1
