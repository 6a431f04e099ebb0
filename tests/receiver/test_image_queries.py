"""The shared image SQL (kubeface.core.image_queries) on the real MariaDB: paths of any text
stored exactly, the Python path hash equal to the database's, ids and statuses as posted."""

from __future__ import annotations

import logging

from kubeface.core.image_queries import insert_pending, list_images, path_sha, status_counts
from kubeface.core.statuses import Status

TRICKY = [
    "emoji 😀/顔.jpg", 'quote "double" and \'single\'.jpg', "back\\slash.jpg",
    "tab\tand\nnewline.jpg", "trailing space.jpg ", " leading.jpg", "ctrl\x01\x1f.jpg",
    "ä" * 1020 + ".jpg", "%s %(x)s :p0 ?.jpg", "[1, 2].json", "\u2028\u2029.jpg",
]


def test_paths_of_any_text_are_stored_exactly_in_bulk_and_one_by_one(db, caplog):
    caplog.set_level(logging.INFO, "kubeface.core.image_queries")
    bulk = insert_pending(db, TRICKY)
    assert "one by one" not in caplog.text  # the one-statement batch stored them all
    assert all(p.new and p.status is Status.PENDING for p in bulk)
    rows = {r.id: (r.path, r.path_sha) for r in db.query("SELECT id, path, path_sha FROM images")}
    assert {p.id: p.path for p in bulk} == {i: path for i, (path, _) in rows.items()}
    assert all(path_sha(path) == sha for path, sha in rows.values())
    # Posting them again, alone and together, finds the same ids and adds nothing.
    again = insert_pending(db, TRICKY[::-1])
    assert [p.id for p in again] == [p.id for p in bulk][::-1] and not any(p.new for p in again)
    for p in bulk[:3]:
        (one,) = insert_pending(db, [p.path])
        assert (one.id, one.new) == (p.id, False)
    assert len(db.query("SELECT id FROM images")) == len(TRICKY)


def test_mixed_bulk_reports_new_and_old_with_current_statuses(db):
    (old,) = insert_pending(db, ["old.jpg"])
    db.execute("UPDATE images SET status = :s WHERE id = :i", s=Status.NO_FACE.value, i=old.id)
    posted = insert_pending(db, ["a.jpg", "old.jpg", "a.jpg", "b.jpg"])
    assert [(p.path, p.new, p.status) for p in posted] == [
        ("a.jpg", True, Status.PENDING), ("old.jpg", False, Status.NO_FACE),
        ("a.jpg", False, Status.PENDING), ("b.jpg", True, Status.PENDING)]
    assert posted[0].id == posted[2].id and posted[1].id == old.id
    assert status_counts(db)[Status.PENDING] == 2 and status_counts(db)[Status.NO_FACE] == 1
    assert [i.path for i in list_images(db, status=Status.PENDING)] == sorted(
        ["a.jpg", "b.jpg"], key=lambda p: -next(x.id for x in posted if x.path == p))
