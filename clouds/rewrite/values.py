"""Fresh per-environment secrets for the value templates of the clone policy (schemas/templates.py)."""
from __future__ import annotations

import secrets as _secrets
from typing import Iterable


def new_secrets(names: Iterable[str], nbytes: int = 24) -> dict[str, str]:
    """A fresh random value for each secret name (URL-safe, so it fits any config format unquoted)."""
    return {name: _secrets.token_urlsafe(nbytes) for name in names}
