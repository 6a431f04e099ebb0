"""The face service with a database: known faces come from the people's stored photos, shared
by every replica, reloaded within seconds of a change, never encoded again at a restart; each
face it answers carries its encoding, which the processor stores."""

from __future__ import annotations

import time

import pytest

from facerecog import face_pb2
from kubeface.core import matching, people
from tests.support.face import FaceService
from tests.support.procs import free_port


def wait_until(check, timeout: float, what: str) -> float:
    """Seconds until ``check()`` is true."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.slow
def test_replicas_share_the_database_and_reload_within_seconds(service_env, db, sample_images,
                                                               tmp_path):
    env = {**service_env, "FACE_WORKERS": "1"}

    def replica(name: str) -> FaceService:
        return FaceService(tmp_path / name, {**env, "FACE_METRICS_PORT": str(free_port())})

    first = replica("face-1").start()
    try:
        second = replica("face-2").start()
        try:
            # The folder was imported once: the second replica encoded nothing.
            assert "known folder imported: 3 file(s) encoded" in first.log.read_text()
            assert "known folder imported: 0 file(s) encoded" in second.log.read_text()

            # The article's contract still holds, and each face carries what the processor
            # stores: its encoding and the database ids of the match.
            answer = first.identify("obama2.jpg")
            assert answer.image_name == "barack_obama.jpg"
            (face,) = answer.faces
            assert len(face.encoding) == 128 and face.person_id and face.photo_id
            obama = db.query("SELECT id FROM person WHERE name = 'Barack Obama'")[0].id
            assert face.person_id == obama

            # A new person from the API side (core): Tom Hanks from a stored face encoding.
            tom = second.identify("tom_hanks.png")
            assert tom.outcome == face_pb2.OUTCOME_UNKNOWN
            # Each answer names the people version it was matched against, so the processor
            # can match again what it stores after a change the service has not loaded yet.
            assert tom.people_version == matching.version(db) > 0
            person = people.create_person(db, "Tom Hanks")
            people.add_uploaded_photo(db, person.id, "people/tom.png", "0" * 64,
                                      people.Box(0, 1, 1, 0), list(tom.faces[0].encoding))
            assert matching.version(db) > tom.people_version
            for service in (first, second):
                took = wait_until(
                    lambda r=service: r.identify("tom_hanks.png").person == "Tom Hanks",
                    5.0, "the new person is matched")
                assert took < 5.0
                assert service.identify("tom_hanks.png").people_version == matching.version(db)
            # Deleting a person takes effect the same way.
            people.delete_person(db, person.id)
            wait_until(lambda: second.identify("tom_hanks.png").outcome
                       == face_pb2.OUTCOME_UNKNOWN, 5.0, "the deleted person is not matched")
        finally:
            second.stop()
        # A restart encodes nothing: the encodings are in the database.
        first.stop()
        first = replica("face-3").start()
        log = first.log.read_text()
        assert "known folder imported: 0 file(s) encoded" in log
        assert first.identify("obama2.jpg").person == "Barack Obama"
        assert matching.version(db) > 0
    finally:
        first.stop()


def test_with_nobody_known_the_service_serves_and_answers_unknown(service_env, db, image_dirs,
                                                                   photos, tmp_path):
    _, unknown = image_dirs
    (unknown / "obama2.jpg").write_bytes((photos / "unknown" / "obama2.jpg").read_bytes())
    service = FaceService(tmp_path / "face", {**service_env, "FACE_WORKERS": "1"}).start()
    try:
        answer = service.identify("obama2.jpg")
        assert answer.outcome == face_pb2.OUTCOME_UNKNOWN and answer.image_name == ""
        assert len(answer.faces[0].encoding) == 128
    finally:
        service.stop()
