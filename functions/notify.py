"""Tell people what happened: an environment ready (with its endpoints), failed, deleted; a failover.
While a clone runs, its steps go to the chat command's response URL only (progress is for the one waiting).

Each message goes to the log and to every chat webhook configured under `notify:`
(Slack or Mattermost incoming webhooks; their URLs come from environment variables),
and, when the chain began with a chat command, to that command's response URL
(the `reply_to` of the event that started the chain). Secret values are masked
before anything leaves.
"""
from core.secrets import redact

NAME = "notify"
CONSUMES = ("env.ready", "env.failed", "env.deleted", "backup.failed", "restore.failed",
            "failover.done", "failover.failed", "failback.done", "failback.failed", "drill.done",
            "drill.failed", "sync.failed", "snapshot.done", "stack.ready", "env.expiring")
# Steps of a clone, told to whoever asked from chat (not to the channel webhooks).
PROGRESS = {"snapshot.done": "{env}: snapshot of {production} taken; making its stack (step 1 of 3)",
            "stack.ready": "{env}: stack up; configuring it: new credentials, crons off, data anonymised (step 2 of 3)"}
EMITS = ()


def message_for(event) -> str:
    d = event.data
    if event.type == "env.ready":
        endpoints = ", ".join(f"{k}: {v}" for k, v in sorted(d["endpoints"].items()))
        until = f" until {d['expires_at']}" if d.get("expires_at") else ""
        return f"Environment {d['env']} is ready{until}. {endpoints}"
    if event.type.endswith(".failed"):
        subject = d.get("env") or d.get("production") or ""
        return f"{event.type.split('.')[0].capitalize()} of {subject} failed at {d['step']}: {d['reason']}"
    if event.type == "env.expiring":
        owner = f" ({d['owner']}'s)" if d.get("owner") else ""
        return (f"Environment {d['env']}{owner} ends at {d['expires_at']}: backed up, then deleted. To keep it "
                f"longer: /doppel env extend {d['env']} 8h")
    if event.type == "env.deleted":
        return f"Environment {d['env']} was deleted" + (f" (backup {d['backup_id']})" if d.get("backup_id") else "")
    if event.type == "failover.done":
        return (f"Production {d['production']} failed over to DR from backup {d['backup_id']}: "
                f"RPO {d['rpo_seconds']:.0f} s, RTO {d['rto_seconds']:.0f} s")
    if event.type == "failback.done":
        return f"Production {d['production']} is back in its home region"
    if event.type == "drill.done":
        outcome = "restored and verified" if d["verified"] else "did NOT verify"
        return f"Restore drill of {d['production']}: backup {d['backup_id']} {outcome}"
    return f"{event.type}: {d}"


def reply_address(event, deps) -> str | None:
    """Where the requester of this chain's environment waits for the outcome (a slash command's
    response URL), from the registry: written by `snapshot` before any event of the chain exists.

    A request refused before it had an environment (its name was taken) is in no registry row:
    its env.failed carries the reply_to itself."""
    request = event.data.get("request")
    if not request or deps.registry is None:
        return None
    env = deps.registry.by_request(request)
    if env is not None:
        return env.reply_to
    return event.data.get("reply_to") if event.type == "env.failed" else None


def handle(event, deps) -> list:
    reply_to = reply_address(event, deps)
    if event.type in PROGRESS:
        if reply_to:
            deps.chat.reply(reply_to, redact(PROGRESS[event.type].format_map(
                {"production": "production", **event.data})))
        return []
    text = redact(message_for(event))
    deps.chat.send(text)
    if reply_to:
        deps.chat.reply(reply_to, text)
    return []
