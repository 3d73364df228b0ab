"""Queue names and the topology derived from the function registry.

One durable quorum queue per function, bound to the types it consumes; one delay
queue per retry step (TTL, then dead-lettered back to the function's queue); one
parking queue for messages that will not be retried.
"""
from __future__ import annotations

from typing import Iterable

from bus.retry import RetryPolicy
from core.broker import QueueSpec


def function_queue(function: str) -> str:
    return f"doppel.fn.{function}"


def delay_queue(function: str, step: int) -> str:
    return f"doppel.fn.{function}.retry.{step}"


def dead_queue(function: str) -> str:
    return f"doppel.fn.{function}.dead"


def consumed_patterns(function) -> tuple[str, ...]:
    consumes = function.CONSUMES
    return (consumes,) if isinstance(consumes, str) else tuple(consumes)


def queues_for(functions: Iterable, retry: RetryPolicy) -> list[QueueSpec]:
    specs: list[QueueSpec] = []
    for function in functions:
        name = function.NAME
        specs.append(QueueSpec(function_queue(name), "quorum", consumed_patterns(function)))
        for step, delay in enumerate(retry.delays_ms(), start=1):
            # Classic queues: a message here only waits out its TTL; one delay per
            # queue keeps expiry in FIFO order, which per-message TTLs would not.
            specs.append(QueueSpec(delay_queue(name, step), "classic",
                                   message_ttl_ms=delay, dead_letter_to=function_queue(name)))
        specs.append(QueueSpec(dead_queue(name), "quorum"))
    return specs


def describe(specs: list[QueueSpec]) -> str:
    """The topology as `doppel topology` prints it."""
    lines = ["exchange doppel.events (topic, durable)"]
    for spec in specs:
        extra = []
        if spec.bindings:
            extra.append("bound to " + ", ".join(spec.bindings))
        if spec.message_ttl_ms is not None:
            extra.append(f"ttl {spec.message_ttl_ms} ms -> {spec.dead_letter_to}")
        lines.append(f"  {spec.name} ({spec.kind}){': ' + '; '.join(extra) if extra else ''}")
    return "\n".join(lines)
