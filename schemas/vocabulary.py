"""Words the config file uses that the code behind it also knows: config formats and anonymisation methods."""
from __future__ import annotations

from pathlib import Path

ANONYMISE_METHODS = ("email", "name", "phone", "hash", "null", "truncate")
VALUE_METHODS = ("email", "name", "phone", "hash")  # replace each value with a pseudonym

CONFIG_FORMATS = ("ini", "env", "yaml", "json", "php")

_BY_SUFFIX = {".ini": "ini", ".cfg": "ini", ".conf": "ini", ".env": "env", ".yaml": "yaml", ".yml": "yaml",
              ".json": "json", ".php": "php"}



def detect_format(path: str | Path) -> str | None:
    """The config format a file name implies (`.env`, `app.env`, `x.ini`, `x.yml` ...), or None."""
    name = Path(path).name
    if name == ".env" or name.startswith(".env."):
        return "env"
    return _BY_SUFFIX.get(Path(name).suffix.lower())
