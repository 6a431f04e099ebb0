"""HTTPS on the receiver and the frontend, through the real processes: what a client that
trusts the deployment's CA gets, what others get, and a certificate pair given wrong."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubeface.core import tls as server_tls
from kubeface.core.config import VARIABLES
from tests.support import tls
from tests.support.hostile import answered_within
from tests.support.procs import ROOT
from tests.support.web import WRITE_TOKEN, WebService


@pytest.fixture
def certs(tmp_path):
    return tls.make(tmp_path / "tls")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1:DeprecationWarning")
@pytest.mark.parametrize("command", ["receiver", "frontend"])
def test_the_service_speaks_https_verified_against_the_ca(command, service_env, db, certs,
                                                          tmp_path):
    service = WebService(command, {**service_env, **certs.env()}, tmp_path / f"{command}.log",
                         ca_file=certs.ca).start()
    try:
        assert service.url.startswith("https://")
        assert answered_within(service.url + "/healthz", 1.0, ca_file=certs.ca).status == 200
        # A client that does not trust the CA refuses the certificate.
        with pytest.raises(AssertionError, match="CERTIFICATE_VERIFY_FAILED"):
            answered_within(service.url + "/healthz", 5.0)
        # Plain HTTP on the HTTPS port: a 400 that says so, at once, then the end.
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert time.monotonic() - started < 1.0
        assert answer.startswith(b"HTTP/1.1 400 ") and b"HTTPS only" in answer, answer
        # Keep-alive and pipelining work as over HTTP.
        context = tls.client_context(certs.ca)
        with context.wrap_socket(socket.create_connection(("127.0.0.1", service.port),
                                                          timeout=5),
                                 server_hostname="127.0.0.1") as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2
                         + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.count(b"HTTP/1.1 200 ") == 3, answer
        # TLS 1.1 is refused.
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(certs.ca))
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError), socket.create_connection(
                ("127.0.0.1", service.port), timeout=5) as raw:
            old.wrap_socket(raw, server_hostname="127.0.0.1")
        assert "listening on https://" in service.log.read_text()
    finally:
        service.stop()


def test_a_handshake_that_never_ends_is_dropped(service_env, db, certs, tmp_path):
    service = WebService("receiver", {**service_env, **certs.env()}, tmp_path / "r.log",
                         ca_file=certs.ca).start()
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=20) as conn:
            conn.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, no more
            started = time.monotonic()
            assert conn.recv(100) == b""  # closed, without a worker ever being involved
        assert 8 < time.monotonic() - started < 15  # the read timeout (10 s)
    finally:
        service.stop()


def _run(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeface", "receiver"], cwd=ROOT,
                          env={"PATH": "/usr/bin", "KUBEFACE_ENV_FILE": str(tmp_path / "no"),
                               "API_AUTH": "off", **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("given", "missing"), [("TLS_CERT_FILE", "TLS_KEY_FILE"),
                                                ("TLS_KEY_FILE", "TLS_CERT_FILE")])
def test_half_a_certificate_pair_stops_the_service_naming_the_other(given, missing, certs,
                                                                   tmp_path):
    result = _run({"MYSQL_USERPASSWORD": "u:p", given: str(certs.cert)}, tmp_path)
    assert result.returncode == 2
    assert f"{missing} is not set but {given} is" in result.stderr, result.stderr


def test_an_unreadable_key_or_a_wrong_pair_is_a_configuration_error(certs, tmp_path):
    result = _run({"MYSQL_USERPASSWORD": "u:p", "TLS_CERT_FILE": str(certs.cert),
                   "TLS_KEY_FILE": str(tmp_path / "absent.key")}, tmp_path)
    assert result.returncode == 2
    assert "TLS_KEY_FILE" in result.stderr and "cannot be read" in result.stderr, result.stderr
    other = tls.make(tmp_path / "other")
    result = _run({"MYSQL_USERPASSWORD": "u:p", "TLS_CERT_FILE": str(certs.cert),
                   "TLS_KEY_FILE": str(other.key)}, tmp_path)
    assert result.returncode == 2
    assert "not a PEM certificate and its key" in result.stderr, result.stderr


def test_plain_http_is_recognised_by_the_handshake(certs):
    # What the server relies on to tell plain HTTP from a broken ClientHello.
    server = server_tls.Adapter(certs.cert, certs.key)
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    wrapped, _ = server.wrap(conn)
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ssl.SSLError) as raised:
        wrapped.do_handshake()
    assert server_tls.is_plain_http(raised.value)
    for s in (wrapped, client, listener):
        s.close()


def test_kubeface_post_verifies_an_https_receiver_with_cacert(service_env, db, certs,
                                                              tmp_path):
    service = WebService("receiver", {**service_env, **certs.env()}, tmp_path / "r.log",
                         ca_file=certs.ca).start()
    unknown = Path(service_env["UNKNOWN_PEOPLE"])
    (unknown / "tls.jpg").write_bytes(b"not decoded by a post")
    env = {**service_env, **certs.env(), "RECEIVER_PORT": str(service.port),
           "KUBEFACE_TOKEN": WRITE_TOKEN}
    try:
        # The default URL is https:// when TLS_CERT_FILE is set; the system does not trust
        # the private CA.
        refused = _kubeface_post(env, "--no-wait", str(unknown / "tls.jpg"))
        assert refused.returncode == 1
        (line,) = refused.stderr.strip().splitlines()
        assert "https://127.0.0.1" in line and "CERTIFICATE_VERIFY_FAILED" in line, line
        posted = _kubeface_post(env, "--no-wait", "--cacert", str(certs.ca),
                                str(unknown / "tls.jpg"))
        assert posted.returncode == 0, posted.stderr
    finally:
        service.stop()
    assert [r.path for r in db.query("SELECT path FROM images")] == ["tls.jpg"]


def _kubeface_post(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    ours = {v.name for v in VARIABLES}
    full = {**{k: v for k, v in os.environ.items() if k not in ours}, **env,
            "KUBEFACE_ENV_FILE": "/nonexistent/kubeface.env"}
    return subprocess.run([sys.executable, "-m", "kubeface", "post", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
