"""TLS over real server processes: clients of every kind (httpx, raw sockets, openssl
s_client, curl), protocol versions and ALPN, mutual TLS, the ``tls`` extension, the
handshake deadline, cleartext on the TLS port, certificate reload on SIGHUP and the
one-line errors of a bad TLS configuration.

The suites that must behave the same over TLS (pipelining, bodies, 100-continue, flow
control, WebSocket, graceful stop and reload) run over TLS through ``@over_tls``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from rawhttp import RawClient, ResponseError, request, wait_for
from realserver import APPS, ServerProcess, clean_env
from tlscerts import ServerCert, TLSCerts

from ruvicorn import exitcodes

MIB = 1024 * 1024
BOUND = 30.0
#: IANA numbers of the suites a client here may negotiate (Python names them as OpenSSL does).
SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
}
VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@pytest.fixture(scope="module")
def tls_server(module_server_factory: Any, loop: str, tls_certs: TLSCerts) -> ServerProcess:
    return module_server_factory("testapp:app", loop=loop, tls=tls_certs)


def scope_over(sock_client: RawClient, target: str = "/scope") -> dict[str, Any]:
    sock_client.send(request("GET", target))
    resp = sock_client.read_response()
    assert resp.status == 200, resp
    data: dict[str, Any] = resp.json()
    return data


def assert_no_client_certificate(ext: dict[str, Any]) -> None:
    assert ext["client_cert_chain"] == []
    assert ext["client_cert_name"] is None
    assert ext["client_cert_error"] is None


def assert_the_client_certificate(ext: dict[str, Any], certs: TLSCerts) -> None:
    """``ext`` reports the client certificate ``certs`` hands out."""
    leaf = x509.load_pem_x509_certificate(certs.client_leaf_pem.encode())
    assert ext["client_cert_name"] == leaf.subject.rfc4514_string()
    assert pem_body(ext["client_cert_chain"][0]) == pem_body(certs.client_leaf_pem)
    assert ext["client_cert_error"] is None


def mtls_args(certs: TLSCerts, reqs: int) -> tuple[str, ...]:
    """The options of a server that verifies client certificates (``--ssl-cert-reqs``)."""
    return ("--ssl-ca-certs", str(certs.client_ca_file), "--ssl-cert-reqs", str(reqs))


def pem_body(text: str) -> str:
    """A PEM certificate without its line breaks, to compare two encodings of it."""
    return "".join(text.split())


def served_serial(server: ServerProcess) -> int:
    with server.connect() as sock:
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def run_to_exit(server_factory: Any, *args: str, tls: TLSCerts | None = None) -> list[str]:
    """Start a server that must refuse to start with a usage error; its output lines."""
    srv: ServerProcess = server_factory("testapp:app", *args, start=False, tls=tls)
    srv.expect_exit = None
    srv.start(wait=False)
    assert srv.wait_exit(BOUND) == exitcodes.USAGE, srv.stderr()
    return srv.stderr().strip().splitlines()


# -- clients


def test_httpx_get_and_post_reuse_one_connection(tls_server: ServerProcess) -> None:
    context = tls_server.client_context()
    assert context is not None
    with httpx.Client(base_url=tls_server.url, verify=context, timeout=BOUND) as client:
        first = client.get("/anything/1").json()
        posted = client.post("/echo", content=b"posted body")
        second = client.get("/anything/2").json()
    assert posted.status_code == 200 and posted.content == b"posted body"
    assert first["scheme"] == "https" and first["path"] == "/anything/1"
    # One connection for all three: the same client port and the same tls dict.
    assert first["client"] == second["client"]
    assert first["tls_dict"] is not None and first["tls_dict"] == second["tls_dict"]


def test_upload_and_download_8_mib(tls_server: ServerProcess, tmp_path: Path) -> None:
    data = os.urandom(8 * MIB)
    with tls_server.client() as c:
        c.send(request("POST", "/echo", body=data))
        echoed = c.read_response()
        payload = tmp_path / "payload.bin"
        payload.write_bytes(data)
        c.send(request("GET", f"/pathsend?file={payload}&cl=1"))
        sent = c.read_response()
    digest = hashlib.sha256(data).hexdigest()
    assert echoed.status == 200 and hashlib.sha256(echoed.body).hexdigest() == digest
    assert sent.status == 200 and hashlib.sha256(sent.body).hexdigest() == digest


def test_startup_line_says_https(tls_server: ServerProcess) -> None:
    tls_server.wait_log(rf"Listening on https://127\.0\.0\.1:{tls_server.port}")


# -- protocol versions and ALPN


def s_client(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    certs = server.tls
    assert certs is not None
    return subprocess.run(
        [
            *("openssl", "s_client", "-connect", f"{server.host}:{server.port}"),
            *("-servername", "localhost", "-CAfile", str(certs.ca_file), *args),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_are_refused(tls_server: ServerProcess, version: str) -> None:
    # SECLEVEL=0 lets the client offer the old version; the refusal must be the server's.
    result = s_client(tls_server, version, "-cipher", "DEFAULT@SECLEVEL=0")
    assert result.returncode != 0, result.stdout
    assert "Cipher is (NONE)" in result.stdout, result.stdout
    # An alert received: the server refused (protocol_version or handshake_failure).
    assert re.search(r"alert .*SSL alert number (70|40)", result.stderr), result.stderr
    tls_server.assert_serving()


@pytest.mark.parametrize(("version", "name"), [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
@pytest.mark.parametrize(("offer", "chosen"), [("h2,http/1.1", "h2"), ("http/1.1", "http/1.1")])
def test_tls_1_2_and_1_3_negotiate_alpn(
    tls_server: ServerProcess, version: str, name: str, offer: str, chosen: str
) -> None:
    result = s_client(tls_server, version, "-alpn", offer, "-verify_return_error")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ALPN protocol: {chosen}" in result.stdout
    assert re.search(rf"New, {re.escape(name)}, Cipher is", result.stdout), result.stdout


def test_curl(tls_server: ServerProcess) -> None:
    certs = tls_server.tls
    assert certs is not None
    result = subprocess.run(
        [
            *("curl", "-sS", "-v", "--http1.1", "--cacert", str(certs.ca_file)),
            f"{tls_server.url}/ok",
        ],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok"
    assert re.search(r"ALPN.*accepted.*http/1\.1", result.stderr), result.stderr
    refused = subprocess.run(
        [
            *("curl", "-sS", "--cacert", str(certs.ca_file), "--tlsv1.0", "--tls-max", "1.1"),
            *("--ciphers", "DEFAULT@SECLEVEL=0", f"{tls_server.url}/ok"),
        ],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert refused.returncode != 0 and refused.stdout == ""


# -- the tls extension


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_extension_fields(
    tls_server: ServerProcess, tls_certs: TLSCerts, version: ssl.TLSVersion
) -> None:
    context = tls_certs.client_context()
    context.minimum_version = context.maximum_version = version
    with RawClient(tls_server.host, tls_server.port, tls=context) as c:
        assert isinstance(c.sock, ssl.SSLSocket)
        negotiated = c.sock.version()
        cipher = c.sock.cipher()
        first = scope_over(c)
        second = scope_over(c)
    with tls_server.client() as other:
        third = scope_over(other)
    assert first["scheme"] == "https"
    ext = first["extensions"]["tls"]
    assert pem_body(ext["server_cert"]) == pem_body(tls_certs.server.leaf_pem())
    assert negotiated is not None and ext["tls_version"] == VERSIONS[negotiated]
    assert cipher is not None and ext["cipher_suite"] == SUITES[cipher[0]]
    assert_no_client_certificate(ext)
    # Built once per connection: the second request sees the very same dict.
    assert first["tls_dict"] == second["tls_dict"] != third["tls_dict"]


# -- mutual TLS


@pytest.fixture(scope="module")
def mtls_servers(module_server_factory: Any, tls_certs: TLSCerts) -> dict[int, ServerProcess]:
    """A server that requires (2) and one that asks for (1) a client certificate."""
    return {
        reqs: module_server_factory("testapp:app", *mtls_args(tls_certs, reqs), tls=tls_certs)
        for reqs in (1, 2)
    }


def client_identity(
    server: ServerProcess, certs: TLSCerts, client_file: Path | None
) -> dict[str, Any]:
    context = certs.client_context(client_file=client_file)
    with RawClient(server.host, server.port, tls=context) as c:
        tls: dict[str, Any] = scope_over(c)["extensions"]["tls"]
    return tls


def refused_handshake(server: ServerProcess, context: ssl.SSLContext) -> None:
    """The handshake fails; in TLS 1.3 the client learns it on its first read."""
    with (
        pytest.raises((OSError, ResponseError)),
        RawClient(server.host, server.port, tls=context) as c,
    ):
        c.send(request("GET", "/ok"))
        c.read_response()


@pytest.mark.parametrize("reqs", [1, 2])
def test_client_certificate_signed_by_the_ca(
    mtls_servers: dict[int, ServerProcess], tls_certs: TLSCerts, reqs: int
) -> None:
    ext = client_identity(mtls_servers[reqs], tls_certs, tls_certs.client_file)
    assert_the_client_certificate(ext, tls_certs)


def test_required_client_certificate(
    mtls_servers: dict[int, ServerProcess], tls_certs: TLSCerts
) -> None:
    server = mtls_servers[2]
    refused_handshake(server, tls_certs.client_context())
    refused_handshake(server, tls_certs.client_context(client_file=tls_certs.rogue_client_file))
    assert "Traceback" not in server.stderr()
    client_identity(server, tls_certs, tls_certs.client_file)  # still serving


def test_optional_client_certificate_may_be_omitted(
    mtls_servers: dict[int, ServerProcess], tls_certs: TLSCerts
) -> None:
    ext = client_identity(mtls_servers[1], tls_certs, None)
    assert_no_client_certificate(ext)


# -- bad clients: slow handshakes and cleartext


@pytest.fixture(scope="module")
def impatient(module_server_factory: Any, tls_certs: TLSCerts) -> ServerProcess:
    return module_server_factory("testapp:app", "--timeout-request-header", "1", tls=tls_certs)


def client_hello(certs: TLSCerts) -> bytes:
    """The bytes of a real ClientHello, made without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; the read timeout bounds the wait."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open (got {data!r})") from None
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("sent", ["nothing", "half a ClientHello"])
def test_unfinished_handshake_is_closed_after_the_head_timeout(
    impatient: ServerProcess, tls_certs: TLSCerts, sent: str
) -> None:
    hello = client_hello(tls_certs)
    with socket.create_connection((impatient.host, impatient.port), timeout=BOUND) as sock:
        if sent != "nothing":
            sock.sendall(hello[: len(hello) // 2])
        read_until_closed(sock)
    impatient.assert_serving()


def test_cleartext_http_on_the_tls_port_is_closed(
    tls_server: ServerProcess, tls_certs: TLSCerts
) -> None:
    with socket.create_connection((tls_server.host, tls_server.port), timeout=BOUND) as sock:
        sock.sendall(request("GET", "/ok"))
        answer = read_until_closed(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    tls_server.assert_serving()
    assert "Traceback" not in tls_server.stderr()


# -- certificate reload


def install(cert: ServerCert, live: ServerCert) -> None:
    """Replace the files a server reads by ``cert``'s, each in one rename."""
    for source, target in ((cert.certfile, live.certfile), (cert.keyfile, live.keyfile)):
        temporary = target.with_suffix(".new")
        shutil.copyfile(source, temporary)
        temporary.replace(target)


@pytest.fixture
def reloadable(
    server_factory: Any, tls_certs: TLSCerts, tmp_path: Path
) -> tuple[ServerProcess, ServerCert]:
    """Two workers serving certificate files the test may replace."""
    live = ServerCert(tmp_path / "live-chain.pem", tmp_path / "live-key.pem")
    install(tls_certs.fresh(), live)
    args = ["--workers", "2", "--ssl-certfile", str(live.certfile)]
    server = server_factory("testapp:app", *args, "--ssl-keyfile", str(live.keyfile), tls=tls_certs)
    server.wait_log("Ready: 2 workers serving")
    return server, live


def test_sighup_loads_a_new_certificate(
    reloadable: tuple[ServerProcess, ServerCert], tls_certs: TLSCerts
) -> None:
    server, live = reloadable
    assert served_serial(server) == live.serial()
    old = server.workers()
    new = tls_certs.fresh()
    install(new, live)
    server.send_signal(signal.SIGHUP)
    server.wait_log("Reload complete")
    # The line comes as the last old worker is told to stop; until it has, it may still
    # accept a connection with the old certificate. Once the old workers are gone, every
    # handshake must show the new one.
    wait_for(
        lambda: len(server.workers()) == 2 and server.workers().isdisjoint(old),
        BOUND,
        "the old workers to exit",
    )
    assert {served_serial(server) for _ in range(8)} == {new.serial()}


@pytest.mark.parametrize("broken", ["key of another certificate", "truncated certificate"])
def test_sighup_with_a_broken_certificate_keeps_the_old_one(
    reloadable: tuple[ServerProcess, ServerCert], tls_certs: TLSCerts, broken: str
) -> None:
    server, live = reloadable
    old = live.serial()
    workers = server.workers()
    if broken == "key of another certificate":
        shutil.copyfile(tls_certs.fresh().keyfile, live.keyfile)
    else:
        live.certfile.write_text(live.certfile.read_text()[:200])
    server.send_signal(signal.SIGHUP)
    server.wait_log(r"Not reloading \(SIGHUP\): TLS: ")
    lines = [line for line in server.stderr().splitlines() if "Not reloading" in line]
    assert len(lines) == 1, lines
    assert "PRIVATE KEY" not in server.stderr() and "Traceback" not in server.stderr()
    assert {served_serial(server) for _ in range(4)} == {old}
    assert server.workers() == workers
    assert server.count("Reloading") == 0


# -- configuration errors


@pytest.fixture
def cert_pair(tls_certs: TLSCerts) -> tuple[ServerCert, ServerCert]:
    return tls_certs.fresh(), tls_certs.fresh()


def test_encrypted_key_with_its_password_serves(
    server_factory: Any, tls_certs: TLSCerts, cert_pair: tuple[ServerCert, ServerCert]
) -> None:
    cert = cert_pair[0]
    key = tls_certs.encrypted_key(cert, b"correct horse")
    args = ["--ssl-certfile", str(cert.certfile), "--ssl-keyfile", str(key)]
    env = {"RUVICORN_SSL_KEYFILE_PASSWORD": "correct horse"}
    server = server_factory("testapp:app", *args, tls=tls_certs, env=env)
    server.assert_serving()
    assert served_serial(server) == cert.serial()
    assert "correct horse" not in server.stderr()


def config_error_args(case: str, certs: TLSCerts, pair: tuple[ServerCert, ServerCert]) -> list[str]:
    cert, other = pair
    if case == "missing file":
        missing = str(cert.certfile) + ".missing"
        return ["--ssl-certfile", missing, "--ssl-keyfile", str(cert.keyfile)]
    if case == "wrong password":
        key = certs.encrypted_key(cert, b"right password")
        return [*cert.args()[:2], "--ssl-keyfile", str(key), "--ssl-keyfile-password", "wr0ng"]
    if case == "key of another certificate":
        return ["--ssl-certfile", str(cert.certfile), "--ssl-keyfile", str(other.keyfile)]
    if case == "OpenSSL cipher string":
        return [*cert.args(), "--ssl-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:HIGH:!aNULL"]
    assert case == "required client certificates without a CA"
    return [*cert.args(), "--ssl-cert-reqs", "2"]


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing file", ".missing"),
        ("wrong password", "password"),
        ("key of another certificate", "match"),
        ("OpenSSL cipher string", "IANA"),
        ("required client certificates without a CA", "--ssl-ca-certs"),
    ],
)
def test_configuration_errors_are_one_line(
    server_factory: Any,
    tls_certs: TLSCerts,
    cert_pair: tuple[ServerCert, ServerCert],
    case: str,
    needle: str,
) -> None:
    args = config_error_args(case, tls_certs, cert_pair)
    lines = run_to_exit(server_factory, *args, tls=tls_certs)
    assert len(lines) == 1, lines
    assert needle in lines[0], lines
    assert "wr0ng" not in lines[0] and "right password" not in lines[0]
    command = [sys.executable, "-m", "ruvicorn", "--check-config", "--app-dir", str(APPS)]
    check = subprocess.run(
        [*command, *args, "testapp:app"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert check.returncode == exitcodes.USAGE, check.stderr
    assert needle in check.stderr and len(check.stderr.strip().splitlines()) == 1, check.stderr
