"""The claim and the outcome writes against the real MariaDB: atomic, guarded, idempotent."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from kubeface.core.config import load
from kubeface.core.db import Database
from kubeface.core.statuses import Status
from kubeface.processor import store
from kubeface.processor.face_client import Box, FaceClient, FoundFace, Recognition
from kubeface.processor.main import build
from kubeface.processor.worker import ImageProcessor
from tests.support.processor import add_images
from tests.support.procs import free_port


def enrolled(db: Database) -> dict[str, int]:
    with db.transaction() as conn:
        for name, image in (("Barack Obama", "obama.jpg"), ("Joe Biden", "biden.jpg")):
            conn.query("INSERT INTO person (name) VALUES (:n)", n=name)
            conn.query("INSERT INTO person_images (image_name, person_id)"
                       " VALUES (:i, LAST_INSERT_ID())", i=image)
    return {r.image_name: r.person_id for r in db.query("SELECT * FROM person_images")}


def face(box: Box, distance: float | None, known_image: str | None = None) -> FoundFace:
    return FoundFace(box=box, matched=known_image is not None, known_image=known_image,
                     person_id=None, photo_id=None, distance=distance, encoding=())


def two_faces() -> Recognition:
    return Recognition(Status.PROCESSED, "obama.jpg", "Barack Obama", (
        face(Box(top=1, right=20, bottom=21, left=2), 0.35, "obama.jpg"),
        face(Box(top=5, right=60, bottom=40, left=30), 0.71),
    ))


def test_only_one_of_many_concurrent_claims_wins(db):
    [image] = add_images(db, ["a.jpg"])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.claim(db, image, 60), range(8)))
    claims = [r for r in results if isinstance(r, store.Claim)]
    assert len(claims) == 1 and claims[0].attempts == 1
    assert all(isinstance(r, store.Busy) and r.seconds > 50 for r in results if r not in claims)
    assert db.query("SELECT status, attempts FROM images")[0].as_dict() == {
        "status": "processing", "attempts": 1}


def test_result_with_person_and_every_face_row_and_duplicates_change_nothing(db):
    people = enrolled(db)
    [image] = add_images(db, ["group.jpg"])
    claim = store.claim(db, image, 60)
    assert store.record_result(db, claim, two_faces())
    row = db.query("SELECT * FROM images")[0]
    assert (row.status, row.person_id, row.face_count, row.lease_until) == (
        "processed", people["obama.jpg"], 2, None)
    faces = db.query("SELECT * FROM faces ORDER BY face_index")
    assert [(f.face_index, f.person_id, f.known_image) for f in faces] == [
        (0, people["obama.jpg"], "obama.jpg"), (1, None, None)]
    assert (faces[0].box_top, faces[0].box_right, faces[0].box_bottom, faces[0].box_left) == (
        1, 20, 21, 2)
    # The same message again: the image is settled, nothing is written twice.
    assert store.claim(db, image, 60) == store.Settled(store.Status.PROCESSED)
    assert not store.record_result(db, claim, two_faces())  # a late writer with an old claim
    assert len(db.query("SELECT id FROM faces")) == 2


def test_an_expired_claim_can_be_taken_and_the_old_worker_cannot_write(db):
    [image] = add_images(db, ["a.jpg"])
    old = store.claim(db, image, 1)
    assert isinstance(store.claim(db, image, 60), store.Busy)
    time.sleep(1.1)
    new = store.claim(db, image, 60)
    assert isinstance(new, store.Claim) and new.attempts == 2
    assert not store.record_failure(db, old, "late", retryable=False)
    assert store.record_result(db, new, Recognition(Status.NO_FACE, None, None, ()))
    row = db.query("SELECT status, face_count, attempts FROM images")[0]
    assert (row.status, row.face_count, row.attempts) == ("no_face", 0, 2)


def test_reprocessing_replaces_face_rows(db):
    enrolled(db)
    [image] = add_images(db, ["group.jpg"])
    assert store.record_result(db, store.claim(db, image, 60), two_faces())
    db.execute("UPDATE images SET status = 'pending'")  # e.g. the retry job's --rematch
    one_face = Recognition(Status.UNKNOWN, None, None, (
        face(Box(top=1, right=2, bottom=3, left=0), 0.8),))
    assert store.record_result(db, store.claim(db, image, 60), one_face)
    assert len(db.query("SELECT id FROM faces")) == 1
    assert db.query("SELECT status, person_id FROM images")[0].as_dict() == {
        "status": "unknown", "person_id": None}


def test_a_match_on_a_known_image_not_enrolled_is_recorded_with_a_note(db):
    [image] = add_images(db, ["a.jpg"])
    assert store.record_result(db, store.claim(db, image, 60), two_faces())
    row = db.query("SELECT status, person_id, last_error FROM images")[0]
    assert row.status == "processed" and row.person_id is None
    assert "not enrolled" in row.last_error and "kubeface enrol" in row.last_error


def test_release_puts_the_image_back_and_an_unattempted_claim_does_not_count(db):
    [image] = add_images(db, ["a.jpg"])
    assert store.release(db, store.claim(db, image, 60), "face service UNAVAILABLE")
    assert store.release(db, store.claim(db, image, 60), "breaker open", attempted=False)
    row = db.query("SELECT status, attempts, last_error, lease_until FROM images")[0]
    assert (row.status, row.attempts, row.last_error, row.lease_until) == (
        "pending", 1, "breaker open", None)


def _processor(settings, db, grpc_port: int) -> ImageProcessor:
    return build(settings, db, FaceClient(f"127.0.0.1:{grpc_port}", timeout=2))


def test_bad_messages_are_dropped_without_a_crash(settings, db):
    worker = _processor(settings, db, free_port())
    for body in (b"", b"abc", b"\x00" * 8, b"\xff" * 8, b"123456789"):
        verdict = worker.handle(body)
        assert verdict.finish and "malformed" in verdict.why
    assert worker.handle((424242).to_bytes(8, "little")).why == "no such image"


def test_face_service_away_requeues_with_growing_delay_and_never_fails(settings, db):
    settings = replace(settings, processor_requeue_seconds=1.0,
                       processor_max_requeue_seconds=8.0, breaker_fail_max=100)
    worker = _processor(settings, db, free_port())  # nothing listens: UNAVAILABLE
    [image] = add_images(db, ["a.jpg"])
    body = image.to_bytes(8, "little")
    delays = [worker.handle(body, delivery).delay for delivery in (1, 2, 3, 4, 5)]
    for got, expected in zip(delays, [1, 2, 4, 8, 8], strict=True):
        assert 0.8 * expected <= got <= 1.2 * expected  # doubling, capped, with jitter
    row = db.query("SELECT status, attempts, last_error FROM images")[0]
    assert row.status == "pending" and row.attempts == 5 and "UNAVAILABLE" in row.last_error


def test_after_max_attempts_the_image_fails_with_gave_up(settings, db):
    settings = replace(settings, processor_max_attempts=3, breaker_fail_max=100)
    worker = _processor(settings, db, free_port())
    [image] = add_images(db, ["a.jpg"])
    body = image.to_bytes(8, "little")
    verdicts = [worker.handle(body, n) for n in (1, 2, 3)]
    assert [v.finish for v in verdicts] == [False, False, True]
    row = db.query("SELECT status, last_error, retryable FROM images")[0]
    assert row.status == "failed" and row.retryable == 1
    assert row.last_error.startswith("gave up after 3 attempts: face service UNAVAILABLE")


def test_a_claim_left_by_crashed_workers_gives_up_after_max_attempts(settings, db):
    settings = replace(settings, processor_max_attempts=2)
    worker = _processor(settings, db, free_port())
    [image] = add_images(db, ["a.jpg"])
    db.execute("UPDATE images SET status = 'processing', attempts = 2,"
               " lease_until = NOW(3) - INTERVAL 1 SECOND, last_error = 'worker killed'")
    verdict = worker.handle(image.to_bytes(8, "little"))
    assert verdict.finish
    row = db.query("SELECT status, last_error FROM images")[0]
    assert (row.status, row.last_error) == ("failed", "gave up after 2 attempts: worker killed")


def test_breaker_open_defers_without_claiming(settings, db):
    settings = replace(settings, breaker_fail_max=2, breaker_reset_seconds=30)
    worker = _processor(settings, db, free_port())
    a, b, c = add_images(db, ["a.jpg", "b.jpg", "c.jpg"])
    worker.handle(a.to_bytes(8, "little"))
    worker.handle(b.to_bytes(8, "little"))
    verdict = worker.handle(c.to_bytes(8, "little"))
    assert not verdict.finish and verdict.why == "breaker open" and 29 < verdict.delay < 32
    rows = {r.id: (r.status, r.attempts) for r in db.query("SELECT * FROM images")}
    assert rows == {a: ("pending", 1), b: ("pending", 1), c: ("pending", 0)}


def test_database_away_requeues(settings, tmp_path: Path):
    env = {"MYSQL_PORT": str(free_port()), "MYSQL_USERPASSWORD": "u:p",
           "KUBEFACE_ENV_FILE": str(tmp_path / "none")}
    away = load(environ=env)
    db = Database(away, connect_timeout=1)
    try:
        worker = _processor(away, db, free_port())
        verdict = worker.handle((7).to_bytes(8, "little"))
        assert not verdict.finish and verdict.why == "database unavailable"
    finally:
        db.close()

