"""Turning a copy of production into an environment of its own, for every driver.

Config rewriting (ini, .env, YAML, JSON, PHP define), crontab disabling, value
templates with per-environment secrets, and deterministic pseudonyms for
anonymisation. Pure functions over text and values: the local driver applies them
to files in place, a cloud driver to the config bundle it delivers to its servers.
"""
from clouds.rewrite.anonymise import Pseudonyms
from clouds.rewrite.configfile import CONFIG_FORMATS, detect_format, read_value, rewrite_file, rewrite_text
from clouds.rewrite.crontab import DISABLED_PREFIX, disable_crontab_file, disable_crontab_text
from clouds.rewrite.formats.text import RewriteError
from clouds.rewrite.values import new_secrets
from schemas.templates import TemplateError, placeholders, render

__all__ = [
    "CONFIG_FORMATS", "DISABLED_PREFIX", "Pseudonyms", "RewriteError", "TemplateError", "detect_format",
    "disable_crontab_file", "disable_crontab_text", "new_secrets", "placeholders", "read_value", "render",
    "rewrite_file", "rewrite_text",
]
