"""Imports a dependency that is not installed: the worker must say so in one line."""

import definitely_missing_dependency_xyz  # noqa: F401

app = None
