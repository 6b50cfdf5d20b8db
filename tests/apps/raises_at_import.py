"""Raises while being imported: the worker must say so in one line."""

raise RuntimeError("configuration file missing")
