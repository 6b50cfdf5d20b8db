"""Process exit codes: how a worker tells the master why it stopped."""

OK = 0
#: A person must fix the command line or environment.
USAGE = 2
#: The worker could not import or build the application.
APP_LOAD_FAILED = 3
#: The application's lifespan startup failed.
LIFESPAN_FAILED = 4
#: Boot failures: the master stops instead of respawning in a loop.
BOOT_FAILURES = frozenset({APP_LOAD_FAILED, LIFESPAN_FAILED})
