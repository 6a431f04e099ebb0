"""The receiver against hostile clients, through the real process, MariaDB and nsqd."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubeface.core.messages import TOPIC
from tests.support import tls
from tests.support.hostile import answered_within, slow_clients
from tests.support.procs import wait_for
from tests.support.web import AUTH, WebService
from tests.support.web_fixtures import served_over

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(params=["http", "https"])
def any_receiver(request, service_env, db, tmp_path) -> Iterator[WebService]:
    """The receiver over plain HTTP, and over HTTPS with a certificate from a test CA."""
    service = served_over(request.param, "receiver", service_env, tmp_path)
    yield service.start()
    service.stop()


def test_slow_clients_hold_no_worker_and_are_cut_off(any_receiver, db):
    # 200 connections trickle a byte every 2 s (the receiver has 16 worker threads): half
    # never finish their headers, half never finish their body. Over TLS a third never
    # finish their handshake, whose every step is read by the one thread that accepts.
    receiver, ca = any_receiver, any_receiver.ca_file
    context = tls.client_context(ca) if ca else None
    with slow_clients(receiver.port, 200, tls=context) as slow:
        for i in range(3):
            assert answered_within(receiver.url + "/healthz", 1.0, ca_file=ca).status == 200
            reply = answered_within(receiver.url + "/image/post", 1.0, "POST",
                                    json.dumps({"path": f"fast{i}.jpg"}).encode(),
                                    {**FORM, **receiver.auth_headers()}, ca_file=ca)
            assert reply.status == 202, reply.data
        assert slow.still_open() > 150  # they were really held while the others got in
        # Each had the read timeout (10 s) from its first byte, then was let go.
        wait_for(lambda: slow.still_open() == 0, "slow clients cut off", 25)
    paths = [r.path for r in db.query("SELECT path FROM images ORDER BY id")]
    assert paths == ["fast0.jpg", "fast1.jpg", "fast2.jpg"]
    assert answered_within(receiver.url + "/healthz", 1.0, ca_file=ca).status == 200


def test_as_many_posts_as_threads_wait_for_the_database_and_none_is_refused(
        service_env, db, nsq, mariadb, tmp_path):
    # The pools are sized from the 16 worker threads, whatever DB_POOL_SIZE says: 16 posts
    # stuck behind a real table lock all wait for it and are stored, none is told "busy".
    service = WebService("receiver", {**service_env, "DB_POOL_SIZE": "1"},
                         tmp_path / "receiver.log").start()
    locker = mariadb.root(service_env["MYSQL_DBNAME"])
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES images WRITE")
        with ThreadPoolExecutor(16) as pool:
            replies = pool.map(lambda k: service.post_json("/image/post", {"path": f"{k}.jpg"}),
                               range(16))
            # Longer than the pool's 5 s wait for a connection.
            time.sleep(7)
            with locker.cursor() as cur:
                cur.execute("UNLOCK TABLES")
            statuses = sorted(r.status for r in replies)
    finally:
        locker.close()
        service.stop()
    assert statuses == [202] * 16
    assert len(db.query("SELECT id FROM images")) == 16 and nsq.topic_depth(TOPIC) == 16
    assert "Connection pool is full" not in service.log.read_text()


def test_a_burst_of_new_connections_is_accepted_and_none_is_reset(receiver, db):
    # 256 clients connect at once and each posts once: the listen queue holds them all (a
    # queue of 5 overflowed here, and the kernel reset connections whose request was lost).
    def post(k: int) -> int | str:
        try:
            with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as conn:
                started.wait()
                body = json.dumps({"path": f"burst{k}.jpg"}).encode()
                conn.sendall(b"POST /image/post HTTP/1.1\r\nHost: x\r\n" + AUTH
                             + b"Connection: close\r\n"
                             + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
                return int(answer.split(b" ", 2)[1])
        except OSError as exc:
            return type(exc).__name__

    started = threading.Event()
    with ThreadPoolExecutor(256) as pool:
        replies = [pool.submit(post, k) for k in range(256)]
        time.sleep(1)
        started.set()
        outcomes = Counter(r.result() for r in replies)
    assert outcomes == {202: 256}, outcomes
    assert len(db.query("SELECT id FROM images")) == 256
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{receiver.port}"], check=True,
                               capture_output=True, text=True).stdout.split()
    assert int(listening[2]) >= 256, listening  # Send-Q of a listening socket: its backlog


def _exchange(port: int, pieces: list[bytes], pause: float = 0.2) -> bytes:
    """Send ``pieces`` with a pause between them; everything the receiver answers until it
    closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(pause)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_requests_in_pieces_pipelined_chunked_or_expecting_100_are_all_answered(receiver, db):
    def post(path: str, close: bool = False) -> bytes:
        body = json.dumps({"path": path}).encode()
        return (b"POST /image/post HTTP/1.1\r\nHost: x\r\n" + AUTH
                + (b"Connection: close\r\n" if close else b"")
                + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    one = post("pieces.jpg", close=True)
    assert _exchange(receiver.port, [one[:7], one[7:30], one[30:-3], one[-3:]]).startswith(
        b"HTTP/1.1 202")
    # Three requests in one write, then the rest of a fourth: four answers, in order.
    four = post("p1.jpg") + post("p2.jpg") + post("p3.jpg") + post("p4.jpg", close=True)
    answers = _exchange(receiver.port, [four[:-10], four[-10:]])
    assert answers.count(b"HTTP/1.1 202") == 4, answers
    chunked = (b"POST /image/post HTTP/1.1\r\nHost: x\r\n" + AUTH
               + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    body = json.dumps({"path": "chunked.jpg"}).encode()
    answer = _exchange(receiver.port, [chunked, b"%x\r\n%s\r\n" % (5, body[:5]),
                                       b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - 5, body[5:])])
    assert answer.startswith(b"HTTP/1.1 202"), answer
    # A client that waits for "100 Continue" before it sends its body gets it, once.
    body = json.dumps({"path": "continue.jpg"}).encode()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=15) as conn:
        conn.sendall(b"POST /image/post HTTP/1.1\r\nHost: x\r\n" + AUTH
                     + b"Expect: 100-continue\r\nConnection: close\r\n"
                     + b"Content-Length: %d\r\n\r\n" % len(body))
        assert conn.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 202") and b"100 Continue" not in answer, answer
    # A head larger than allowed is refused, not waited for.
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert _exchange(receiver.port, [huge]).startswith(b"HTTP/1.1 413")
    stored = {r.path for r in db.query("SELECT path FROM images")}
    assert stored == {"pieces.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "p4.jpg", "chunked.jpg",
                      "continue.jpg"}


def test_a_database_restart_between_posts_fails_no_post(receiver, db, mariadb):
    # A restart can take less than 0.2 s: the pool must notice the closed sockets itself (a
    # ping only after idling would miss them), so the first post after it finds a live
    # connection.
    for k in range(20):
        assert receiver.post_json("/image/post", {"path": f"before{k}.jpg"}).status == 202
    mariadb.stop()
    mariadb.start()
    replies = [receiver.post_json("/image/post", {"path": f"after{k}.jpg"}) for k in range(20)]
    assert [r.status for r in replies] == [202] * 20, replies[0].text
    assert len(db.query("SELECT id FROM images")) == 40
