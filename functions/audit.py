"""Record every event on the bus in the audit trail; the trail `doppel events` reads."""
from schemas.envelope import Event

NAME = "audit"
CONSUMES = "#"
EMITS = ()



def handle(event: Event, deps) -> list:
    deps.audit.record(event)
    return []
