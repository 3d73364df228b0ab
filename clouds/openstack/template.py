"""The HOT template environments are made from, and the parameters Doppel gives it.

Doppel adds four string parameters of its own to the template (`doppel_env`,
`doppel_key`, `doppel_production`, `doppel_snapshot`), so a stack read back from
Heat says which request made it in full: Heat's own tags are limited to 80
characters and cannot hold a request id safely.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from core.cloud import TAG_ENV, TAG_KEY, TAG_PRODUCTION, TAG_SNAPSHOT, DriverError, fill_parameters
from schemas.openstack import PARAMETER_PLACEHOLDER

# Template parameter -> the tag it carries.
DOPPEL_PARAMETERS = {"doppel_env": TAG_ENV, "doppel_key": TAG_KEY, "doppel_production": TAG_PRODUCTION,
                     "doppel_snapshot": TAG_SNAPSHOT}


def load_template(path: str, *, production: str, env: str) -> dict:
    """The production's HOT template as a mapping, with Doppel's own parameters added."""
    file = Path(path)
    try:
        template = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise DriverError(f"cannot read the template of production {production} ({file}): {exc.strerror}; fix "
                          f"productions.{production}.template in doppel.yaml", env=env, permanent=True) from None
    except yaml.YAMLError as exc:
        raise DriverError(f"the template of production {production} ({file}) is not YAML: {exc}",
                          env=env, permanent=True) from None
    if not isinstance(template, dict) or "resources" not in template:
        raise DriverError(f"the template of production {production} ({file}) is not a HOT template (it has no "
                          "resources:)", env=env, permanent=True)
    # YAML reads an unquoted 2018-08-31 as a date; Heat wants the string.
    template["heat_template_version"] = str(template.get("heat_template_version", "2018-08-31"))
    parameters = template.setdefault("parameters", {}) or {}
    template["parameters"] = parameters
    for name in DOPPEL_PARAMETERS:
        parameters.setdefault(name, {"type": "string", "default": ""})
    return template


def render_parameters(mapping: Mapping[str, Any], *, images: Mapping[str, str], volume_snapshots: Mapping[str, str],
                      secrets: Mapping[str, str], config_url: str, env: str, production: str,
                      host_keys: Mapping[str, str] | None = None) -> dict:
    """Template parameters with their placeholders filled; a missing snapshot part is named in the error.
    `host_keys` fills {host_key.TREE} and {host_key.TREE.public} (clouds.openstack.file_trees.host_key_values)."""
    values = {"config_url": config_url, "env": env, "production": production, **(host_keys or {})}
    values.update({f"snapshot.image.{name}": image for name, image in images.items()})
    values.update({f"snapshot.volume.{name}": snap for name, snap in volume_snapshots.items()})
    values.update({f"secrets.{name}": value for name, value in secrets.items()})

    return fill_parameters(mapping, values, env=env, production=production)


def uses_secrets_or_bundle(value: Any) -> bool:
    """Whether a parameter changes when an environment is configured (fresh credentials, its bundle)."""
    return isinstance(value, str) and any(
        used.strip().startswith("secrets.") or used.strip() == "config_url"
        for used in PARAMETER_PLACEHOLDER.findall(value))
