"""`GET /status`: one read-only page a person can glance at, rendered on the server (Jinja2, no JavaScript):
environments with their state, owner and time left; the logs kept of deleted ones, and until when; chains in
flight with their current step; per
production, its DR state, its newest backup with verification and age (the RPO a failover would have now)
and its drills."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.dr_state import NORMAL

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))
IN_FLIGHT = ("requested", "snapshotting", "cloning", "configuring", "expiring")
SHOWN_DRILLS = 3


def render(app, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    envs = app.registry.all()
    return _TEMPLATES.get_template("status.html").render(
        now=f"{now:%Y-%m-%d %H:%M:%S}",
        envs=[{"name": e.name, "state": e.state, "production": e.production, "owner": e.owner,
               "left": _left(now, e.expires_at),
               "endpoints": _links(e.endpoints)} for e in envs],
        kept_logs=[kept_logs_view(entry) for entry in app.logs.logbook.kept()],
        chains=_chains(app, envs),
        productions=[_production(app, name, now) for name in sorted(app.config["productions"])])


def kept_logs_view(entry) -> dict:
    """Kept logs as the page and the status API show them."""
    start = f"{entry.span_from:%Y-%m-%d %H:%M}" if entry.span_from else "?"
    return {"env": entry.env, "request": entry.request_id, "production": entry.production or "-",
            "until": f"{entry.kept_until:%Y-%m-%d %H:%M} UTC", "kept_until": entry.kept_until,
            "span": f"{start} to {entry.span_to:%Y-%m-%d %H:%M}",
            "size": f"{entry.size:,} bytes, {entry.files} file(s)"}


def _chains(app, envs) -> list[dict]:
    chains = [{"kind": "environment", "subject": f"{e.name} (from {e.production})", "step": e.state,
               "since": f"{e.updated_at:%H:%M:%S}"} for e in envs if e.state in IN_FLIGHT]
    chains += [{"kind": "DR", "subject": row.production, "step": row.state, "since": f"{row.since:%H:%M:%S}"}
               for row in app.dr_states.all() if row.state != NORMAL]
    return chains


def _production(app, name: str, now: datetime) -> dict:
    row = app.dr_states.get(name)
    newest = app.catalogue.newest(name)
    verified = app.catalogue.newest(name, verified_only=True)
    drills = app.dr_states.drills(name)[-SHOWN_DRILLS:]
    return {"name": name, "state": row.state, "since": f"{row.since:%Y-%m-%d %H:%M}",
            "backup": f"{newest.id}, {_age(now, newest.created_at)} old, {_verified(newest)}" if newest
            else "none yet",
            "rpo": _age(now, verified.created_at) + " (newest verified backup)" if verified
            else "unknown: no verified backup",
            "drills": "; ".join(f"{d.at:%Y-%m-%d} {'verified' if d.verified else 'FAILED'}"
                                for d in reversed(drills)) or "never drilled"}


def _links(endpoints: dict) -> str:
    """The endpoints a person opens (http and https URLs); the rest (paths, database URLs) by `env show`."""
    shown = [f"{k}: {v}" for k, v in sorted(endpoints.items()) if str(v).startswith(("http://", "https://"))]
    hidden = len(endpoints) - len(shown)
    return ", ".join(shown + ([f"{hidden} more: /doppel env show"] if hidden else []))


def _left(now: datetime, end: datetime | None) -> str:
    if end is None:
        return "no end"
    seconds = (end - now).total_seconds()
    return "due now" if seconds <= 0 else _span(seconds)


def _age(now: datetime, then: datetime) -> str:
    return _span(max(0.0, (now - then).total_seconds()))


def _span(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _verified(entry) -> str:
    if entry.verify_ok is None:
        return "not verified"
    return "verified" if entry.verify_ok else "verification FAILED"
