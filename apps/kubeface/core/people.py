"""People, their photos (known faces) and corrections of matched faces, in the database.

Every change bumps ``people_version`` in the same transaction, so each face-service replica
sees it at its next poll; the caller then re-matches the stored faces
(:func:`kubeface.core.matching.rematch`). Errors a client can cause raise
:class:`PeopleError` with an HTTP-like status (400, 404, 409) and a message a person can act
on.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import records
import sqlalchemy.exc

from kubeface.core import matching
from kubeface.core.db import Database, execute, last_insert_id

MAX_NAME = 255  # person.name is VARCHAR(255)
MAX_PAGE = 1000
PHOTO_SOURCES = ("folder", "upload", "face")


class PeopleError(Exception):
    """A request about people that cannot be done; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Box:
    top: int
    right: int
    bottom: int
    left: int

    def as_json(self) -> dict[str, int]:
        return {"top": self.top, "right": self.right, "bottom": self.bottom, "left": self.left}


@dataclass(frozen=True)
class Photo:
    id: int
    person_id: int
    source: str
    file: str
    box: Box
    from_image_id: int | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "file": self.file,
                "face": self.box.as_json(), "from_image_id": self.from_image_id,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    photos: int
    images: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "photos": self.photos, "images": self.images}


def check_name(name: Any) -> str:
    """A person's name, trimmed; PeopleError(400) when it is not a usable name."""
    if not isinstance(name, str):
        raise PeopleError(400, f'"name" must be a string, got {type(name).__name__}')
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise PeopleError(400, '"name" is empty: give the person\'s name')
    if len(name) > MAX_NAME:
        raise PeopleError(400, f'"name" is {len(name)} characters, over the limit of '
                               f"{MAX_NAME}")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Cf") for c in name):
        raise PeopleError(400, '"name" contains control or invisible characters')
    return name


def bump_version(conn: records.Connection) -> None:
    conn.query("UPDATE people_version SET version = version + 1 WHERE id = 1")


def _duplicate(exc: sqlalchemy.exc.IntegrityError) -> bool:
    return getattr(exc.orig, "args", (None,))[0] == 1062


def _conflict(name: str) -> PeopleError:
    return PeopleError(409, f"a person named {name!r} already exists")


# -- people ---------------------------------------------------------------------------------

_COUNTS = """
    SELECT p.id, p.name,
      (SELECT COUNT(*) FROM person_photos ph WHERE ph.person_id = p.id) AS photos,
      (SELECT COUNT(DISTINCT f.image_id) FROM faces f WHERE f.person_id = p.id) AS images
    FROM person p
"""


def _person(row: records.Record) -> Person:
    return Person(int(row.id), row.name, int(row.photos), int(row.images))


def list_people(db: Database, q: str = "", limit: int = 100, offset: int = 0
                ) -> tuple[list[Person], int]:
    """A page of people by name (``q``: a case-insensitive part of the name) and the total."""
    where, params = "", {"limit": limit, "offset": offset}
    if q:
        # The column is binary-collated (exact names); search case-insensitively on purpose.
        where = " WHERE LOWER(p.name) LIKE :q ESCAPE '!'"
        escaped = q.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params["q"] = f"%{escaped}%"
    rows = db.query(f"{_COUNTS}{where} ORDER BY p.name, p.id LIMIT :limit OFFSET :offset",
                    **params)
    total = db.query(f"SELECT COUNT(*) AS n FROM person p{where}",
                     **{k: v for k, v in params.items() if k == "q"})[0].n
    return [_person(r) for r in rows], int(total)


def get_person(db: Database, person_id: int) -> Person | None:
    rows = db.query(f"{_COUNTS} WHERE p.id = :id", id=person_id)
    return _person(rows[0]) if rows else None


def require_person(db: Database, person_id: int) -> Person:
    person = get_person(db, person_id)
    if person is None:
        raise PeopleError(404, f"no person with id {person_id}")
    return person


def photos_of(db: Database, person_id: int) -> list[Photo]:
    rows = db.query(
        "SELECT id, person_id, source, file, box_top, box_right, box_bottom, box_left,"
        " from_image_id, created_at FROM person_photos WHERE person_id = :p ORDER BY id",
        p=person_id)
    return [_photo(r) for r in rows]


def get_photo(db: Database, photo_id: int) -> Photo | None:
    rows = db.query(
        "SELECT id, person_id, source, file, box_top, box_right, box_bottom, box_left,"
        " from_image_id, created_at FROM person_photos WHERE id = :id", id=photo_id)
    return _photo(rows[0]) if rows else None


