"""The receiver's bearer tokens, through the real service: every route class without a token,
with a read token and with a write token; the ways around the comparison that must not work;
the open routes; a receiver with no tokens that refuses to start; tokens kept out of the log."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kubeface.core import auth
from tests.support.procs import ROOT
from tests.support.web import READ_TOKEN, WRITE_TOKEN, WebService

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# (method, path, body): every route of the API that reads, then every one that changes.
READS = [("GET", "/images", None), ("GET", "/images/1", None),
         ("GET", "/images?status=failed", None), ("GET", "/people", None),
         ("GET", "/people/1", None), ("HEAD", "/images", None)]
WRITES = [("POST", "/image/post", '{"path": "a.jpg"}'),
          ("POST", "/images/post", '{"paths": [{"path": "b.jpg"}]}'),
          ("POST", "/people", '{"name": "Mallory"}'),
          ("PATCH", "/people/1", '{"name": "Eve"}'),
          ("DELETE", "/people/1", None),
          ("POST", "/people/1/photos", "x"),
          ("DELETE", "/people/1/photos/1", None),
          ("POST", "/images/upload", "x"),
          ("DELETE", "/images/1", None),
          ("PUT", "/images/1/faces/0/person", '{"person_id": 1}'),
          ("DELETE", "/images/1/faces/0/person", None)]
OPEN = ["/healthz", "/readyz", "/metrics", "/openapi.json"]


def _bearer(token: str) -> dict[str, str]:
    return {**FORM, "Authorization": f"Bearer {token}"}


def _stored(db) -> tuple[int, int]:
    return (len(db.query("SELECT id FROM images")), len(db.query("SELECT id FROM person")))


def test_every_route_class_needs_its_token(receiver, db, nsq):
    for method, path, body in READS + WRITES:
        bare = receiver.call(method, path, body, FORM, auth=False)
        assert bare.status == 401, (method, path, bare.status, bare.text[:200])
        assert bare.headers["WWW-Authenticate"] == 'Bearer realm="kube-face"'
        if method != "HEAD":
            assert "Authorization: Bearer" in bare.json()["error"]
    for method, path, body in READS:
        reply = receiver.call(method, path, body, _bearer(READ_TOKEN), auth=False)
        assert reply.status in (200, 404), (method, path, reply.status, reply.text[:200])
    for method, path, body in WRITES:
        reply = receiver.call(method, path, body, _bearer(READ_TOKEN), auth=False)
        assert reply.status == 403, (method, path, reply.status, reply.text[:200])
        assert reply.headers["WWW-Authenticate"] == (
            'Bearer realm="kube-face", error="insufficient_scope", scope="write"')
        assert reply.headers["Connection"] == "close"  # the unread body ends the connection
    assert _stored(db) == (0, 0)
    # The write token may read and write (the answers are the routes' own: 2xx, 400, 404).
    for method, path, body in READS + WRITES:
        reply = receiver.call(method, path, body, _bearer(WRITE_TOKEN), auth=False)
        assert reply.status not in (401, 403), (method, path, reply.status, reply.text[:200])
    assert "b.jpg" in [r.path for r in db.query("SELECT path FROM images")]


def test_open_routes_need_no_token_and_show_no_names(receiver, db):
    receiver.post_json("/image/post", {"path": "Secret Person.jpg"})
    for path in OPEN:
        reply = receiver.call("GET", path, auth=False)
        assert reply.status == 200, (path, reply.status)
        assert "Secret Person" not in reply.text, path
    document = receiver.call("GET", "/openapi.json", auth=False).json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"], "type": "http",
        "scheme": "bearer"}
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in document["paths"]["/images"]["get"]["responses"]
    assert "403" in document["paths"]["/image/post"]["post"]["responses"]


def test_the_comparison_cannot_be_got_round(receiver, db):
    near = WRITE_TOKEN[:-1] + ("A" if WRITE_TOKEN[-1] != "A" else "B")  # one character off
    refused = {
        "a wrong token of the same length": f"Bearer {near}",
        "the token's first half": f"Bearer {WRITE_TOKEN[: len(WRITE_TOKEN) // 2]}",
        "the token and more": f"Bearer {WRITE_TOKEN}x",
        "an empty token": "Bearer ",
        "the scheme alone": "Bearer",
        "two tokens": f"Bearer {WRITE_TOKEN} {WRITE_TOKEN}",
        "another scheme": f"Basic {WRITE_TOKEN}",
        "no scheme": WRITE_TOKEN,
        "the scope as the token": "Bearer write",
        "the config entry": f"Bearer write:{WRITE_TOKEN}",
        "a NUL": f"Bearer {WRITE_TOKEN}\x00",
    }
    for why, header in refused.items():
        try:
            reply = receiver.call("POST", "/image/post", '{"path": "x.jpg"}',
                                  {**FORM, "Authorization": header}, auth=False)
        except ValueError:  # the client will not send the header at all: refused too
            continue
        assert reply.status in (400, 401), (why, reply.status, reply.text[:200])
        assert "x.jpg" not in reply.text
    # A token in the URL is refused even when it is right, with or without the header.
    for name in ("access_token", "token", "ACCESS_TOKEN"):
        reply = receiver.call("GET", f"/images?{name}={WRITE_TOKEN}", auth=False)
        assert reply.status == 401 and "URL" in reply.json()["error"], name
        assert 'error="invalid_request"' in reply.headers["WWW-Authenticate"]
        with_header = receiver.call("GET", f"/images?{name}={WRITE_TOKEN}")
        assert with_header.status == 401, name
    # The scheme's name is case-insensitive (RFC 7235); the token is not.
    assert receiver.call("GET", "/images", headers={"Authorization": f"bearer {READ_TOKEN}"},
                         auth=False).status == 200
    assert receiver.call("GET", "/images",
                         headers={"Authorization": f"Bearer {READ_TOKEN.swapcase()}"},
                         auth=False).status == 401
    assert _stored(db) == (0, 0)


def test_tokens_compare_by_digest_every_one_and_write_implies_read():
    tokens = auth.Tokens([("read", "r" * 20), ("write", "w" * 20), ("read", "w" * 20)])
    assert tokens.scopes("r" * 20) == {"read"}
    assert tokens.scopes("w" * 20) == {"read", "write"}  # every entry was looked at
    assert tokens.scopes("r" * 19) == set() and tokens.scopes("") == set()


def test_no_tokens_no_receiver_unless_api_auth_is_off(service_env, db, nsq, tmp_path):
    env = {**service_env, "API_TOKENS": "", "KUBEFACE_ENV_FILE": "/nonexistent",
           "RECEIVER_PORT": "1"}
    result = subprocess.run([sys.executable, "-m", "kubeface", "receiver"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert "API_TOKENS is not set" in result.stderr and "API_AUTH=off" in result.stderr
    for bad in ("write:short", "admin:" + "x" * 20, "write:" + "x" * 20 + " y"):
        result = subprocess.run([sys.executable, "-m", "kubeface", "receiver"],
                                env={**env, "API_TOKENS": bad}, cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 2 and "API_TOKENS is malformed" in result.stderr
        assert bad not in result.stderr  # a secret's value is never shown

    open_receiver = WebService("receiver", {**service_env, "API_TOKENS": "", "API_AUTH": "off"},
                               tmp_path / "open.log").start()
    try:
        assert open_receiver.post_json("/image/post", {"path": "open.jpg"}).status == 202
        assert open_receiver.call("GET", "/images", auth=False).status == 200
    finally:
        open_receiver.stop()
    warnings = [line for line in (tmp_path / "open.log").read_text().splitlines()
                if "API_AUTH=off" in line]
    assert len(warnings) == 1, warnings


def test_tokens_are_never_logged(service_env, db, nsq, tmp_path):
    receiver = WebService("receiver", {**service_env, "LOG_LEVEL": "DEBUG"},
                          tmp_path / "receiver.log").start()
    try:
        for token in (WRITE_TOKEN, READ_TOKEN, "not-a-token-but-long-enough"):
            receiver.call("POST", "/image/post", json.dumps({"path": token}),
                          _bearer(token), auth=False)
            receiver.call("GET", f"/images?access_token={token}", auth=False)
    finally:
        receiver.stop()
    log = (tmp_path / "receiver.log").read_text()
    assert WRITE_TOKEN not in log and READ_TOKEN not in log


@pytest.mark.parametrize("header", ["Authorization", "authorization"])
def test_a_token_header_in_any_case_is_read(receiver, header):
    assert receiver.call("GET", "/images", headers={header: f"Bearer {READ_TOKEN}"},
                         auth=False).status == 200
