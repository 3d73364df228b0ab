"""`doppel run|worker|publish|events|dlq|topology`: the bus from the command line."""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

from doppel import roles
from doppel.cli.common import CommandError, build_event, duration
from doppel.cli.output import add_output, dump, emit, iso, when

EXAMPLES = {
    "run": ["doppel run", "DOPPEL_AMQP_URL=amqp://doppel:PASS@mq:5672/doppel doppel run"],
    "worker": ["doppel worker", "doppel worker --only snapshot,clone,configure"],
    "publish": ["doppel publish env.requested --data '{\"env\": \"perf-test\", \"production\": \"shop\"}'",
                "doppel publish backup.due --data @event.json --id nightly-2025-03-01"],
    "events": ["doppel events", "doppel events --since 1h --type env.ready", "doppel events --follow",
               "doppel events --correlation 5d2c... -o json"],
    "dlq": ["doppel dlq list", "doppel dlq replay --function clone"],
    "dlq list": ["doppel dlq list", "doppel dlq list --function snapshot -o json"],
    "dlq show": ["doppel dlq show 5d2c1f0e-..."],
    "dlq replay": ["doppel dlq replay 5d2c1f0e-...", "doppel dlq replay --function clone"],
    "dlq purge": ["doppel dlq purge --function clone --yes"],
    "topology": ["doppel topology", "doppel topology --declare"],
}


