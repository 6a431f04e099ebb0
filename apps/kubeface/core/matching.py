"""Matching face encodings against the known people's, and re-matching stored faces.

Every detected face's encoding is stored with it (``faces.encoding``) and every known face's
with its photo (``person_photos.encoding``), so when people change, the images are matched
again from the database alone: one float32 matrix product per chunk of faces, no detection.
A face is never matched to a person it was rejected for (``face_rejections``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import records

from kubeface.core import lifecycle
from kubeface.core.db import Database, execute, named_lock

log = logging.getLogger(__name__)

DIMENSIONS = 128
ENCODING_BYTES = DIMENSIONS * 4
CHUNK = 20_000  # stored faces per matrix product
_LOCK = "kubeface.rematch"


def encode(vector: Iterable[float] | np.ndarray) -> bytes:
    """An encoding as stored: 128 little-endian float32."""
    array = np.asarray(vector, dtype="<f4").reshape(-1)
    if array.shape != (DIMENSIONS,):
        raise ValueError(f"an encoding has {DIMENSIONS} numbers, got {array.size}")
    return array.tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class Known:
    """Every known face: one row of ``matrix`` per photo."""

    matrix: np.ndarray  # n x 128 float32
    photo_ids: np.ndarray  # n, int64
    person_ids: np.ndarray  # n, int64
    files: tuple[str, ...]  # the photo's file: the image_name a match answers
    names: tuple[str, ...]  # the person's name
    squared: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "squared", np.einsum("ij,ij->i", self.matrix, self.matrix))

    def __len__(self) -> int:
        return len(self.photo_ids)

    def match(self, encodings: np.ndarray,
              excluded: Sequence[frozenset[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``encodings``: the index of the closest known face (-1 when there is
        none) and its distance (inf when none). ``excluded[i]`` are person ids row i must not
        match. |a-b|^2 = |a|^2 + |b|^2 - 2ab over the whole matrix; the winner's distance is
        recomputed exactly in float64 so it equals the library's."""
        queries = np.asarray(encodings, dtype=np.float32).reshape(-1, DIMENSIONS)
        count = len(queries)
        if not count or not len(self):
            return np.full(count, -1, dtype=np.int64), np.full(count, np.inf)
        squared = (np.einsum("ij,ij->i", queries, queries)[:, None] + self.squared[None, :]
                   - 2.0 * (queries @ self.matrix.T))
        if excluded is not None:
            for row, persons in enumerate(excluded):
                if persons:
                    squared[row, np.isin(self.person_ids, list(persons))] = np.inf
        best = squared.argmin(axis=1)
        usable = np.isfinite(squared[np.arange(count), best])
        exact = np.linalg.norm(self.matrix[best].astype(np.float64)
                               - queries.astype(np.float64), axis=1)
        return np.where(usable, best, -1), np.where(usable, exact, np.inf)


EMPTY = Known(np.zeros((0, DIMENSIONS), np.float32), np.zeros(0, np.int64),
              np.zeros(0, np.int64), (), ())


def load_known(conn: records.Connection | Database) -> Known:
    """Every photo's encoding, with its person."""
    rows = conn.query(
        "SELECT ph.id, ph.person_id, ph.file, p.name, ph.encoding FROM person_photos ph"
        " JOIN person p ON p.id = ph.person_id ORDER BY ph.id")
    rows = rows if isinstance(rows, list) else rows.all()
    if not rows:
        return EMPTY
    matrix = np.frombuffer(b"".join(r.encoding for r in rows), dtype="<f4")
    return Known(matrix.reshape(len(rows), DIMENSIONS).astype(np.float32),
                 np.array([r.id for r in rows], np.int64),
                 np.array([r.person_id for r in rows], np.int64),
                 tuple(r.file for r in rows), tuple(r.name for r in rows))


def version(db: Database) -> int:
    """The people version: it moves with every change of people or photos."""
    return int(db.query("SELECT version FROM people_version WHERE id = 1")[0].version)


@dataclass
class Rematch:
    """What one re-match did."""

    faces: int = 0  # stored faces compared
    changed: int = 0  # faces whose match changed
    images: int = 0  # images re-labelled (person or status changed)
    seconds: float = 0.0


def rematch(db: Database, tolerance: float, image_ids: Sequence[int] | None = None,
            lock_timeout: float = 60) -> Rematch:
    """Match the stored faces (of ``image_ids``, or every image) against the known people
    again, and re-label their images. Serialised across processes, so the last change of
    people is always the one applied last."""
    started = time.perf_counter()
    result = Rematch()
    with db.connection() as lock_conn, named_lock(lock_conn, _LOCK, lock_timeout) as got:
        if not got:
            raise TimeoutError(f"another re-match held the lock for over {lock_timeout}s")
        known = load_known(db)
        rejected = _rejections(db, image_ids)
        touched: set[int] = set()
        after = 0
        while True:
            faces = _faces(db, image_ids, after)
            if not faces:
                break
            after = int(faces[-1].id)
            result.faces += len(faces)
            changes = _compare(known, faces, rejected, tolerance)
            if changes:
                _write_faces(db, changes)
                result.changed += len(changes)
                touched.update(c[5] for c in changes)
            if len(faces) < CHUNK:
                break
        relabel = set(image_ids) if image_ids is not None else touched
        result.images = relabel_images(db, sorted(relabel))
    result.seconds = time.perf_counter() - started
    log.info("re-match: %d face(s) compared, %d changed, %d image(s) re-labelled (%.3fs)",
             result.faces, result.changed, result.images, result.seconds)
    return result


