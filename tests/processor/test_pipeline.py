"""End to end through the real services: MariaDB, nsqd/nsqlookupd, the face service (dlib
models, real photos) and the processor as processes. Faults are real: processes killed and
restarted."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from kubeface.core.db import Database
from tests.support.face import FaceService
from tests.support.processor import Processor, add_images, wait_final

pytestmark = pytest.mark.slow


def results(db: Database, ids: list[int]) -> dict[int, dict]:
    rows = db.query(
        "SELECT i.id, i.status, p.name AS person, i.face_count, i.attempts, i.last_error,"
        " (SELECT COUNT(*) FROM faces f WHERE f.image_id = i.id) AS face_rows"
        " FROM images i LEFT JOIN person p ON p.id = i.person_id"
        f" WHERE i.id IN ({','.join(map(str, ids))})")
    return {int(r.id): r.as_dict() for r in rows}


def check(db: Database, ids: dict[int, str], expected: dict[str, dict]) -> dict[int, dict]:
    """Every image has exactly the sample's expected outcome, face rows included."""
    got = results(db, list(ids))
    for image_id, name in ids.items():
        want = expected[name.rsplit("/", 1)[-1].split("~")[0]]
        row = got[image_id]
        assert (row["status"], row["person"], row["face_count"], row["face_rows"]) == (
            want["status"], want["person"], want["faces"], want["faces"]), (name, row)
    return got


def copies(unknown: Path, expected: dict[str, dict], rounds: int) -> list[str]:
    """``rounds`` copies of every sample under new names (``copy3/obama2.jpg~``...)."""
    paths = []
    first = len(list(unknown.glob("copy*")))  # a second stream gets new names
    for n in range(first, first + rounds):
        folder = unknown / f"copy{n}"
        folder.mkdir(exist_ok=True)
        for name in expected:
            shutil.copyfile(unknown / name, folder / f"{name}~{Path(name).suffix}")
            paths.append(f"copy{n}/{name}~{Path(name).suffix}")
    return paths


@pytest.mark.parametrize("nsq", ["plain", "tls"], indirect=True)
def test_happy_path_every_sample_gets_its_outcome(processor, db, publisher, sample_images,
                                                  image_dirs):
    _, unknown = image_dirs
    (unknown / "not_an_image.jpg").write_text("this is text, not a JPEG")
    names = [*sample_images, "missing.jpg", "not_an_image.jpg"]
    ids = dict(zip(add_images(db, names), names, strict=True))
    publisher.publish_many(list(ids))
    final = wait_final(db, ids, timeout=180)
    by_name = {ids[i]: s for i, s in final.items()}
    assert by_name["missing.jpg"] == "failed" and by_name["not_an_image.jpg"] == "failed"
    samples = {i: n for i, n in ids.items() if n in sample_images}
    got = check(db, samples, sample_images)
    assert all(r["attempts"] == 1 and r["last_error"] is None for r in got.values())
    failed = results(db, [i for i, n in ids.items() if n not in sample_images])
    assert all(r["last_error"] and r["face_count"] is None for r in failed.values())


def stream(db, publisher, unknown: Path, expected: dict, rounds: int) -> dict[int, str]:
    paths = copies(unknown, expected, rounds)
    ids = dict(zip(add_images(db, paths), paths, strict=True))
    publisher.publish_many(list(ids))
    return ids


def settled(db: Database, ids) -> int:
    return len(db.query(
        "SELECT id FROM images WHERE status NOT IN ('pending', 'processing')"
        f" AND id IN ({','.join(map(str, ids))})"))