def register(sub) -> None:
    p = sub.add_parser("run", help="worker, scheduler and gateway in one process (small installs, the embedded bus)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("worker", help="consume events and run functions")
    p.add_argument("--only", metavar="F1,F2", help="serve only these functions (default: all)")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("publish", help="validate and publish one event; prints its id",
                       description="Validate an event against its type's schema and publish it. "
                                   "With the embedded bus the chain it starts runs before this returns.")
    p.add_argument("type", metavar="TYPE", help="the event type, e.g. env.requested (docs/bus.md lists them; "
                                                "a wrong one is answered with the known types)")
    p.add_argument("--data", "-d", default="{}", help="the event data: JSON, or @file to read it from a file")
    p.add_argument("--source", default=None, help="the CloudEvents source (default: doppel/cli)")
    p.add_argument("--id", dest="event_id", help="the event id (default: a new UUID); reusing one is de-duplicated")
    p.add_argument("--correlation", help="join an existing chain")
    p.set_defaults(handler=cmd_publish)

    p = sub.add_parser("events", help="the audit trail: the newest events handled, newest last")
    p.add_argument("--correlation", help="only the events of this chain")
    p.add_argument("--type", help="only events of this type")
    p.add_argument("--since", help="only those of the last DURATION (e.g. 1h) or since a moment "
                                   "(ISO 8601, e.g. 2025-03-01T12:00Z)")
    p.add_argument("--limit", type=_count, default=200, help="at most this many, the newest (default 200)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they are recorded")
    add_output(p)
    p.set_defaults(handler=cmd_events)

    p = sub.add_parser("dlq", help="parked messages: list, show, replay, purge")
    dlq = p.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    q = dlq.add_parser("list", help="parked messages of every function, with the reason")
    q.add_argument("--function", help="only this function's")
    add_output(q)
    q.set_defaults(handler=cmd_dlq_list)
    q = dlq.add_parser("show", help="one parked message in full")
    q.add_argument("message_id")
    add_output(q, default="json")
    q.set_defaults(handler=cmd_dlq_show)
    q = dlq.add_parser("replay", help="send parked messages back to their function, attempts reset")
    q.add_argument("message_id", nargs="?", help="one message (default: all of --function's)")
    q.add_argument("--function", help="the function whose parked messages to replay")
    q.set_defaults(handler=cmd_dlq_replay)
    q = dlq.add_parser("purge", help="delete a function's parked messages for good")
    q.add_argument("--function", required=True)
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    q.set_defaults(handler=cmd_dlq_purge)

    p = sub.add_parser("topology", help="the exchange and queues Doppel uses")
    p.add_argument("--declare", action="store_true", help="declare them on the broker now (safe to repeat)")
    p.set_defaults(handler=cmd_topology)


# -- roles -----------------------------------------------------------------------
def _app(args, role: str = "cli"):
    from doppel.app import App
    return App.load(args.config, role=role)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; write a whole number of at least 1")
    return value


def cmd_worker(args) -> int:
    roles.run_worker(_app(args, "worker"), roles.functions_named(getattr(args, "only", None)))
    return 0


def cmd_run(args) -> int:
    """Every role in one process: worker, scheduler and gateway (the embedded bus's usual shape)."""
    roles.quiet_pika(args.verbose)
    roles.run_all(_app(args, "worker+scheduler+gateway"), roles.functions_named())
    return 0


# -- publish -------------------------------------------------------------------------
def read_data(text: str) -> dict:
    from schemas.envelope import EnvelopeError, read_json
    if text.startswith("@"):
        try:
            text = open(text[1:]).read()
        except OSError as exc:
            raise CommandError(f"cannot read the data file {text[1:]}: {exc.strerror}", 2) from None
    try:
        data = read_json(text, "--data")
    except EnvelopeError as exc:
        raise CommandError(f"{exc}", 2) from None
    if not isinstance(data, dict):
        raise CommandError("--data must be a JSON object, e.g. '{\"env\": \"perf-test\"}'", 2)
    return data


def publish_and_settle(app, event, functions=None) -> None:
    """Publish; on the embedded bus, also run the chain it starts to completion in this process."""
    from bus import topology
    from core.broker import event_message
    functions = functions or roles.functions_named()
    app.broker.declare(topology.queues_for(functions, app.retry))
    app.broker.publish([event_message(event)])
    if app.embedded:
        settle_embedded(app, functions)


def cmd_publish(args) -> int:
    from core.broker import PublishError, Unsendable
    event = build_event(args.type, read_data(args.data), source=args.source, event_id=args.event_id,
                        correlation=args.correlation)
    app = _app(args)
    try:
        production = event.data.get("production")
        if production is not None and event.type.endswith(".requested") and \
                production not in app.config["productions"]:
            known = ", ".join(sorted(app.config["productions"])) or "none yet"
            raise CommandError(f"{event.type} names production {production!r}, which {app.config.where} does not "
                               f"describe (known: {known}); nothing was published", 2)
        publish_and_settle(app, event)
    except Unsendable as exc:
        raise CommandError(f"{event.type} was not published: {exc}", 2) from None
    except PublishError as exc:
        raise CommandError(f"{event.type} {event.id} was not published: {exc}; publish it again once the bus "
                           "answers (the same --id is handled once)", 1) from None
    finally:
        app.close()
    print(event.id)
    return 0


# -- audit trail -------------------------------------------------------------------
def _since(text: str | None) -> float | None:
    """--since as a timestamp: a duration ago, or an ISO 8601 moment (UTC unless it says otherwise)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return time.time() - duration(text, "--since")
        except CommandError:
            raise CommandError(f"--since {text[:40]!r}: write a duration (30m, 2h, 1d) or a moment "
                               "(2025-03-01T12:00Z)", 2) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


EVENT_COLUMNS = (("time", "TIME", 24), ("type", "TYPE", 22), ("id", "ID", 36), ("chain", "CHAIN", 8),
                 ("source", "SOURCE", 30), ("results", "RESULTS", 80))


def cmd_events(args) -> int:
    since = _since(args.since)
    app = _app(args)
    try:
        records = app.audit.events(correlation_id=args.correlation, event_type=args.type, limit=args.limit,
                                   since=since, newest=True)
        _print_events(app, records, args.output, header=True, stream=args.follow)
        if not records and args.output == "table" and not args.follow:
            print("no events recorded" + (f" for chain {args.correlation}" if args.correlation else ""),
                  file=sys.stderr)
        seen = {r.id for r in records}
        while args.follow:
            time.sleep(0.5)
            fresh = [r for r in app.audit.events(correlation_id=args.correlation, event_type=args.type,
                                                 since=time.time() - 60) if r.id not in seen]
            seen.update(r.id for r in fresh)
            _print_events(app, fresh, args.output, header=False, stream=True)
    finally:
        app.close()
    return 0


def _print_events(app, records, fmt: str, header: bool, stream: bool) -> None:
    """Events as a table, or json/yaml; json with --follow is one object per line, so it streams."""
    from core.secrets import masked
    from doppel.app import safe
    outcomes = {}
    for entry in app.ledger.entries(event_ids=[r.id for r in records]):
        if entry.function != "audit":
            outcomes.setdefault(entry.event_id, []).append(entry)
    if fmt != "table":
        rows = [{"id": r.id, "source": r.source, "type": r.type, "correlationid": r.correlation_id,
                 "time": iso(r.time), "data": r.data,
                 "results": [{"function": e.function, "status": e.status, **e.result}
                             for e in outcomes.get(r.id, [])]} for r in records]
        rows = masked(rows)  # event data may carry credentials (a requester's, an environment's)
        if fmt == "json" and stream:
            for row in rows:
                print(json.dumps(row, default=str), flush=True)
        elif rows or not stream:
            dump(rows, fmt)
        return
    if header and records:
        print(f"{'TIME':<23}  {'TYPE':<20} {'ID':<36}  CHAIN     SOURCE")
    for record in records:
        print(f"{when(record.time):<23}  {record.type:<20} {record.id:<36}  {record.correlation_id[:8]:<8}  "
              f"{record.source}", flush=True)
        for e in outcomes.get(record.id, []):
            detail = ", ".join(t for t, _ in e.result.get("emitted", [])) or e.result.get("error", "")
            print(f"    -> {e.function}: {e.status}{'  ' + safe(detail) if detail else ''}", flush=True)


# -- parked messages -------------------------------------------------------------
def _dead_queues(app, only: str | None):
    from bus import topology
    functions = roles.functions_named(only)
    app.broker.declare(topology.queues_for(functions, app.retry))
    return [(f.NAME, topology.dead_queue(f.NAME)) for f in functions]


def _drain(app, queue: str):
    """Every message of a queue, taken unacked; the caller settles each."""
    taken = []
    while (delivery := app.broker.get(queue)) is not None:
        taken.append(delivery)
    return taken


def _describe(delivery) -> dict:
    from bus import topology
    from core.broker import H_ATTEMPT, H_ERROR, H_ERROR_KIND, H_FUNCTION, H_PARKED_AT, H_ROUTING_KEY
    message = delivery.message
    headers = message.headers
    deaths = headers.get("x-death") or []  # RabbitMQ's record of each dead-lettering, the latest first
    first_type = (deaths[-1].get("routing-keys") or [None])[0] if deaths else None
    info = {"message_id": message.message_id, "function": headers.get(H_FUNCTION),
            "type": headers.get(H_ROUTING_KEY) or first_type or message.routing_key,
            "kind": headers.get(H_ERROR_KIND), "attempts": headers.get(H_ATTEMPT),
            "parked_at": headers.get(H_PARKED_AT), "error": headers.get(H_ERROR)}
    if info["kind"] is None and deaths:  # parked by RabbitMQ itself, not by a worker
        death = deaths[0]
        at = death.get("time")
        info.update(function=topology.function_of(str(death.get("queue", ""))), kind=str(death.get("reason")),
                    parked_at=at.isoformat() if isinstance(at, datetime) else at,
                    error=_dead_lettered_because(death))
    return info


def _dead_lettered_because(death: dict) -> str:
    from bus import topology
    if death.get("reason") == "delivery_limit":
        return (f"{death.get('queue')} delivered it {topology.DELIVERY_LIMIT + 1} times and it was never settled: "
                "each time, its worker died, lost its connection, or failed on it unexpectedly; see the workers' "
                "logs, fix the cause, then replay it")
    return f"dead-lettered by RabbitMQ from {death.get('queue')} ({death.get('reason')})"


def _moment(text):
    """A header's ISO 8601 time as a datetime (shown in the one format); the text itself if it is not one."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return text


DLQ_COLUMNS = (("message_id", "MESSAGE", 36), ("function", "FUNCTION", 10), ("type", "TYPE", 18),
               ("kind", "KIND", 10), ("attempts", "ATTEMPTS", 8), ("parked_at", "PARKED", 24), ("error", "ERROR", 200))


def cmd_dlq_list(args) -> int:
    from doppel.app import safe
    app = _app(args)
    rows = []
    try:
        for name, queue in _dead_queues(app, args.function):
            taken = _drain(app, queue)
            for delivery in taken:
                info = _describe(delivery)
                info["function"] = info["function"] or name
                info["error"] = safe(str(info["error"] or ""))
                info["parked_at"] = _moment(info["parked_at"])
                rows.append(info)
            for delivery in taken:
                delivery.nack(requeue=True)
    finally:
        app.close()
    emit(rows, DLQ_COLUMNS, args.output, empty="no parked messages")
    if args.output == "table" and rows:
        print(f"{len(rows)} parked message(s)", file=sys.stderr)
    return 0


def _find(app, function: str | None, message_id: str):
    for name, queue in _dead_queues(app, function):
        taken = _drain(app, queue)
        found = next((d for d in taken if d.message.message_id == message_id), None)
        for delivery in taken:
            if delivery is not found:
                delivery.nack(requeue=True)
        if found:
            return name, found
    raise CommandError(f"no parked message {message_id}; `doppel dlq list` shows what is parked")


def cmd_dlq_show(args) -> int:
    from doppel.app import safe
    app = _app(args)
    try:
        _, delivery = _find(app, None, args.message_id)
        info = _describe(delivery)
        try:
            from core.secrets import masked
            info["event"] = masked(json.loads(delivery.message.body))
        except ValueError:
            info["body"] = delivery.message.body.decode(errors="replace")
        delivery.nack(requeue=True)
        if args.output == "json":
            print(safe(json.dumps(info, indent=2, default=str)))
        elif args.output == "yaml":
            import yaml
            print(safe(yaml.safe_dump(json.loads(json.dumps(info, default=str)), sort_keys=False)).rstrip())
        else:
            for key, value in info.items():
                shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
                print(f"{key:<11} {safe(str(shown if shown is not None else '-'))}")
    finally:
        app.close()
    return 0


def _replay(app, name: str, delivery) -> None:
    from bus import topology
    from core.broker import DEFAULT_EXCHANGE, H_ATTEMPT, H_ERROR, H_ERROR_KIND, H_PARKED_AT, Message
    message = delivery.message
    if message.headers.get(H_ERROR_KIND) == "abandoned":  # its key refuses every delivery until reopened
        import functions
        from bus.worker import default_key
        from schemas.envelope import from_amqp
        key_of = getattr(functions.BY_NAME[name], "idempotency_key", default_key)
        app.ledger.reopen(name, key_of(from_amqp(message.body, message.headers, message.content_type)))
    headers = {k: v for k, v in message.headers.items()
               if k not in (H_ATTEMPT, H_ERROR, H_ERROR_KIND, H_PARKED_AT, "x-death", "x-delivery-count")
               and not k.startswith("x-first-death-")}
    headers["x-doppel-replayed-at"] = datetime.now(timezone.utc).isoformat()
    app.broker.publish([Message(exchange=DEFAULT_EXCHANGE, routing_key=topology.function_queue(name),
                                body=message.body, message_id=message.message_id, headers=headers,
                                correlation_id=message.correlation_id, content_type=message.content_type)])
    delivery.ack()


def cmd_dlq_replay(args) -> int:
    if not args.message_id and not args.function:
        raise CommandError("say what to replay: a MESSAGE_ID, or --function NAME for all of its parked messages", 2)
    app = _app(args)
    replayed = 0
    try:
        if args.message_id:
            name, delivery = _find(app, args.function, args.message_id)
            _replay(app, name, delivery)
            replayed = 1
        else:
            for name, queue in _dead_queues(app, args.function):
                for delivery in _drain(app, queue):
                    _replay(app, name, delivery)
                    replayed += 1
        if app.embedded and replayed:
            settle_embedded(app)
    finally:
        app.close()
    print(f"replayed {replayed} message(s)", file=sys.stderr)
    return 0


def settle_embedded(app, functions=None) -> None:
    """On the embedded bus, be the worker and run what is queued to completion in this process."""
    app.worker(functions or roles.functions_named()).start()
    app.broker.run_until_idle(timeout=3600)


def cmd_dlq_purge(args) -> int:
    from bus import topology
    app = _app(args)
    try:
        queue = topology.dead_queue(roles.functions_named(args.function)[0].NAME)
        app.broker.declare(topology.queues_for(roles.functions_named(args.function), app.retry))
        depth = app.broker.depth(queue)
        if not args.yes:
            if not sys.stdin.isatty():
                raise CommandError(f"{depth} parked message(s) in {queue} would be deleted for good; add --yes", 2)
            if input(f"delete {depth} parked message(s) of {args.function} for good? [y/N] ").strip().lower() != "y":
                return 1
        print(f"purged {app.broker.purge(queue)} message(s) from {queue}", file=sys.stderr)
    finally:
        app.close()
    return 0


def cmd_topology(args) -> int:
    from bus import topology
    app = _app(args)
    specs = topology.queues_for(roles.functions_named(), app.retry)
    print(topology.describe(specs))
    if args.declare:
        app.broker.declare(specs)
        print("declared", file=sys.stderr)
        _advise_on_outdated_queues(app, specs)
    app.close()
    return 0


def _advise_on_outdated_queues(app, specs) -> None:
    """Say how to give queues declared by an older Doppel what this version declares them with."""
    from bus import topology
    outdated = app.broker.queues_as_found
    if not outdated:
        return
    vhost = unquote(urlsplit((app.config.amqp_urls or [""])[0]).path[1:]) or "/"
    print(f"\n{len(outdated)} queue(s) were declared by an older Doppel without a delivery limit, and are used as they "
          "are. Give them the limit with a policy (RabbitMQ cannot change a queue's arguments; a policy applies at "
          "once, with the workers running):", file=sys.stderr)
    for spec in specs:
        if spec.name in outdated:
            print(f"  {topology.policy_command(spec, vhost)}", file=sys.stderr)
    print("or, with the workers stopped, delete each while it is empty (rabbitmqctl delete_queue) and declare again. "
          "See docs/bus.md, 'Upgrading'.", file=sys.stderr)
