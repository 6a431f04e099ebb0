"""The receiver and the frontend as real processes (``python -m kubeface ...``) on free ports,
and a small HTTP client for talking to them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import urllib3

from tests.support.procs import KubefaceProcess


@dataclass
class Reply:
    status: int
    headers: Any
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class WebService(KubefaceProcess):
    """``kubeface <command>`` listening on 127.0.0.1:<free port>, logging to ``log``; over
    HTTPS when ``env`` has TLS_CERT_FILE, verified against ``ca_file``."""

    PORT_VARIABLE: ClassVar[dict[str, str]] = {"receiver": "RECEIVER_PORT",
                                               "frontend": "FRONTEND_PORT"}

    def __init__(self, command: str, env: dict[str, str], log: Path,
                 ca_file: Path | None = None) -> None:
        self.command = command
        self.ca_file = ca_file
        super().__init__(command, {**env, "BIND_ADDRESS": "127.0.0.1"}, log,
                         port_variables=(self.PORT_VARIABLE[command],))
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(total=30), retries=False,
                                        ca_certs=str(ca_file) if ca_file else None)

    @property
    def port(self) -> int:
        return int(self.env[self.PORT_VARIABLE[self.command]])

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("TLS_CERT_FILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> WebService:
        def launch() -> None:
            self.process.start()
            self.process.wait_port(self.port)
            self.process.wait_until(lambda: self.call("GET", "/healthz").status == 200,
                                    f"{self.command} healthz")

        self.start_servers(launch)
        return self

    def call(self, method: str, path: str, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        if isinstance(body, str):
            body = body.encode()
        r = self.http.request(method, self.url + path, body=body, headers=headers,
                              redirect=False)
        return Reply(r.status, r.headers, r.data)

    def post_json(self, path: str, payload: Any, form: bool = True) -> Reply:
        """What the article's ``curl -d '<json>'`` sends: a JSON body labelled as a form
        (``form=False`` labels it application/json)."""
        content_type = "application/x-www-form-urlencoded" if form else "application/json"
        return self.call("POST", path, json.dumps(payload), {"Content-Type": content_type})

    def get_json(self, path: str) -> Any:
        reply = self.call("GET", path)
        assert reply.status == 200, (path, reply.status, reply.text)
        return reply.json()
