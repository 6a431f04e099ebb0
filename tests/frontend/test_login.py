"""The frontend's login, through the real service (and Chromium): pages, pictures and forms
refused without a session; the login form, its cookie's flags, wrong passwords, the limit on
failed logins, CSRF on login and logout, sessions that are forged, expired or outlived their
password; a frontend with no users that refuses to start."""

from __future__ import annotations

import subprocess
import sys
import time
from unittest import mock
from urllib.parse import urlencode

from itsdangerous import URLSafeTimedSerializer
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from kubeface.core import auth
from tests.support import tls
from tests.support.procs import ROOT
from tests.support.rows import add_image
from tests.support.web import PASSWORD, SESSION_KEY, USER, WebService, cookie_of
from tests.support.web_fixtures import log_in

HTML = {"Accept": "text/html,application/xhtml+xml"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _login_form(frontend: WebService, name: str, password: str, next_path: str = "/",
                address_headers: dict[str, str] | None = None):
    page = frontend.call("GET", "/login", auth=False)
    csrf = cookie_of(page.headers, "kubeface_csrf")
    body = urlencode({"name": name, "password": password, "csrf": csrf, "next": next_path})
    return frontend.call("POST", "/login", body, {**FORM, "Cookie": f"kubeface_csrf={csrf}",
                                                  **(address_headers or {})}, auth=False)


def test_nothing_is_shown_without_a_session(frontend, db, image_dirs):
    _, unknown = image_dirs
    Image.new("RGB", (64, 48), (200, 30, 30)).save(unknown / "face.jpg")
    image_id = add_image(db, "face.jpg", "processed", "Secret Person",
                         faces=[(1, 40, 40, 1, "Secret Person")])
    # A page asked for by a browser: to the login form, and back afterwards.
    for page in ("/", f"/images/{image_id}", "/people", "/upload", "/dashboard",
                 "/people?q=Secret"):
        reply = frontend.call("GET", page, headers=HTML, auth=False)
        assert reply.status == 303, (page, reply.status)
        assert reply.headers["Location"].startswith("/login"), page
        assert "Secret" not in reply.text
    # Pictures, thumbnails and clients that do not ask for HTML: 401, no picture.
    for path in (f"/images/{image_id}/picture", f"/images/{image_id}/thumb", "/photos/1/thumb",
                 "/", f"/images/{image_id}"):
        reply = frontend.call("GET", path, auth=False)
        assert reply.status == 401, (path, reply.status)
        assert reply.headers["Content-Type"].startswith("text/html")
        assert b"Secret" not in reply.data and b"JFIF" not in reply.data
    # A post (with a valid CSRF pair, even): refused, nothing created.
    token = "t" * 32
    reply = frontend.call("POST", "/people", f"name=Mallory&csrf={token}",
                          {**FORM, "Cookie": f"kubeface_csrf={token}"}, auth=False)
    assert reply.status == 401
    assert db.query("SELECT id FROM person WHERE name = 'Mallory'") == []
    # Open: probes, the scrape, the login page.
    for path in ("/healthz", "/readyz", "/metrics", "/login"):
        reply = frontend.call("GET", path, auth=False)
        assert reply.status == 200, path
        assert "Secret" not in reply.text and "face.jpg" not in reply.text, path
    # With the session: the picture itself.
    picture = frontend.call("GET", f"/images/{image_id}/picture")
    assert picture.status == 200 and picture.headers["Content-Type"] == "image/jpeg"


def test_login_sets_a_strict_cookie_and_goes_back(frontend, db):
    reply = _login_form(frontend, USER, PASSWORD, "/people?q=a")
    assert reply.status == 303 and reply.headers["Location"] == "/people?q=a"
    (cookie,) = [c for c in reply.headers.getlist("Set-Cookie")
                 if c.startswith("kubeface_session=")]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "path"} <= flags, cookie
    assert "samesite=strict" in cookie.lower() and "max-age=43200" in cookie.lower()
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    session = cookie_of(reply.headers, "kubeface_session")
    page = frontend.call("GET", "/", headers={"Cookie": f"kubeface_session={session}"},
                         auth=False)
    assert page.status == 200 and f"Log out {USER}" in page.text
    # Only a path of this site is a place to go back to.
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        reply = _login_form(frontend, USER, PASSWORD, elsewhere)
        assert reply.headers["Location"] == "/", elsewhere


