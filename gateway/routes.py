"""The gateway's routes: validate, publish with confirms, answer. No cloud work happens here.

gateway/web.py routes each request here by name; `Gateway.handle` runs `on_<name>`,
turns a refusal into its JSON answer and counts it for /metrics.
"""
from __future__ import annotations

import logging
import os

from bus import topology
from core.broker import PublishError, Unsendable, event_message
from gateway import auth, status_page
from gateway.aodh import alert_event
from gateway.approvals import Approvals
from gateway.chat_dr import DrCommands
from gateway.chatops import ChatOps, Reply, SlashCommand, refusal
from gateway.cloudevents_http import read_event
from gateway.health import health, takes_timeout
from gateway.http import Refused, Request, Response, parse_json
from gateway.metrics import CONTENT_TYPE as METRICS_TYPE
from gateway.metrics import Metrics
from schemas.envelope import Event
from schemas.events import UnknownEventType, validate_in

log = logging.getLogger(__name__)


ALL_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}  # /status/envs?all=
SECTION_OF = {"events": "events", "aodh": "aodh", "slack": "slack", "slack_interaction": "slack",
              "mattermost": "mattermost"}


class Gateway:
    def __init__(self, app, functions, environ=os.environ):
        """`app`: the process's App (config, broker, registry, database); `functions`: whose queues to declare."""
        self.app, self.functions = app, list(functions)
        self.settings = app.config["gateway"]
        self.secrets = auth.read_secrets(self.settings, environ)
        self.metrics = Metrics()
        self.keystone = None
        keystone = (self.settings.get("aodh") or {}).get("keystone")
        if keystone:
            from gateway.keystone import KeystoneTokens
            self.keystone = KeystoneTokens(keystone, environ)
        approvals = Approvals(app.engine, self.settings["approvals"]["timeout"])
        self.chat = ChatOps(app.config, app.registry, self.publish,
                            DrCommands(app.config, app.registry, self.publish, approvals, app.catalogue,
                                       app.dr_states))

    def prepare(self) -> None:
        """Declare the exchange and every function's queue, so nothing published before a worker starts is lost."""
        self.app.broker.declare(topology.queues_for(self.functions, self.app.retry))

    # -- answering -------------------------------------------------------------
    def handle(self, route: str, request: Request) -> Response:
        """Run the route `on_<route>`; a refusal becomes its JSON answer. Either way it is counted for /metrics."""
        try:
            if route in SECTION_OF and not self.settings.get(SECTION_OF[route]):
                raise Refused(404, "disabled", f"the {route} route is not enabled here",
                              f"add gateway.{SECTION_OF[route]} to doppel.yaml (docs/gateway.md)")
            # waitress gives a chunked body its Content-Length: a POST without one came without its length
            if request.method == "POST" and "content-length" not in request.headers:
                raise Refused(411, "length", "Content-Length is required: the body came without its length",
                              "send the body with a Content-Length header (or Transfer-Encoding: chunked)")
            response = getattr(self, f"on_{route}")(request)
        except Refused as refusal:
            response = self.refused(refusal)
        self.metrics.answered(route, response.status)
        return response

    def refused_early(self, reason: str) -> None:
        """Count a request the HTTP server refused before any route saw it."""
        self.metrics.rejected(reason)

    def refused(self, refusal: Refused) -> Response:
        self.metrics.rejected(refusal.reason)
        return refusal.response()

    # -- publishing --------------------------------------------------------------
    def publish(self, event: Event, route: str) -> None:
        """Publish and return once the broker confirmed it; Refused(503) otherwise (nothing to retry by hand).

        An event AMQP cannot carry is Refused(400) naming the field: nothing of it was sent.
        """
        try:
            _publish(self.app.broker, [event_message(event)], self.settings["publish_timeout"])
        except Unsendable as exc:
            log.warning("gateway: %s from %s refused: %s", event.type, route, exc)
            details = {"field": exc.field}
            if exc.limit is not None:
                details.update(bytes=exc.length, limit=exc.limit)
            raise Refused(400, "unsendable", f"the event cannot be sent: {exc}",
                          "shorten or correct the field named", details=details) from None
        except PublishError as exc:
            log.warning("gateway: %s %s not confirmed: %s", event.type, event.id, exc)
            raise Refused(503, "broker_unavailable", "the event bus did not confirm the event",
                          "retry shortly; GET /health says whether the broker answers",
                          headers={"Retry-After": "5"}) from None
        self.metrics.published(route)
        log.info("gateway: %s %s published from %s (%s)", event.type, event.id, route, event.source)

    # -- routes ----------------------------------------------------------------
    def on_events(self, request: Request) -> Response:
        auth.check_bearer(request, self.secrets["events"])
        event = read_event(request)
        try:
            errors = validate_in(event.type, event.data)
        except UnknownEventType as exc:
            raise Refused(400, "unknown_type", str(exc), "use one of the types listed") from None
        if errors:
            raise Refused(400, "invalid", f"{event.type} {event.id} fails its schema",
                          "correct the fields named in errors", details={"errors": errors})
        self.publish(event, "events")
        return Response.json(202, {"id": event.id, "type": event.type, "source": event.source})

    def on_aodh(self, request: Request) -> Response:
        self._check_aodh(request)
        event = alert_event(request.json(), request.header("x-openstack-request-id"))
        self.publish(event, "aodh")
        return Response.json(202, {"id": event.id, "type": event.type})

    def _check_aodh(self, request: Request) -> None:
        """The URL's secret, or a Keystone token (trust+http); either suffices, neither is a 401."""
        given = request.params.get("secret")
        if given and "aodh" in self.secrets and auth.same(given, self.secrets["aodh"]):
            return
        token = request.header("x-auth-token")
        if token and self.keystone is not None:
            self.keystone.check(token)
            return
        if given and "aodh" in self.secrets:
            auth.check_path_secret(given, self.secrets["aodh"])  # raises: wrong secret
        raise auth.unauthorized("missing_secret", "the hook needs its secret or a Keystone token",
                                "use http(s)://HOST/hooks/aodh/<secret> as the alarm action, or a trust+http "
                                "action with gateway.aodh.keystone configured")

    def on_slack(self, request: Request) -> Response:
        auth.check_slack(request, self.secrets["slack"], self.settings["slack"]["max_age"])
        return self._slash(request.form(), "slack")

    def on_slack_interaction(self, request: Request) -> Response:
        """A click on a message's button (Slack interactivity): the Approve button of a DR ask."""
        auth.check_slack(request, self.secrets["slack"], self.settings["slack"]["max_age"])
        payload = parse_json(request.form().get("payload", "").encode(), "the interaction payload")
        code = _approve_action(payload)
        user, channel, team = (_part(payload, key) for key in ("user", "channel", "team"))
        command = SlashCommand(text=f"approve {code}", user=str(user.get("username") or user.get("id") or ""),
                               reply_to="", platform="slack", user_id=str(user.get("id") or ""),
                               channel_id=str(channel.get("id") or ""), team_id=str(team.get("id") or ""))
        return self._answer(command, self.settings["slack"])

    def on_mattermost(self, request: Request) -> Response:
        form = request.form()
        auth.check_mattermost(request, form, self.secrets["mattermost"])
        return self._slash(form, "mattermost")

    def _slash(self, form: dict, platform: str) -> Response:
        """The answer to a slash command (after its platform's check)."""
        command = SlashCommand(text=form.get("text", ""), user=form.get("user_name") or form.get("user_id", ""),
                               reply_to=form.get("response_url", ""), platform=platform,
                               user_id=form.get("user_id", ""), channel_id=form.get("channel_id", ""),
                               team_id=form.get("team_id", ""))
        return self._answer(command, self.settings[platform])

    def _answer(self, command: SlashCommand, settings: dict) -> Response:
        platform = command.platform
        refused = refusal(command, settings)
        if refused is not None:
            self.metrics.rejected("chat_not_allowed")
            log.warning("%s: /doppel from user %s in channel %s refused: not on the allow-list", platform,
                        command.user_id or "-", command.channel_id or "-")
        reply = Reply(refused) if refused is not None else self.chat.answer(command)
        answer = {"response_type": "in_channel" if reply.public else "ephemeral", "text": reply.text}
        if reply.approval_code and platform == "slack":
            answer["blocks"] = approve_blocks(reply.text, reply.approval_code)
        return Response.json(200, answer)

    def on_envs(self, request: Request) -> Response:
        self._check_status(request)
        everything = ALL_VALUES.get(request.query.get("all", "0"))
        if everything is None:
            raise Refused(400, "invalid", f"all={request.query['all'][:20]!r} is not a yes or a no",
                          f"send all= one of {', '.join(ALL_VALUES)}")
        return Response.json(200, {"environments": [_env_json(e) for e in
                                                    self.app.registry.all(include_ended=everything)]})

    def on_env(self, request: Request) -> Response:
        self._check_status(request)
        env = self.app.registry.latest(request.params["name"])
        if env is None:
            raise Refused(404, "no_env", f"no environment {request.params['name']} was ever requested",
                          "GET /status/envs?all=1 lists them")
        history = [{"from": t.from_state, "to": t.to_state, "at": t.at, "reason": t.reason}
                   for t in self.app.registry.transitions(env)]
        kept = self.app.logs.logbook.of_request(env.request_id)
        logs = {"kept_until": kept.kept_until, "size": kept.size, "files": kept.files} if kept else None
        return Response.json(200, {**_env_json(env), "history": history, "logs": logs})

    def _check_status(self, request: Request) -> None:
        if self.settings["status"]["public"]:
            return
        if "events" not in self.secrets:
            raise Refused(404, "disabled", "the status API needs gateway.events (its token) or status.public: true",
                          "add gateway.events.token_env, or gateway.status.public: true, to doppel.yaml")
        auth.check_bearer(request, self.secrets["events"])

    def on_page(self, request: Request) -> Response:
        """The status page: the bearer token, or (for a browser) Basic auth with the token as password."""
        given = request.header("authorization").lower()
        if not self.settings["status"]["public"] and "events" in self.secrets and not given.startswith("bearer "):
            auth.check_basic(request, self.secrets["events"])  # without credentials: a Basic challenge
        else:
            self._check_status(request)
        return Response(200, status_page.render(self.app).encode(), "text/html; charset=utf-8")

    def on_health(self, request: Request) -> Response:
        report = health(self.app)
        return Response.json(200 if report["ok"] else 503, report)

    def on_metrics(self, request: Request) -> Response:
        return Response(200, self.metrics.render().encode(), METRICS_TYPE)