def _rejections(db: Database, image_ids: Sequence[int] | None) -> dict[tuple[int, int], set[int]]:
    sql = "SELECT image_id, face_index, person_id FROM face_rejections"
    if image_ids is not None:
        if not image_ids:
            return {}
        sql += f" WHERE image_id IN ({sql_ints(image_ids)})"
    found: dict[tuple[int, int], set[int]] = {}
    for r in db.query(sql):
        found.setdefault((int(r.image_id), int(r.face_index)), set()).add(int(r.person_id))
    return found


def _faces(db: Database, image_ids: Sequence[int] | None, after: int) -> list[records.Record]:
    where = "encoding IS NOT NULL AND id > :after"
    if image_ids is not None:
        if not image_ids:
            return []
        where += f" AND image_id IN ({sql_ints(image_ids)})"
    return db.query(
        "SELECT id, image_id, face_index, person_id, photo_id, distance, encoding FROM faces"
        f" WHERE {where} ORDER BY id LIMIT {CHUNK}", after=after)


# (face id, person id, photo id, known image, distance, image id)
_Change = tuple[int, int | None, int | None, str | None, float, int]


def _compare(known: Known, faces: list[records.Record],
             rejected: dict[tuple[int, int], set[int]], tolerance: float) -> list[_Change]:
    matrix = np.frombuffer(b"".join(f.encoding for f in faces), dtype="<f4")
    excluded = [frozenset(rejected.get((int(f.image_id), int(f.face_index)), ()))
                for f in faces]
    best, distances = known.match(matrix.reshape(len(faces), DIMENSIONS),
                                  excluded if rejected else None)
    changes: list[_Change] = []
    for face, index, distance in zip(faces, best.tolist(), distances.tolist(), strict=True):
        matched = index >= 0 and distance <= tolerance
        photo = int(known.photo_ids[index]) if matched else None
        person = int(known.person_ids[index]) if matched else None
        stored = None if face.distance is None else float(face.distance)
        near = None if index < 0 else distance
        if face.photo_id == photo and face.person_id == person and (
                stored == near or (stored is not None and near is not None
                                   and abs(stored - near) < 1e-9)):
            continue
        changes.append((int(face.id), person, photo,
                        known.files[index] if index >= 0 else None, near,
                        int(face.image_id)))
    return changes


def _write_faces(db: Database, changes: list[_Change]) -> None:
    """One UPDATE for every changed face: the new values as one JSON array."""
    rows = json.dumps([list(c[:5]) for c in changes], ensure_ascii=False)
    with db.transaction() as conn:
        execute(
            conn,
            "UPDATE faces f JOIN JSON_TABLE(:rows, '$[*]' COLUMNS ("
            " id BIGINT UNSIGNED PATH '$[0]', person_id INT UNSIGNED PATH '$[1]',"
            " photo_id INT UNSIGNED PATH '$[2]',"
            " known_image VARCHAR(1024) CHARACTER SET utf8mb4 PATH '$[3]',"
            " distance DOUBLE PATH '$[4]')) AS jt ON jt.id = f.id"
            " SET f.person_id = jt.person_id, f.photo_id = jt.photo_id,"
            " f.known_image = jt.known_image, f.distance = jt.distance",
            rows=rows,
        )


def relabel_images(db: Database, image_ids: Sequence[int]) -> int:
    """Each image's person and status from its faces: the closest matched face's person and
    ``processed``, or ``unknown`` when no face matched. Only settled images with faces are
    touched (pending ones will be matched by the processor). Returns the images changed."""
    changed = 0
    for start in range(0, len(image_ids), 5000):
        listed = sql_ints(image_ids[start:start + 5000])
        with db.transaction() as conn:
            conn.query(
                "CREATE TEMPORARY TABLE IF NOT EXISTS relabel"
                " (image_id BIGINT UNSIGNED PRIMARY KEY, person_id INT UNSIGNED NULL)")
            conn.query("DELETE FROM relabel")
            lifecycle.execute(
                conn,
                "INSERT INTO relabel (image_id, person_id)"
                " SELECT i.id, (SELECT f.person_id FROM faces f WHERE f.image_id = i.id"
                "  AND f.person_id IS NOT NULL ORDER BY f.distance, f.face_index LIMIT 1)"
                f" FROM images i WHERE i.id IN ({listed})"
                " AND i.status IN (:processed, :unknown) AND i.face_count > 0")
            changed += lifecycle.relabel(conn)
            conn.query("DROP TEMPORARY TABLE relabel")
    return changed


def has_rejections(db: Database, image_id: int) -> bool:
    return bool(db.query("SELECT 1 AS x FROM face_rejections WHERE image_id = :id LIMIT 1",
                         id=image_id))


def sql_ints(values: Iterable[int]) -> str:
    """A SQL list of integers (validated as int: never text from a request)."""
    return ",".join(str(int(v)) for v in values)
