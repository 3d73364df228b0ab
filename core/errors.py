"""Errors a function raises to tell the worker what to do next."""


class PermanentError(Exception):
    """Retrying cannot help (bad request, missing production, policy refusal): park at once."""


class TransientError(Exception):
    """Worth another try later (a cloud API timing out, a lock held). Any other exception counts as this."""


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the key and the fix."""


class Deferred(Exception):
    """Not yet: come back in about `seconds` (a sync is still swapping the DR copy).

    The worker redelivers the message after the delay queue nearest to that wait
    (at most the longest), without counting an attempt; no thread waits meanwhile.
    A handler that defers bounds its own waiting (failover gives up on a sync after
    SYNC_WAIT_S), since deferring never runs out of attempts.
    """

    def __init__(self, seconds: float, reason: str):
        super().__init__(f"deferred {seconds:g} s: {reason}")
        self.seconds = seconds
        self.reason = reason
