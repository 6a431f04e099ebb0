"""The receiver's people API end to end: real MariaDB, nsqd, face service (dlib) and processor,
real photos. Bad input on every endpoint is a clear 4xx that stores nothing."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import time
from pathlib import Path

import pytest
import urllib3
from PIL import Image

from tests.support.face import png_claiming
from tests.support.web import AUTH, Reply, WebService


@pytest.fixture
def api(service_env, face_service, db, tmp_path):
    """The receiver, wired to the face service that encodes people's photos."""
    service = WebService("receiver", {**service_env, "GRPC_ADDRESS": face_service.address},
                         tmp_path / "receiver.log").start()
    yield service
    service.stop()


def send_files(service: WebService, path: str, files: list[tuple[str, bytes]],
               **fields: str) -> Reply:
    parts: list = [("file", (name, data, "application/octet-stream")) for name, data in files]
    parts += list(fields.items())
    r = service.http.request("POST", service.url + path, fields=parts,
                             headers=service.auth_headers())
    return Reply(r.status, r.headers, r.data)


def call_json(service: WebService, method: str, path: str, payload=None) -> Reply:
    body = None if payload is None else json.dumps(payload)
    return service.call(method, path, body, {"Content-Type": "application/json"})


def counts(db) -> dict[str, int]:
    return {t: db.query(f"SELECT COUNT(*) AS n FROM {t}")[0].n
            for t in ("person", "person_photos", "images", "face_rejections")}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def jpeg(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(out, "JPEG")
    return out.getvalue()


def wait_status(api: WebService, image_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image = api.get_json(f"/images/{image_id}")
        if image["status"] not in ("pending", "processing"):
            return image
        time.sleep(0.3)
    pytest.fail(f"image {image_id} still {image['status']} after {timeout}s")


def test_people_crud_and_its_errors(api, db):
    created = call_json(api, "POST", "/people", {"name": "Ada Lovelace"})
    assert created.status == 201, created.text
    ada = created.json()
    assert ada == {"id": ada["id"], "name": "Ada Lovelace"}
    assert call_json(api, "POST", "/people", {"name": "Alan Turing"}).status == 201
    before = counts(db)
    for payload, status in [({"name": "Ada Lovelace"}, 409), ({"name": ""}, 400),
                            ({"name": "x" * 256}, 400), ({"nom": "x"}, 400), ([1], 400),
                            ({"name": 5}, 400)]:
        reply = call_json(api, "POST", "/people", payload)
        assert reply.status == status and reply.json()["error"], (payload, reply.text)
    assert api.call("POST", "/people", b"\xff\xfe", {}).status == 400
    assert counts(db) == before  # nothing stored by any of them

    listed = api.get_json("/people?q=ADA")
    assert [p["name"] for p in listed["people"]] == ["Ada Lovelace"]
    assert listed["people"][0] == {"id": ada["id"], "name": "Ada Lovelace", "photos": 0,
                                   "images": 0}
    assert listed["total"] == 1
    assert api.get_json("/people")["total"] == 5  # the three enrolled from the known folder too

    assert call_json(api, "PATCH", f"/people/{ada['id']}", {"name": "Alan Turing"}).status == 409
    renamed = call_json(api, "PATCH", f"/people/{ada['id']}", {"name": "Countess Lovelace"})
    assert renamed.status == 200 and renamed.json()["name"] == "Countess Lovelace"
    assert renamed.json()["photos"] == []
    for bad in ("/people/0", "/people/abc", "/people/99999999999"):
        assert api.call("GET", bad).status == 400
    assert api.call("GET", "/people/999999").status == 404
    assert api.call("DELETE", f"/people/{ada['id']}").status == 204
    assert api.call("DELETE", f"/people/{ada['id']}").status == 404
    assert call_json(api, "PATCH", f"/people/{ada['id']}", {"name": "Z"}).status == 404
    assert api.call("GET", "/people?limit=0").status == 400


def test_photos_of_a_person_and_every_bad_photo(api, db, photos, image_dirs):
    _, unknown = image_dirs
    tom = call_json(api, "POST", "/people", {"name": "Tom Hanks"}).json()
    before, stored = counts(db), files_under(unknown)
    sample = photos / "unknown"
    bad = [
        ([("notes.txt", b"hello, not an image")], 400, "not an image"),
        ([("empty.jpg", b"")], 400, "empty"),
        ([("cut.jpg", (sample / "obama2.jpg").read_bytes()[:5000])], 400, "truncated"),
        ([("logo.png", (sample / "matplotlib_logo.png").read_bytes())], 400, "no face"),
        ([("group.jpg", (sample / "group_six.jpg").read_bytes())], 400, "6 faces"),
        ([("huge.png", png_claiming(50_000, 50_000))], 413, "pixels"),
        ([("a.jpg", jpeg()), ("b.jpg", jpeg((10, 10)))], 400, "one file"),
        ([], 400, "\"file\""),
    ]
    for files, status, words in bad:
        reply = send_files(api, f"/people/{tom['id']}/photos", files)
        assert reply.status == status, (files[:1], reply.text)
        assert words in reply.json()["error"], reply.text
    assert send_files(api, "/people/999999/photos",
                      [("t.png", (sample / "tom_hanks.png").read_bytes())]).status == 404
    assert send_files(api, f"/people/{tom['id']}/photos",
                      [("g.jpg", (sample / "group_six.jpg").read_bytes())], face="9").status == 400
    assert counts(db) == before and files_under(unknown) == stored  # nothing stored

    added = send_files(api, f"/people/{tom['id']}/photos",
                       [("tom.png", (sample / "tom_hanks.png").read_bytes())])
    assert added.status == 201, added.text
    box = added.json()["face"]
    assert box["right"] > box["left"] and box["bottom"] > box["top"]
    person = api.get_json(f"/people/{tom['id']}")
    (photo,) = person["photos"]
    assert photo["source"] == "upload" and (unknown / photo["file"]).is_file()
    # One face of a group photo, chosen by its index.
    group = send_files(api, f"/people/{tom['id']}/photos",
                       [("g.jpg", (sample / "group_six.jpg").read_bytes())], face="2")
    assert group.status == 201, group.text

    # The face service matches the new person within seconds (it polls the people version).
    deadline = time.monotonic() + 5
    while api.get_json("/people?q=tom")["people"][0]["photos"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.call("DELETE", f"/people/{tom['id']}/photos/{photo['id']}").status == 204
    assert api.call("DELETE", f"/people/{tom['id']}/photos/{photo['id']}").status == 404
    assert not (unknown / photo["file"]).exists()


def test_upload_recognise_correct_and_delete(api, processor, db, photos, image_dirs):
    _, unknown = image_dirs
    sample = photos / "unknown"
    obama = (sample / "obama2.jpg").read_bytes()
    posted = send_files(api, "/images/upload", [("obama2.jpg", obama),
                                                ("tom.png", (sample / "tom_hanks.png")
                                                 .read_bytes())])
    assert posted.status == 202, posted.text
    body = posted.json()
    assert body["accepted"] == 2 and body["published"] is True
    paths = {i["path"] for i in body["images"]}
    assert f"uploads/{hashlib.sha256(obama).hexdigest()}.jpg" in paths
    assert all((unknown / p).is_file() for p in paths)
    # The same bytes again are the same image.
    again = send_files(api, "/images/upload", [("copy.jpg", obama)])
    assert again.status == 200 and again.json()["already_posted"] == 1

    ids = {i["path"].rsplit(".", 1)[1]: i["id"] for i in body["images"]}
    recognised = wait_status(api, ids["jpg"])
    assert recognised["status"] == "processed" and recognised["person"] == "Barack Obama"
    stranger = wait_status(api, ids["png"])
    assert stranger["status"] == "unknown"
    stored = db.query("SELECT COUNT(*) AS n FROM faces WHERE encoding IS NOT NULL")[0].n
    assert stored == 2  # every face's encoding is kept

    # "This face is Tom Hanks": the image is re-labelled at once, his crop is his photo.
    tom = call_json(api, "POST", "/people", {"name": "Tom Hanks"}).json()
    named = call_json(api, "PUT", f"/images/{ids['png']}/faces/0/person",
                      {"person_id": tom["id"]})
    assert named.status == 200, named.text
    assert named.json()["status"] == "processed" and named.json()["person"] == "Tom Hanks"
    (crop,) = api.get_json(f"/people/{tom['id']}")["photos"]
    assert crop["source"] == "face" and crop["from_image_id"] == ids["png"]
    with Image.open(unknown / crop["file"]) as im:
        assert im.format == "JPEG" and im.width < 400

    # "Not this person" on the Obama match: never him again for that face.
    rejected = api.call("DELETE", f"/images/{ids['jpg']}/faces/0/person")
    assert rejected.status == 200 and rejected.json()["status"] == "unknown", rejected.text
    assert rejected.json()["faces"][0]["person"] is None
    assert api.call("DELETE", f"/images/{ids['jpg']}/faces/0/person").status == 409
    for bad in (f"/images/{ids['jpg']}/faces/7/person", "/images/999999/faces/0/person"):
        assert api.call("DELETE", bad).status == 404
    for payload in ({"person_id": 999999}, ):
        assert call_json(api, "PUT", f"/images/{ids['png']}/faces/0/person",
                         payload).status == 404
    for payload in ({"person_id": "1"}, {"person_id": True}, {}, {"person_id": 0}):
        assert call_json(api, "PUT", f"/images/{ids['png']}/faces/0/person",
                         payload).status == 400

    # Deleting an uploaded image deletes its file.
    jpg_path = next(p for p in paths if p.endswith(".jpg"))
    assert api.call("DELETE", f"/images/{ids['jpg']}").status == 204
    assert not (unknown / jpg_path).exists()
    assert api.call("GET", f"/images/{ids['jpg']}").status == 404
    assert api.call("DELETE", f"/images/{ids['jpg']}").status == 404


def test_bad_uploads_store_nothing(api, db, photos, image_dirs):
    _, unknown = image_dirs
    before, stored = counts(db), files_under(unknown)
    good = (photos / "unknown" / "obama2.jpg").read_bytes()
    for files, status in [
        ([("a.txt", b"plain text")], 400),
        ([("e.jpg", b"")], 400),
        ([("t.jpg", good[: len(good) // 2])], 400),
        ([("ok.jpg", good), ("bad.txt", b"nope")], 400),  # one bad file: none stored
        ([("huge.png", png_claiming(60_000, 60_000))], 413),
        ([(f"{i}.jpg", jpeg((8 + i, 8))) for i in range(101)], 413),
    ]:
        reply = send_files(api, "/images/upload", files)
        assert reply.status == status, (status, reply.text)
        assert reply.json()["error"]
    plain = api.call("POST", "/images/upload", b"x", {"Content-Type": "text/plain"})
    assert plain.status == 400
    broken = api.call("POST", "/images/upload", b"--zz\r\nnonsense",
                      {"Content-Type": "multipart/form-data; boundary=zz"})
    assert broken.status == 400, broken.text
    huge = api.http.request("POST", api.url + "/images/upload", body=b"0" * (33 << 20),
                            headers={"Content-Type": "multipart/form-data; boundary=zz",
                                     **api.auth_headers()},
                            retries=urllib3.Retry(0, read=False))
    assert huge.status == 413
    assert counts(db) == before and files_under(unknown) == stored


def test_a_json_body_over_the_limit_is_413_and_closes_the_connection(api, db):
    """The body is left unread: the connection must not carry another request."""
    before = counts(db)
    body = json.dumps({"name": "x" * 100_000}).encode()
    head = (b"POST /people HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + AUTH
            + b"Content-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", api.port), timeout=15) as conn:
        conn.sendall(head + body)
        answer = b""
        while chunk := conn.recv(65536):  # times out if the server keeps the connection
            answer += chunk
    status, headers = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n", 1)
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"connection: close" in headers.lower(), headers
    assert counts(db) == before
