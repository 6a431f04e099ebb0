"""HTTPS for the receiver and the frontend: cheroot's builtin SSL adapter, with the handshake
left to :mod:`kubeface.core.intake`.

cheroot's adapter completes the handshake inside ``accept``, on the one thread that accepts
every connection: a client that connects and sends half a ClientHello stalls the whole server
for the read timeout. Here ``wrap`` only attaches TLS to the socket; the selector thread then
advances the handshake whenever the client sends something, without blocking, like the request
that follows it.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from cheroot.ssl.builtin import BuiltinSSLAdapter

from kubeface.core.config import ConfigError

# What a client that speaks plain HTTP to the HTTPS port is told before the connection closes.
_REFUSAL_TEXT = b"this port speaks HTTPS only: use https://\n"
PLAIN_HTTP_REFUSAL = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(_REFUSAL_TEXT), _REFUSAL_TEXT))


class Adapter(BuiltinSSLAdapter):
    """TLS 1.2 or later from a PEM certificate (chain) and key; no handshake in ``wrap``."""

    def __init__(self, certificate: Path, private_key: Path) -> None:
        super().__init__(str(certificate), str(private_key))
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        """The socket with TLS attached; the WSGI environment's TLS entries come once the
        handshake is done (:meth:`environ`)."""
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), {}

    def environ(self, sock: ssl.SSLSocket) -> dict[str, str]:
        return self.get_environ(sock)


def adapter(files: tuple[Path, Path] | None) -> Adapter | None:
    """The adapter for ``(certificate, key)``, None for plain HTTP; a file that cannot be used
    is a :class:`ConfigError` that names its variable."""
    if files is None:
        return None
    certificate, key = files
    for name, path in (("TLS_CERT_FILE", certificate), ("TLS_KEY_FILE", key)):
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{name} {str(path)!r} cannot be read ({exc.strerror})") from None
    try:
        return Adapter(certificate, key)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"TLS_CERT_FILE and TLS_KEY_FILE are not a PEM certificate and its "
                          f"key ({exc})") from None


def is_plain_http(exc: ssl.SSLError) -> bool:
    """Whether a failed handshake began with an HTTP request instead of a ClientHello."""
    return exc.reason in {"HTTP_REQUEST", "HTTPS_PROXY_REQUEST"}


def refuse_plain_http(sock: ssl.SSLSocket) -> None:
    """Answer a plain-HTTP request on the TLS socket's bare TCP, without blocking. The request
    is read first, so that closing the socket does not reset the connection before the client
    reads the answer."""
    try:
        for _ in range(16):  # what a request head can be; a client that streams on is cut
            if not socket.socket.recv(sock, 65536):
                break
    except OSError:
        pass
    try:
        socket.socket.send(sock, PLAIN_HTTP_REFUSAL)
        socket.socket.shutdown(sock, socket.SHUT_WR)
    except OSError:
        pass
