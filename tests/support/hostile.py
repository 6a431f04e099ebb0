"""Hostile HTTP clients for the web services' tests: connections that trickle their request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3

SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
SLOW_BODY = (b"POST /image/post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100\r\n\r\n{\"path\": \"")


class SlowClients:
    """``count`` connections that each send a request start, then one more byte every
    ``interval`` seconds and never finish: half stall in the headers, half in the body."""

    def __init__(self, port: int, count: int, interval: float = 2.0) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.sockets: list[socket.socket] = []
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def open(self) -> SlowClients:
        for i in range(self.count):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(SLOW_HEAD if i % 2 == 0 else SLOW_BODY)
            self.sockets.append(s)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            for s in list(self.sockets):
                try:
                    s.sendall(b"a")
                except OSError:
                    self.sockets.remove(s)
                    self.closed_by_server += 1

    def still_open(self) -> int:
        """How many of them the server has not closed (a closed one reads as end of file)."""
        alive = 0
        for s in self.sockets:
            s.setblocking(False)
            try:
                s.recv(1, socket.MSG_PEEK)  # an answer or the end: the server let go of it
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.sockets:
            s.close()


@contextmanager
def slow_clients(port: int, count: int = 200) -> Iterator[SlowClients]:
    clients = SlowClients(port, count).open()
    try:
        yield clients
    finally:
        clients.close()


def answered_within(url: str, seconds: float, method: str = "GET", body: bytes | None = None,
                    headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
    """The answer to one request on a new connection; fails when none comes within
    ``seconds`` (connect, send and the whole answer)."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=seconds), retries=False)
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
