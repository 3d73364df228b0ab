"""Errors a function raises to tell the worker what to do next."""


class PermanentError(Exception):
    """Retrying cannot help (bad request, missing production, policy refusal): park at once."""


class TransientError(Exception):
    """Worth another try later (a cloud API timing out, a lock held). Any other exception counts as this."""


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the key and the fix."""
