"""The receiver against hostile clients, through the real process, MariaDB and nsqd."""

from __future__ import annotations

import json

from tests.support.hostile import answered_within, slow_clients
from tests.support.procs import wait_for

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_slow_clients_hold_no_worker_and_are_cut_off(receiver, db):
    # 200 connections trickle a byte every 2 s (the receiver has 16 worker threads): half
    # never finish their headers, half never finish their body.
    with slow_clients(receiver.port, 200) as slow:
        for i in range(3):
            assert answered_within(receiver.url + "/healthz", 1.0).status == 200
            reply = answered_within(receiver.url + "/image/post", 1.0, "POST",
                                    json.dumps({"path": f"fast{i}.jpg"}).encode(), FORM)
            assert reply.status == 202, reply.data
        assert slow.still_open() > 150  # they were really held while the others got in
        # Each had the read timeout (10 s) from its first byte, then was let go.
        wait_for(lambda: slow.still_open() == 0, "slow clients cut off", 25)
    paths = [r.path for r in db.query("SELECT path FROM images ORDER BY id")]
    assert paths == ["fast0.jpg", "fast1.jpg", "fast2.jpg"]
    assert answered_within(receiver.url + "/healthz", 1.0).status == 200
