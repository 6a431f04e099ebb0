"""Serving a WSGI app (the receiver, the frontend) on cheroot, with a graceful SIGTERM.

Kubernetes sends SIGTERM before it kills a pod: the server stops accepting, lets the requests
in flight finish (up to ``drain_seconds``) and returns, so a rolling update fails no request.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from cheroot import wsgi

log = logging.getLogger(__name__)


def serve(app: Callable[..., Any], host: str, port: int, name: str, threads: int = 16,
          drain_seconds: float = 20.0) -> int:
    """Serve ``app`` until SIGTERM or SIGINT; returns 0 after a clean drain."""
    server = wsgi.Server((host, port), app, numthreads=threads, server_name=name,
                         shutdown_timeout=drain_seconds)
    stopper: list[threading.Thread] = []

    def on_signal(signum: int, _frame: object) -> None:
        if stopper:
            return
        log.info("%s: %s received, draining requests in flight", name,
                 signal.Signals(signum).name)
        # stop() joins the worker threads: not inside a signal handler on the serving thread.
        stopper.append(threading.Thread(target=server.stop, name="stop", daemon=True))
        stopper[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.prepare()
    log.info("%s listening on http://%s:%d", name, host, server.bind_addr[1])
    server.serve()
    if stopper:
        stopper[0].join(drain_seconds + 5)
    log.info("%s stopped", name)
    return 0
