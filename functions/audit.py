"""Record every event on the bus in the audit trail; the trail `doppel events` reads."""
from schemas.envelope import Event

NAME = "audit"
CONSUMES = "#"
EMITS = ()


def idempotency_key(event: Event) -> str:
    return f"{event.source}:{event.id}"


def handle(event: Event, deps) -> list:
    deps.audit.record(event)
    return []
