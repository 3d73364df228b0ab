"""One CloudEvent from an HTTP request, per the CloudEvents HTTP protocol binding 1.0.

Structured mode: `Content-Type: application/cloudevents+json`, the whole event in
the body. Binary mode: the attributes in `ce-*` headers (values percent-decoded),
`Content-Type` as `datacontenttype`, the data in the body. Batched mode is refused:
one request, one event, one answer.

An attribute over its limit (`id`, `correlationid`, `type`, `source`, `subject`:
255 bytes of UTF-8, see schemas/envelope.py) is a 400 that names it, its length
and the limit, before anything is published.
"""
from __future__ import annotations

from urllib.parse import unquote

from gateway.http import Refused, Request, parse_json
from schemas.envelope import CONTENT_TYPE as STRUCTURED, AttributeTooLong, EnvelopeError, Event

BATCH = "application/cloudevents-batch+json"
_PREFIX = "ce-"
# The JSON event format writes every core attribute but data as a string; extensions are strings,
# integers or booleans (the CloudEvents type system has no floats, arrays or objects).
_STRING_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema", "datacontenttype",
                      "correlationid")


def read_event(request: Request) -> Event:
    """The event the request carries; Refused(400/415) with what is wrong and how to send it."""
    if request.content_type == BATCH:
        raise Refused(415, "batch", "batched CloudEvents are not accepted",
                      "send each event in its own request (binary or structured mode)")
    try:
        if request.content_type == STRUCTURED:
            return Event.from_dict(_typed(parse_json(request.body, "the event")))
        if request.header("ce-specversion"):
            return _binary(request)
    except AttributeTooLong as exc:
        raise Refused(400, "too_long", f"not a CloudEvent Doppel can carry: {exc}",
                      f"shorten {exc.name} to at most {exc.limit} bytes",
                      details={"field": exc.name, "bytes": exc.length, "limit": exc.limit}) from None
    except (ValueError, OverflowError) as exc:  # EnvelopeError; datetime's own for a time that leaves its range in UTC
        raise Refused(400, "malformed", f"not a valid CloudEvent: {exc}",
                      "check the attributes against CloudEvents 1.0 (specversion, id, source, type)") from None
    raise Refused(400, "malformed", "not a CloudEvent: no ce-specversion header and not "
                  f"Content-Type {STRUCTURED}",
                  "send binary mode (ce-specversion, ce-id, ce-source, ce-type headers, JSON data in the body) "
                  f"or structured mode (Content-Type: {STRUCTURED})")


def _binary(request: Request) -> Event:
    attributes = {name[len(_PREFIX):]: unquote(value) for name, value in request.headers.items()
                  if name.startswith(_PREFIX)}
    if request.content_type and request.content_type != "application/json" \
            and not request.content_type.endswith("+json"):
        raise EnvelopeError(f"data of content type {request.content_type!r}; Doppel reads JSON data only")
    attributes["data"] = parse_json(request.body, "the data in the body") if request.body.strip() else {}
    attributes.pop("datacontenttype", None)  # binary mode carries it as Content-Type
    return Event.from_dict(attributes)


def _typed(document):
    """A structured event whose attributes have the JSON types CloudEvents gives them; EnvelopeError otherwise."""
    if not isinstance(document, dict):
        return document  # Event.from_dict says what is wrong
    for name, value in document.items():
        if value is None or name in ("data", "data_base64"):
            continue
        if name in _STRING_ATTRIBUTES and not isinstance(value, str):
            raise EnvelopeError(f"attribute {name!r} must be a string, not {type(value).__name__}")
        if not isinstance(value, (str, int, bool)):  # bool is an int
            raise EnvelopeError(f"extension {name!r} must be a string, an integer or a boolean, "
                                f"not {type(value).__name__}")
    return document
