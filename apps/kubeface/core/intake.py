"""Reading HTTP requests for cheroot without giving slow clients a worker thread.

cheroot hands a connection to a worker as soon as its first bytes arrive; the worker then reads
the request line, headers and body with a timeout on each ``recv`` only, so a client that sends
one byte every few seconds holds a worker for as long as it likes (slowloris): a few dozen such
clients stop the server. Here the selector thread that accepts connections also reads them,
without blocking, into the connection's own buffer, and hands a request to a worker only once
the worker can read all of it without waiting: the whole head and a body of up to
``body_limit`` bytes. A request that is not complete within the server's ``timeout`` of its
first byte (or of the connection becoming idle) is closed by cheroot's own expiry of idle
connections. Whatever a worker still reads from the socket (a body larger than the limit)
shares that deadline.

Under TLS the selector thread also advances each connection's handshake as its bytes arrive
(:mod:`kubeface.core.tls` leaves it undone at accept); a handshake not done within ``timeout`` of
the connection is dropped, and plain HTTP sent to the TLS port is answered 400 and closed.
"""

from __future__ import annotations

import _pyio
import enum
import selectors
import socket
import ssl
import time
from typing import Any

from cheroot import connections, wsgi
from cheroot import server as cheroot_server
from cheroot.makefile import StreamReader

from kubeface.core import tls

HEAD_LIMIT = 64 * 1024  # request line and headers; cheroot answers 413 to a longer head
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                ssl.SSLWantWriteError)


class _State(enum.Enum):
    READY = "ready"  # a worker can read the whole request (or its error) without waiting
    WAIT = "wait"  # more bytes are needed
    CLOSED = "closed"  # the client went away


class _SocketIO(socket.SocketIO):
    """A socket's raw reader that first returns the bytes the selector thread read ahead, and
    that never waits past ``deadline`` (a ``time.monotonic()`` value, or None)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__(sock, "rb")
        self.ahead = bytearray()
        self.deadline: float | None = None
        self.timeout = timeout

    def readinto(self, b: Any) -> int | None:
        if self.ahead:
            n = min(len(b), len(self.ahead))
            b[:n] = self.ahead[:n]
            del self.ahead[:n]
            return n
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")  # cheroot answers 408 Request Timeout
            self._sock.settimeout(min(left, self.timeout))
            try:
                return super().readinto(b)
            finally:
                self._sock.settimeout(self.timeout)  # writes keep the whole timeout
        return super().readinto(b)

    def pending(self) -> int:
        """Bytes TLS has decrypted but nobody has read: the selector cannot see them."""
        pending = getattr(self._sock, "pending", None)
        return pending() if pending is not None else 0


class _Reader(StreamReader):
    """cheroot's socket reader on a :class:`_SocketIO`."""

    def __init__(self, raw: _SocketIO, bufsize: int) -> None:
        _pyio.BufferedReader.__init__(self, raw, bufsize)
        self.bytes_read = 0

    def has_data(self) -> bool:
        return super().has_data() or bool(self.raw.ahead) or self.raw.pending() > 0


class _Headers(dict):
    """Request headers that refuse a Content-Length given twice or that is not a plain number
    (cheroot keeps the last one): where the body ends would be in doubt, and what follows it
    would be read as another request. cheroot answers the ValueError with 400 and closes."""

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if key == b"Content-Length":
            if key in self:
                raise ValueError("Content-Length is given more than once")
            if not value.isdigit():
                raise ValueError("Content-Length must be a number of bytes")
        super().__setitem__(key, value)


class Request(cheroot_server.HTTPRequest):
    """cheroot's request with strict Content-Length headers, and an answer that says
    ``Connection: close`` (the body was left unread, e.g. a 408) ending the connection at once
    rather than after reading the rest of the body."""

    def read_request_headers(self) -> bool:
        self.inheaders = _Headers()
        return super().read_request_headers()

    def send_headers(self) -> None:
        if any(k.lower() == b"connection" and v.lower() == b"close" for k, v in self.outheaders):
            self.close_connection = True
        super().send_headers()


