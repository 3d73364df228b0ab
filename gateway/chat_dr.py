"""Chat commands for the day the site dies away from the office: `backup now|list`, `dr status|failover|failback|
drill`, and `approve CODE`.

`dr failover` and `dr failback` are asked by one operator and run only once a second operator approves within
`gateway.approvals.timeout` (gateway/approvals.py); the ask goes to the audit trail as a notify.sent, and the
event that starts the chain carries both names (`requested_by`, `approved_by`). With a policy of
`decision: confirm`, an alarm waits in `pending` for that same approved failover.confirmed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from gateway.approvals import ApprovalRefused, Approvals
from gateway.chat_roles import require
from gateway.chatops import ChatUsage, Reply, SlashCommand
from schemas.envelope import Event
from schemas.events import validate_in

SHOWN_BACKUPS = 5
# What each approved action publishes.
STARTS = {"failover": "failover.confirmed", "failback": "failback.requested"}
VERBS = {"failover": "fail over", "failback": "fail back"}


@dataclass
class DrCommands:
    config: dict
    registry: object
    publish: Callable[[Event, str], None]
    approvals: Approvals
    catalogue: object
    dr_states: object

    @property
    def roles(self) -> dict:
        return self.config["gateway"]["roles"]

    def dispatch(self, words: list[str], command: SlashCommand) -> Reply | str:
        head, rest = words[0], words[1:]
        if head == "approve" and len(rest) == 1:
            require(command, self.roles, "operator", "`approve`")
            return self._approve(rest[0], command)
        if head == "backup" and len(rest) == 2 and rest[0] in ("now", "list"):
            if rest[0] == "list":
                require(command, self.roles, "viewer", "`backup list`")
                return self._backups(rest[1])
            require(command, self.roles, "requester", "`backup now`")
            return self._backup_now(rest[1], command)
        if head == "dr" and rest[:1] == ["status"] and len(rest) <= 2:
            require(command, self.roles, "viewer", "`dr status`")
            return self._status(rest[1] if len(rest) == 2 else None)
        if head == "dr" and len(rest) == 2 and rest[0] in ("failover", "failback", "drill"):
            action, production = rest
            require(command, self.roles, "operator", f"`dr {action}`")
            self._known(production)
            if action == "drill":
                return self._send(command, "drill.due", {"production": production},
                                  f"Drilling {production}: restoring its newest backup in isolation")
            return self._ask(action, production, command)
        raise ChatUsage(f"Unknown command {' '.join(words[:3])!r}.")

    # -- DR, with approval -----------------------------------------------------------
    def _ask(self, action: str, production: str, command: SlashCommand) -> Reply:
        who = command.user or command.user_id
        ask = self.approvals.ask(action, production, who, command.platform)
        minutes = self.approvals.timeout_s / 60
        text = (f"{who} asks to {VERBS[action]} {production}. A second operator approves with "
                f"`/doppel approve {ask.code}` before {ask.expires_at:%H:%M UTC} ({minutes:g} min).")
        self.publish(Event(type="notify.sent", source=f"doppel/gateway/{command.platform}",
                           data={"text": text}, subject=production), command.platform)
        return Reply(text, public=True, approval_code=ask.code)

    def _approve(self, code: str, command: SlashCommand) -> Reply | str:
        who = command.user or command.user_id
        try:
            ask = self.approvals.approve(code, who)
        except ApprovalRefused as exc:
            return f"Not approved: {exc}"
        data = {"production": ask.production, "requested_by": ask.requested_by, "approved_by": who}
        return Reply(self._send(command, STARTS[ask.action], data,
                                f"Approved: {VERBS[ask.action]} {ask.production} (asked by {ask.requested_by}, "
                                f"approved by {who})"), public=True)

    # -- backups -------------------------------------------------------------------------
    def _backup_now(self, name: str, command: SlashCommand) -> str:
        if name not in self.config["productions"] and self.registry.living(name) is None:
            return f"No production or living environment {name}; `/doppel env list` shows them."
        return self._send(command, "backup.due", {"env": name, "reason": "manual"}, f"Backing up {name}")

    def _backups(self, name: str) -> str:
        entries = self.catalogue.list(name)[-SHOWN_BACKUPS:]
        if not entries:
            return f"No backups of {name}."
        now = datetime.now(timezone.utc)
        lines = [f"{e.id}  {e.size:,} bytes  {_age(now, e.created_at)} old  {_verified(e)}" for e in reversed(entries)]
        return f"Newest backups of {name}:\n" + "\n".join(lines)

    # -- status ----------------------------------------------------------------------------
    def _status(self, production: str | None) -> str:
        names = [production] if production else sorted(self.config["productions"])
        if production:
            self._known(production)
        if not names:
            return "No productions are configured."
        now = datetime.now(timezone.utc)
        lines = []
        for name in names:
            row = self.dr_states.get(name)
            newest = self.catalogue.newest(name)
            drills = self.dr_states.drills(name)
            rpo = f"newest backup {_age(now, newest.created_at)} old ({_verified(newest)})" if newest \
                else "no backup yet"
            drill = (f"last drill {_age(now, drills[-1].at)} ago, {'verified' if drills[-1].verified else 'FAILED'}"
                     if drills else "never drilled")
            lines.append(f"{name}: {row.state} since {row.since:%Y-%m-%d %H:%M UTC}; {rpo}; {drill}")
        return "\n".join(lines)

    # -- shared ----------------------------------------------------------------------------
    def _known(self, production: str) -> None:
        if production not in self.config["productions"]:
            known = ", ".join(sorted(self.config["productions"])) or "none configured"
            raise ChatUsage(f"There is no production {production!r} (known: {known}).")

    def _send(self, command: SlashCommand, event_type: str, data: dict, said: str) -> str:
        errors = validate_in(event_type, data)
        if errors:
            return f"Cannot do that: {errors}"
        event = Event(type=event_type, source=f"doppel/gateway/{command.platform}", data=data)
        self.publish(event, command.platform)
        return f"{said} (request {event.id})."


def _age(now: datetime, then: datetime) -> str:
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _verified(entry) -> str:
    if entry.verify_ok is None:
        return "not verified"
    return "verified" if entry.verify_ok else "verification FAILED"
