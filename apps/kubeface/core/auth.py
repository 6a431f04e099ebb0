"""Credentials: the receiver API's bearer tokens, the frontend's users and their passwords, and
a limit on failed logins.

A token is compared in constant time: the presented value is hashed and its digest compared with
every configured token's digest, all of them, whatever matches; its length or its first
differing character tells an attacker nothing. A token is never logged. Passwords are argon2id
hashes (argon2-cffi's defaults); a name that is not a user is checked against a dummy hash, so
the answer takes as long as for a real user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kubeface.core.config import ConfigError, Settings

log = logging.getLogger(__name__)

REALM = "kube-face"
READ, WRITE = "read", "write"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Open to anyone: probes, scrapers and the API's description carry no names, paths or faces.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
QUERY_TOKEN_NAMES = ("access_token", "token")
MAX_PASSWORD_LENGTH = 1024  # longer is not a password but work for the hasher
# Checks of a password at once: each takes argon2's 64 MiB and a core for a moment, so a burst
# of logins cannot take a frontend past its memory limit.
CONCURRENT_PASSWORD_CHECKS = 2

_hasher = PasswordHasher()


def _digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for FRONTEND_USERS."""
    return _hasher.hash(password)


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe string (a token, a password, a session key)."""
    return secrets.token_urlsafe(nbytes)


# --- the receiver: bearer tokens ---------------------------------------------------------------


class Tokens:
    """The configured tokens as (digest, scopes); ``scopes`` answers what a header grants."""

    def __init__(self, tokens: Iterable[tuple[str, str]]) -> None:
        self._tokens = [(_digest(token), {READ, WRITE} if scope == WRITE else {READ})
                        for scope, token in tokens]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def scopes(self, presented: str) -> set[str]:
        """The scopes of ``presented``; empty when it is no configured token. Every token is
        compared, with no early exit."""
        digest = _digest(presented)
        granted: set[str] = set()
        for known, scopes in self._tokens:
            if hmac.compare_digest(digest, known):
                granted |= scopes
        return granted


def _bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when the header is absent, "" when
    it is not that form."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return ""
    return token


def _challenge(error: str = "", scope: str = "") -> str:
    parts = [f'Bearer realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return ", ".join(parts)


def _refuse(start_response: Callable[..., Any], status: str, message: str, challenge: str,
            close: bool) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    headers = [("Content-Type", "application/json; charset=utf-8"),
               ("Content-Length", str(len(body))), ("WWW-Authenticate", challenge),
               ("Cache-Control", "no-store")]
    if close:  # a body the app never read must not be taken for the next request
        headers.append(("Connection", "close"))
    start_response(status, headers)
    return [body]


def require_token(app: Callable[..., Any], tokens: Tokens) -> Callable[..., Any]:
    """``app`` behind bearer tokens: :data:`OPEN_PATHS` for anyone, reads (GET, HEAD) with a
    ``read`` or ``write`` token, everything else with a ``write`` token. Missing or wrong: 401;
    right token, wrong scope: 403 ``insufficient_scope``."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "") in OPEN_PATHS:
            return app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        needed = READ if method in SAFE_METHODS else WRITE
        close = method not in SAFE_METHODS
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if any(name.lower() in QUERY_TOKEN_NAMES for name, _ in query):
            return _refuse(start_response, "401 Unauthorized",
                           "a token in the URL is refused (URLs end up in logs and histories): "
                           "send it as the header Authorization: Bearer <token>",
                           _challenge("invalid_request"), close)
        token = _bearer(environ.get("HTTP_AUTHORIZATION"))
        if token is None:
            return _refuse(start_response, "401 Unauthorized",
                           "this API needs a token: send the header Authorization: Bearer "
                           "<token> (README: Security)", _challenge(), close)
        granted = tokens.scopes(token) if token else set()
        if not granted:
            return _refuse(start_response, "401 Unauthorized",
                           "the token is not valid: send Authorization: Bearer <token> with "
                           "a token of API_TOKENS", _challenge("invalid_token"), close)
        if needed not in granted:
            return _refuse(start_response, "403 Forbidden",
                           f"this token may only read: {method} needs a {needed} token",
                           _challenge("insufficient_scope", needed), close)
        return app(environ, start_response)

    return wsgi