class Connection(cheroot_server.HTTPConnection):
    """An HTTP connection whose requests are read ahead by :meth:`take_in`."""

    RequestHandlerClass = Request

    def __init__(self, server: Server, sock: socket.socket, makefile: Any = None) -> None:
        super().__init__(server, sock, makefile or cheroot_server.MakeFile)
        self._raw = _SocketIO(sock, server.timeout)
        self.rfile = _Reader(self._raw, self.rbufsize)
        self.body_limit = server.body_limit
        self.handshaken = server.ssl_adapter is None
        self.wants_write = False  # TLS needs to send before it can read on
        # Idle since accept: an unfinished handshake, or no request, expires from here.
        self.last_used = time.time()

    def take_in(self) -> _State:
        """Read what the socket has now, without blocking; READY when a worker can go."""
        self.wants_write = False
        if not self.handshaken and (state := self._handshake()) is not None:
            return state
        raw = self._raw
        if StreamReader.has_data(self.rfile):
            # Bytes of a pipelined request already in the buffered reader come first.
            raw.ahead[:0] = self.rfile.read(len(self.rfile.peek()))
        idle = not raw.ahead
        limit = HEAD_LIMIT + self.body_limit
        try:
            self.socket.settimeout(0.0)
            while len(raw.ahead) <= limit:
                try:
                    chunk = self.socket.recv(65536)
                except _WOULD_BLOCK as exc:
                    self.wants_write = isinstance(exc, ssl.SSLWantWriteError)
                    break
                if not chunk:
                    return _State.CLOSED if not raw.ahead else _State.READY
                raw.ahead += chunk
        finally:
            self.socket.settimeout(self.server.timeout)
        if idle and raw.ahead:
            # The request's clock starts at its first byte (TLS records without any, such
            # as an empty one, leave the idle connection's clock running).
            self.last_used = time.time()
        state = _State.READY if len(raw.ahead) > limit else self._complete()
        if state is _State.READY:
            self.start_deadline()
        return state

    def _handshake(self) -> _State | None:
        """Advance the TLS handshake without blocking; None once it is done."""
        try:
            self.socket.settimeout(0.0)
            self.socket.do_handshake()
        except _WOULD_BLOCK as exc:
            self.wants_write = isinstance(exc, ssl.SSLWantWriteError)
            return _State.WAIT
        except ssl.SSLError as exc:
            if tls.is_plain_http(exc):
                tls.refuse_plain_http(self.socket)
            return _State.CLOSED
        except OSError:
            return _State.CLOSED
        finally:
            self.socket.settimeout(self.server.timeout)
        self.handshaken = True
        self.ssl_env = self.server.ssl_adapter.environ(self.socket)
        return None

    @property
    def started(self) -> bool:
        """Whether part of a request has arrived."""
        return bool(self._raw.ahead)

    def start_deadline(self) -> None:
        """From now on, reads end at the request's deadline."""
        started = self.last_used or time.time()
        left = max(0.0, self.server.timeout - (time.time() - started))
        self._raw.deadline = time.monotonic() + left

    def _complete(self) -> _State:
        """Whether ``ahead`` holds a whole request; answers a client's 100-continue itself."""
        raw = self._raw
        data = bytes(raw.ahead)
        start = len(data) - len(data.lstrip(b"\r\n"))
        ends = [i for i in (data.find(b"\r\n\r\n", start), data.find(b"\n\n", start)) if i >= 0]
        if not ends:
            return _State.READY if len(data) > HEAD_LIMIT else _State.WAIT
        end = min(ends)
        head_end = end + (4 if data.startswith(b"\r\n\r\n", end) else 2)
        head, body = data[:head_end], data[head_end:]
        lengths, chunked, expect = set(), False, None
        for line in head[start:].splitlines()[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                lengths.add(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect" and value.lower() == b"100-continue":
                expect = line
        if chunked:
            done = _chunks_complete(body)
        elif not lengths:
            done = True
        elif len(lengths) > 1 or not _small_number(next(iter(lengths))):
            done = True  # a worker answers the bad Content-Length
        else:
            wanted = int(next(iter(lengths)))
            done = wanted > self.body_limit or len(body) >= wanted
        if done:
            return _State.READY
        if expect is not None:
            # The client waits for this before it sends the body: say it now, and drop the
            # header so that cheroot does not say it again.
            raw.ahead[:head_end] = head.replace(expect + b"\r\n", b"", 1).replace(
                expect + b"\n", b"", 1)
            try:
                self.socket.settimeout(0.0)
                self.socket.send(_CONTINUE)
            except OSError:
                return _State.CLOSED
            finally:
                self.socket.settimeout(self.server.timeout)
        return _State.WAIT


def _small_number(value: bytes) -> bool:
    return value.isdigit() and len(value) <= 18


def _chunks_complete(body: bytes) -> bool:
    """Whether a chunked body is all there (or malformed: a worker answers that)."""
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return len(body) - pos > 1024  # a size line that long is malformed
        size = body[pos:eol].split(b";", 1)[0].strip()
        if not size or len(size) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in size):
            return True
        if int(size, 16) == 0:
            return body.find(b"\r\n\r\n", eol) >= 0 or body.startswith(b"\r\n", eol + 2)
        pos = eol + 2 + int(size, 16) + 2
        if pos > len(body):
            return False


class _Connections(connections.ConnectionManager):
    def _expire(self, threshold: float) -> None:
        """A request begun but not whole by its deadline goes to a worker whose reads then
        time out at once: the client is told 408 Request Timeout rather than cut off."""
        for fd, conn in list(self._selector.connections):
            if conn is not self.server and conn.started and conn.last_used < threshold:
                self._selector.unregister(fd)
                conn.start_deadline()
                self.server.requests.put(conn)
        super()._expire(threshold)

    def close(self) -> None:
        """At shutdown, a request that has started to arrive is handed to a worker (which
        reads the rest within its deadline) rather than cut: the server drains it."""
        for fd, conn in list(self._selector.connections):
            if conn is not self.server and conn.started:
                self._selector.unregister(fd)
                conn.start_deadline()
                self.server.requests.put(conn)
        super().close()


class Server(wsgi.Server):
    """cheroot's WSGI server with requests read ahead by the selector thread.

    ``timeout`` bounds the time from a request's first byte until it is read (and how long an
    idle keep-alive connection is kept).
    """

    ConnectionClass = Connection

    def __init__(self, *args: Any, body_limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_limit = body_limit
        self.max_request_header_size = HEAD_LIMIT

    def prepare(self) -> None:
        super().prepare()
        plain, self._connections = self._connections, _Connections(self)
        plain._selector.close()

    def process_conn(self, conn: Any) -> None:
        """Called by the selector thread (and by a worker putting a keep-alive connection
        back): a worker only for a request it can read at once."""
        try:
            state = conn.take_in()
        except OSError:
            state = _State.CLOSED
        if state is _State.READY:
            super().process_conn(conn)
        elif state is _State.WAIT and self.ready:
            events = selectors.EVENT_WRITE if conn.wants_write else selectors.EVENT_READ
            self._connections._selector.register(conn.socket.fileno(), events, data=conn)
        else:
            conn.close()
