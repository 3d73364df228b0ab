"""Who may do what from chat: viewer (look), requester (make, extend, delete their own environments; back
up), operator (anything: others' environments, DR, approvals). From `gateway.roles` in doppel.yaml, by user
id or by the team or channel a command comes from; the same words on Slack and Mattermost.

Every refusal says which role is needed and who can grant it.
"""
from __future__ import annotations

from schemas.gateway import ROLES


class NotAllowed(Exception):
    """The person lacks the role a command needs; the message says which role and whom to ask."""


def role_of(command, settings: dict) -> str:
    """The highest role `command`'s sender holds: by user id, then by the team or channel it came from."""
    held = [role for role in ROLES if command.user_id in settings[role]["users"]
            or {command.team_id, command.channel_id} & set(settings[role]["groups"])]
    if held:
        return max(held, key=ROLES.index)
    return settings["everyone"]


def rank(role: str) -> int:
    """viewer 0, requester 1, operator 2; `none` below them all."""
    return ROLES.index(role) if role in ROLES else -1


def require(command, settings: dict, needed: str, what: str) -> str:
    """The sender's role, when it is at least `needed`; NotAllowed saying so otherwise."""
    role = role_of(command, settings)
    if rank(role) >= rank(needed):
        return role
    held = f"you are a {role}" if role in ROLES else "you hold no Doppel role"
    raise NotAllowed(f"{what} needs the {needed} role; {held}. Ask {settings['granted_by']} to add your user id "
                     f"({command.user_id or 'not sent'}) to gateway.roles.{needed}.users.")
