"""The frontend against hostile clients and files, through the real process and MariaDB."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubeface.core import web
from tests.support import tls
from tests.support.hostile import answered_within, slow_clients
from tests.support.procs import ROOT, free_port, wait_for
from tests.support.rows import add_image
from tests.support.web import WebService
from tests.support.web_fixtures import served_over


@pytest.fixture(params=["http", "https"])
def any_frontend(request, service_env, db, tmp_path) -> Iterator[WebService]:
    """The frontend over plain HTTP, and over HTTPS with a certificate from a test CA."""
    service = served_over(request.param, "frontend", service_env, tmp_path)
    yield service.start()
    service.stop()


def test_a_fifo_in_the_image_root_blocks_no_thread(frontend, db, image_dirs):
    _, unknown = image_dirs
    os.mkfifo(unknown / "pipe.jpg")  # opened for reading, it would wait for a writer for ever
    image_id = add_image(db, "pipe.jpg", "failed", error="not an image")
    pages = [f"/images/{image_id}", f"/images/{image_id}/picture"] * 10  # > 8 threads

    def get(path: str) -> tuple[int, bytes]:
        reply = answered_within(frontend.url + path, 5.0, headers=frontend.auth_headers())
        return reply.status, reply.data

    with ThreadPoolExecutor(len(pages)) as pool:
        answers = list(pool.map(get, pages))
    for path, (status, data) in zip(pages, answers, strict=True):
        assert status == (404 if path.endswith("/picture") else 200), (path, status)
        assert b"not a regular file" in data, data[:300]
    assert answered_within(frontend.url + "/healthz", 1.0).status == 200


def test_slow_clients_hold_no_worker_and_are_cut_off(any_frontend, db):
    # 200 connections trickle a byte every 2 s; the frontend has 8 worker threads. Over TLS a
    # third never finish their handshake, whose every step is read by the one thread that
    # accepts.
    frontend, ca = any_frontend, any_frontend.ca_file
    context = tls.client_context(ca) if ca else None
    add_image(db, "a.jpg", "pending")
    with slow_clients(frontend.port, 200, tls=context) as slow:
        for _ in range(3):
            assert answered_within(frontend.url + "/healthz", 1.0, ca_file=ca).status == 200
            page = answered_within(frontend.url + "/", 1.0, headers=frontend.auth_headers(),
                                   ca_file=ca)
            assert page.status == 200 and b"a.jpg" in page.data
        assert slow.still_open() > 150  # they were really held while the others got in
        wait_for(lambda: slow.still_open() == 0, "slow clients cut off", 25)
    assert answered_within(frontend.url + "/healthz", 1.0, ca_file=ca).status == 200


SERVE_BLOCKING = """
import sys
from kubeface.core import web
fifo = sys.argv[2]
def app(environ, start_response):
    open(fifo, "rb")  # waits for a writer that never comes
sys.exit(web.serve(app, "127.0.0.1", int(sys.argv[1]), "stuck", threads=2, stuck_seconds=1))
"""


def test_a_server_whose_threads_are_all_stuck_exits_to_be_restarted(tmp_path):
    # What a supervisor (supervisord's autorestart, the kubelet) needs to notice: the process
    # ends. One stuck thread of two is not enough.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE_BLOCKING, str(port), str(fifo)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        clients[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3)
        assert proc.poll() is None  # one thread stuck, one free: alive
        clients[1].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert proc.wait(30) == web.STUCK_EXIT_CODE
        assert b"all 2 worker threads" in proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(up, "server up", 30, proc)