def api_guard(settings: Settings) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """What wraps the receiver's app: :func:`require_token` with API_TOKENS; nothing when
    API_AUTH=off, said once in the log. No tokens and no API_AUTH=off is a ConfigError: the
    API is never open by accident."""
    if not settings.api_auth:
        log.warning("API_AUTH=off: the receiver API answers anyone who can reach it, without "
                    "a token")
        return lambda app: app
    if not settings.api_tokens:
        raise ConfigError("API_TOKENS is not set: expected comma-separated scope:token "
                          "entries (or API_AUTH=off to serve the API without tokens)")
    tokens = Tokens(settings.api_tokens)
    return lambda app: require_token(app, tokens)


# --- the frontend: users and passwords -----------------------------------------------------


class Users:
    """FRONTEND_USERS: names and argon2 hashes."""

    def __init__(self, users: Iterable[tuple[str, str]]) -> None:
        self._users = dict(users)
        self._dummy: str | None = None
        self._checks = threading.BoundedSemaphore(CONCURRENT_PASSWORD_CHECKS)

    def __bool__(self) -> bool:
        return bool(self._users)

    def fingerprint(self, name: str) -> str | None:
        """A short digest of the user's hash, kept in the session: a new password (or the
        user's removal) ends the sessions made with the old one."""
        hashed = self._users.get(name)
        return None if hashed is None else _digest(hashed).hex()[:16]

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s; an unknown name costs one hash all the same."""
        hashed = self._users.get(name)
        if hashed is None:
            if self._dummy is None:
                self._dummy = _hasher.hash(new_secret())
            hashed = self._dummy
        try:
            with self._checks:
                ok = _hasher.verify(hashed, password[:MAX_PASSWORD_LENGTH])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        return ok and name in self._users


class FailureLimit:
    """At most ``limit`` failures per key (a client address, a user name) within ``window``
    seconds; :meth:`wait` says how long a key must wait. Keys are kept in memory, at most
    ``max_keys`` (the oldest are forgotten first)."""

    def __init__(self, limit: int, window: float, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_keys, self.clock = limit, window, max_keys, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        with self._lock:
            now = self.clock()
            failures = self._recent(key, now)
            if len(failures) < self.limit:
                return 0.0
            return failures[-self.limit] + self.window - now

    def failed(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            failures = self._recent(key, now)
            failures.append(now)
            self._failures[key] = failures
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def frontend_guard(settings: Settings) -> Users | None:
    """The frontend's users; None when FRONTEND_AUTH=off, said once in the log. No users or no
    session key, and no FRONTEND_AUTH=off, is a ConfigError."""
    if not settings.frontend_auth:
        log.warning("FRONTEND_AUTH=off: the frontend shows faces and names to anyone who can "
                    "reach it, without a login")
        return None
    if not settings.frontend_users:
        raise ConfigError("FRONTEND_USERS is not set: expected name:argon2-hash entries "
                          "(kubeface hash-password), or FRONTEND_AUTH=off to serve the frontend "
                          "without a login")
    if not settings.frontend_session_key:
        raise ConfigError("FRONTEND_SESSION_KEY is not set: expected a random string of at "
                          "least 32 characters that signs the session cookies")
    return Users(settings.frontend_users)


def secrets_of(settings: Settings) -> list[str]:
    """Every credential in ``settings``, for the log's redaction."""
    found = [token for _, token in settings.api_tokens or ()]
    found += [hashed for _, hashed in settings.frontend_users or ()]
    if settings.frontend_session_key:
        found.append(settings.frontend_session_key)
    if settings.mysql_userpassword:
        found.append(settings.mysql_userpassword[1])
    return [s for s in found if s]
