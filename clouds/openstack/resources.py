"""What Doppel makes on OpenStack: the kinds find_tagged reports, the names derived from an env, and the tags.

For an environment Doppel makes, under deterministic names derived from the request's
idempotency key and tagged with `doppel-env` / `doppel-key`:

    a Doppel snapshot  snap-<env>-<hash>: one Nova image per production server
                       (image properties) and one Cinder snapshot per volume
                       (snapshot metadata), looked up by tag before creating
    a Heat stack       doppel-<env>, from the production's template; Heat tags
                       `doppel` and `doppel-env=<env>`, the full tags as parameters
    a Swift container  doppel-<env>: the config bundle instances read at boot, and
                       until configure restores them, the snapshot's database dumps
    databases          each env's own database, where its stack's outputs say (databases.py)
"""
from __future__ import annotations

from core.cloud import TAG_ENV

IMAGE, VOLUME_SNAPSHOT, SNAPSHOT, STACK, CONTAINER = "image", "volume_snapshot", "snapshot", "stack", "container"
TAG_COMPONENT = "doppel-component"
TAG_SERVER = "doppel-server"  # the production server an image was taken of
HEAT_TAG = "doppel"
BUNDLE_OBJECT, MARKER_OBJECT = "config.json", "configured.json"
IMAGE_FAILED = ("killed", "deleted", "deactivated", "pending_delete")
VOLUME_SNAPSHOT_FAILED = ("error", "error_deleting")


def stack_name(env: str) -> str:
    return f"doppel-{env}"


def container_name(env: str) -> str:
    return f"doppel-{env}"


def heat_tag_env(env: str) -> str:
    return f"{TAG_ENV}={env}"
