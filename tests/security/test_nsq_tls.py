"""nsqd as the local target runs it: TLS required, client certificates signed by the
deployment's CA verified. A local user without the services' certificate can neither publish,
consume nor use the admin API; the services with it work end to end. Through real nsqd,
nsqlookupd, MariaDB, face service, processor and receiver."""

from __future__ import annotations

import json
import ssl
import struct
import urllib.error
import urllib.request

import pytest

from kubeface.core import config
from kubeface.core.messages import CHANNEL, TOPIC
from kubeface.frontend import dashboard
from tests.support import tls
from tests.support.nsq import ERROR, RESPONSE, Nsq, tcp_command
from tests.support.processor import wait_final
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.parametrize("nsq", ["tls"], indirect=True)

PUB = b"PUB " + TOPIC.encode() + b"\n" + struct.pack(">l", 2) + b"42"
SUB = f"SUB {TOPIC} {CHANNEL}\n".encode()


def _other_ca_client(nsq: Nsq, tmp_path) -> ssl.SSLContext:
    """Trusts nsqd's CA but shows a client certificate from another CA."""
    other = tls.make(tmp_path / "other-ca")
    context = tls.client_context(nsq.tls.ca)
    context.load_cert_chain(str(other.client_cert), str(other.client_key))
    return context


def _https(nsq: Nsq, method: str, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    request = urllib.request.Request(f"https://127.0.0.1:{nsq.nsqd_https}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10, context=context) as reply:
        return reply.status, reply.read()


def _plain_http(nsq: Nsq, method: str, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{nsq.nsqd_http}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_tcp_without_the_certificate_neither_publishes_nor_subscribes(nsq, tmp_path):
    services = nsq.client_tls
    assert tcp_command(nsq.nsqd_tcp, PUB, services) == (RESPONSE, b"OK")  # the services can
    assert nsq.topic_depth(TOPIC) == 1
    for command in (PUB, SUB):
        kind, data = tcp_command(nsq.nsqd_tcp, command)  # no TLS at all
        assert kind == ERROR and b"TLS required" in data, data
        for context in (tls.client_context(nsq.tls.ca), _other_ca_client(nsq, tmp_path)):
            # TLS 1.3: the client's side of the handshake ends before nsqd has checked the
            # certificate; its refusal comes with the first read.
            with pytest.raises((OSError, EOFError)):
                tcp_command(nsq.nsqd_tcp, command, context)
    assert nsq.topic_depth(TOPIC) == 1
    channels = [c for t in nsq.stats()["topics"] for c in t["channels"]]
    assert channels == []  # nobody subscribed
    assert tcp_command(nsq.nsqd_tcp, SUB, services) == (RESPONSE, b"OK")


def test_the_http_api_answers_only_https_with_the_certificate(nsq, tmp_path):
    services = nsq.client_tls
    assert _https(nsq, "POST", f"/topic/create?topic={TOPIC}", services)[0] == 200
    for method, path in (("POST", f"/topic/delete?topic={TOPIC}"), ("GET", "/stats"),
                         ("POST", f"/pub?topic={TOPIC}"), ("GET", "/ping"),
                         ("PUT", "/config/nsqlookupd_tcp_addresses")):
        status, body = _plain_http(nsq, method, path)
        assert status == 403 and json.loads(body) == {
            "message": "TLS_REQUIRED", "https_port": nsq.nsqd_https}, (path, status, body)
        for context in (tls.client_context(nsq.tls.ca), _other_ca_client(nsq, tmp_path)):
            with pytest.raises(OSError):  # ssl.SSLError, a reset, urllib's URLError
                _https(nsq, method, path, context)
    assert [t["topic_name"] for t in nsq.stats()["topics"]] == [TOPIC]  # not deleted
    assert nsq.topic_depth(TOPIC) == 0  # nothing published


def test_the_services_with_the_certificate_work_end_to_end(nsq, receiver, processor, db,
                                                           sample_images, service_env):
    name = next(n for n, want in sample_images.items() if want["status"] == "processed")
    reply = receiver.post_json("/image/post", {"path": name})
    assert reply.status == 202 and reply.json()["published"] is True, reply.text
    image_id = reply.json()["id"]
    assert wait_final(db, [image_id], timeout=180) == {image_id: "processed"}

    # What reads nsqd's /stats: the processor's exporter (following the plain port's answer
    # to the HTTPS port) and the frontend's dashboard.
    node = f"127.0.0.1:{nsq.nsqd_http}"
    samples = scrape(processor.metrics_port)
    assert value(samples, "kubeface_nsq_up", nsqd=node) == 1
    assert value(samples, "kubeface_nsq_channel_clients", nsqd=node, channel=CHANNEL) == 1
    board = dashboard.Dashboard(per_minute=[], counts={})
    dashboard._queue(config.load(service_env), board)
    assert board.queue_note == "" and board.queue == {"waiting": 0, "in flight": 0,
                                                      "deferred": 0}
    without = {k: v for k, v in service_env.items() if not k.startswith("NSQ_TLS_")}
    dashboard._queue(config.load(without), board)
    assert "did not answer" in board.queue_note
