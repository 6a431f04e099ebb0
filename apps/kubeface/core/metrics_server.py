"""The small HTTP port of the services that do not speak HTTP (the processor, the face service):
``/metrics`` (Prometheus text format), ``/healthz`` (liveness: the process still does its work)
and ``/readyz`` (readiness: it can take work now).

A check is a function returning ``(ok, detail)``; it runs on the request's thread and must be
quick. The server runs in daemon threads beside the service and never blocks its shutdown.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubeface.core import metrics

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


def always() -> tuple[bool, str]:
    return True, "ok"


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, service: str, healthz: Check = always,
                 readyz: Check = always) -> None:
        self.service, self.checks = service, {"/healthz": healthz, "/readyz": readyz}
        super().__init__((host, port), _Handler)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> MetricsServer:
        self.thread = threading.Thread(target=self.serve_forever, name="metrics", daemon=True)
        self.thread.start()
        log.info("%s metrics, /healthz and /readyz on http://%s:%d", self.service,
                 self.server_address[0], self.port)
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.shutdown()
        self.server_close()


def start(host: str, port: int, service: str, healthz: Check = always,
          readyz: Check = always) -> MetricsServer:
    """Listen now (an address in use raises OSError, which the service reports and exits on)."""
    return MetricsServer(host, port, service, healthz, readyz).start()


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that sends nothing does not keep a thread

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body = metrics.exposition()
            except Exception as exc:
                log.exception("metrics: the scrape failed")
                self._send(500, json.dumps({"error": f"scrape failed: {exc}"}).encode(),
                           "application/json")
                return
            self._send(200, body, metrics.CONTENT_TYPE)
        elif path in self.server.checks:
            try:
                ok, detail = self.server.checks[path]()
            except Exception as exc:
                ok, detail = False, f"check failed: {type(exc).__name__}: {exc}"
            body = json.dumps({"status": "ok" if ok else "unavailable", "detail": detail})
            self._send(200 if ok else 503, body.encode(), "application/json")
        else:
            body = json.dumps({"error": f"no such endpoint {path!r}: /metrics, /healthz, "
                                        "/readyz"})
            self._send(404, body.encode(), "application/json")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes and probes every few seconds would drown the service's own lines."""