def test_wrong_passwords_and_unknown_names_are_refused_alike(frontend, db):
    for name, password in ((USER, PASSWORD + "x"), ("nobody", PASSWORD), (USER, ""),
                           ("", PASSWORD)):
        reply = _login_form(frontend, name, password)
        assert reply.status in (400, 401), (name, reply.status)
        assert cookie_of(reply.headers, "kubeface_session") is None
        if reply.status == 401:
            assert "Wrong name or password" in reply.text
    log = frontend.log.read_text()
    assert "failed login from 127.0.0.1" in log
    assert PASSWORD not in log and "nobody" not in log  # the name typed may be a password


def test_failed_logins_are_limited_per_name_and_per_address(frontend, db):
    for _ in range(5):
        assert _login_form(frontend, USER, "wrong password").status == 401
    limited = _login_form(frontend, USER, PASSWORD)  # the right one, now too late
    assert limited.status == 429, limited.status
    assert 0 < int(limited.headers["Retry-After"]) <= 15 * 60
    assert cookie_of(limited.headers, "kubeface_session") is None
    # Per address: 20 failures, whatever the names, close the door for every name.
    for i in range(15):
        assert _login_form(frontend, f"guess{i}", "wrong password").status == 401
    assert _login_form(frontend, "another", "wrong password").status == 429
    # The limit is the process's: a restarted frontend takes the right password again.
    frontend.stop()
    frontend.start()
    assert _login_form(frontend, USER, PASSWORD).status == 303


def test_login_and_logout_forms_need_their_csrf_token(frontend, db):
    body = urlencode({"name": USER, "password": PASSWORD})
    for cookie in ("", "kubeface_csrf=" + "c" * 32):
        for extra in ("", "&csrf=" + "d" * 32):
            reply = frontend.call("POST", "/login", body + extra, {**FORM, "Cookie": cookie},
                                  auth=False)
            assert reply.status == 403, (cookie, extra, reply.status)
            assert cookie_of(reply.headers, "kubeface_session") is None
    reply = frontend.call("POST", "/logout", "", FORM)  # logged in, but no token
    assert reply.status == 403
    assert frontend.call("GET", "/").status == 200  # still logged in
    # With the token: the cookie is deleted.
    page = frontend.call("GET", "/logout", headers=HTML)
    csrf = cookie_of(page.headers, "kubeface_csrf")
    assert page.status == 200 and csrf and 'action="/logout"' in page.text
    reply = frontend.call("POST", "/logout", f"csrf={csrf}",
                          {**FORM, "Cookie": f"kubeface_csrf={csrf}"})
    assert reply.status == 303 and reply.headers["Location"] == "/login"
    cleared = [c for c in reply.headers.getlist("Set-Cookie")
               if c.startswith("kubeface_session=")]
    assert cleared and "max-age=0" in cleared[0].lower()


def _session(key: str, payload: dict, age: float = 0) -> str:
    signer = URLSafeTimedSerializer(key, salt="kubeface.session")
    with mock.patch("time.time", return_value=time.time() - age):
        return signer.dumps(payload)


def test_forged_expired_and_outdated_sessions_are_refused(service_env, db, tmp_path):
    hashed = auth.hash_password(PASSWORD)
    fingerprint = auth.Users([(USER, hashed)]).fingerprint(USER)
    frontend = WebService("frontend", {**service_env, "FRONTEND_USERS": f"{USER}:{hashed}"},
                          tmp_path / "frontend.log").start()
    try:
        good = _session(SESSION_KEY, {"u": USER, "f": fingerprint})
        assert frontend.call("GET", "/", headers={"Cookie": f"kubeface_session={good}"},
                             auth=False).status == 200
        refused = {
            "another key": _session("k" * 40, {"u": USER, "f": fingerprint}),
            "a user who does not exist": _session(SESSION_KEY, {"u": "admin", "f": None}),
            "13 hours old": _session(SESSION_KEY, {"u": USER, "f": fingerprint}, 13 * 3600),
            "unsigned": good.split(".")[0],
            "a changed byte": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
            "not a mapping": _session(SESSION_KEY, [USER]),
        }
        for why, cookie in refused.items():
            reply = frontend.call("GET", "/", headers={"Cookie": f"kubeface_session={cookie}"},
                                  auth=False)
            assert reply.status == 401, why
        frontend.stop()
        # A new password for the user: the session made with the old one has ended.
        frontend.env["FRONTEND_USERS"] = f"{USER}:{auth.hash_password('another password!')}"
        frontend.start()
        assert frontend.call("GET", "/", headers={"Cookie": f"kubeface_session={good}"},
                             auth=False).status == 401
    finally:
        frontend.stop()


