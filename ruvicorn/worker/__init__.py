"""A worker process: its event loop, the app, and the native protocol serving it."""
