"""Hostile HTTP clients for the web services' tests: connections that trickle their request
(over TLS too, and its handshake)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import urllib3

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
SLOW_BODY = (b"POST /image/post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100\r\n\r\n{\"path\": \"")


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS handshake, as ``context`` would send it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


class SlowClients:
    """``count`` connections that each send a request start, then one more byte every
    ``interval`` seconds and never finish: half stall in the headers, half in the body. With
    ``tls`` (a client context), a third instead trickle their TLS handshake's ClientHello."""

    def __init__(self, port: int, count: int, interval: float = 2.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.port, self.count, self.interval, self.tls = port, count, interval, tls
        self.sockets: list[socket.socket] = []
        self.hellos: dict[socket.socket, bytes] = {}  # what a handshake trickler has left
        self.closed_by_server = 0
        self._let_go: set[socket.socket] = set()
        self._lock = threading.Lock()  # a TLS socket is used by one thread at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def open(self) -> SlowClients:
        hello = client_hello(self.tls) if self.tls else b""
        for i in range(self.count):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if self.tls and i % 3 == 2:
                s.sendall(hello[:10])
                self.hellos[s] = hello[10:]
            else:
                if self.tls:
                    s = self.tls.wrap_socket(s, server_hostname="127.0.0.1")
                s.sendall(SLOW_HEAD if i % 2 == 0 else SLOW_BODY)
            self.sockets.append(s)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for s in list(self.sockets):
                    try:
                        if s in self.hellos:
                            s.sendall(self.hellos[s][:1])
                            self.hellos[s] = self.hellos[s][1:]
                        else:
                            s.sendall(b"a")
                    except (OSError, ValueError):
                        self.sockets.remove(s)
                        self.closed_by_server += 1

    def still_open(self) -> int:
        """How many of them the server has not let go of: not closed and not answered."""
        alive = 0
        with self._lock:
            for s in self.sockets:
                if s not in self._let_go and self._waiting(s):
                    alive += 1
                else:
                    self._let_go.add(s)
        return alive

    @staticmethod
    def _waiting(s: socket.socket) -> bool:
        s.setblocking(False)
        try:
            if isinstance(s, ssl.SSLSocket):
                s.recv(1)  # an answer or the end; TLS's own messages read as nothing
            else:
                s.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            pass
        finally:
            s.setblocking(True)
            s.settimeout(5)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.sockets:
            s.close()


@contextmanager
def slow_clients(port: int, count: int = 200,
                 tls: ssl.SSLContext | None = None) -> Iterator[SlowClients]:
    clients = SlowClients(port, count, tls=tls).open()
    try:
        yield clients
    finally:
        clients.close()


def answered_within(url: str, seconds: float, method: str = "GET", body: bytes | None = None,
                    headers: dict[str, str] | None = None,
                    ca_file: Path | None = None) -> urllib3.BaseHTTPResponse:
    """The answer to one request on a new connection; fails when none comes within
    ``seconds`` (connect, TLS handshake, send and the whole answer)."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=seconds), retries=False,
                               ca_certs=str(ca_file) if ca_file else None)
    started = time.monotonic()
    try:
        reply = http.request(method, url, body=body, headers=headers)
    except urllib3.exceptions.HTTPError as exc:
        raise AssertionError(f"{method} {url}: no answer within {seconds}s ({exc})") from None
    finally:
        http.clear()
    took = time.monotonic() - started
    assert took <= seconds, f"{method} {url} took {took:.2f}s"
    return reply
