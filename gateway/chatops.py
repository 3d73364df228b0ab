"""Slash commands, the same words on Slack and Mattermost, read with shlex: `env create|list|show|extend|delete`
here, `backup` and `dr` and `approve` in gateway/chat_dr.py, each behind the role it needs (gateway/chat_roles.py).

Each answer is one short text, given at once (Slack waits three seconds). What takes
longer is published as an event whose `reply_to` is the command's response URL;
the `notify` function posts the outcome there when the chain ends.

The text is read only up to MAX_TEXT characters: shlex takes time that grows with
the square of a word's length (a 900 KB word took seconds), and no command needs more.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from gateway.chat_roles import NotAllowed, require
from gateway.http import Refused
from schemas.envelope import Event
from schemas.events import validate_in
from schemas.fields import parse_duration

MAX_TEXT = 1000  # characters; the longest command is about a hundred
USAGE = """Doppel slash commands:
  /doppel env create NAME --from PRODUCTION [--ttl 8h]   clone a production into a new environment
  /doppel env list                                       living environments
  /doppel env show NAME                                  one environment: state, endpoints, expiry
  /doppel env extend NAME 4h                             push its end that much later
  /doppel env delete NAME                                back it up, then delete it
  /doppel backup now ENV|PRODUCTION                      back it up now
  /doppel backup list ENV|PRODUCTION                     its newest backups, verified or not
  /doppel dr status [PRODUCTION]                         DR state, newest backup (the RPO now), drills
  /doppel dr failover PRODUCTION                         fail over to DR, once a second operator approves
  /doppel dr failback PRODUCTION                         come back from DR, once a second operator approves
  /doppel dr drill PRODUCTION                            prove its newest backup restores
  /doppel approve CODE                                   approve another operator's failover or failback
  /doppel help                                           this text
Roles: viewer (list, show, status), requester (create, extend, delete your own; back up), operator (anything)."""


@dataclass(frozen=True)
class SlashCommand:
    text: str
    user: str
    reply_to: str
    platform: str  # slack | mattermost: the event's source says where a request came from
    user_id: str = ""
    channel_id: str = ""
    team_id: str = ""

    def owns(self, env) -> bool:
        return bool(env.owner) and env.owner in (self.user, self.user_id)


@dataclass(frozen=True)
class Reply:
    text: str
    public: bool = False  # shown to the channel (a DR ask others must see), not only to its sender
    approval_code: str | None = None  # a DR ask: Slack shows an Approve button carrying it


def refusal(command: SlashCommand, settings: dict) -> str | None:
    """Why this user or channel may not use the command (the answer to give), or None when it may.

    `settings` is the platform's gateway section: empty allow-lists let everyone through."""
    users, channels = settings.get("allowed_users") or [], settings.get("allowed_channels") or []
    where = f"gateway.{command.platform}"
    if users and command.user_id not in users:
        return (f"You are not on Doppel's list of users for this command. An operator can add your user id "
                f"({command.user_id or 'not sent'}) to {where}.allowed_users.")
    if channels and command.channel_id not in channels:
        return (f"Doppel does not take commands in this channel. Use an allowed one, or an operator can add "
                f"this channel's id ({command.channel_id or 'not sent'}) to {where}.allowed_channels.")
    return None


class ChatUsage(ValueError):
    """The command cannot be understood; the message says how to write it."""


