"""The frontend's login: a login page, sessions in a signed cookie, logout, and a limit on failed
logins.

Every route but the login and logout pages, ``/healthz`` and ``/readyz`` needs a session
(``/metrics`` is answered before the app). The session cookie holds the user's name and a
fingerprint of their password hash, signed with FRONTEND_SESSION_KEY (itsdangerous) and dated:
it is HttpOnly, SameSite=Strict, Secure over HTTPS, and ends after FRONTEND_SESSION_HOURS, when
the user logs out, when their password changes or when the key changes. No server state: any
replica accepts it. Failed logins are counted per client address and per user name, in this
process's memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import bottle
from itsdangerous import BadSignature, URLSafeTimedSerializer

from kubeface.core import web
from kubeface.core.auth import FailureLimit, Users
from kubeface.core.config import Settings
from kubeface.frontend.forms import csrf_token, over_tls

log = logging.getLogger(__name__)

SESSION_COOKIE = "kubeface_session"
USER_KEY = "kubeface.user"  # environ key: the logged-in user's name
OPEN_RULES = frozenset({"/login", "/logout", "/healthz", "/readyz"})
FAILURE_WINDOW = 15 * 60
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
MAX_COOKIE = 4096

Render = Callable[..., bottle.HTTPResponse]


def current_user() -> str | None:
    """The name of this request's logged-in user, set by :class:`Login`'s plugin."""
    return bottle.request.environ.get(USER_KEY)


def safe_next(raw: str | None) -> str:
    """Where to go after the login: a path of this site only, never another host."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(ord(c) < 0x21 for c in raw):
        return "/"
    return raw


class Login:
    """The login and logout pages, and the plugin that asks every other route for a session."""

    name = "kubeface-login"
    api = 2

    def __init__(self, settings: Settings, users: Users, render: Render,
                 error_page: Callable[[web.HttpError], bottle.HTTPResponse]) -> None:
        self.users, self.render, self.error_page = users, render, error_page
        assert settings.frontend_session_key
        self.signer = URLSafeTimedSerializer(settings.frontend_session_key,
                                             salt="kubeface.session")
        self.max_age = settings.frontend_session_hours * 3600
        self.by_user = FailureLimit(FAILURES_PER_USER, FAILURE_WINDOW)
        self.by_address = FailureLimit(FAILURES_PER_ADDRESS, FAILURE_WINDOW)

    def register(self, app: bottle.Bottle) -> None:
        app.route("/login", "GET", self.login_page)
        app.route("/login", "POST", self.login)
        app.route("/logout", "GET", self.logout_page)
        app.route("/logout", "POST", self.logout)
        app.install(self)

    # -- the plugin: every route but the open ones needs a session ----------------------------

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        if route.rule in OPEN_RULES:
            def open_route(*args: Any, **kwargs: Any) -> Any:
                bottle.request.environ[USER_KEY] = self._session_user()
                return callback(*args, **kwargs)
            return open_route

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = self._session_user()
            if user is None:
                return self._refuse()
            bottle.request.environ[USER_KEY] = user
            return callback(*args, **kwargs)
        return wrapper

    def _session_user(self) -> str | None:
        raw = bottle.request.get_cookie(SESSION_COOKIE)
        if not raw or len(raw) > MAX_COOKIE:
            return None
        try:
            data = self.signer.loads(raw, max_age=self.max_age)
        except BadSignature:  # forged, changed, signed with another key, or expired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            return None
        name = data["u"]
        fingerprint = self.users.fingerprint(name)
        return name if fingerprint is not None and data.get("f") == fingerprint else None

    def _refuse(self) -> bottle.HTTPResponse:
        """A page asked for in a browser goes to the login page and comes back after it; a
        picture, a post or a client that does not ask for HTML gets 401."""
        request = bottle.request
        if (request.method in {"GET", "HEAD"}
                and "text/html" in request.headers.get("Accept", "")):
            back = request.path + (f"?{request.query_string}" if request.query_string else "")
            location = "/login" if back == "/" else f"/login?next={quote(back, safe='')}"
            return bottle.HTTPResponse(status=303, headers={"Location": location,
                                                            "Cache-Control": "no-store"})
        return self.error_page(web.HttpError(401, "Log in first, at /login."))

    # -- the pages ----------------------------------------------------------------------------

    def _form(self, status: int = 200, error: str | None = None, name: str = "",
              next_path: str = "/") -> bottle.HTTPResponse:
        response = self.render("login", status, csrf=csrf_token(), error=error, name=name,
                               next=next_path, login_page=True)
        response.set_header("Cache-Control", "no-store")
        return response

    def login_page(self) -> bottle.HTTPResponse:
        next_path = safe_next(bottle.request.query.getunicode("next"))
        if current_user() is not None:
            return bottle.HTTPResponse(status=303, headers={"Location": next_path})
        return self._form(next_path=next_path)

    def login(self) -> bottle.HTTPResponse:
        forms = bottle.request.forms
        name = (forms.getunicode("name") or "").strip()[:64]
        password = forms.getunicode("password") or ""
        next_path = safe_next(forms.getunicode("next"))
        address = bottle.request.environ.get("REMOTE_ADDR") or "unknown"
        wait = max(self.by_address.wait(address), self.by_user.wait(name.lower()))
        if wait > 0:
            seconds = math.ceil(wait)
            response = self._form(429, f"Too many failed logins: try again in {seconds} "
                                       "seconds.", name, next_path)
            response.set_header("Retry-After", str(seconds))
            return response
        if not name or not self.users.verify(name, password):
            self.by_address.failed(address)
            self.by_user.failed(name.lower())
            log.warning("failed login from %s", address)  # never the name: it may be a password
            return self._form(401, "Wrong name or password.", name, next_path)
        self.by_user.forget(name.lower())
        log.info("%s logged in from %s", name, address)
        response = bottle.HTTPResponse(status=303, headers={"Location": next_path,
                                                            "Cache-Control": "no-store"})
        session = self.signer.dumps({"u": name, "f": self.users.fingerprint(name)})
        response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True,
                            samesite="strict", secure=over_tls(), max_age=self.max_age)
        return response

    def logout_page(self) -> bottle.HTTPResponse:
        user = current_user()
        if user is None:
            return bottle.HTTPResponse(status=303, headers={"Location": "/login"})
        return self.render("logout", csrf=csrf_token())

    def logout(self) -> bottle.HTTPResponse:
        response = bottle.HTTPResponse(status=303, headers={"Location": "/login",
                                                            "Cache-Control": "no-store"})
        response.set_cookie(SESSION_COOKIE, "", path="/", httponly=True, samesite="strict",
                            secure=over_tls(), max_age=0)
        return response
