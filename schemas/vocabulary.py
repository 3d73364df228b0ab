"""Words the config file uses that the code behind it also knows: config formats and anonymisation methods."""
from __future__ import annotations

from pathlib import Path

# How a clone's column is made safe (docs/configuration.md, "anonymise"). `name` is `full_name`'s older spelling;
# `keep` says a column that looks personal is not, so the check that fails a clone on such columns lets it be.
ANONYMISE_METHODS = ("email", "first_name", "last_name", "full_name", "name", "phone", "address", "text", "hash",
                     "null", "fixed", "date_shift", "digits", "sql", "truncate", "keep")
VALUE_METHODS = ("email", "name", "phone", "hash")  # SQLite: each value replaced by a pseudonym made in Python
SQLITE_METHODS = VALUE_METHODS + ("null", "truncate", "keep")

CONFIG_FORMATS = ("ini", "env", "yaml", "json", "php")

_BY_SUFFIX = {".ini": "ini", ".cfg": "ini", ".conf": "ini", ".env": "env", ".yaml": "yaml", ".yml": "yaml",
              ".json": "json", ".php": "php"}



def detect_format(path: str | Path) -> str | None:
    """The config format a file name implies (`.env`, `app.env`, `x.ini`, `x.yml` ...), or None."""
    name = Path(path).name
    if name == ".env" or name.startswith(".env."):
        return "env"
    return _BY_SUFFIX.get(Path(name).suffix.lower())
