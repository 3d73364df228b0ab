"""The gateway's routes on Flask, described with flask-smorest: each view hands the request to the Gateway
(gateway/routes.py) as a plain Request and sends back its Response. The OpenAPI 3 document is built from the
marshmallow schemas of gateway/openapi.py and the bus's own (schemas/events.py), served at `/openapi.json`.

Flask's own refusals (404, 405) and any failure are JSON in the gateway's words, counted like the others;
one log line per request, with the Aodh hook's secret masked out of the path.
"""
from __future__ import annotations

import logging
import time

from flask import Flask, g
from flask import request as flask_request
from flask_smorest import Api, Blueprint
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway import openapi
from gateway.http import Refused, Request, Response, masked
from gateway.routes import ALL_VALUES

log = logging.getLogger("doppel.gateway")
ROUTES_FIX = ("routes: POST /events, POST /hooks/aodh/<secret>, POST /chat/slack, POST /chat/mattermost, "
              "GET /status/envs[/<name>], GET /health, GET /metrics, GET /openapi.json")
_JSON, _FORM = "application/json", "application/x-www-form-urlencoded"


class _Api(Api):
    ERROR_SCHEMA = openapi.Problem
    DEFAULT_ERROR_RESPONSE_NAME = None  # every status a route may answer is listed with it, not hidden in `default`


def _request(params: dict) -> Request:
    """The Flask request as the Gateway's Request (headers by lower-case name, the last value of a query key)."""
    return Request(flask_request.method, flask_request.path,
                   {name.lower(): value for name, value in flask_request.headers.items()},
                   flask_request.get_data(cache=True), {k: v[-1] for k, v in flask_request.args.lists()}, params)


def _sent(response: Response):
    """A Response as Flask's, never cached."""
    answer = Flask.response_class(response.body, status=response.status, content_type=response.content_type)
    answer.headers["Cache-Control"] = "no-store"
    for name, value in response.headers.items():
        answer.headers[name] = value
    return answer


def _refusals(blueprint: Blueprint, *statuses: int):
    """Document the refusals a route may answer: these, and those any request may get before a route sees it."""
    def decorate(view):
        for status in sorted(set(statuses) | set(openapi.FRAMING_STATUSES)):
            view = blueprint.alt_response(status, schema=openapi.Problem,
                                          description=openapi.FRAMING_STATUSES.get(status, "refused"))(view)
        return view
    return decorate


