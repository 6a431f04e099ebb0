"""Serving a WSGI app (the receiver, the frontend) on cheroot, with a graceful SIGTERM.

Kubernetes sends SIGTERM before it kills a pod: the server stops accepting, lets the requests
in flight finish (up to ``drain_seconds``) and returns, so a rolling update fails no request.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from kubeface.core import intake

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
          stuck_seconds: float = 60.0) -> int:
    """Serve ``app`` until SIGTERM or SIGINT; returns 0 after a clean drain.

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
    log.info("%s listening on http://%s:%d", name, host, server.bind_addr[1])
    server.serve()
    watching.set()
    if stopper:
        stopper[0].join(drain_seconds + 5)
    log.info("%s stopped", name)
    return 0
