"""TLS for the TLS workloads: a CA and an ECDSA P-256 server certificate for 127.0.0.1,
minted with the openssl command for each run into a temporary directory, which is removed
when the run ends (no key outlives the run or lands in the repository); the options that
hand them to a server, and whether a server's build serves TLS at all."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from runner.paths import venv_bin
from runner.workloads import Workload

_EXTENSIONS = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    "basicConstraints=CA:FALSE\n"
    "keyUsage=digitalSignature\n"
    "extendedKeyUsage=serverAuth\n"
)


class CertError(Exception):
    """The certificates could not be made; the message says why, in one line."""


@dataclasses.dataclass
class Certs:
    """Where this run's certificates are; ``directory`` is None until ``mint``."""

    directory: Path | None = None

    @property
    def cert(self) -> Path:
        return self._path("cert.pem")

    @property
    def key(self) -> Path:
        return self._path("key.pem")

    @property
    def ca(self) -> Path:
        return self._path("ca.pem")

    def _path(self, name: str) -> Path:
        if self.directory is None:
            raise CertError("no certificates minted for this run")
        return self.directory / name

    def mint(self) -> None:
        """A CA, and a server certificate it signs (the leaf alone is served; PKCS#8 key)."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise CertError("openssl is not installed (apt-get install openssl)")
        d = Path(tempfile.mkdtemp(prefix="bench-tls-"))
        self.directory = d
        (d / "ext.cnf").write_text(_EXTENSIONS)
        days = "-days 2"
        p256 = f"-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes {days}"
        steps = [
            f"req -x509 {p256} -keyout ca.key -out ca.pem -subj /CN=CA".split(),
            f"req {p256} -keyout key.pem -out leaf.csr -subj /CN=127.0.0.1".split(),
            f"x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial {days} "
            "-extfile ext.cnf -out cert.pem".split(),
        ]
        for step in steps:
            done = subprocess.run(
                [openssl, *step], cwd=d, capture_output=True, text=True, timeout=30, check=False
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                self.remove()
                raise CertError(f"openssl {step[0]} failed: {last}")

    def remove(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


CERTS = Certs()


@functools.cache
def serves_tls(exe: str, flag: str) -> bool:
    """Whether ``exe --help`` lists ``flag``; True when it is not installed at all, as that
    is reported (once, for every workload) by the run itself."""
    path = Path(venv_bin(exe))
    if not path.exists():
        return True
    try:
        done = subprocess.run(
            [str(path), "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(flag) and flag in done.stdout


def tls_options(w: Workload, cert_flag: str, key_flag: str = "--ssl-keyfile") -> list[str]:
    if not w.tls:
        return []  # cleartext
    return [cert_flag, str(CERTS.cert), key_flag, str(CERTS.key)]
