"""openstacksdk at arm's length: a connection, one API call at a time, and what its answers and errors mean.

Every call the driver makes goes through `call`, which turns openstacksdk's errors
into DriverErrors that say what failed, on which env, and whether a retry can help.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from core.cloud import DriverError


def connect(cloud: str, region: str | None):
    """An openstacksdk connection to a cloud of clouds.yaml (OS_CLIENT_CONFIG_FILE is honoured)."""
    import openstack
    try:
        return openstack.connect(cloud=cloud, region_name=region)
    except Exception as exc:  # noqa: BLE001 - openstacksdk raises several kinds here
        raise DriverError(f"cannot connect to cloud {cloud!r}{' region ' + region if region else ''}: {exc}; check "
                          "clouds.yaml (OS_CLIENT_CONFIG_FILE) and the production's cloud:", permanent=True) from None


def call(env: str | None, what: str, action):
    """Run one API call, turning openstacksdk's errors into DriverErrors that say what failed."""
    try:
        return action()
    except DriverError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise transient(env or "-", what, exc) from None


def transient(env: str, what: str, exc: BaseException) -> DriverError:
    code = status_code(exc)
    return DriverError(f"could not {what} for env {env}: {exc.__class__.__name__}"
                       f"{' ' + str(code) if code else ''}: {str(exc)[:300]}; it is retried", env=env,
                       permanent=code in (400, 403, 404) if code else False)


def status_code(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)


def heat_message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    return str(details or exc)[:500]


def doppel_tags(properties: Mapping | None) -> dict[str, str]:
    return {k: str(v) for k, v in (properties or {}).items() if isinstance(k, str) and k.startswith("doppel-")}


def when(text) -> datetime:
    if not text:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
