"""`doppel trace CORRELATION_ID`: one chain as a timeline, each step with how long it took.

The chain's events come from the audit trail, in the order they happened; under each,
the functions that handled it (from the idempotency ledger), with their outcome, what
they emitted, and how long the step took: from the event's time to the moment its
function recorded it done (the wait in the queue, the handler, the publish of what it
emitted). Secrets in error texts are masked.
"""
from __future__ import annotations

from doppel.cli.common import CommandError
from doppel.cli.output import add_output, dump, iso, when

EXAMPLES = {"trace": ["doppel trace 5d2c1f0e-8a4b-4c1e-9d8e-0b7f6a5c4d3e", "doppel trace 5d2c1f0e",
                      "doppel trace 5d2c1f0e -o json"]}
MIN_PREFIX = 6  # `doppel events` shows a chain's first 8 characters


def register(sub) -> None:
    p = sub.add_parser("trace", help="one chain as a timeline: each event, the steps it caused, their durations",
                       description="Print the events of one chain (its correlation id, or the start of it as "
                                   "`doppel events` shows it) in order, each with the steps that handled it, "
                                   "their outcome and how long each took.")
    p.add_argument("correlation_id", metavar="CORRELATION_ID")
    add_output(p)
    p.set_defaults(handler=cmd_trace)


def cmd_trace(args) -> int:
    from doppel.app import App
    app = App.load(args.config)
    try:
        chain = _chain_id(app, args.correlation_id)
        timeline = build_timeline(app.audit.events(correlation_id=chain), app.ledger.entries(correlation_id=chain))
    finally:
        app.close()
    if args.output != "table":
        dump({"correlation_id": chain, **timeline}, args.output)
    else:
        print_timeline(chain, timeline)
    return 0


def _chain_id(app, text: str) -> str:
    """The full correlation id of the chain `text` names (the whole id, or the start of one)."""
    if app.audit.events(correlation_id=text, limit=1):
        return text
    if len(text) >= MIN_PREFIX:
        found = app.audit.correlation_ids_starting(text, limit=2)
        if len(found) == 1:
            return found[0]
        if found:
            raise CommandError(f"{text} starts more than one chain ({', '.join(found)}, ...); give more of it", 2)
    raise CommandError(f"no chain {text!r} in the audit trail; `doppel events` lists chains (CHAIN is the start of "
                       "each one's id; `doppel events -o json` shows the whole correlationid)", 1)


def build_timeline(records, entries) -> dict:
    """The chain's events in order, each with its steps: {start, finished, seconds, events: [...]}."""
    from doppel.app import safe
    records = sorted(records, key=lambda r: (r.time, r.id))
    start = records[0].time.timestamp() if records else 0.0
    steps: dict[str, list] = {}
    for entry in entries:
        if entry.function == "audit" or entry.event_id is None:
            continue
        steps.setdefault(entry.event_id, []).append(entry)
    events, end = [], start
    for record in records:
        at = record.time.timestamp()
        end = max(end, at)
        done = []
        for entry in sorted(steps.get(record.id, []), key=lambda e: e.updated_at):
            end = max(end, entry.updated_at)
            done.append({"function": entry.function, "status": entry.status,
                         "seconds": round(max(0.0, entry.updated_at - at), 3),
                         "emitted": [event_type for event_type, _ in entry.result.get("emitted", [])],
                         "error": safe(entry.result["error"]) if entry.result.get("error") else None})
        events.append({"at_seconds": round(at - start, 3), "time": iso(record.time), "type": record.type,
                       "id": record.id, "env": record.data.get("env") or record.data.get("production"),
                       "steps": done})
    return {"start": iso(records[0].time) if records else None, "seconds": round(end - start, 3),
            "events": events}


def print_timeline(chain: str, timeline: dict) -> None:
    from datetime import datetime
    events = timeline["events"]
    first = events[0]
    subject = f" ({first['env']})" if first["env"] else ""
    began = when(datetime.fromisoformat(timeline["start"].replace("Z", "+00:00")))
    print(f"chain {chain}{subject}: {first['type']} at {began}")
    for event in events:
        offset = f"+{event['at_seconds']:.3f}s"
        print(f"  {offset:>11}  {event['type']:<22} {event['id']}")
        for step in event["steps"]:
            outcome = " -> " + ", ".join(step["emitted"]) if step["emitted"] else ""
            outcome += f"  ({step['error']})" if step["error"] else ""
            took = f"{step['seconds']:.3f}s"
            print(f"  {'':>11}    {step['function']:<12} {step['status']:<9} {took:>9}{outcome}")
    steps = sum(len(e["steps"]) for e in events)
    print(f"{len(events)} events, {steps} steps, {timeline['seconds']:.3f}s from the first event to the last step; "
          f"the last event: {events[-1]['type']}")
