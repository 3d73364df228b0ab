"""boto3 at arm's length: clients from the standard credential chain, one call at a time, and what errors mean.

Credentials are boto3's own chain (environment, a profile of ~/.aws, an instance role); doppel.yaml
names a region and, optionally, a profile, never keys. `AWS_ENDPOINT_URL` (boto3's own variable) points
every client at another endpoint, as the tests do with moto's server.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from core.cloud import DriverError

# Errors that a retry cannot mend: the request itself is wrong.
PERMANENT_CODES = ("ValidationError", "InvalidParameterValue", "InvalidParameterCombination", "InvalidAMIID.NotFound",
                   "InvalidInstanceID.NotFound", "DBInstanceNotFound", "InvalidSubnetID.NotFound",
                   "AccessDenied", "UnauthorizedOperation", "InsufficientCapabilitiesException")


def session(region: str, profile: str | None):
    import boto3
    try:
        return boto3.session.Session(region_name=region, profile_name=profile)
    except Exception as exc:  # noqa: BLE001 - botocore raises ProfileNotFound and others here
        raise DriverError(f"cannot use AWS profile {profile!r} in region {region}: {exc}; check ~/.aws/config and "
                          "the production's profile:", permanent=True) from None


def code_of(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) if hasattr(exc, "response") else ""


def message_of(exc: BaseException) -> str:
    if hasattr(exc, "response"):
        return str(exc.response.get("Error", {}).get("Message", exc))[:500]
    return str(exc)[:500]


def call(env: str | None, what: str, action):
    """Run one API call, turning botocore's errors into DriverErrors that say what failed and whether to retry."""
    try:
        return action()
    except DriverError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise error(env, what, exc) from None


def error(env: str | None, what: str, exc: BaseException) -> DriverError:
    """What a failed call means: a DriverError saying what failed, and whether a retry can help."""
    code = code_of(exc)
    permanent = code in PERMANENT_CODES
    return DriverError(f"could not {what} for env {env or '-'}: {code or exc.__class__.__name__}: "
                       f"{message_of(exc)}{'' if permanent else '; it is retried'}", env=env, permanent=permanent)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status AWS answered a failed call with (400: it refused what was asked)."""
    return getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


def outputs_of(raw: Mapping) -> dict:
    """A CloudFormation stack's outputs (describe_stacks), name -> value."""
    return {o["OutputKey"]: o.get("OutputValue") for o in raw.get("Outputs") or ()}


def request_token(key: str, prefix: str = "doppel-") -> str:
    """CloudFormation's ClientRequestToken for an idempotency key: a replayed create is the same request."""
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:40]


def read_template(path: str, *, what: str, fix: str, env: str | None) -> str:
    """A template file's text; unreadable, a permanent DriverError naming the file and the setting to fix."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise DriverError(f"cannot read {what} ({path}): {exc.strerror}; fix {fix}", env=env,
                          permanent=True) from None


def tag_list(tags: Mapping[str, str]) -> list[dict]:
    return [{"Key": key, "Value": str(value)} for key, value in sorted(tags.items())]


def tag_dict(tags: list | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or () if t["Key"].startswith("doppel-")}


def rds_identifier(name: str) -> str:
    """An RDS identifier from a Doppel name: letters, digits and single hyphens, starting with a letter."""
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")
    return cleaned if cleaned[:1].isalpha() else f"d-{cleaned}"
