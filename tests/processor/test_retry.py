"""The retry job against the real MariaDB and nsqd: what it re-publishes, what it leaves."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from kubeface import retry
from kubeface.core import matching, people
from kubeface.core.db import execute
from kubeface.core.messages import TOPIC
from kubeface.core.queue import PublishError
from tests.support.processor import add_images
from tests.support.procs import ROOT, Process, wait_for

STATES = {
    "done.jpg": "status = 'processed', face_count = 1",
    "unknown.jpg": "status = 'unknown', face_count = 1",
    "gave_up.jpg": "status = 'failed', retryable = 1, attempts = 10,"
                   " last_error = 'gave up after 10 attempts: face service UNAVAILABLE'",
    "gave_up_often.jpg": "status = 'failed', retryable = 1, retries = 3",
    "missing.jpg": "status = 'failed', retryable = 0, last_error = 'no such file'",
    "fresh.jpg": "status = 'pending'",
    "stale.jpg": "status = 'pending', updated_at = NOW(3) - INTERVAL 1 HOUR",
    "working.jpg": "status = 'processing', lease_until = NOW(3) + INTERVAL 1 HOUR",
    "orphan.jpg": "status = 'processing', lease_until = NOW(3) - INTERVAL 1 SECOND",
}


@pytest.fixture
def images(db) -> dict[str, int]:
    ids = dict(zip(STATES, add_images(db, STATES), strict=True))
    for path, sets in STATES.items():
        db.execute(f"UPDATE images SET {sets} WHERE id = :id", id=ids[path])
    return ids


def state(db, image_id):
    return db.query("SELECT status, attempts, retries FROM images WHERE id = :i",
                    i=image_id)[0].as_dict()


@pytest.mark.parametrize("nsq", ["plain", "tls"], indirect=True)
def test_one_run_republishes_exactly_what_is_worth_retrying(db, settings, nsq, publisher,
                                                            images):
    run = retry.run_once(db, publisher, settings)
    assert (run.failed, run.pending, run.expired, run.rematched) == (
        [images["gave_up.jpg"]], [images["stale.jpg"]], [images["orphan.jpg"]], [])
    assert run.published == 3 and nsq.topic_depth(TOPIC) == 3
    assert state(db, images["gave_up.jpg"]) == {"status": "pending", "attempts": 0, "retries": 1}
    assert state(db, images["orphan.jpg"])["status"] == "pending"
    for untouched in ("done.jpg", "unknown.jpg", "gave_up_often.jpg", "missing.jpg",
                      "working.jpg"):
        assert state(db, images[untouched])["status"] == STATES[untouched].split("'")[1]
    # A second run right away finds nothing new: the stale image is not re-published each run.
    again = retry.run_once(db, publisher, settings)
    assert again.ids == [] and nsq.topic_depth(TOPIC) == 3


def test_a_second_run_at_the_same_time_does_nothing(db, settings, images):
    """Two retry jobs at once (a slow CronJob run and the next one) never revive twice: the
    second finds the named lock held, skips, and the lock is free again after the first."""
    with db.connection() as holder:
        assert holder.query("SELECT GET_LOCK('kubeface.retry', 0) AS ok").scalar() == 1
        try:
            run = retry.collect(db, settings)
            assert run.skipped and run.ids == []
            assert state(db, images["gave_up.jpg"])["status"] == "failed"
        finally:
            holder.query("SELECT RELEASE_LOCK('kubeface.retry')")
    after = retry.collect(db, settings)
    assert not after.skipped and after.failed == [images["gave_up.jpg"]]


def test_rematch_and_include_permanent(db, settings, publisher, images):
    run = retry.run_once(db, publisher, settings, rematch=True, include_permanent=True)
    assert run.rematched == [images["unknown.jpg"]]
    assert sorted(run.failed) == sorted([images["gave_up.jpg"], images["missing.jpg"]])
    assert state(db, images["unknown.jpg"])["status"] == "pending"


def test_rematch_matches_stored_faces_again_without_detecting(db, settings, nsq, publisher):
    """An unknown image whose face encoding is stored is matched again from it: once its
    person is known it is processed, and nothing goes to the queue to be detected again."""
    rng = np.random.default_rng(3)
    face = rng.normal(size=128).astype(np.float32)
    face /= np.linalg.norm(face)
    (image,) = add_images(db, ["stranger.jpg"])
    with db.transaction() as conn:
        execute(conn, "UPDATE images SET status = 'unknown', face_count = 1 WHERE id = :i",
                i=image)
        execute(conn, "INSERT INTO faces (image_id, face_index, box_top, box_right, box_bottom,"
                      " box_left, distance, encoding) VALUES (:i, 0, 1, 9, 9, 1, NULL, :e)",
                i=image, e=matching.encode(face))
    person = people.create_person(db, "Ada")
    with db.transaction() as conn:
        people.add_photo(conn, person.id, "upload", "ada.jpg", "0" * 64, people.Box(0, 9, 9, 0),
                         face + np.float32(0.01))
    run = retry.run_once(db, publisher, settings, rematch=True)
    assert (run.rematched, run.relabelled, run.published) == ([], 1, 0)
    assert nsq.topic_depth(TOPIC) == 0
    row = db.query("SELECT status, person_id FROM images WHERE id = :i", i=image)[0]
    assert (row.status, row.person_id) == ("processed", person.id)


def test_retries_are_capped(db, settings, publisher, images):
    capped = replace(settings, retry_max_retries=1)
    gave_up = images["gave_up.jpg"]
    assert retry.run_once(db, publisher, capped).failed == [gave_up]
    db.execute("UPDATE images SET status = 'failed', retryable = 1 WHERE id = :i", i=gave_up)
    assert retry.run_once(db, publisher, capped).failed == []


def test_nsqd_away_leaves_the_images_pending_for_the_next_run(db, settings, nsq, publisher,
                                                             images):
    nsq.stop_nsqd()
    with pytest.raises(PublishError):
        retry.run_once(db, publisher, settings)
    assert state(db, images["gave_up.jpg"])["status"] == "pending"
    nsq.start_nsqd()
    run = retry.run_once(db, publisher, settings)
    assert sorted(run.pending) == sorted(
        [images["gave_up.jpg"], images["stale.jpg"], images["orphan.jpg"]])
    assert nsq.topic_depth(TOPIC) == 3


def _command(service_env, tmp_path, *args):
    env = {"PATH": "/usr/bin:/bin", **service_env, "KUBEFACE_ENV_FILE": str(tmp_path / "none")}
    return Process("retry", [sys.executable, "-m", "kubeface", "retry", *args],
                   tmp_path / "retry.log", env=env, cwd=ROOT)


@pytest.mark.parametrize("nsq", ["plain", "tls"], indirect=True)
def test_command_runs_once_and_in_a_loop_until_sigterm(db, service_env, nsq, images, tmp_path):
    once = _command(service_env, tmp_path, "--rematch").start()
    assert once.proc.wait(60) == 0
    assert nsq.topic_depth(TOPIC) == 4
    loop = _command(service_env, tmp_path, "--every", "0.2").start()
    db.execute("UPDATE images SET status = 'failed', retryable = 1 WHERE path = 'done.jpg'")
    wait_for(lambda: nsq.topic_depth(TOPIC) == 5, "the loop's next run", 30, loop.proc, loop.log)
    time.sleep(0.5)
    assert loop.running
    loop.signal(signal.SIGTERM)
    assert loop.proc.wait(10) == 0
    assert "1 failed revived" in loop.log.read_text()


def test_command_says_when_nsqd_is_away(db, service_env, nsq, images, tmp_path):
    nsq.stop_nsqd()
    run = _command(service_env, tmp_path).start()
    assert run.proc.wait(60) == 1
    assert "unreachable" in run.log.read_text()
