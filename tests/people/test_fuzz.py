"""Fuzzing the people API with any bytes (hypothesis), as tests/receiver/test_fuzz.py does for
the image endpoints (schemathesis covers these operations there too, from the document):
never a 5xx, always a JSON answer, and nothing half-stored."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from kubeface.core import people
from tests.receiver.test_fuzz import _json_values

_json_bodies = st.one_of(
    st.binary(max_size=500),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda n: json.dumps({"name": n}).encode(), _json_values | st.text(max_size=300)),
    st.builds(lambda n: json.dumps({"person_id": n}).encode(), _json_values),
)


def _tiny_image(kind: str, cut: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(out, kind)
    data = out.getvalue()
    return data[: max(0, len(data) - cut)] if cut else data


_file_bytes = st.one_of(
    st.binary(max_size=3000),
    st.builds(_tiny_image, st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]),
              st.integers(0, 40)),
)


def _multipart(files: list[bytes], boundary: str = "fuzzb0undary") -> bytes:
    parts = [(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
              f'filename="f{i}.jpg"\r\nContent-Type: application/octet-stream\r\n\r\n'
              ).encode() + data + b"\r\n" for i, data in enumerate(files)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_any_json_body_on_the_people_endpoints_is_answered_never_a_5xx(receiver, db):
    person = people.create_person(db, "Fuzzy")
    seen: set[int] = set()

    @example(body=b'{"name": "Fuzzy Two"}', target=("POST", "/people"),
             content_type="text/plain")  # the fuzzer's random names rarely make a valid one
    @given(body=_json_bodies,
           target=st.sampled_from([("POST", "/people"), ("PATCH", f"/people/{person.id}"),
                                   ("PATCH", "/people/424242"),
                                   ("PUT", "/images/1/faces/0/person")]),
           content_type=st.sampled_from(["application/json", "text/plain",
                                         "application/x-www-form-urlencoded"]))
    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def send(body: bytes, target: tuple[str, str], content_type: str) -> None:
        method, path = target
        reply = receiver.call(method, path, body, {"Content-Type": content_type})
        assert reply.status in (200, 201, 400, 404, 409), (reply.status, body[:100], reply.text)
        answer = reply.json()
        assert answer["error"] if reply.status >= 400 else answer
        seen.add(reply.status)

    send()
    assert {400, 201} <= seen
    assert receiver.process.running
    # Every stored name is a usable one.
    for row in db.query("SELECT name FROM person"):
        assert people.check_name(row.name) == row.name


def test_any_upload_is_answered_and_only_whole_images_are_stored(receiver, db, image_dirs):
    _, unknown = image_dirs
    seen: set[int] = set()

    @given(files=st.lists(_file_bytes, min_size=0, max_size=3),
           raw=st.booleans(), garbage=st.binary(max_size=300),
           path=st.sampled_from(["/images/upload", "/people/1/photos"]))
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def send(files: list[bytes], raw: bool, garbage: bytes, path: str) -> None:
        body = garbage if raw else _multipart(files)
        reply = receiver.call("POST", path, body,
                              {"Content-Type": "multipart/form-data; boundary=fuzzb0undary"})
        assert reply.status in (200, 202, 400, 404, 413), (reply.status, reply.text)
        answer = reply.json()
        assert answer["error"] if reply.status >= 400 else answer["images"]
        seen.add(reply.status)

    send()
    assert 400 in seen and 202 in seen
    assert receiver.process.running
    # Each stored image is an uploaded file that decodes whole; no stray files.
    stored = {r.path for r in db.query("SELECT path, uploaded FROM images") if r.uploaded}
    on_disk = {p.relative_to(unknown).as_posix() for p in unknown.rglob("*") if p.is_file()}
    assert stored == on_disk
    for path in stored:
        with Image.open(unknown / path) as im:
            im.load()
