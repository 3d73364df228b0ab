"""A cloud environment's description as files: what the openstack and aws drivers back up to rebuild a stack."""
from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from core.cloud import ResourceMissing, Stack
from core.secrets import scrub, secret_values


def write_description(sources: Path, name: str, folder: str, description: Mapping[str, object]) -> Path:
    """Write `description` (file name -> content: YAML for *.yaml, JSON otherwise) under `sources/name/folder/`,
    in a fresh directory put in place of the last one whole; returns `sources/name`."""
    final = Path(sources) / name
    final.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    (fresh / folder).mkdir()
    for filename, content in description.items():
        if filename.endswith(".yaml"):
            text = yaml.safe_dump(content, sort_keys=False)
        else:
            text = json.dumps(content, indent=2, sort_keys=True, default=str) + "\n"
        (fresh / folder / filename).write_text(text)
    old = final.with_name(f".{name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    fresh.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def dr_stack_description(production: str, env: str, stack: Stack | None, where: str) -> dict[str, object]:
    """What a failback carries home from the DR stack besides its databases: which stack it was, and its outputs
    with secrets masked. ResourceMissing unless the stack is complete: there is nothing to carry home then."""
    if stack is None or not stack.complete:
        raise ResourceMissing(f"the DR stack of {production} in {where} is "
                              f"{stack.status if stack else 'missing'}, so there is nothing to carry home", env=env)
    return {"stack.json": {"kind": "dr", "production": production, "env": env, "name": stack.name, "id": stack.id,
                           "where": where},
            "outputs.json": scrub(dict(stack.outputs), secret_values())}
