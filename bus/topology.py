"""Queue names and the topology derived from the function registry.

One durable quorum queue per function, bound to the types it consumes; one delay
queue per retry step (TTL, then dead-lettered back to the function's queue); one
parking queue for messages that will not be retried.

Nothing is dropped between them. The delay queues are quorum queues that
dead-letter at least once: an expired message stays in its delay queue until the
function's queue has confirmed it, so a function queue that has no leader yet
(right after a broker restart) delays the move instead of losing the message, as
the classic delay queues of earlier versions (`doppel.fn.<f>.retry.<n>`) did.
A function's queue delivers one message at most DELIVERY_LIMIT times; then
RabbitMQ parks it, the same way, with an `x-death` header that says why
(`delivery_limit`), so not even a bug in Doppel can put a message back for ever.
"""
from __future__ import annotations

import json
import re
import shlex
from typing import Iterable

from bus.retry import RetryPolicy
from core.broker import QueueSpec

# Deliveries of one message by a function's queue. The worker's retries and deferrals go through the delay
# queues as new messages, so they do not count; what counts is a message put back as it is: its worker died
# or lost its connection, publishing its events failed, or the worker failed on it unexpectedly.
DELIVERY_LIMIT = 20


def function_queue(function: str) -> str:
    return f"doppel.fn.{function}"


def delay_queue(function: str, step: int) -> str:
    return f"doppel.fn.{function}.delay.{step}"


def dead_queue(function: str) -> str:
    return f"doppel.fn.{function}.dead"


def function_of(queue: str) -> str | None:
    """The function whose queue (function, delay or parking) this is; None for another queue."""
    if not queue.startswith("doppel.fn."):
        return None
    return queue[len("doppel.fn."):].split(".", 1)[0] or None


def consumed_patterns(function) -> tuple[str, ...]:
    consumes = function.CONSUMES
    return (consumes,) if isinstance(consumes, str) else tuple(consumes)


def queues_for(functions: Iterable, retry: RetryPolicy) -> list[QueueSpec]:
    specs: list[QueueSpec] = []
    for function in functions:
        name = function.NAME
        specs.append(QueueSpec(dead_queue(name), "quorum"))
        specs.append(QueueSpec(function_queue(name), "quorum", consumed_patterns(function),
                               dead_letter_to=dead_queue(name), delivery_limit=DELIVERY_LIMIT,
                               accept_existing=True))
        for step, delay in enumerate(retry.delays_ms(), start=1):
            # One delay per queue keeps expiry in FIFO order, which per-message TTLs would not.
            specs.append(QueueSpec(delay_queue(name, step), "quorum",
                                   message_ttl_ms=delay, dead_letter_to=function_queue(name)))
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
        if spec.delivery_limit is not None:
            extra.append(f"redelivered at most {spec.delivery_limit} times, then -> {spec.dead_letter_to}")
        lines.append(f"  {spec.name} ({spec.kind}){': ' + '; '.join(extra) if extra else ''}")
    return "\n".join(lines)


def policy_command(spec: QueueSpec, vhost: str) -> str:
    """The `rabbitmqctl set_policy` that gives an existing queue, declared without them, the delivery limit and
    dead-lettering of `spec` (RabbitMQ cannot change a declared queue's arguments; a policy applies at once)."""
    definition = {"delivery-limit": spec.delivery_limit, "dead-letter-exchange": "",
                  "dead-letter-routing-key": spec.dead_letter_to, "dead-letter-strategy": "at-least-once",
                  "overflow": "reject-publish"}
    pattern = "^" + re.escape(spec.name) + "$"
    return shlex.join(["rabbitmqctl", "set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "1", spec.name,
                       pattern, json.dumps(definition)])
