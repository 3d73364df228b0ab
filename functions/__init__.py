"""Doppel's functions, one file each; FUNCTIONS below is the explicit registry."""
