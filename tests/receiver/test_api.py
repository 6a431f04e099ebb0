"""The receiver's API against the real receiver process, MariaDB and nsqd."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import pytest

from kubeface.core.messages import TOPIC
from kubeface.core.statuses import Status
from tests.support.web import AUTH, WebService


def _rows(db) -> list[tuple[int, str, str]]:
    return [(r.id, r.path, r.status) for r in db.query(
        "SELECT id, path, status FROM images ORDER BY id")]


def _depth(nsq) -> int:
    return nsq.topic_depth(TOPIC)


@pytest.mark.parametrize("nsq", ["plain", "tls"], indirect=True)
def test_the_articles_curl_post_stores_a_pending_image_and_publishes_its_id(receiver, db,
                                                                            nsq):
    # curl -d '{"path":"unknown0001.jpg"}' sends a JSON body labelled as a form.
    reply = receiver.call("POST", "/image/post", '{"path":"unknown0001.jpg"}',
                          {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 202, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["path"] == "unknown0001.jpg" and body["status"] == "pending"
    assert body["already_posted"] is False and body["published"] is True
    assert _rows(db) == [(body["id"], "unknown0001.jpg", "pending")]
    assert _depth(nsq) == 1


def test_a_path_posted_again_keeps_its_id_and_is_not_published_again(receiver, db, nsq,
                                                                     image_dirs):
    _, unknown = image_dirs
    first = receiver.post_json("/image/post", {"path": "a/b.jpg"}).json()
    # The same image, written three other ways, and with application/json.
    for same in ("a/b.jpg", "./a//b.jpg", str(unknown / "a" / "b.jpg")):
        reply = receiver.post_json("/image/post", {"path": same}, form=False)
        assert reply.status == 200, reply.text
        assert reply.json()["id"] == first["id"] and reply.json()["already_posted"] is True
        assert "already posted" in reply.json()["message"]
    db.execute("UPDATE images SET status = :s WHERE id = :i", s=Status.PROCESSED.value,
               i=first["id"])
    again = receiver.post_json("/image/post", {"path": "a/b.jpg"}).json()
    assert again["status"] == "processed"  # its current status, not "pending"
    assert len(_rows(db)) == 1
    assert _depth(nsq) == 1


@pytest.mark.parametrize("nsq", ["plain", "tls"], indirect=True)
def test_bulk_post_stores_all_in_one_go_and_publishes_only_the_new_ones(receiver, db, nsq):
    old = receiver.post_json("/image/post", {"path": "old.jpg"}).json()["id"]
    reply = receiver.post_json("/images/post", {"paths": [
        {"path": "n1.jpg"}, {"path": "old.jpg"}, {"path": "n2.jpg"}, {"path": "n1.jpg"}]})
    assert reply.status == 202, reply.text
    body = reply.json()
    assert [(i["path"], i["already_posted"]) for i in body["images"]] == [
        ("n1.jpg", False), ("old.jpg", True), ("n2.jpg", False), ("n1.jpg", True)]
    ids = [i["id"] for i in body["images"]]
    assert ids[1] == old and ids[0] == ids[3] and len(set(ids)) == 3
    assert (body["accepted"], body["already_posted"], body["published"]) == (2, 2, True)
    assert _depth(nsq) == 3  # old.jpg once, n1 and n2 once each
    # Everything already there: 200, nothing published.
    again = receiver.post_json("/images/post", {"paths": [{"path": "n2.jpg"}]})
    assert again.status == 200 and again.json()["accepted"] == 0
    assert _depth(nsq) == 3


def test_unicode_paths_are_stored_as_given(receiver, db):
    name = "ünïcode päth/顔 😀.jpg"
    body = receiver.post_json("/image/post", {"path": name}).json()
    assert _rows(db) == [(body["id"], name, "pending")]
    assert receiver.post_json("/image/post", {"path": name}).json()["id"] == body["id"]


BAD_SINGLE = [
    (b"", "empty body"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"x.jpg"', "must be a JSON object"),
    (b"{}", 'no "path" field'),
    (b'{"path": 42}', "must be a string, got int"),
    (b'{"path": null}', "must be a string"),
    (b'{"path": ""}', "path is empty"),
    (b'{"path": "   "}', "path is empty"),
    (b'{"path": "../etc/passwd"}', "contains '..'"),
    (b'{"path": "a/../../x.jpg"}', "contains '..'"),
    (b'{"path": "/etc/passwd"}', "outside the image root"),
    (b'{"path": "a\\u0000b.jpg"}', "NUL"),
    (b'{"path": "\\ud800.jpg"}', "not valid Unicode"),
    (b'{"path": "' + b"a" * 1025 + b'"}', "longer than 1024"),
    (b"[" * 50000 + b"]" * 50000, "nested too deeply"),
]


def test_a_bad_single_post_is_a_400_that_says_what_is_wrong(receiver, db, nsq):
    # One receiver for every case (a process per case would only cost time).
    for body, message in BAD_SINGLE:
        reply = receiver.call("POST", "/image/post", body,
                              {"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status == 400, (message, reply.text)
        assert message in reply.json()["error"], reply.text
    assert _rows(db) == [] and _depth(nsq) == 0


BAD_BULK = [
    (b'{"path": "x.jpg"}', 'like {"paths"'),
    (b'{"paths": "x.jpg"}', '"paths" must be a list, got str'),
    (b'{"paths": []}', '"paths" is empty'),
    (b'{"paths": ["x.jpg"]}', "paths[0] must be an object"),
    (b'{"paths": [{"path": "ok.jpg"}, {"file": "x.jpg"}]}', 'paths[1] has no "path" field'),
    (b'{"paths": [{"path": "ok.jpg"}, {"path": "../x.jpg"}]}', "paths[1]: path '../x.jpg'"),
]


def test_a_bad_bulk_post_is_a_400_and_stores_nothing(receiver, db, nsq):
    for body, message in BAD_BULK:
        reply = receiver.call("POST", "/images/post", body)
        assert reply.status == 400, (message, reply.text)
        error = reply.json()
        assert message in error["error"] + " ".join(error.get("details", [])), reply.text
    assert _rows(db) == [] and _depth(nsq) == 0


def test_bodies_and_lists_over_the_limits_are_413(service_env, db, nsq, tmp_path):
    env = {**service_env, "RECEIVER_MAX_BODY_BYTES": "200", "RECEIVER_MAX_PATHS": "3"}
    service = WebService("receiver", env, tmp_path / "receiver.log").start()
    try:
        four = {"paths": [{"path": f"{i}.jpg"} for i in range(4)]}
        reply = service.post_json("/images/post", four)
        assert reply.status == 413 and "RECEIVER_MAX_PATHS" in reply.json()["error"]
        big = {"path": "x" * 300 + ".jpg"}
        reply = service.post_json("/image/post", big)
        assert reply.status == 413 and "RECEIVER_MAX_BODY_BYTES" in reply.json()["error"]
        # Chunked (no Content-Length): the limit holds while reading.
        reply = service.call("POST", "/image/post", iter([b'{"path": "', b"y" * 300, b'"}']))
        assert reply.status == 413
        assert service.post_json("/images/post", {"paths": four["paths"][:3]}).status == 202
    finally:
        service.stop()
    assert len(_rows(db)) == 3 and _depth(nsq) == 3


def test_nsqd_away_still_stores_and_says_the_retry_job_will_publish(receiver, db, nsq):
    nsq.stop_nsqd()
    single = receiver.post_json("/image/post", {"path": "while-down.jpg"})
    bulk = receiver.post_json("/images/post", {"paths": [{"path": "d1.jpg"}, {"path": "d2.jpg"}]})
    for reply in (single, bulk):
        assert reply.status == 202, reply.text
        assert reply.json()["published"] is False
        assert "retry job will publish" in reply.json()["message"]
    assert [r[2] for r in _rows(db)] == ["pending"] * 3
    ready = receiver.call("GET", "/readyz")
    assert ready.status == 503 and ready.json()["checks"]["database"] == "ok"
    assert "unreachable" in ready.json()["checks"]["nsqd"]
    assert receiver.call("GET", "/healthz").status == 200
    nsq.start_nsqd()
    assert receiver.call("GET", "/readyz").status == 200
    assert receiver.post_json("/image/post", {"path": "after.jpg"}).json()["published"] is True


def test_database_away_is_a_503_and_the_receiver_recovers(receiver, db, nsq, mariadb):
    mariadb.stop()
    try:
        reply = receiver.post_json("/image/post", {"path": "x.jpg"})
        assert reply.status == 503 and "database is unreachable" in reply.json()["error"]
        assert reply.headers["Retry-After"]
        assert receiver.post_json("/images/post", {"paths": [{"path": "y.jpg"}]}).status == 503
        assert receiver.call("GET", "/images/1").status == 503
        ready = receiver.call("GET", "/readyz")
        assert ready.status == 503 and ready.json()["checks"]["nsqd"] == "ok"
        assert receiver.call("GET", "/healthz").status == 200
    finally:
        mariadb.start()
    assert receiver.post_json("/image/post", {"path": "x.jpg"}).status == 202
    assert receiver.call("GET", "/readyz").status == 200
    assert _depth(nsq) == 1  # nothing was published for the refused posts


def test_get_one_image_with_its_person_faces_and_error(receiver, db):
    posted = receiver.post_json("/image/post", {"path": "group.jpg"}).json()
    with db.transaction() as conn:
        conn.query("INSERT INTO person (name) VALUES ('Barack Obama')")
        conn.query("UPDATE images SET status = :s, face_count = 2, person_id = "
                   "(SELECT id FROM person) WHERE id = :i", s=Status.PROCESSED.value,
                   i=posted["id"])
        conn.query("INSERT INTO faces (image_id, face_index, box_top, box_right, box_bottom,"
                   " box_left, person_id, known_image, distance) VALUES"
                   " (:i, 0, 10, 90, 80, 20, (SELECT id FROM person), 'obama.jpg', 0.31),"
                   " (:i, 1, 15, 200, 85, 130, NULL, NULL, 0.74)", i=posted["id"])
    image = receiver.get_json(f"/images/{posted['id']}")
    assert (image["status"], image["person"], image["face_count"]) == ("processed",
                                                                      "Barack Obama", 2)
    assert [(f["person"], f["known_image"], f["left"], f["distance"]) for f in
            image["faces"]] == [("Barack Obama", "obama.jpg", 20, 0.31), (None, None, 130, 0.74)]
    failed = receiver.post_json("/image/post", {"path": "gone.jpg"}).json()
    db.execute("UPDATE images SET status = :s, last_error = 'file not found' WHERE id = :i",
               s=Status.FAILED.value, i=failed["id"])
    assert receiver.get_json(f"/images/{failed['id']}")["error"] == "file not found"
    assert receiver.call("GET", "/images/999").status == 404
    assert receiver.call("GET", "/images/abc").status == 400
    assert receiver.call("GET", "/images/" + "9" * 30).status == 400  # past the largest id


def test_list_images_newest_first_by_status_with_limit_and_offset(receiver, db):
    ids = [receiver.post_json("/image/post", {"path": f"{n}.jpg"}).json()["id"]
           for n in range(7)]
    db.execute("UPDATE images SET status = :s WHERE id IN :ids", s=Status.NO_FACE.value,
               ids=tuple(ids[:3]))
    listed = receiver.get_json("/images?limit=4")
    assert [i["id"] for i in listed["images"]] == ids[::-1][:4]
    assert [i["id"] for i in receiver.get_json("/images?limit=4&offset=4")["images"]] == \
        ids[::-1][4:]
    assert [i["id"] for i in receiver.get_json("/images?status=no_face")["images"]] == \
        ids[:3][::-1]
    for bad in ("status=nope", "limit=0", "limit=100000", "offset=-1", "limit=x"):
        reply = receiver.call("GET", f"/images?{bad}")
        assert reply.status == 400 and reply.json()["error"], bad


def test_unknown_endpoints_and_methods_answer_json(receiver):
    missing = receiver.call("GET", "/nope")
    assert missing.status == 404 and "/openapi.json" in missing.json()["error"]
    wrong = receiver.call("GET", "/image/post")
    assert wrong.status == 405 and "POST" in wrong.json()["error"]


def test_concurrent_posts_of_the_same_paths_store_and_publish_each_once(receiver, db, nsq):
    paths = [{"path": f"same/{i}.jpg"} for i in range(300)]
    results, errors = [], []
    start = threading.Barrier(6)

    def post(offset: int) -> None:
        try:
            start.wait(10)
            # Each client posts the same paths in a different order.
            mine = paths[offset:] + paths[:offset]
            results.append(receiver.post_json("/images/post", {"paths": mine}).json())
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(k * 50,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_rows(db)) == 300
    assert sum(r["accepted"] for r in results) == 300  # each path new for exactly one client
    assert _depth(nsq) == 300


def test_sigterm_lets_the_request_in_flight_finish(service_env, db, nsq, tmp_path):
    service = WebService("receiver", service_env, tmp_path / "receiver.log").start()
    body = json.dumps({"path": "in-flight.jpg"}).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as conn:
        conn.sendall(b"POST /image/post HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
        time.sleep(0.5)  # the request is being read by a worker
        service.process.signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.sendall(body[5:])
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    assert service.process.proc.wait(30) == 0
    assert [r[1] for r in _rows(db)] == ["in-flight.jpg"]
    assert "draining" in service.process.log.read_text()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_huge_integers_in_a_body_or_a_url_are_a_400(receiver, db, nsq):
    huge = "1" * 5000  # past Python's 4300-digit limit on int()
    for url, body in (("/image/post", '{"path": ' + huge + "}"),
                      ("/images/post", '{"paths": [{"path": ' + huge + "}]}"),
                      ("/people", '{"name": ' + huge + "}")):
        reply = receiver.call("POST", url, body, FORM)
        assert reply.status == 400, (url, reply.status, reply.text[:300])
        assert "number" in reply.json()["error"]
    for url in (f"/images/{huge}", f"/images?limit={huge}", f"/images?offset={huge}",
                f"/people/{huge}", f"/people?offset={huge}",
                "/images?limit=" + "0" * 5000 + "7"):
        reply = receiver.call("GET", url)
        if url.endswith("7"):  # leading zeros are still the number 7
            assert reply.status == 200, reply.text[:300]
            continue
        assert reply.status == 400, (url[:40], reply.status, reply.text[:300])
        assert "must be an integer from" in reply.json()["error"]
        assert len(reply.data) < 500  # the answer does not repeat the 5000 digits
    assert _rows(db) == [] and _depth(nsq) == 0


def _raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is and read the answer until the server closes the connection
    (a server that kept it open would fail this with a timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=40) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_stalled_body_is_a_408_and_a_broken_content_length_a_400(receiver, db, nsq):
    head = (b"POST /image/post HTTP/1.1\r\nHost: x\r\n" + AUTH
            + b"Content-Type: application/json\r\n")
    body = json.dumps({"path": "stalled.jpg"}).encode()
    # Ten bytes fewer than announced, then silence: answered once the read time is up.
    stalled = _raw(receiver.port, head + b"Content-Length: %d\r\n\r\n" % (len(body) + 10)
                   + body)
    assert stalled.startswith(b"HTTP/1.1 408 "), stalled[:300]
    assert b"did not arrive in time" in stalled  # the receiver's JSON, not a bare status
    sized = b"Content-Length: %d\r\n" % len(body)
    for lengths in (b"Content-Length: -1\r\n",
                    b"Content-Length: 5\r\n" + sized,  # the last one would be read whole
                    sized + b"Content-Length: 5\r\n",  # the rest would be a second request
                    b"Content-Length: 0x10\r\n"):
        answer = _raw(receiver.port, head + lengths + b"\r\n" + body)
        assert answer.startswith(b"HTTP/1.1 400 "), (lengths, answer[:300])
        assert answer.count(b"HTTP/1.1 ") == 1, answer  # nothing of the body was a request
    assert _rows(db) == [] and _depth(nsq) == 0
    assert receiver.post_json("/image/post", {"path": "after.jpg"}).status == 202
