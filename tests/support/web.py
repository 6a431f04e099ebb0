"""The receiver and the frontend as real processes (``python -m kubeface ...``) on free ports,
and a small HTTP client for talking to them.

Each service gets this test run's credentials (:func:`credentials_env`) unless the test sets its
own, and the client uses them by default: a write token on the receiver, a session on the
frontend (logged in once at start). ``call(..., auth=False)`` sends none.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import urllib3

from kubeface.core import auth
from tests.support.procs import KubefaceProcess

WRITE_TOKEN = auth.new_secret()
READ_TOKEN = auth.new_secret()
USER = "tester"
PASSWORD = auth.new_secret(12)
SESSION_KEY = auth.new_secret()
# The header a raw request to the receiver carries.
AUTH = f"Authorization: Bearer {WRITE_TOKEN}\r\n".encode()


@functools.cache
def _password_hash() -> str:
    return auth.hash_password(PASSWORD)


def credentials_env() -> dict[str, str]:
    """The credentials every test service gets: a write and a read token, one user."""
    return {"API_TOKENS": f"write:{WRITE_TOKEN},read:{READ_TOKEN}",
            "FRONTEND_USERS": f"{USER}:{_password_hash()}",
            "FRONTEND_SESSION_KEY": SESSION_KEY}


def cookie_of(headers: Any, name: str) -> str | None:
    """The value ``Set-Cookie`` headers give the cookie ``name``."""
    for header in headers.getlist("Set-Cookie") if hasattr(headers, "getlist") else []:
        if match := re.match(rf"\s*{re.escape(name)}=([^;]*)", header):
            return match.group(1)
    return None


def log_in(http: urllib3.PoolManager, site: str, user: str, password: str) -> str:
    """Log in to the frontend at ``site`` through its login form, as a browser does (the CSRF
    cookie and field first); the session cookie's value."""
    page = http.request("GET", site + "/login", redirect=False)
    csrf = cookie_of(page.headers, "kubeface_csrf")
    assert page.status == 200 and csrf, (page.status, page.data[:300])
    form = urlencode({"name": user, "password": password, "csrf": csrf})
    reply = http.request("POST", site + "/login", body=form.encode(), redirect=False, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"kubeface_csrf={csrf}"})
    session = cookie_of(reply.headers, "kubeface_session")
    assert reply.status == 303 and session, (reply.status, reply.data[:300])
    return session


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
        super().__init__(command, {**credentials_env(), **env, "BIND_ADDRESS": "127.0.0.1"},
                         log, port_variables=(self.PORT_VARIABLE[command],))
        self.session: str | None = None
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
        if self.command == "frontend" and self.env.get("FRONTEND_AUTH") != "off" \
                and self.session is None:
            self.session = self.login(USER, PASSWORD)
        return self

    def login(self, user: str, password: str) -> str:
        """Log in through the login form; the session cookie's value."""
        return log_in(self.http, self.url, user, password)

    def auth_headers(self) -> dict[str, str]:
        """What the client sends by default: a write token, or the session cookie."""
        if self.command == "receiver":
            return {"Authorization": f"Bearer {WRITE_TOKEN}"}
        return {"Cookie": f"kubeface_session={self.session}"} if self.session else {}

    def call(self, method: str, path: str, body: bytes | str | None = None,
             headers: dict[str, str] | None = None, auth: bool = True) -> Reply:
        if isinstance(body, str):
            body = body.encode()
        headers = dict(headers or {})
        for name, value in (self.auth_headers() if auth else {}).items():
            if name == "Cookie" and headers.get("Cookie"):
                headers["Cookie"] += f"; {value}"  # the test's own cookies and the session
            else:
                headers.setdefault(name, value)
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