def build_app(gateway) -> Flask:
    """The WSGI application of one Gateway."""
    app = Flask("doppel.gateway")
    app.url_map.merge_slashes = False  # `//events` is not `/events`: no redirects
    app.config.update(API_TITLE="Doppel gateway", API_VERSION="1", OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
                      API_SPEC_OPTIONS={"components": {"securitySchemes": openapi.SECURITY_SCHEMES},
                                        "info": {"description": "The HTTP front door of Doppel (docs/gateway.md)."}})
    api = _Api(app)
    openapi.register_event_schemas(api)

    def answer(route: str, **params):
        return _sent(gateway.handle(route, _request(params)))

    events = Blueprint("events", __name__, description="Events in: CloudEvents and Aodh alarms")

    @events.route("/events", methods=["POST"], provide_automatic_options=False)
    @events.doc(summary="Publish one CloudEvent", security=[{"bearer": []}],
                description="Structured mode as described; binary mode too: the attributes in ce-specversion, "
                            "ce-id, ce-source and ce-type headers, the data as application/json in the body.",
                requestBody={"required": True, "content": {"application/cloudevents+json": {
                    "schema": openapi.event_body()}}})
    @events.response(202, openapi.Accepted, description="the broker confirmed the event")
    @_refusals(events, 401, 404, 415, 503)
    def post_event():
        return answer("events")

    @events.route("/hooks/aodh/<secret>", methods=["POST"], provide_automatic_options=False)
    @events.doc(summary="An Aodh alarm notification, authenticated by the secret in its action URL",
                requestBody={"required": True, "content": {_JSON: {"schema": openapi.AodhNotification}}})
    @events.response(202, openapi.Accepted, description="published as monitor.alert")
    @_refusals(events, 401, 404, 503)
    def post_aodh_secret(secret: str):
        return answer("aodh", secret=secret)

    @events.route("/hooks/aodh", methods=["POST"], provide_automatic_options=False)
    @events.doc(summary="An Aodh alarm notification of a trust+http action, with a Keystone token",
                security=[{"keystoneToken": []}],
                requestBody={"required": True, "content": {_JSON: {"schema": openapi.AodhNotification}}})
    @events.response(202, openapi.Accepted, description="published as monitor.alert")
    @_refusals(events, 401, 404, 503)
    def post_aodh():
        return answer("aodh")

    chat = Blueprint("chat", __name__, description="Chat-ops slash commands")
    form = {"required": True, "content": {_FORM: {"schema": openapi.SlashForm}}}

    @chat.route("/chat/slack", methods=["POST"], provide_automatic_options=False)
    @chat.doc(summary="A Slack slash command, signed with the app's signing secret",
              security=[{"slackSignature": []}], requestBody=form)
    @chat.response(200, openapi.SlashAnswer, description="the answer shown to the person who typed it")
    @_refusals(chat, 401, 404, 415)
    def post_slack():
        return answer("slack")

    @chat.route("/chat/slack/interactions", methods=["POST"], provide_automatic_options=False)
    @chat.doc(summary="A click on a Slack message's button (the Approve button of a DR ask), signed",
              security=[{"slackSignature": []}], requestBody={"required": True, "content": {_FORM: {
                  "schema": openapi.SlackInteraction}}})
    @chat.response(200, openapi.SlashAnswer, description="the approval's outcome")
    @_refusals(chat, 401, 404, 415)
    def post_slack_interaction():
        return answer("slack_interaction")

    @chat.route("/chat/mattermost", methods=["POST"], provide_automatic_options=False)
    @chat.doc(summary="A Mattermost slash command, with its token", requestBody=form)
    @chat.response(200, openapi.SlashAnswer, description="the answer shown to the person who typed it")
    @_refusals(chat, 401, 404, 415)
    def post_mattermost():
        return answer("mattermost")

    status = Blueprint("status", __name__, description="Read-only status, health and metrics")

    @status.route("/status/envs", methods=["GET"], provide_automatic_options=False)
    @status.doc(summary="Living environments (all=1: ended ones too)", security=[{"bearer": []}], parameters=[
        {"in": "query", "name": "all", "schema": {"type": "string", "enum": list(ALL_VALUES)}}])
    @status.response(200, openapi.EnvList)
    @_refusals(status, 401, 404)
    def get_envs():
        return answer("envs")

    @status.route("/status/envs/<name>", methods=["GET"], provide_automatic_options=False)
    @status.doc(summary="The newest environment of that name, with its history", security=[{"bearer": []}])
    @status.response(200, openapi.EnvDetail)
    @_refusals(status, 401, 404)
    def get_env(name: str):
        return answer("env", name=name)

    @status.route("/status", methods=["GET"], provide_automatic_options=False)
    @status.doc(summary="The status page: environments, chains in flight, DR state and backups (HTML)",
                security=[{"bearer": []}, {"basic": []}])
    @status.response(200, content_type="text/html", description="a page for people, no JavaScript")
    @_refusals(status, 401, 404)
    def get_page():
        return answer("page")

    @status.route("/health", methods=["GET"], provide_automatic_options=False)
    @status.doc(summary="Whether the broker, its publish channel and the database answer")
    @status.response(200, openapi.Health, description="healthy")
    @status.alt_response(503, schema=openapi.Health, description="a part does not answer")
    @_refusals(status)
    def get_health():
        return answer("health")

    @status.route("/metrics", methods=["GET"], provide_automatic_options=False)
    @status.doc(summary="Counters in Prometheus' text format")
    @status.response(200, content_type="text/plain", description="Prometheus text format 0.0.4")
    @_refusals(status)
    def get_metrics():
        return answer("metrics")

    for blueprint in (events, chat, status):
        api.register_blueprint(blueprint)
    _errors(app, gateway)
    _request_log(app)
    return app


def _errors(app: Flask, gateway) -> None:
    @app.errorhandler(HTTPException)
    def http_refusal(error: HTTPException):
        if error.code == 404:
            refusal = Refused(404, "route", f"no route {masked(flask_request.path)}", ROUTES_FIX)
        elif isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"}))
            refusal = Refused(405, "method", f"{flask_request.method} is not allowed here", f"use {allowed}",
                              headers={"Allow": allowed})
        elif error.code and error.code < 500:
            refusal = Refused(error.code, "protocol", error.description or error.name)
        else:
            return failed(error)
        return _sent(gateway.refused(refusal))

    @app.errorhandler(Exception)
    def failed(error: Exception):
        log.error("gateway: %s %s failed", flask_request.method, masked(flask_request.path), exc_info=error)
        gateway.metrics.rejected("failure")
        return _sent(Response.json(500, {"error": "the gateway failed on this request; its log says why"}))


def _request_log(app: Flask) -> None:
    @app.before_request
    def started():
        g.started = time.monotonic()

    @app.after_request
    def logged(response):
        took = (time.monotonic() - g.get("started", time.monotonic())) * 1000
        log.info("%s %s %s %d %.1f ms", flask_request.remote_addr, flask_request.method,
                 masked(flask_request.path), response.status_code, took)
        return response