def _photo(r: records.Record) -> Photo:
    return Photo(int(r.id), int(r.person_id), r.source, r.file,
                 Box(int(r.box_top), int(r.box_right), int(r.box_bottom), int(r.box_left)),
                 None if r.from_image_id is None else int(r.from_image_id), r.created_at)


def images_of(db: Database, person_id: int, limit: int = 50, offset: int = 0
              ) -> tuple[list[records.Record], int]:
    """The images in which a face matched the person, newest first, and their number."""
    rows = db.query(
        "SELECT i.id, i.path, i.status FROM images i WHERE i.id IN"
        " (SELECT f.image_id FROM faces f WHERE f.person_id = :p)"
        " ORDER BY i.id DESC LIMIT :limit OFFSET :offset",
        p=person_id, limit=limit, offset=offset)
    total = db.query("SELECT COUNT(DISTINCT image_id) AS n FROM faces WHERE person_id = :p",
                     p=person_id)[0].n
    return rows, int(total)


def person_id_by_name(conn: records.Connection, name: str) -> int | None:
    value = conn.query("SELECT id FROM person WHERE name = :n", n=name).scalar()
    return None if value is None else int(value)


def create_person(db: Database, name: Any) -> Person:
    name = check_name(name)
    try:
        with db.transaction() as conn:
            if person_id_by_name(conn, name) is not None:
                raise _conflict(name)
            execute(conn, "INSERT INTO person (name) VALUES (:n)", n=name)
            person_id = last_insert_id(conn)
            bump_version(conn)
    except sqlalchemy.exc.IntegrityError as exc:
        if _duplicate(exc):  # created by someone else between our look-up and insert
            raise _conflict(name) from None
        raise
    return Person(person_id, name, 0, 0)


def rename_person(db: Database, person_id: int, name: Any) -> Person:
    name = check_name(name)
    try:
        with db.transaction() as conn:
            if conn.query("SELECT id FROM person WHERE id = :id FOR UPDATE",
                          id=person_id).first() is None:
                raise PeopleError(404, f"no person with id {person_id}")
            other = person_id_by_name(conn, name)
            if other is not None and other != person_id:
                raise _conflict(name)
            execute(conn, "UPDATE person SET name = :n WHERE id = :id", n=name, id=person_id)
            bump_version(conn)
    except sqlalchemy.exc.IntegrityError as exc:
        if _duplicate(exc):
            raise _conflict(name) from None
        raise
    return require_person(db, person_id)


def delete_person(db: Database, person_id: int) -> list[int]:
    """Delete the person with their photos and encodings; returns the images that matched
    them (to re-match: their faces now point at nobody)."""
    with db.transaction() as conn:
        if conn.query("SELECT id FROM person WHERE id = :id FOR UPDATE",
                      id=person_id).first() is None:
            raise PeopleError(404, f"no person with id {person_id}")
        affected = _images_matching(conn, person_id)
        # Cascades: person_photos, person_images, face_rejections; faces/images SET NULL.
        execute(conn, "DELETE FROM person WHERE id = :id", id=person_id)
        bump_version(conn)
    return affected


def _images_matching(conn: records.Connection, person_id: int) -> list[int]:
    return [int(r.image_id) for r in conn.query(
        "SELECT DISTINCT image_id FROM faces WHERE person_id = :p", p=person_id).all()]


# -- photos ---------------------------------------------------------------------------------


def add_photo(conn: records.Connection, person_id: int, source: str, file: str, sha256: str,
              box: Box, encoding: Any, from_face: tuple[int, int] | None = None) -> int:
    """One known face of a person, inside the caller's transaction; returns its id."""
    if source not in PHOTO_SOURCES:
        raise ValueError(f"photo source {source!r}")
    execute(
        conn,
        "INSERT INTO person_photos (person_id, source, file, sha256, box_top, box_right,"
        " box_bottom, box_left, encoding, from_image_id, from_face_index)"
        " VALUES (:p, :s, :f, :sha, :t, :r, :b, :l, :e, :fi, :ff)",
        p=person_id, s=source, f=file, sha=sha256, t=box.top, r=box.right, b=box.bottom,
        l=box.left, e=matching.encode(encoding),
        fi=from_face[0] if from_face else None, ff=from_face[1] if from_face else None,
    )
    photo_id = last_insert_id(conn)
    bump_version(conn)
    return photo_id


