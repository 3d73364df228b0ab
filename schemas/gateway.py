"""The `gateway:` section of `doppel.yaml`: where the HTTP front door listens and how each route authenticates.

A route that authenticates is enabled by its sub-section; its secret is named by
an environment variable (`*_env`), never written here. Without the sub-section
the route answers 404 and says which section turns it on.
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.fields import Duration

MIB = 1024 * 1024
_ENV_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$",
                            error="must be the name of an environment variable, e.g. DOPPEL_GATEWAY_TOKEN")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class EventsRoute(_Strict):
    """`POST /events`: a bearer token; also guards `/status/*` unless `status.public`."""
    token_env = fields.String(required=True, validate=_ENV_NAME)


class KeystoneCheck(_Strict):
    """Validate Aodh's `X-Auth-Token` (trust+http actions) with `GET /v3/auth/tokens`.

    The gateway's own service token is either given (`token_env`) or obtained with
    a password (`username` + `password_env`, scoped to `project`).
    """
    auth_url = fields.String(required=True, validate=validate.URL(require_tld=False, schemes={"http", "https"}))
    token_env = fields.String(validate=_ENV_NAME)
    username = fields.String()
    password_env = fields.String(validate=_ENV_NAME)
    user_domain = fields.String(load_default="Default")
    project = fields.String()
    project_domain = fields.String(load_default="Default")
    allowed_projects = fields.List(fields.String(), load_default=list)  # project ids; empty: any project
    required_roles = fields.List(fields.String(), load_default=list)
    timeout = Duration(load_default=5.0)
    cache = Duration(load_default=60.0)  # how long a token Keystone accepted is trusted without asking again

    @validates_schema
    def _one_way_to_authenticate(self, data, **kwargs):
        if not data.get("token_env") and not (data.get("username") and data.get("password_env")):
            raise ValidationError("give the gateway's service credentials: token_env, or username and "
                                  "password_env (with project)")


class AodhRoute(_Strict):
    """`POST /hooks/aodh/<secret>`, and `POST /hooks/aodh` with a Keystone token."""
    secret_env = fields.String(validate=_ENV_NAME)
    keystone = fields.Nested(KeystoneCheck)

    @validates_schema
    def _some_authentication(self, data, **kwargs):
        if not data.get("secret_env") and not data.get("keystone"):
            raise ValidationError("say how Aodh authenticates: secret_env (a secret in the action URL) "
                                  "and/or keystone (trust+http actions)")


class _ChatAllowList(_Strict):
    # Who may use the slash command, by the platform's ids (user_id, channel_id); empty: everyone who can
    # send a signed request, that is everyone in the workspace or team.
    allowed_users = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    allowed_channels = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)


class SlackRoute(_ChatAllowList):
    signing_secret_env = fields.String(required=True, validate=_ENV_NAME)
    max_age = Duration(load_default=300.0)  # Slack's advice: refuse requests older than five minutes


class MattermostRoute(_ChatAllowList):
    token_env = fields.String(required=True, validate=_ENV_NAME)


ROLES = ("viewer", "requester", "operator")  # each may do what the one before it may, and more


class RoleMembers(_Strict):
    # Who holds a role: platform user ids (Slack U..., Mattermost user ids), and groups, which are the
    # team or channel a command comes from (Slack team_id/channel_id, Mattermost team_id/channel_id).
    users = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    groups = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)


class ChatRoles(_Strict):
    """Who may do what from chat; the same on Slack and Mattermost."""
    viewer = fields.Nested(RoleMembers, load_default=lambda: RoleMembers().load({}))
    requester = fields.Nested(RoleMembers, load_default=lambda: RoleMembers().load({}))
    operator = fields.Nested(RoleMembers, load_default=lambda: RoleMembers().load({}))
    # The role of anyone listed nowhere (they can send a signed command: they are in the workspace or team).
    everyone = fields.String(load_default="requester", validate=validate.OneOf(("none",) + ROLES))
    # Named in every refusal, so a person knows whom to ask.
    granted_by = fields.String(load_default="an operator of Doppel (gateway.roles in doppel.yaml)",
                               validate=validate.Length(min=1, max=200))


class ApprovalsSection(_Strict):
    timeout = Duration(load_default=900.0)  # a second operator approves `dr failover|failback` within this


class StatusRoute(_Strict):
    public = fields.Boolean(load_default=False)  # false: /status/* needs the /events bearer token


class GatewaySection(_Strict):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8080, validate=validate.Range(min=0, max=65535))
    max_body = fields.Integer(load_default=MIB, validate=validate.Range(min=1024, max=64 * MIB))
    publish_timeout = Duration(load_default=2.0)  # a chat platform waits 3 s for the answer
    read_timeout = Duration(load_default=0.5)  # the longest pause inside a request before 408; proxies send it whole
    events = fields.Nested(EventsRoute)
    aodh = fields.Nested(AodhRoute)
    slack = fields.Nested(SlackRoute)
    mattermost = fields.Nested(MattermostRoute)
    status = fields.Nested(StatusRoute, load_default=lambda: StatusRoute().load({}))
    roles = fields.Nested(ChatRoles, load_default=lambda: ChatRoles().load({}))
    approvals = fields.Nested(ApprovalsSection, load_default=lambda: ApprovalsSection().load({}))


def default_gateway() -> dict:
    """The section as loaded from nothing: listen on 127.0.0.1:8080, no authenticated route enabled."""
    return GatewaySection().load({})
