"""Retry policy: exponential backoff through per-function delay queues.

The attempt number travels in the message's headers, so a worker that restarts
(or another worker) continues the count instead of starting it again.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total runs of a handler for one message, the first included
    first_delay_ms: int = 1000
    factor: float = 2.0
    max_delay_ms: int = 300_000

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError("retry attempts must be at least 1")
        if self.first_delay_ms < 1 or self.factor < 1:
            raise ValueError("retry delays must be positive and must not shrink")

    def delay_ms(self, attempt: int) -> int:
        """Delay before run number `attempt + 1`, after run number `attempt` failed."""
        return int(min(self.first_delay_ms * self.factor ** (attempt - 1), self.max_delay_ms))

    def delays_ms(self) -> list[int]:
        return [self.delay_ms(attempt) for attempt in range(1, self.attempts)]

    def step_nearest(self, seconds: float) -> int:
        """The delay queue (1-based step) whose wait is nearest to `seconds`: the longest when asked for more."""
        delays = self.delays_ms()
        if not delays:
            return 1
        return min(range(len(delays)), key=lambda i: (abs(delays[i] - seconds * 1000), i)) + 1
