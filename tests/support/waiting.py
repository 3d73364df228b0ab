"""Waiting in tests: for an event, a counter or a state, never for time to pass.

`wait_for` polls a condition until it holds and returns what it returned; the
timeout is only how long to wait before saying what did not happen, never what
is tested. A test that must show that something did NOT happen waits for a
sentinel that comes after it (an event published behind it, a counter that
moves when the work is done) and then looks.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05,
             explain: Callable[[], str] | None = None) -> T:
    """The first truthy value of `condition()`; AssertionError naming `what` (and `explain()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)