@dataclass
class ChatOps:
    config: dict  # the whole doppel.yaml, as loaded
    registry: object
    publish: Callable[[Event, str], None]  # raises Refused when the broker does not confirm
    dr: object = None  # gateway.chat_dr.DrCommands: backup, dr and approve

    @property
    def productions(self) -> dict:
        return self.config["productions"]

    @property
    def roles(self) -> dict:
        return self.config["gateway"]["roles"]

    def answer(self, command: SlashCommand) -> Reply:
        """What to show the person who typed the command (and, for a DR ask, the channel)."""
        if len(command.text) > MAX_TEXT:
            return Reply(f"That command is {len(command.text)} characters long; Doppel reads commands of at most "
                         f"{MAX_TEXT}.\n{USAGE}")
        try:
            words = shlex.split(command.text)
        except ValueError as exc:
            return Reply(f"Could not read that command ({exc}); check the quotes.\n{USAGE}")
        try:
            reply = self._dispatch(words, command)
        except ChatUsage as exc:
            return Reply(f"{exc}\n{USAGE}")
        except NotAllowed as exc:
            return Reply(f"Not allowed: {exc}")
        except Refused as exc:
            return Reply(f"Doppel could not take that now: {exc.message}. Try again in a minute.")
        return reply if isinstance(reply, Reply) else Reply(reply)

    def _dispatch(self, words: list[str], command: SlashCommand) -> Reply | str:
        if not words or words[0] in ("help", "-h", "--help"):
            return USAGE
        if words[0] in ("backup", "dr", "approve") and self.dr is not None:
            return self.dr.dispatch(words, command)
        if words[0] != "env" or len(words) < 2:
            raise ChatUsage(f"Unknown command {' '.join(words[:2])!r}.")
        action, rest = words[1], words[2:]
        if action == "list" and not rest:
            require(command, self.roles, "viewer", "`env list`")
            return self._list()
        if action == "show" and len(rest) == 1:
            require(command, self.roles, "viewer", "`env show`")
            return self._show(rest[0])
        if action == "delete" and len(rest) == 1:
            return self._delete(rest[0], command)
        if action == "extend" and len(rest) == 2:
            return self._extend(rest[0], rest[1], command)
        if action == "create":
            require(command, self.roles, "requester", "`env create`")
            return self._create(rest, command)
        raise ChatUsage(f"`env {action}` does not take {' '.join(rest) or 'no arguments'}." if action in
                        ("list", "show", "delete", "extend") else f"Unknown action `env {action}`.")

    def _owner_or_operator(self, env, command: SlashCommand, what: str) -> None:
        """A requester acts on their own environments; another's needs an operator."""
        require(command, self.roles, "requester", what)
        if not command.owns(env):
            require(command, self.roles, "operator", f"{what} of {env.name}, which {env.owner or 'nobody'} owns,")

    # -- the commands ------------------------------------------------------------
    def _create(self, words: list[str], command: SlashCommand) -> str:
        name, options = _create_arguments(words)
        production = options.get("from")
        data = {"env": name, "production": production, "owner": command.user, "reply_to": command.reply_to}
        if options.get("ttl"):
            data["ttl_seconds"] = _ttl_seconds(options["ttl"])
        if production not in self.productions:
            known = ", ".join(sorted(self.productions)) or "none configured"
            return f"There is no production {production!r} to clone (known: {known})."
        errors = validate_in("env.requested", {k: v for k, v in data.items() if v})
        if errors:
            return "Cannot create that environment: " + "; ".join(
                f"{field} {' '.join(map(str, messages))}" for field, messages in errors.items())
        living = self.registry.living(name)
        if living is not None:
            return f"An environment {name} already exists ({living.state}, from {living.production})."
        event = Event(type="env.requested", source=f"doppel/gateway/{command.platform}",
                      data={k: v for k, v in data.items() if v})
        self.publish(event, command.platform)
        ttl = f", deleted after {options['ttl']}" if options.get("ttl") else ""
        return (f"Creating {name} from {production}{ttl} (request {event.id}). "
                "I will post here when it is ready.")

    def _list(self) -> str:
        envs = self.registry.all()
        if not envs:
            return "No living environments."
        lines = [f"{e.name}  {e.state}  from {e.production}  owner {e.owner or '-'}  expires {_when(e.expires_at)}"
                 for e in envs]
        return "Living environments:\n" + "\n".join(lines)

    def _show(self, name: str) -> str:
        env = self.registry.latest(name)
        if env is None:
            return f"No environment {name} was ever requested."
        lines = [f"{env.name}: {env.state}, from {env.production}, owner {env.owner or '-'}, "
                 f"expires {_when(env.expires_at)}"]
        if env.reason:
            lines.append(f"reason: {env.reason}")
        lines += [f"{key}: {value}" for key, value in sorted(env.endpoints.items())]
        return "\n".join(lines)

    def _delete(self, name: str, command: SlashCommand) -> str:
        env = self.registry.living(name)
        if env is None:
            require(command, self.roles, "viewer", "`env delete`")
            return f"No living environment {name}; `/doppel env list` shows them."
        self._owner_or_operator(env, command, "`env delete`")
        event = Event(type="env.expired", source=f"doppel/gateway/{command.platform}",
                      data={"env": name, "reason": "manual"})
        self.publish(event, command.platform)
        return f"Backing up, then deleting {name} (request {event.id})."


    def _extend(self, name: str, duration: str, command: SlashCommand) -> str:
        env = self.registry.living(name)
        if env is None:
            require(command, self.roles, "viewer", "`env extend`")
            return f"No living environment {name}; `/doppel env list` shows them."
        self._owner_or_operator(env, command, "`env extend`")
        seconds = _ttl_seconds(duration, "env extend")
        now = datetime.now(timezone.utc)
        until = max(now, env.expires_at or now) + timedelta(seconds=seconds)
        most = self.config["environments"]["max_ttl"]
        if (until - now).total_seconds() > most:
            return (f"{name} would then live {_span((until - now).total_seconds())} from now; at most "
                    f"{_span(most)} is allowed (environments.max_ttl).")
        self.registry.extend(env, until, reason=f"extended by {command.user or command.user_id} by {duration}")
        return f"{name} now ends at {_when(until)} (was {_when(env.expires_at)})."


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _create_arguments(words: list[str]) -> tuple[str, dict]:
    """NAME and the options of `env create` (`--from X`, `--ttl X`, or `--opt=X`)."""
    name, options, index = None, {}, 0
    while index < len(words):
        word = words[index]
        if word.startswith("--"):
            key, has_value, value = word[2:].partition("=")
            if key not in ("from", "ttl"):
                raise ChatUsage(f"Unknown option --{key}.")
            if not has_value:
                index += 1
                if index == len(words):
                    raise ChatUsage(f"--{key} needs a value.")
                value = words[index]
            options[key] = value
        elif name is None:
            name = word
        else:
            raise ChatUsage(f"Unexpected {word!r}: one environment at a time.")
        index += 1
    if name is None or not options.get("from"):
        raise ChatUsage("`env create` needs a NAME and --from PRODUCTION.")
    return name, options


def _ttl_seconds(text: str, what: str = "--ttl") -> int:
    """A duration in whole seconds (at least one); ChatUsage when it is not a duration or too long to count."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ChatUsage(str(exc)) from None
    if not math.isfinite(seconds):  # float("9" * 400) is infinite: int() of it raises OverflowError
        raise ChatUsage(f"{what} {text[:20]}{'...' if len(text) > 20 else ''} is too long to count; "
                        "write e.g. 8h or 2d")
    return max(1, int(seconds))


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"
