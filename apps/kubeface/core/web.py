"""Serving a WSGI app (the receiver, the frontend) on cheroot, with a graceful SIGTERM.

Kubernetes sends SIGTERM before it kills a pod: the server stops accepting, lets the requests
in flight finish (up to ``drain_seconds``) and returns, so a rolling update fails no request.

The rest is what every route of the receiver and the frontend shares: errors as answers
(:class:`HttpError`, :func:`guarded`, :func:`error_handler`), the database away as 503 with
:data:`RETRY_AFTER_SECONDS`, one integer parameter parser, JSON bodies read within a limit,
and ``/readyz``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import bottle
import sqlalchemy.exc

from kubeface.core import intake, metrics, tls
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.core.image_queries import DATABASE_AWAY

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024  # cheroot's 5 is too few when many clients connect at once
# Idle keep-alive connections kept (cheroot's default is 10 for the whole server): one costs a
# file descriptor, not a thread, and is closed after read_seconds.
KEEP_ALIVE_LIMIT = 1000
STUCK_EXIT_CODE = 70  # EX_SOFTWARE: the supervisor (or the kubelet) starts the process again


class _Busy:
    """The WSGI app, noting which worker threads are inside it and since when."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.since: dict[int, float] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        thread = threading.get_ident()
        self.since[thread] = time.monotonic()
        try:
            return self.app(environ, start_response)
        finally:
            self.since.pop(thread, None)

    def stuck(self, seconds: float) -> int:
        """How many threads have been inside one request for more than ``seconds``."""
        now = time.monotonic()
        return sum(now - started > seconds for started in list(self.since.values()))


def _watch(busy: _Busy, threads: int, stuck_seconds: float, name: str,
           stop: threading.Event) -> None:
    """Exit when every worker thread is stuck: a process that answers nothing must not look
    alive to its supervisor."""
    while not stop.wait(min(5.0, stuck_seconds / 4)):
        if busy.stuck(stuck_seconds) >= threads:
            log.critical("%s: all %d worker threads have been inside one request for more "
                         "than %.0fs: exiting to be restarted", name, threads, stuck_seconds)
            logging.shutdown()
            os._exit(STUCK_EXIT_CODE)


