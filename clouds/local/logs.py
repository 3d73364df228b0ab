"""What a local environment logged: the files its production's `logs` components name, by glob in its directory."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

from core.cloud import CollectedLogs


def collect(env_root: Path, logs: list[Mapping], into: Path) -> CollectedLogs:
    """Copy every regular file under `env_root` that a glob of `logs` matches into `into`, at the same relative
    path. A link is not followed out of the environment's directory."""
    root = env_root.resolve()
    files: list[str] = []
    warnings: list[str] = []
    for component in logs:
        for pattern in component.get("paths", ()):
            for path in sorted(root.glob(pattern)):
                relative = path.relative_to(root).as_posix()
                if relative in files or not path.is_file():
                    continue
                if root not in path.resolve().parents:
                    warnings.append(f"{relative} links outside the environment's directory; left out")
                    continue
                target = into / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copyfile(path, target)
                except OSError as exc:
                    warnings.append(f"{relative} could not be read: {exc.strerror}")
                    continue
                files.append(relative)
    return CollectedLogs(files=tuple(files), warnings=tuple(warnings))
