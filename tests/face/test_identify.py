"""Identify through the real gRPC service, real dlib models and real photos."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import face_recognition
import grpc
import numpy as np
import pytest
from PIL import Image

from facerecog import face_pb2
from kubeface.core.known_people import name_from_file
from tests.support.face import png_claiming, refusal

STATUS = {"processed": face_pb2.OUTCOME_MATCH, "unknown": face_pb2.OUTCOME_UNKNOWN,
          "no_face": face_pb2.OUTCOME_NO_FACE}


def check(response: face_pb2.IdentifyResponse, expected: dict) -> list[str]:
    """What differs between an answer and expected.json's entry (empty when all is right)."""
    problems = []
    if response.outcome != STATUS[expected["status"]]:
        problems.append(f"outcome {face_pb2.Outcome.Name(response.outcome)}")
    if (response.person or None) != expected["person"]:
        problems.append(f"person {response.person!r}")
    if len(response.faces) != expected["faces"]:
        problems.append(f"{len(response.faces)} faces")
    if expected["person"]:
        # The article's field: the known image that matched, filed under that person.
        if name_from_file(response.image_name) != expected["person"]:
            problems.append(f"image_name {response.image_name!r}")
        if not 0 <= response.distance <= 0.6:
            problems.append(f"distance {response.distance}")
    elif expected["faces"] and not response.distance > 0.6:
        problems.append(f"stranger at distance {response.distance}")
    return problems


def test_every_sample_gets_its_expected_outcome(shared_service, shared_folders):
    _, _, expected = shared_folders
    wrong = {}
    for name, want in sorted(expected.items()):
        problems = check(shared_service.identify(name), want)
        if problems:
            wrong[name] = problems
    assert not wrong, wrong
    assert len(expected) >= 8


def test_a_different_photo_of_a_known_person_is_that_person(shared_service):
    response = shared_service.identify("obama2.jpg")
    assert response.outcome == face_pb2.OUTCOME_MATCH
    assert (response.person, response.image_name) == ("Barack Obama", "barack_obama.jpg")
    assert response.faces[0].matched and response.faces[0].person == "Barack Obama"
    assert response.faces[0].distance == pytest.approx(response.distance)


def test_a_stranger_is_unknown_not_the_first_known_image(shared_service):
    # A stranger must not be answered with the closest known image when it is beyond tolerance.
    response = shared_service.identify("tom_hanks.png")
    assert response.outcome == face_pb2.OUTCOME_UNKNOWN
    assert response.image_name == "" and response.person == ""
    assert len(response.faces) == 1 and not response.faces[0].matched
    assert response.faces[0].distance > 0.6


def test_no_face_is_its_own_outcome(shared_service):
    for name in ("matplotlib_logo.png", "face_mask.jpg"):
        response = shared_service.identify(name)
        assert response.outcome == face_pb2.OUTCOME_NO_FACE, name
        assert not response.faces and not response.person


def test_group_photo_reports_every_face_in_original_pixels(shared_service, shared_folders):
    _, unknown, _ = shared_folders
    width, height = Image.open(unknown / "group_with_obama.jpg").size
    response = shared_service.identify("group_with_obama.jpg")
    assert (response.width, response.height) == (width, height)
    assert len(response.faces) == 7
    lefts = [f.box.left for f in response.faces]
    assert lefts == sorted(lefts), "faces are listed left to right"
    for face in response.faces:
        box = face.box
        assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
    matched = [f for f in response.faces if f.matched]
    assert [f.person for f in matched] == ["Barack Obama"]
    # Obama was pasted to the right of the 1280-pixel-wide group photo: the box must be there
    # in the original's pixels, although detection ran on an image scaled to 800 pixels.
    assert matched[0].box.left >= 1280
    assert response.distance == pytest.approx(min(f.distance for f in response.faces))


def test_boxes_of_a_scaled_image_match_the_library_at_full_size(shared_service, shared_folders):
    _, unknown, _ = shared_folders
    pixels = face_recognition.load_image_file(unknown / "obama3_large.jpg")
    (top, right, bottom, left), = face_recognition.face_locations(pixels)
    response = shared_service.identify("obama3_large.jpg")
    assert max(response.width, response.height) > 800  # it really was scaled for detection
    box = response.faces[0].box
    # HOG box sizes step with the detector's image pyramid, so compare centres and sizes: a
    # box left in the scaled image's pixels would be off by the whole scale factor (1.8x here).
    size, got_size = right - left, box.right - box.left
    assert 0.7 < got_size / size < 1.4, (box, (top, right, bottom, left))
    assert abs((box.left + box.right) / 2 - (left + right) / 2) < 0.1 * size
    assert abs((box.top + box.bottom) / 2 - (top + bottom) / 2) < 0.1 * size


