"""The SQL of posted images, written once for the receiver (writes, GET endpoints) and the frontend.

Writing: :func:`insert_pending` stores many paths in one transaction with one multi-row INSERT,
and tells which were new (to be published) and which were already there (never published again).
Reading: a page of images is one query whatever its size (the person joined in, no query per
row), the counts per status a second one, one image with its faces two.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import records
import sqlalchemy.exc

from kubeface.core.db import UNAVAILABLE, Database, execute, insert
from kubeface.core.statuses import Status

log = logging.getLogger(__name__)

MAX_PAGE = 1000
MAX_OFFSET = 10**9
MAX_ID = 2**63 - 1  # images.id is a signed BIGINT

# What an HTTP service answers 503 to: the database unreachable, or every pooled connection
# busy for longer than the pool's timeout (SQLAlchemy's TimeoutError is not an OperationalError).
DATABASE_AWAY = (*UNAVAILABLE, sqlalchemy.exc.TimeoutError)


@dataclass(frozen=True)
class Posted:
    """The outcome of posting one path: its image id, current status, and whether it is new."""

    id: int
    path: str
    status: Status
    new: bool

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "status": self.status.value,
                "already_posted": not self.new}


def posted_json(posted: Sequence[Posted], published: bool, message: str
                ) -> tuple[int, dict[str, Any]]:
    """A post of many images as the receiver's API answers it: 202 when one was new, else 200,
    and the body."""
    accepted = sum(p.new for p in posted)
    return 202 if accepted else 200, {
        "images": [p.as_json() for p in posted], "accepted": accepted,
        "already_posted": len(posted) - accepted, "published": published, "message": message,
    }


@dataclass(frozen=True)
class Face:
    index: int
    top: int
    right: int
    bottom: int
    left: int
    person: str | None
    known_image: str | None
    distance: float | None


@dataclass(frozen=True)
class Image:
    id: int
    path: str
    status: Status
    person: str | None
    face_count: int | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    faces: tuple[Face, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        """The image as the receiver's API returns it."""
        return {
            "id": self.id, "path": self.path, "status": self.status.value,
            "person": self.person, "face_count": self.face_count, "attempts": self.attempts,
            "error": self.last_error,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "faces": [
                {"index": f.index, "top": f.top, "right": f.right, "bottom": f.bottom,
                 "left": f.left, "person": f.person, "known_image": f.known_image,
                 "distance": f.distance}
                for f in self.faces
            ],
        }


def path_sha(path: str) -> str:
    """What ``images.path_sha`` holds for ``path`` (MariaDB's SHA2(path, 256) of its UTF-8)."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()


class _Raced(Exception):
    """The batch did not store exactly the missing paths (another transaction stored one of them
    between our look-up and our insert): redo the transaction path by path."""


def _ids_by_path(conn: records.Connection, paths: Sequence[str]) -> dict[str, tuple[int, Status]]:
    if not paths:
        return {}
    # One bound tuple (the driver writes it as a list), not one bound parameter per path:
    # SQLAlchemy's cost per parameter was most of a bulk post's time.
    rows = conn.query("SELECT id, path, status FROM images WHERE path_sha IN :shas",
                      shas=tuple(path_sha(p) for p in paths))
    return {r.path: (int(r.id), Status(r.status)) for r in rows}


_Found = dict[str, tuple[int, Status, bool]]  # path -> (id, status, new)


def _insert_batch(conn: records.Connection, unique: list[str]) -> _Found:
    """Fast path: one look-up, one multi-row INSERT, one look-up of the new ids."""
    existing = _ids_by_path(conn, unique)
    missing = [p for p in unique if p not in existing]
    found = {p: (i, s, False) for p, (i, s) in existing.items()}
    if missing:
        # All rows in one statement with one bound value: the paths as a JSON array.
        inserted = execute(
            conn, "INSERT IGNORE INTO images (path) SELECT jt.path FROM JSON_TABLE(:paths,"
                  " '$[*]' COLUMNS (path VARCHAR(1024) CHARACTER SET utf8mb4 PATH '$')) AS jt",
            paths=json.dumps(missing, ensure_ascii=False))
        if inserted != len(missing):
            # Which of them someone else stored first cannot be told from a count: redo exactly.
            raise _Raced
        new = _ids_by_path(conn, missing)
        if len(new) != len(missing):  # a path not stored exactly: never guess, redo exactly
            raise _Raced
        found.update({p: (i, s, True) for p, (i, s) in new.items()})
    return found


def _insert_one_by_one(conn: records.Connection, unique: list[str]) -> _Found:
    """Exact, one statement per new path (two per path stored before): the way for one path
    (a single post), and for a list when a concurrent post of the same paths raced the batch."""
    found: _Found = {}
    for p in unique:
        written, image_id = insert(conn, "INSERT IGNORE INTO images (path) VALUES (:p)", p=p)
        if written == 1:
            found[p] = (image_id, Status.PENDING, True)
        else:
            found[p] = (*_ids_by_path(conn, [p])[p], False)
    return found


def insert_pending(db: Database, paths: Sequence[str]) -> list[Posted]:
    """Store ``paths`` (already canonical) as pending images in one transaction.

    Returns one :class:`Posted` per given path, in order. A path stored before (or earlier in
    the same list) keeps its id and status and is not new; only new images are to be published.
    Raises :data:`kubeface.core.db.UNAVAILABLE` errors when the database is away.
    """
    # One order for every transaction (by the unique key), so two bulk posts sharing paths
    # wait for each other instead of deadlocking. The price: the new ids of one bulk post
    # follow that order, not the list's.
    unique = sorted(set(paths), key=path_sha)
    for attempt in range(1, _DEADLOCK_TRIES + 1):
        try:
            found = _insert(db, unique)
            break
        except sqlalchemy.exc.OperationalError as exc:
            code = getattr(exc.orig, "args", (None,))[0]
            if code not in _RETRYABLE_CODES or attempt == _DEADLOCK_TRIES:
                raise
            log.info("insert of %d paths hit MySQL error %s, trying again", len(unique), code)
    result, seen = [], set()
    for p in paths:
        image_id, status, new = found[p]
        result.append(Posted(image_id, p, status, new and p not in seen))
        seen.add(p)
    return result


_DEADLOCK_TRIES = 5
_RETRYABLE_CODES = {1213, 1205}  # deadlock found; lock wait timeout exceeded


def _insert(db: Database, unique: list[str]) -> _Found:
    if len(unique) == 1:
        with db.transaction() as conn:
            return _insert_one_by_one(conn, unique)
    try:
        with db.transaction() as conn:
            return _insert_batch(conn, unique)
    except _Raced:
        log.info("a concurrent post stored some of %d paths first: storing them one by one",
                 len(unique))
        with db.transaction() as conn:
            return _insert_one_by_one(conn, unique)


_IMAGE_COLUMNS = """
    i.id, i.path, i.status, p.name AS person, i.face_count, i.attempts, i.last_error,
    i.created_at, i.updated_at