def serve(app: Callable[..., Any], host: str, port: int, name: str, threads: int = 16,
          drain_seconds: float = 20.0, body_limit: int = 1 << 20, read_seconds: float = 10.0,
          stuck_seconds: float = 60.0, ssl_adapter: tls.Adapter | None = None) -> int:
    """Serve ``app`` until SIGTERM or SIGINT; returns 0 after a clean drain.

    With ``ssl_adapter`` (:func:`tls.adapter`) it speaks HTTPS only.

    A request must arrive whole within ``read_seconds`` of its first byte; until it has (head
    and a body up to ``body_limit`` bytes) it costs no worker thread (:mod:`intake`). When all
    ``threads`` have been inside one request each for ``stuck_seconds``, the process exits with
    :data:`STUCK_EXIT_CODE`.
    """
    busy = _Busy(app)
    server = intake.Server((host, port), busy, numthreads=threads, server_name=name,
                           shutdown_timeout=drain_seconds, timeout=read_seconds,
                           body_limit=body_limit, request_queue_size=LISTEN_BACKLOG)
    server.keep_alive_conn_limit = KEEP_ALIVE_LIMIT
    server.ssl_adapter = ssl_adapter
    stopper: list[threading.Thread] = []
    watching = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stopper:
            return
        log.info("%s: %s received, draining requests in flight", name,
                 signal.Signals(signum).name)
        watching.set()
        # stop() joins the worker threads: not inside a signal handler on the serving thread.
        stopper.append(threading.Thread(target=server.stop, name="stop", daemon=True))
        stopper[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.prepare()
    threading.Thread(target=_watch, args=(busy, threads, stuck_seconds, name, watching),
                     name="stuck-watch", daemon=True).start()
    log.info("%s listening on %s://%s:%d", name, "https" if ssl_adapter else "http", host,
             server.bind_addr[1])
    server.serve()
    watching.set()
    if stopper:
        stopper[0].join(drain_seconds + 5)
    log.info("%s stopped", name)
    return 0


# --- the plumbing the receiver and the frontend share ---------------------------------------

RETRY_AFTER_SECONDS = 5
"""How long a client is told to wait (``Retry-After``) when a service answers 503."""


class HttpError(Exception):
    """An answer other than success: HTTP status, a message a person can act on, details."""

    def __init__(self, status: int, message: str, details: list[str] | None = None,
                 close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details
        self.close = close  # the connection cannot carry another request (a body left unread)

    @property
    def headers(self) -> dict[str, str]:
        """The headers that go with this answer whatever it looks like."""
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 503 else {}
        return {**headers, "Connection": "close"} if self.close else headers


Answer = Callable[[HttpError], bottle.HTTPResponse]
"""How a service shows an error: JSON for the receiver, an HTML page for the frontend."""


def json_response(status: int, body: dict[str, Any], **headers: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps(body, ensure_ascii=False), status,
        {"Content-Type": "application/json; charset=utf-8", **headers},
    )


def json_error(error: HttpError) -> bottle.HTTPResponse:
    """``{"error": message, "details": [...]}``: the answer of a JSON API."""
    body: dict[str, Any] = {"error": error.message}
    if error.details:
        body["details"] = error.details
    return json_response(error.status, body, **error.headers)


def int_param(raw: str | None, name: str, low: int, high: int,
              default: int | None = None) -> int | None:
    """``raw`` (a query or path parameter) as an integer from ``low`` to ``high``; ``default``
    when it is absent or empty. Anything else is :class:`HttpError` 400, huge numbers too:
    the digits are counted before ``int()`` sees them (Python refuses more than 4300)."""
    if raw is None or raw == "":
        return default
    digits = raw.lstrip("0") or "0"
    if (not raw.isascii() or not raw.isdigit() or len(digits) > len(str(high))
            or not low <= int(digits) <= high):
        shown = raw if len(raw) <= 40 else f"{raw[:20]}...({len(raw)} characters)"
        raise HttpError(400, f"{name} must be an integer from {low} to {high}, got {shown!r}")
    return int(digits)


def read_body(environ: dict[str, Any], limit: int, why: str = "") -> bytes:
    """The request body, read by hand up to ``limit`` bytes; ``why`` ends the 413 message (the
    setting that sets ``limit``, what to send instead). An answer that leaves the body unread
    closes the connection: the rest must not be taken for the next request."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        if not length.isascii() or not length.isdigit():
            raise HttpError(400, f"Content-Length {length[:40]!r} is not a number of bytes",
                            close=True)
        if len(length) > 18 or int(length) > limit:
            size = length if len(length) <= 18 else "more than 10**18"
            raise HttpError(413, f"body of {size} bytes is over the limit of {limit} bytes{why}",
                            close=True)
    try:
        raw = environ["wsgi.input"].read(limit + 1)
    except TimeoutError:  # socket.timeout: the client stopped sending before the end
        raise HttpError(408, "the body did not arrive in time: it is shorter than its "
                             "Content-Length, or the client stalled", close=True) from None
    if len(raw) > limit:
        raise HttpError(413, f"body is over the limit of {limit} bytes{why}", close=True)
    return raw


def read_json_body(environ: dict[str, Any], limit: int, why: str,
                   example: str = '{"path": "unknown0001.jpg"}') -> Any:
    """The request body parsed as JSON whatever its Content-Type (the article's ``curl -d``
    says form-urlencoded), read by :func:`read_body`: Bottle never parses it as a form.
    ``example`` is a body to show when it is empty."""
    raw = read_body(environ, limit, why)
    if not raw.strip():
        raise HttpError(400, f"empty body: send JSON such as {example}")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpError(400, "body is not UTF-8 text: send JSON") from None
    except json.JSONDecodeError as exc:
        raise HttpError(400, f"body is not valid JSON ({exc.msg} at line {exc.lineno} "
                             f"column {exc.colno})") from None
    except ValueError as exc:  # an integer over Python's 4300 digits
        raise HttpError(400, f"body has a number JSON cannot hold here ({exc})") from None
    except RecursionError:
        raise HttpError(400, "body is JSON nested too deeply") from None


def guarded(func: Callable[..., Any], answer: Answer) -> Callable[..., Any]:
    """``func`` as a route: :class:`HttpError` becomes ``answer``'s response, and the database
    being away (unreachable, or every pooled connection busy) a 503 that says try again."""
    def handle(**kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except HttpError as exc:
            return answer(exc)
        except DATABASE_AWAY as exc:
            log.warning("database unavailable: %s", getattr(exc, "orig", exc))
            what = ("busy (every connection in use)"
                    if isinstance(exc, sqlalchemy.exc.TimeoutError) else "unreachable")
            return answer(HttpError(
                503, f"the database is {what}: nothing was stored, try again later"))
    return handle


def error_handler(answer: Answer, service: str, not_found: str = "") -> Callable[..., Any]:
    """Bottle's own errors (no such route 404, 405, an uncaught exception's 500) answered the
    service's way; ``not_found`` is added to the 404 message (where to look instead)."""
    def handle(error: bottle.HTTPError) -> Any:
        if error.status_code >= 500:
            log.error("internal error on %s %s: %s", bottle.request.method,
                      bottle.request.path, error.exception, exc_info=error.exception)
            message = f"internal error: the {service}'s log has the details"
        elif error.status_code == 404:
            message = f"no such page {bottle.request.path[:200]!r}{not_found}"
        elif error.status_code == 405:
            message = (f"method {bottle.request.method} is not allowed here "
                       f"(allowed: {error.headers.get('Allow', '?')})")
        else:
            message = str(error.body)
        reply = answer(HttpError(error.status_code, message))
        # Bottle has already set the status; the reply's headers go on top of the response's
        # (a page's security headers, 405's Allow).
        for name, value in reply.headerlist:
            bottle.response.set_header(name, value)
        return reply.body
    return handle


def database_check(db: Database) -> str:
    """``"ok"``, or why the database does not answer (for :func:`readiness`)."""
    try:
        db.ping()
    except DATABASE_AWAY as exc:
        return f"unreachable ({type(exc).__name__})"
    return OK


OK = "ok"


def readiness(checks: dict[str, Callable[[], str]]) -> bottle.HTTPResponse:
    """``/readyz``: 200 when every check says ``"ok"``, else 503 with what is away."""
    results = {name: check() for name, check in checks.items()}
    ready = all(v == OK for v in results.values())
    return json_response(200 if ready else 503,
                         {"status": OK if ready else "unavailable", "checks": results},
                         **({} if ready else {"Retry-After": str(RETRY_AFTER_SECONDS)}))


def serve_on_database(settings: Settings, name: str, port: int, threads: int,
                      build: Callable[[Database], Callable[..., Any]]) -> int:
    """:func:`serve` the app that ``build`` makes on one database pool (its use shown at
    ``/metrics``); the pool is closed when the server stops."""
    # A certificate or key that cannot be used stops the service before it starts.
    ssl_adapter = tls.adapter(settings.tls_files)
    db = Database(settings, threads=threads)  # a connection for every worker thread
    try:
        return serve(metrics.instrument(build(db), name, db), settings.bind_address, port, name,
                     threads=threads, ssl_adapter=ssl_adapter)
    finally:
        db.close()
