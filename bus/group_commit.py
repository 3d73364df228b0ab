"""Group commit: calls from many threads, written together in as few transactions as they allow.

In the ledger, each claim, completion and failure is its own call, answered only
once its transaction committed, but calls that arrive while another transaction
is under way share the next one: a worker with 100 deliveries in flight writes
tens of keys per transaction instead of one (SQLite allows one writer at a time,
and its busy handler sleeps whole milliseconds between tries). A call that
fails inside a shared transaction is retried alone, so one bad row fails only
its own caller. A worker claims (and completes) a whole batch of deliveries as
one call.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Call:
    """One claim or finish, waiting for the transaction that carries it.

    A caller that waits is woken through `wake`, a lock held until then (cheaper
    than an Event). A caller that does not wait leaves `then`, run after the
    transaction with the error or None.
    """
    kind: str  # claim | finish | release (close() letting the held connection go)
    rows: list[dict]  # one caller's rows, written together (a worker claims a whole batch of deliveries)
    then: Callable[[BaseException | None], None] | None = None
    result: Any = None  # for a claim: one Claim per row
    error: BaseException | None = None
    finished: bool = False
    leads: bool = False  # this caller runs the next shared transaction
    wake: Any = None

    def __post_init__(self):
        if self.then is None:
            self.wake = threading.Lock()
            self.wake.acquire()


class _GroupCommit:
    """Calls from many threads, written together by whichever caller finds no transaction running.

    A waiting caller (`run`) that finds no transaction running leads: it writes
    what is queued; calls that arrive meanwhile queue, and when the leader's
    transaction is done the oldest waiting caller leads the next one, carrying
    all that queued. A waiting caller returns only after the transaction with
    its call committed. Calls nobody waits for (`submit`) are written by the
    current leader, which goes on writing while only such calls are queued; when
    no one leads, the group's writer thread does, so a worker's handler thread
    never stops for the completion it just submitted, and completions that
    arrive during a transaction share the next one.
    """

    def __init__(self, write: Callable[[list[_Call]], None]):
        self._write = write  # runs the calls in one transaction, setting each one's result
        self._lock = threading.Lock()
        self._queued: list[_Call] = []
        self._busy = False
        self._writer: threading.Thread | None = None  # started on the first submit
        self._writer_wake = threading.Semaphore(0)
        self._writer_leads = 0  # times the writer was asked to lead and has not yet
        self._closed = False

    def run(self, call: _Call) -> Any:
        """Queue a call and wait until it is written; its result, or its error raised."""
        if self._enqueue(call):
            self._lead()
        while not call.finished:
            call.wake.acquire()  # released when the call is written, or when it is to lead
            if call.leads and not call.finished:
                self._lead()
        if call.error is not None:
            raise call.error
        return call.result

    def submit(self, call: _Call) -> None:
        """Queue a call with `then`; the writer thread leads if no transaction is running (after close(): this
        thread does)."""
        if not self._enqueue(call):
            return
        with self._lock:
            to_writer = not self._closed
            if to_writer:
                self._writer_leads += 1
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_forever, name="doppel-ledger-writer",
                                                    daemon=True)
                    self._writer.start()
        if to_writer:
            self._writer_wake.release()
        else:
            self._lead()

    def close(self, timeout: float = 10.0) -> None:
        """Write what the writer thread was asked to, and stop it; later submits are written by their caller."""
        with self._lock:
            self._closed, writer = True, self._writer
        if writer is not None:
            self._writer_wake.release()
            writer.join(timeout)

    def _write_forever(self) -> None:
        while True:
            self._writer_wake.acquire()
            with self._lock:
                leads = self._writer_leads > 0
                if leads:
                    self._writer_leads -= 1
            if leads:
                try:
                    self._lead()
                except BaseException:  # noqa: BLE001 - the callers were told; the writer lives on
                    log.exception("ledger writer: a shared transaction was interrupted")
            with self._lock:
                if self._closed and not self._writer_leads:
                    return

    def _enqueue(self, call: _Call) -> bool:
        """Queue the call; True when no one is writing, so the caller must lead."""
        with self._lock:
            self._queued.append(call)
            if self._busy:
                return False
            self._busy = call.leads = True
            return True

    def _lead(self) -> None:
        while True:
            with self._lock:
                calls, self._queued = self._queued, []
            try:
                self._write_each_alone_if_shared_fails(calls)
            except BaseException as exc:  # e.g. KeyboardInterrupt: whether it committed is unknown
                for call in calls:
                    call.error = call.error or RuntimeError(f"ledger write interrupted ({exc!r}); nothing is known")
                self._hand_over(may_keep_leading=False)
                self._resolve(calls)
                raise
            more = self._hand_over()
            self._resolve(calls)
            if not more:
                return

    def _hand_over(self, may_keep_leading: bool = True) -> bool:
        """Pass the lead to the oldest waiting caller; True when only `submit`ted calls wait (keep leading)."""
        with self._lock:
            successor = next((call for call in self._queued if call.then is None), None)
            if successor is None:
                if self._queued and may_keep_leading:
                    return True
                self._busy = False  # the next caller leads, and takes whatever is queued
                return False
            successor.leads = True
        successor.wake.release()
        return False

    @staticmethod
    def _resolve(calls: list[_Call]) -> None:
        for call in calls:
            call.finished = True
            if call.then is None:
                if not call.leads:  # a leader is not waiting on its lock
                    call.wake.release()
                continue
            try:
                call.then(call.error)
            except Exception:  # noqa: BLE001 - one caller's follow-up must not stop the others'
                log.exception("after a ledger write: a follow-up failed")

    def _write_each_alone_if_shared_fails(self, calls: list[_Call]) -> None:
        try:
            self._write(calls)
            return
        except Exception as exc:  # noqa: BLE001 - handed to the callers below
            if len(calls) == 1:
                calls[0].error = exc
                return
        for call in calls:
            call.result = None
            try:
                self._write([call])
            except Exception as exc:  # noqa: BLE001 - this caller's own error
                call.error = exc
