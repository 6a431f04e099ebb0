"""The frontend's pages over HTTP, on rows written into the real database."""

from __future__ import annotations

import re

from PIL import Image

from kubeface.core.statuses import Status
from tests.support.rows import Table, add_image
from tests.support.web import WebService


def _page(frontend: WebService, path: str = "/") -> str:
    reply = frontend.call("GET", path)
    assert reply.status == 200, (path, reply.status, reply.text[:500])
    assert reply.headers["Content-Type"].startswith("text/html")
    return reply.text


def test_table_shows_each_image_newest_first_with_person_status_faces_and_error(frontend, db):
    first = add_image(db, "a/unknown0001.jpg", "processed", "Barack Obama",
                      faces=[(10, 60, 60, 10, "Barack Obama")])
    second = add_image(db, "unknown0002.jpg", "failed", error="file not found: unknown0002.jpg")
    third = add_image(db, "unknown0003.jpg", "no_face")
    table = Table(_page(frontend))
    assert table.ids == [third, second, first]
    by_id = {int(r[0]): r for r in table.rows}
    # id, path, person, status in words, faces, error, last update
    assert by_id[first][1:6] == ["a/unknown0001.jpg", "Barack Obama",
                                 "Processed: person recognised", "1", ""]
    assert by_id[second][3:6] == ["Failed", "", "file not found: unknown0002.jpg"]
    assert by_id[third][3:5] == ["No face found", "0"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", by_id[first][6])


def test_script_in_a_name_or_path_is_shown_as_text(frontend, db):
    evil_name = '<script>alert("name")</script>'
    evil_path = '<img src=x onerror=alert(1)><script>alert("path")</script>.jpg'
    image_id = add_image(db, evil_path, "processed", evil_name, faces=[(1, 5, 5, 1, evil_name)])
    for path in ("/", f"/images/{image_id}"):
        html = _page(frontend, path)
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in html
    row = Table(_page(frontend)).rows[0]
    assert row[1:3] == [evil_path, evil_name]  # the text a person reads is the raw text


def test_counts_per_status_and_the_status_filter(frontend, db):
    for i in range(3):
        add_image(db, f"p{i}.jpg", "processed", "Joe Biden")
    add_image(db, "u.jpg", "unknown")
    add_image(db, "f.jpg", "failed", error="not an image")
    html = _page(frontend)
    counts = dict(re.findall(r'data-status="(\w+)">[^<]*<span class="count">(\d+)</span>', html))
    assert counts == {"pending": "0", "processing": "0", "processed": "3", "unknown": "1",
                      "no_face": "0", "failed": "1"}
    assert "All: 5" in html
    only_failed = Table(_page(frontend, "/?status=failed"))
    assert [r[1] for r in only_failed.rows] == ["f.jpg"]
    # An unknown status is not an error: the whole table.
    assert len(Table(_page(frontend, "/?status=<bogus>")).rows) == 5


def test_the_page_reloads_itself_only_while_work_is_pending(frontend, db):
    image_id = add_image(db, "busy.jpg", "pending")
    assert '<meta http-equiv="refresh" content="5">' in _page(frontend)
    db.execute("UPDATE images SET status = :s WHERE id = :i", s=Status.PROCESSED.value,
               i=image_id)
    assert 'http-equiv="refresh"' not in _page(frontend)


def _com_select(mariadb) -> int:
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
        return int(cur.fetchone()[1])


def test_ten_thousand_images_are_paged_with_the_same_few_queries_per_page(frontend, db,
                                                                          mariadb):
    # 10,000 rows in one statement (MariaDB's sequence engine), with persons on some.
    add_image(db, "seed.jpg", "processed", "Grace Hopper")
    db.execute("INSERT INTO images (path, status, person_id, face_count)"
               " SELECT CONCAT('bulk/', seq, '.jpg'), IF(seq % 2, :known, :unknown),"
               " IF(seq % 2, (SELECT id FROM person LIMIT 1), NULL), 1 FROM seq_1_to_9999",
               known=Status.PROCESSED.value, unknown=Status.UNKNOWN.value)
    _page(frontend)  # the pool's first connections ask the server's version and modes: warm up
    before = _com_select(mariadb)
    first = Table(_page(frontend))
    selects_for_50_rows = _com_select(mariadb) - before
    assert len(first.rows) == 50
    assert first.ids == list(range(10000, 9950, -1))
    assert first.rows[0][2] == "Grace Hopper" and first.rows[1][2] == ""
    assert "Newer" not in first.links

    older = Table(_page(frontend, first.links["Older"]))
    assert older.ids == list(range(9950, 9900, -1))
    newer = Table(_page(frontend, older.links["Newer"]))
    assert newer.ids == first.ids

    # The cost of a page does not grow with its rows: no query per row.
    db.execute("DELETE FROM images WHERE id > 5")
    before = _com_select(mariadb)
    assert len(Table(_page(frontend)).rows) == 5
    assert _com_select(mariadb) - before == selects_for_50_rows <= 3


def test_paging_within_a_status_keeps_the_filter_and_ends(frontend, db):
    ids = [add_image(db, f"n{i}.jpg", "no_face") for i in range(60)]
    add_image(db, "other.jpg", "failed")
    page = Table(_page(frontend, "/?status=no_face"))
    assert page.ids == ids[::-1][:50]
    last = Table(_page(frontend, page.links["Older"]))
    assert last.ids == ids[::-1][50:]
    assert "Older" not in last.links
    assert "status=no_face" in last.links["Newer"]


def test_image_page_draws_and_names_each_face_and_serves_the_picture(frontend, db,
                                                                     image_dirs):
    _, unknown = image_dirs
    Image.new("RGB", (640, 480), (200, 180, 160)).save(unknown / "group.jpg")
    image_id = add_image(db, "group.jpg", "processed", "Barack Obama", faces=[
        (40, 200, 160, 80, "Barack Obama"), (60, 520, 200, 380, None)])
    html = _page(frontend, f"/images/{image_id}")
    assert 'viewBox="0 0 640 480"' in html
    rects = re.findall(r'<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', html)
    assert rects == [("80", "40", "120", "120"), ("380", "60", "140", "140")]
    labels = re.findall(r"<text [^>]*>([^<]*)</text>", html)
    assert labels == ["Barack Obama", "unknown"]
    picture = frontend.call("GET", f"/images/{image_id}/picture")
    assert picture.status == 200
    assert picture.headers["Content-Type"] == "image/jpeg"
    assert picture.data == (unknown / "group.jpg").read_bytes()


def test_pictures_come_only_from_the_image_root(frontend, db, image_dirs, tmp_path):
    _, unknown = image_dirs
    secret = tmp_path / "secret.jpg"
    Image.new("RGB", (8, 8)).save(secret)
    (unknown / "link.jpg").symlink_to(secret)
    (unknown / "page.html").write_text("<script>alert(1)</script>")
    link = add_image(db, "link.jpg", "failed", error="outside")
    missing = add_image(db, "missing.jpg", "failed", error="file not found")
    html_file = add_image(db, "page.html", "failed", error="not an image")
    for image_id, problem in ((link, "outside the image root"),
                              (missing, "not in the image folder"),
                              (html_file, "not a readable image")):
        assert problem in _page(frontend, f"/images/{image_id}")
        reply = frontend.call("GET", f"/images/{image_id}/picture")
        assert reply.status == 404 and b"alert(1)" not in reply.data
        assert secret.read_bytes() not in reply.data


def test_unknown_pages_and_ids_are_404_pages(frontend, db):
    for path in ("/images/999", "/images/999/picture", "/nope"):
        reply = frontend.call("GET", path)
        assert reply.status == 404, path
        assert reply.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["Content-Security-Policy"]


def test_a_bad_number_in_a_url_is_a_400_page_that_says_so(frontend, db):
    # The same parser as the receiver's: not a number, or past the largest id, is the
    # client's mistake (a 5000-digit number too, which Python's int() refuses).
    add_image(db, "one.jpg", "processed", "Joe Biden")
    for path, name in (("/images/abc", "image id"), ("/images/99999999999999999999999", "image id"),
                       ("/images/" + "9" * 5000, "image id"), ("/images/0/picture", "image id"),
                       ("/?before=x", "before"), ("/?after=-1", "after"),
                       ("/?before=" + "1" * 5000, "before")):
        reply = frontend.call("GET", path)
        assert reply.status == 400, (path[:40], reply.status)
        assert reply.headers["Content-Type"].startswith("text/html")
        assert f"{name} must be an integer from 1 to" in reply.text
        assert len(reply.data) < 5000  # the page does not repeat the digits
    assert len(Table(_page(frontend, "/?before=")).rows) == 1  # empty is absent


def test_pages_carry_a_no_script_security_policy(frontend, db):
    reply = frontend.call("GET", "/")
    assert "script-src" not in reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    # The index has no form: it sets no CSRF cookie.
    assert "kubeface_csrf" not in reply.headers.get("Set-Cookie", "")


def test_database_away_gives_a_503_page_and_the_frontend_recovers(frontend, db, mariadb):
    add_image(db, "before.jpg", "processed", "Joe Biden")
    assert len(Table(_page(frontend)).rows) == 1
    mariadb.stop()
    try:
        for _ in range(2):  # not only the first failure: it stays a page, never a crash
            reply = frontend.call("GET", "/")
            assert reply.status == 503
            assert "The database is unavailable" in reply.text
            assert reply.headers["Retry-After"] == "5"
            assert 'http-equiv="refresh"' in reply.text
        ready = frontend.call("GET", "/readyz")
        # Answered like the receiver's: JSON that names what is away.
        assert ready.status == 503 and ready.headers["Retry-After"] == "5"
        assert ready.json() == {"status": "unavailable",
                                "checks": {"database": "unreachable (OperationalError)"}}
        assert frontend.call("GET", "/healthz").status == 200
        assert frontend.process.running
    finally:
        mariadb.start()
    rows = Table(_page(frontend)).rows
    assert [r[1:3] for r in rows] == [["before.jpg", "Joe Biden"]]
    assert frontend.call("GET", "/readyz").json() == {"status": "ok",
                                                       "checks": {"database": "ok"}}
