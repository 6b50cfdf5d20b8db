"""The certificate check the master runs before any worker loads the TLS files.

Workers build their TLS configuration after fork, in the native protocol, from the
``ssl_*`` settings. The master never holds a key; it asks the same native code whether a
worker would succeed: at start (a bad file stops the start with one line, rather than with
a worker that cannot boot) and before a rolling restart (a bad replacement file leaves
the old workers serving the certificate they loaded).
"""

from __future__ import annotations

from ruvicorn import _native
from ruvicorn.config import Config


def problem(config: Config) -> str | None:
    """Why workers could not serve TLS with the files as they are now; None when they can
    (or when TLS is off). The text names the file and the problem, never key material."""
    if config.ssl_certfile is None:
        return None
    try:
        _native.check_tls(
            config.ssl_certfile,
            config.ssl_keyfile,
            config.ssl_keyfile_password,
            config.ssl_ca_certs,
            config.ssl_cert_reqs,
            config.ssl_ciphers,
        )
    except ValueError as exc:
        lines = str(exc).strip().splitlines()
        return f"TLS: {lines[0]}" if lines else "TLS: the configuration was refused"
    return None