def wait_settled(db: Database, ids, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while settled(db, ids) < count:
        assert time.monotonic() < deadline, f"fewer than {count} images settled"
        time.sleep(0.1)


def test_face_service_killed_mid_stream_and_started_again(
        processor, face_service, db, publisher, sample_images, image_dirs, tmp_path,
        service_env):
    ids = stream(db, publisher, image_dirs[1], sample_images, rounds=3)
    wait_settled(db, ids, 4)
    face_service.kill()
    time.sleep(4)  # long enough for the breaker to open and a probe or two to fail
    again = FaceService(tmp_path / "face-again", service_env, port=face_service.port).start()
    try:
        final = wait_final(db, ids, timeout=300)
    finally:
        again.stop()
    assert "failed" not in final.values()
    check(db, ids, sample_images)
    log = processor.log.read_text()
    assert "breaker closed -> open" in log and "half-open -> closed" in log


def test_breaker_opens_on_transport_failures_grows_and_closes_on_serving(
        processor_env, face_service, db, publisher, sample_images, image_dirs, tmp_path,
        service_env):
    proc = Processor(tmp_path / "p", {**processor_env, "BREAKER_RESET_SECONDS": "1",
                                      "BREAKER_MAX_RESET_SECONDS": "4"}).start()
    try:
        face_service.kill()
        ids = stream(db, publisher, image_dirs[1], sample_images, rounds=1)
        time.sleep(9)  # open 1 s, probe fails, 2 s, fails, 4 s (the cap), ...
        log = proc.log.read_text()
        assert "breaker closed -> open for 1.0s" in log
        assert "half-open -> open for 2.0s" in log and "half-open -> open for 4.0s" in log
        assert "open for 8.0s" not in log
        attempts = sum(r.attempts for r in db.query("SELECT attempts FROM images"))
        # Five failures open it (plus at most the calls already under way); while it is open
        # nothing reaches the service and nothing counts as an attempt.
        assert 5 <= attempts <= 5 + 3
        assert {r.status for r in db.query("SELECT status FROM images")} <= {
            "pending", "processing"}
        again = FaceService(tmp_path / "face-again", service_env, port=face_service.port)
        again.start()
        try:
            wait_final(db, ids, timeout=120)
        finally:
            again.stop()
        check(db, ids, sample_images)
        assert "half-open -> closed" in proc.log.read_text()
    finally:
        proc.stop()


def test_fifty_no_face_images_do_not_open_the_breaker(processor, db, publisher, sample_images,
                                                       image_dirs):
    no_face = {k: v for k, v in sample_images.items() if v["status"] == "no_face"}
    assert no_face
    ids = stream(db, publisher, image_dirs[1], no_face, rounds=50 // len(no_face) + 1)
    assert len(ids) >= 50
    final = wait_final(db, ids, timeout=300)
    assert set(final.values()) == {"no_face"}
    assert "-> open" not in processor.log.read_text()


def test_nsqd_restarted_with_its_data_path_loses_no_message(
        processor_env, nsq, db, publisher, sample_images, image_dirs, tmp_path):
    # Published while no processor runs: the messages wait in nsqd, which restarts.
    first = stream(db, publisher, image_dirs[1], sample_images, rounds=1)
    nsq.stop_nsqd()
    nsq.start_nsqd()
    proc = Processor(tmp_path / "p", processor_env).start()
    try:
        wait_final(db, first, timeout=180)
        # And restarted again in the middle of a stream the processor is working on.
        second = stream(db, publisher, image_dirs[1], sample_images, rounds=2)
        wait_settled(db, second, 3)
        nsq.stop_nsqd()
        nsq.start_nsqd()
        wait_final(db, second, timeout=240)
    finally:
        proc.stop()
    check(db, {**first, **second}, sample_images)


def test_database_stopped_and_started(processor_env, mariadb, db, publisher, sample_images,
                                      image_dirs, tmp_path):
    proc = Processor(tmp_path / "p", {**processor_env, "PROCESSOR_LEASE_SECONDS": "6"}).start()
    try:
        ids = stream(db, publisher, image_dirs[1], sample_images, rounds=2)
        wait_settled(db, ids, 3)
        mariadb.stop()
        try:
            time.sleep(4)
        finally:
            mariadb.start()  # same port and datadir: the session's other tests need it back
        final = wait_final(db, ids, timeout=240)
    finally:
        proc.stop()
    assert "failed" not in final.values()
    check(db, ids, sample_images)
    assert "database unavailable" in proc.log.read_text()


def test_two_processors_and_every_message_twice_process_each_image_once(
        processor, processor_env, db, publisher, sample_images, image_dirs, tmp_path):
    second = Processor(tmp_path / "p2", processor_env, name="processor2").start()
    try:
        ids = stream(db, publisher, image_dirs[1], sample_images, rounds=2)
        publisher.publish_many(list(ids))  # at-least-once: every message again
        wait_final(db, ids, timeout=240)
        time.sleep(1)  # let the duplicates arrive and be finished
    finally:
        second.stop()
    got = check(db, ids, sample_images)
    assert {r["attempts"] for r in got.values()} == {1}  # each image claimed exactly once
    for proc in (processor, second):
        assert " processed (" in proc.log.read_text() or " no_face (" in proc.log.read_text()


def test_a_killed_processor_loses_nothing(processor_env, db, publisher, sample_images,
                                          image_dirs, tmp_path):
    env = {**processor_env, "PROCESSOR_LEASE_SECONDS": "5"}
    first = Processor(tmp_path / "p1", env, name="processor1").start()
    ids = stream(db, publisher, image_dirs[1], sample_images, rounds=2)
    wait_settled(db, ids, 2)
    first.kill()  # in-flight messages and claims are left behind
    second = Processor(tmp_path / "p2", env, name="processor2").start()
    try:
        final = wait_final(db, ids, timeout=240)
    finally:
        second.stop()
    assert "failed" not in final.values()
    check(db, ids, sample_images)


def test_sigterm_finishes_what_is_in_flight_and_exits(processor_env, db, publisher,
                                                      sample_images, image_dirs, tmp_path):
    first = Processor(tmp_path / "p1", processor_env, name="processor1").start()
    ids = stream(db, publisher, image_dirs[1], sample_images, rounds=2)
    wait_settled(db, ids, 2)
    assert first.stop(timeout=60) == 0
    log = first.log.read_text()
    assert "stopping: taking no new messages" in log and "processor stopped" in log
    # Nothing is left claimed: what was in flight got its outcome, the rest waits in nsqd.
    assert not db.query("SELECT id FROM images WHERE status = 'processing'")
    second = Processor(tmp_path / "p2", processor_env, name="processor2").start()
    try:
        wait_final(db, ids, timeout=240)
    finally:
        second.stop()
    check(db, ids, sample_images)
