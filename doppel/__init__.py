"""Doppel's composition root: configuration, wiring of deps, the CLI."""