"""


def _image(row: records.Record, faces: tuple[Face, ...] = ()) -> Image:
    return Image(
        id=int(row.id), path=row.path, status=Status(row.status), person=row.person,
        face_count=row.face_count, attempts=int(row.attempts), last_error=row.last_error,
        created_at=row.created_at, updated_at=row.updated_at, faces=faces,
    )


def get_image(db: Database, image_id: int) -> Image | None:
    """One image with its faces (each with its matched person), or None."""
    if not 0 < image_id <= MAX_ID:
        return None
    with db.transaction() as conn:
        row = conn.query(
            f"SELECT {_IMAGE_COLUMNS} FROM images i LEFT JOIN person p ON p.id = i.person_id"
            " WHERE i.id = :id", id=image_id,
        ).first()
        if row is None:
            return None
        faces = conn.query(
            "SELECT f.face_index, f.box_top, f.box_right, f.box_bottom, f.box_left,"
            " p.name AS person, f.known_image, f.distance"
            " FROM faces f LEFT JOIN person p ON p.id = f.person_id"
            " WHERE f.image_id = :id ORDER BY f.face_index", id=image_id,
        ).all()
    return _image(row, tuple(
        Face(int(f.face_index), int(f.box_top), int(f.box_right), int(f.box_bottom),
             int(f.box_left), f.person, f.known_image,
             None if f.distance is None else float(f.distance))
        for f in faces
    ))


def list_images(db: Database, *, status: Status | None = None, limit: int = 50,
                offset: int = 0, before: int | None = None, after: int | None = None,
                person_id: int | None = None) -> list[Image]:
    """Newest first, in one query. Page by ``offset`` (the API) or by keyset: ``before`` an id
    gives the older ones, ``after`` an id the newer ones (the frontend: no cost that grows with
    the page number). ``person_id``: only images in which a face matched that person."""
    limit = max(1, min(limit, MAX_PAGE))
    where, params = [], {"limit": limit, "offset": max(0, offset)}
    if status is not None:
        where.append("i.status = :status")
        params["status"] = status.value
    if person_id is not None:
        where.append("i.id IN (SELECT f.image_id FROM faces f WHERE f.person_id = :person)")
        params["person"] = person_id
    order = "DESC"
    if before is not None:
        where.append("i.id < :before")
        params["before"] = before
    elif after is not None:
        where.append("i.id > :after")
        params["after"] = after
        order = "ASC"
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = db.query(
        f"SELECT {_IMAGE_COLUMNS} FROM images i LEFT JOIN person p ON p.id = i.person_id"
        f" {clause} ORDER BY i.id {order} LIMIT :limit OFFSET :offset", **params,
    )
    images = [_image(r) for r in rows]
    return images[::-1] if order == "ASC" else images


def status_counts(db: Database) -> dict[Status, int]:
    """How many images are in each status (every status present, zero when none)."""
    rows = db.query("SELECT status, COUNT(*) AS n FROM images GROUP BY status")
    counts = dict.fromkeys(Status, 0)
    counts.update({Status(r.status): int(r.n) for r in rows})
    return counts
