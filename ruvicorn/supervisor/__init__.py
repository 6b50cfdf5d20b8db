"""The master: binds listeners, forks workers, owns signals and reloads."""
