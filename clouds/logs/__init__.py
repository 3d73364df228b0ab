"""What environments logged: collected before teardown, kept in the backup store, read back, pruned."""
from clouds.logs.keeper import LogKeeper

__all__ = ["LogKeeper"]
