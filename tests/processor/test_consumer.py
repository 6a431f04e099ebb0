"""The processor as a real process on real nsqd and MariaDB, with the face service away: it
consumes, drops what can never succeed, defers the rest, and stops cleanly on SIGTERM."""

from __future__ import annotations

import urllib.request

from kubeface.core.messages import CHANNEL, TOPIC
from tests.support.processor import Processor, add_images
from tests.support.procs import free_port, wait_for


def test_face_service_away_defers_everything_and_fails_nothing(db, service_env, nsq,
                                                               publisher, tmp_path):
    env = {**service_env, "GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "BREAKER_FAIL_MAX": "3",
           "BREAKER_RESET_SECONDS": "1", "BREAKER_MAX_RESET_SECONDS": "2"}
    proc = Processor(tmp_path / "p", env).start()
    ids = add_images(db, [f"img{i}.jpg" for i in range(8)])
    publisher.publish_many(ids)
    # A body that is not an image id is dropped, not retried forever and not a crash.
    urllib.request.urlopen(urllib.request.Request(
        f"http://{service_env['NSQD_HTTP_ADDRESS']}/pub?topic={TOPIC}", data=b"garbage",
        method="POST"), timeout=2).read()
    wait_for(lambda: "face-service breaker closed -> open" in proc.log.read_text(),
             "breaker opened", 30, proc.process.proc, proc.log)
    wait_for(lambda: "health check failed" in proc.log.read_text(),
             "a half-open health probe", 30, proc.process.proc, proc.log)
    rows = db.query("SELECT status, attempts FROM images")
    assert {r.status for r in rows} <= {"pending", "processing"}  # never failed
    # Only calls that reached the (absent) service count as attempts: three before the
    # breaker opened, then no more while it is open.
    assert sum(r.attempts for r in rows) <= 3 + 8
    assert "dropping malformed message" in proc.log.read_text()
    assert nsq.topic_depth(TOPIC, CHANNEL) == 8  # the garbage is gone, the images wait
    assert proc.stop(timeout=30) == 0
    assert "processor stopped" in proc.log.read_text()
    assert {r.status for r in db.query("SELECT status FROM images")} == {"pending"}
