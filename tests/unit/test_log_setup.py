"""doppel.logs.setup, run again in one process (each in-process `doppel` command does), adds its filters once."""
import logging

from core.secrets import RedactingFilter
from doppel.logs import setup


def test_setup_run_many_times_leaves_one_redacting_filter_per_handler():
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        for _ in range(50):
            setup(logging.WARNING, "text", "%H:%M:%S")
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        assert len(handler.filters) == 2  # the chain fields and the masking
    finally:
        root.removeHandler(handler)
