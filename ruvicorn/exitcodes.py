"""Process exit codes: how a worker tells the master why it stopped."""

OK = 0
#: A person must fix the command line or environment.
USAGE = 2
#: The worker could not import or build the application.
APP_LOAD_FAILED = 3
#: The application's lifespan startup failed.
LIFESPAN_FAILED = 4
#: The TLS certificate, key or CA files could not be loaded.
TLS_FAILED = 5
#: Boot failures: the master stops instead of respawning in a loop.
BOOT_FAILURES = frozenset({APP_LOAD_FAILED, LIFESPAN_FAILED, TLS_FAILED})


class StartupError(Exception):
    """The application could not be loaded, or its lifespan startup failed.

    ``code`` is the matching exit code above; ``str()`` is the one line to show.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