def test_the_cookie_is_secure_over_https(service_env, db, tmp_path):
    certs = tls.make(tmp_path / "tls")
    frontend = WebService("frontend", {**service_env, **certs.env()}, tmp_path / "fe.log",
                          ca_file=certs.ca).start()
    try:
        reply = _login_form(frontend, USER, PASSWORD)
        (cookie,) = [c for c in reply.headers.getlist("Set-Cookie")
                     if c.startswith("kubeface_session=")]
        assert "secure" in cookie.lower().replace(" ", "").split(";"), cookie
        csrf = frontend.call("GET", "/login", auth=False).headers["Set-Cookie"]
        assert "secure" in csrf.lower().replace(" ", "").split(";"), csrf
    finally:
        frontend.stop()


def test_no_users_no_frontend_unless_frontend_auth_is_off(service_env, db, tmp_path):
    base = {**service_env, "KUBEFACE_ENV_FILE": "/nonexistent", "FRONTEND_PORT": "1"}
    key = {"FRONTEND_SESSION_KEY": SESSION_KEY}
    for env, expected in (({**base, **key}, "FRONTEND_USERS is not set"),
                          ({**base, "FRONTEND_USERS": f"{USER}:$argon2id$x"},
                           "FRONTEND_SESSION_KEY is not set"),
                          ({**base, **key, "FRONTEND_USERS": f"{USER}:{PASSWORD}"},
                           "FRONTEND_USERS is malformed"),
                          ({**base, "FRONTEND_SESSION_KEY": "short",
                            "FRONTEND_USERS": f"{USER}:$argon2id$x"},
                           "FRONTEND_SESSION_KEY is malformed")):
        result = subprocess.run([sys.executable, "-m", "kubeface", "frontend"], env=env,
                                cwd=ROOT, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert PASSWORD not in result.stderr and "short" not in result.stderr
    frontend = WebService("frontend", {**service_env, "FRONTEND_USERS": "",
                                       "FRONTEND_AUTH": "off"}, tmp_path / "open.log").start()
    try:
        assert frontend.session is None
        assert frontend.call("GET", "/").status == 200
    finally:
        frontend.stop()
    assert (tmp_path / "open.log").read_text().count("FRONTEND_AUTH=off") == 1


def test_chromium_logs_in_and_out(browser, frontend, db):
    add_image(db, "a.jpg", "processed", "Barack Obama")
    browser.get(frontend.url + "/people")  # to the login form
    form = browser.find_element(By.ID, "login")
    form.find_element(By.NAME, "name").send_keys(USER)
    form.find_element(By.NAME, "password").send_keys("not the password")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # A click returns before the page it leads to has loaded: wait for what that page shows.
    error = WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "login-error")))
    assert "Wrong name or password" in error.text
    assert browser.get_cookie("kubeface_session") is None
    log_in(browser, frontend.url)
    cookie = browser.get_cookie("kubeface_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "Barack Obama" in browser.page_source
    browser.find_element(By.ID, "logout-link").click()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#logout button[type=submit]"))).click()
    WebDriverWait(browser, 10).until(expected_conditions.url_to_be(frontend.url + "/login"))
    assert browser.get_cookie("kubeface_session") is None
    browser.get(frontend.url + "/")
    assert browser.current_url.startswith(frontend.url + "/login")
    assert "Barack Obama" not in browser.page_source
