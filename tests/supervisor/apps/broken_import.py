"""A test app whose import fails: the server must stop at once with a clear error."""

raise ImportError("this module is broken on purpose")
