"""Certificates minted at test time for the TLS tests, and the client side's SSL contexts.

One CA signs the server's certificates (ECDSA P-256, for 127.0.0.1 and localhost); a
second CA signs client certificates for mutual TLS. Everything is written as PEM files
under one directory, since ruvicorn reads its certificates from files.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

#: Where the server's certificate is valid.
IDENTITIES = ("127.0.0.1", "localhost")
#: Run a parametrized test (whose server fixture takes ``tls``) in cleartext and over TLS.
over_tls = pytest.mark.parametrize("tls", ["plain", "tls"], indirect=True, scope="module")


@dataclass(frozen=True)
class ServerCert:
    """A server certificate's files: the chain (leaf first) and its private key."""

    certfile: Path
    keyfile: Path

    def args(self) -> list[str]:
        return ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]

    def leaf_pem(self) -> str:
        """The leaf certificate alone, as PEM text."""
        text = self.certfile.read_text("ascii")
        end = "-----END CERTIFICATE-----"
        return text[: text.index(end) + len(end)] + "\n"

    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.leaf_pem().encode()).serial_number


class TLSCerts:
    """The CAs and certificates of one test session, as files under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA(organization_name="ruvicorn tests")
        #: What clients trust to verify the server.
        self.ca_file = directory / "server-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server = self.issue("server")
        self.client_ca = trustme.CA(organization_name="ruvicorn client CA")
        #: What the server is given as --ssl-ca-certs to verify clients.
        self.client_ca_file = directory / "client-ca.pem"
        self.client_ca.cert_pem.write_to_path(str(self.client_ca_file))
        client = self.client_ca.issue_cert("client@example.test", common_name="test client")
        #: A client certificate the client CA signed: its chain and key in one file.
        self.client_file = directory / "client.pem"
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_file))
        self.client_leaf_pem = client.cert_chain_pems[0].bytes().decode("ascii")
        #: A client certificate signed by the wrong CA (the server's).
        self.rogue_client_file = directory / "rogue-client.pem"
        rogue = self.ca.issue_cert("rogue@example.test", common_name="rogue client")
        rogue.private_key_and_cert_chain_pem.write_to_path(str(self.rogue_client_file))
        self._count = 0

    def issue(self, name: str) -> ServerCert:
        """A new server certificate (a new serial) signed by the server CA."""
        leaf = self.ca.issue_cert(*IDENTITIES)
        certfile = self.directory / f"{name}-chain.pem"
        keyfile = self.directory / f"{name}-key.pem"
        certfile.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(keyfile))
        return ServerCert(certfile, keyfile)

    def fresh(self) -> ServerCert:
        """A server certificate of its own, for a test that replaces or breaks the files."""
        self._count += 1
        return self.issue(f"fresh{self._count}")

    def encrypted_key(self, cert: ServerCert, password: bytes) -> Path:
        """``cert``'s key as encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY")."""
        key = serialization.load_pem_private_key(cert.keyfile.read_bytes(), password=None)
        path = cert.keyfile.with_suffix(".enc.pem")
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
        )
        return path

    def client_context(
        self, *, client_cert: bool = False, client_file: Path | None = None
    ) -> ssl.SSLContext:
        """What a client uses: trusts the server CA; presents the client certificate (or
        the one in ``client_file``) if asked."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert or client_file is not None:
            context.load_cert_chain(str(client_file or self.client_file))
        return context
