"""CSRF tokens for every form of the frontend that posts (login, logout, the people forms).

Each form carries a token that must equal the ``kubeface_csrf`` cookie (SameSite=Strict,
HttpOnly): a page of another site can neither read the cookie nor make the browser send it, so
it cannot forge a post. No server state is needed, so any frontend replica accepts the form.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any

import bottle

from kubeface.core import web

CSRF_COOKIE = "kubeface_csrf"
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 86400 * 30
_NEW = "kubeface.csrf"  # environ key: a token minted by this request, for its cookie


def over_tls() -> bool:
    """Whether this request came over HTTPS: its cookies are then marked Secure. The request's
    own scheme decides, never a header the client sets."""
    return bottle.request.environ.get("wsgi.url_scheme") == "https"


def csrf_token() -> str:
    """This browser's token: its cookie, or a new one set by :func:`csrf_cookie_plugin`."""
    token = bottle.request.get_cookie(CSRF_COOKIE) or ""
    if len(token) < 20:
        token = bottle.request.environ.setdefault(_NEW, secrets.token_urlsafe(24))
    return token


def check_csrf() -> None:
    """:class:`web.HttpError` 403 unless the posted token equals the cookie."""
    cookie = bottle.request.get_cookie(CSRF_COOKIE) or ""
    try:
        sent = bottle.request.forms.get(CSRF_FIELD) or ""
    except bottle.HTTPError:  # a malformed body
        sent = ""
    if len(cookie) < 20 or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise web.HttpError(403, "This form has expired or did not come from this site: "
                                 "go back, reload the page and send it again.")


def csrf_cookie_plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Every page that showed a form with a new token sets the cookie that goes with it (a
    plugin, not a hook: a returned response replaces what a hook sets)."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = callback(*args, **kwargs)
        token = bottle.request.environ.get(_NEW)
        if token and isinstance(out, bottle.HTTPResponse):
            out.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="strict",
                           secure=over_tls(), max_age=CSRF_MAX_AGE)
        return out
    return wrapper


def csrf_check_plugin(error_page: Callable[[web.HttpError], bottle.HTTPResponse]
                      ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every POST route refuses a post whose token does not match, before its handler runs."""
    def plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if bottle.request.method == "POST":
                try:
                    check_csrf()
                except web.HttpError as exc:
                    return error_page(exc)
            return callback(*args, **kwargs)
        return wrapper
    return plugin