def test_exif_rotation_is_applied(shared_service, shared_folders):
    _, unknown, _ = shared_folders
    stored = Image.open(unknown / "obama_exif_rotated.jpg").size
    response = shared_service.identify("obama_exif_rotated.jpg")
    assert response.person == "Barack Obama"
    assert (response.width, response.height) == stored[::-1]  # upright: sides swapped


def test_absolute_path_inside_the_root_is_accepted(shared_service, shared_folders):
    _, unknown, _ = shared_folders
    response = shared_service.identify(str(unknown / "obama2.jpg"))
    assert response.person == "Barack Obama"


def test_bad_paths_and_bad_files_get_the_right_codes(shared_service, shared_folders):
    known, unknown, _ = shared_folders
    (unknown / "notes.jpg").write_text("this is not a picture\n")
    (unknown / "empty.png").write_bytes(b"")
    whole = (unknown / "obama2.jpg").read_bytes()
    (unknown / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (unknown / "bomb.png").write_bytes(png_claiming(50_000, 50_000))
    (unknown / "big.png").write_bytes(png_claiming(8_000, 6_000))  # 48 MP > 40 MP allowed
    (unknown / "folder.jpg").mkdir()
    os.mkfifo(unknown / "fifo.jpg")  # opening it would block a worker for ever
    os.symlink(known / "barack_obama.jpg", unknown / "link_out.jpg")
    os.symlink(unknown / "obama2.jpg", unknown / "link_in.jpg")

    cases = {
        "missing.jpg": (grpc.StatusCode.NOT_FOUND, "does not exist"),
        "sub/missing.jpg": (grpc.StatusCode.NOT_FOUND, "does not exist"),
        "../known_people/barack_obama.jpg": (grpc.StatusCode.INVALID_ARGUMENT, ".."),
        str(known / "barack_obama.jpg"): (grpc.StatusCode.INVALID_ARGUMENT, "outside"),
        "/etc/passwd": (grpc.StatusCode.INVALID_ARGUMENT, "outside"),
        "link_out.jpg": (grpc.StatusCode.INVALID_ARGUMENT, "outside"),
        "": (grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        "notes.jpg": (grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
        "empty.png": (grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
        "truncated.jpg": (grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
        "bomb.png": (grpc.StatusCode.INVALID_ARGUMENT, "pixels"),
        "big.png": (grpc.StatusCode.INVALID_ARGUMENT, "FACE_MAX_PIXELS"),
        "folder.jpg": (grpc.StatusCode.INVALID_ARGUMENT, "directory"),
        "fifo.jpg": (grpc.StatusCode.INVALID_ARGUMENT, "not a regular file"),
    }
    wrong = {}
    for path, (code, words) in cases.items():
        got_code, details = refusal(shared_service, path)
        if got_code != code or words not in details:
            wrong[path] = (got_code.name, details)
    assert not wrong, wrong
    # None of it hurt the service: a link inside the root still works, and so does the rest.
    assert shared_service.identify("link_in.jpg").person == "Barack Obama"
    assert shared_service.health("facerecog.Identity") == "SERVING"


def test_parallel_calls_give_the_same_answers_as_one_at_a_time(shared_service, shared_folders):
    _, _, expected = shared_folders
    names = sorted(n for n in expected if expected[n]["faces"] <= 1) * 2
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(shared_service.identify, names))
    for name, response in zip(names, answers, strict=True):
        assert not check(response, expected[name]), name


def test_matching_equals_the_library_face_distance():
    # Checks the vectorised matrix matching against face_recognition's own distance.
    from kubeface.face.known import KnownSet

    rng = np.random.default_rng(7)
    known = rng.normal(0, 0.1, (500, 128))
    queries = rng.normal(0, 0.1, (5, 128))
    known[123] = queries[2] + 0.001
    faces = KnownSet(known.astype(np.float32), tuple(map(str, range(500))), ("x",) * 500, 500)
    best, distance = faces.match(queries)
    for i, query in enumerate(queries):
        reference = face_recognition.face_distance(known, query)
        assert best[i] == reference.argmin()
        assert distance[i] == pytest.approx(reference.min(), abs=1e-5)
    assert best[2] == 123


def test_the_face_service_fixture_serves_the_samples(face_service, sample_images):
    # The fixture other parts' tests use (processor, end-to-end) really works.
    assert face_service.health() == "SERVING"
    for name in ("obama2.jpg", "tom_hanks.png", "face_mask.jpg"):
        assert not check(face_service.identify(name), sample_images[name]), name

