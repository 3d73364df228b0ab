"""The embedded `local` cloud driver: productions and their doubles are directories on this host."""
from clouds.local.driver import LocalDriver

__all__ = ["LocalDriver"]