def add_uploaded_photo(db: Database, person_id: int, file: str, sha256: str, box: Box,
                       encoding: Any) -> int:
    with db.transaction() as conn:
        if conn.query("SELECT id FROM person WHERE id = :id FOR UPDATE",
                      id=person_id).first() is None:
            raise PeopleError(404, f"no person with id {person_id}")
        return add_photo(conn, person_id, "upload", file, sha256, box, encoding)


def remove_photo(db: Database, person_id: int, photo_id: int) -> Photo:
    """Delete one of a person's photos (and its encoding); returns what was deleted."""
    with db.transaction() as conn:
        row = conn.query(
            "SELECT id, person_id, source, file, box_top, box_right, box_bottom, box_left,"
            " from_image_id, created_at FROM person_photos WHERE id = :id AND person_id = :p"
            " FOR UPDATE", id=photo_id, p=person_id).first()
        if row is None:
            if conn.query("SELECT id FROM person WHERE id = :id", id=person_id).first() is None:
                raise PeopleError(404, f"no person with id {person_id}")
            raise PeopleError(404, f"person {person_id} has no photo with id {photo_id}")
        execute(conn, "DELETE FROM person_photos WHERE id = :id", id=photo_id)
        bump_version(conn)
    return _photo(row)


def file_in_use(db: Database, file: str, source: str) -> bool:
    """Whether a photo still refers to ``file`` (photos of one upload share the file)."""
    return bool(db.query("SELECT 1 AS x FROM person_photos WHERE file = :f AND source = :s"
                         " LIMIT 1", f=file, s=source))


# -- corrections of faces -------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFace:
    image_id: int
    index: int
    box: Box
    person_id: int | None
    encoding: bytes | None
    image_path: str


def get_face(db: Database, image_id: int, face_index: int) -> StoredFace:
    rows = db.query(
        "SELECT f.image_id, f.face_index, f.box_top, f.box_right, f.box_bottom, f.box_left,"
        " f.person_id, f.encoding, i.path FROM images i LEFT JOIN faces f"
        " ON f.image_id = i.id AND f.face_index = :i WHERE i.id = :id",
        id=image_id, i=face_index)
    if not rows:
        raise PeopleError(404, f"no image with id {image_id}")
    r = rows[0]
    if r.face_index is None:
        raise PeopleError(404, f"image {image_id} has no face {face_index}")
    return StoredFace(int(r.image_id), int(r.face_index),
                      Box(int(r.box_top), int(r.box_right), int(r.box_bottom), int(r.box_left)),
                      None if r.person_id is None else int(r.person_id), r.encoding, r.path)


def assign_face(db: Database, face: StoredFace, person_id: int, crop_file: str,
                crop_sha256: str) -> int:
    """"This face is that person": the face's encoding becomes one of their photos (its crop
    kept as ``crop_file``) and any rejection of them for this face is withdrawn. Returns the
    photo id. The caller re-matches afterwards."""
    if face.encoding is None:
        raise PeopleError(409, f"face {face.index} of image {face.image_id} has no stored "
                               "encoding (processed before encodings were kept): process the "
                               "image again first")
    with db.transaction() as conn:
        if conn.query("SELECT id FROM person WHERE id = :id FOR UPDATE",
                      id=person_id).first() is None:
            raise PeopleError(404, f"no person with id {person_id}")
        # Naming a face twice replaces the photo it gave before (to whomever it went).
        execute(conn, "DELETE FROM person_photos WHERE from_image_id = :i"
                      " AND from_face_index = :f", i=face.image_id, f=face.index)
        execute(conn, "DELETE FROM face_rejections WHERE image_id = :i AND face_index = :f"
                      " AND person_id = :p", i=face.image_id, f=face.index, p=person_id)
        return add_photo(conn, person_id, "face", crop_file, crop_sha256, face.box,
                         matching.decode(face.encoding), (face.image_id, face.index))


def reject_face(db: Database, face: StoredFace) -> int:
    """"This is not who you said": the face is never matched to its current person again, and
    a photo that was made from this face for them is removed. Returns the person rejected."""
    if face.person_id is None:
        raise PeopleError(409, f"face {face.index} of image {face.image_id} is matched to "
                               "nobody: there is no one to reject")
    with db.transaction() as conn:
        execute(conn, "INSERT IGNORE INTO face_rejections (image_id, face_index, person_id)"
                      " VALUES (:i, :f, :p)", i=face.image_id, f=face.index, p=face.person_id)
        removed = execute(conn, "DELETE FROM person_photos WHERE from_image_id = :i"
                                " AND from_face_index = :f AND person_id = :p",
                          i=face.image_id, f=face.index, p=face.person_id)
        if removed:
            bump_version(conn)
    return face.person_id