def approve_blocks(text: str, code: str) -> list:
    """Slack Block Kit: the ask's text and a button whose click comes to /chat/slack/interactions."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
            {"type": "actions", "elements": [{"type": "button", "action_id": "doppel_approve", "style": "danger",
                                              "text": {"type": "plain_text", "text": "Approve"}, "value": code}]}]


def _part(payload: dict, key: str) -> dict:
    part = payload.get(key)
    return part if isinstance(part, dict) else {}


def _approve_action(payload) -> str:
    """The code of the Approve button clicked; Refused(400) for any other interaction."""
    actions = payload.get("actions") if isinstance(payload, dict) else None
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, dict) and action.get("action_id") == "doppel_approve" \
                and isinstance(action.get("value"), str) and 0 < len(action["value"]) <= 16:
            return action["value"]
    raise Refused(400, "invalid", "the interaction is not a click on Doppel's Approve button",
                  "only Doppel's Approve button is read here")


def _env_json(env) -> dict:
    return {"name": env.name, "state": env.state, "production": env.production, "owner": env.owner,
            "data_version": env.data_version, "expires_at": env.expires_at, "endpoints": env.endpoints,
            "reason": env.reason, "created_at": env.created_at, "updated_at": env.updated_at,
            "request": env.request_id}


def _publish(broker, messages, timeout: float) -> None:
    """broker.publish with a time limit where the broker takes one (RabbitMQ); the in-memory one answers at once."""
    if takes_timeout(broker.publish):
        broker.publish(messages, timeout=timeout)
    else:
        broker.publish(messages)
