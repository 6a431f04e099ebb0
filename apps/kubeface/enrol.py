"""``kubeface enrol``: import the known-people folder into the database.

:func:`enrol` records the people and their images (``person``/``person_images``);
:func:`import_encodings` stores each image's face encoding as a photo of its person
(``person_photos``), which is what the face service matches against. Idempotent: a second run
adds nobody twice and encodes nothing again (each file's content hash is kept); an image whose
person changed (people.csv edited) is moved to the new person; a file gone from the folder
loses its photo.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeface import progress
from kubeface.core import known_people, paths, people
from kubeface.core.config import Settings
from kubeface.core.db import Database, execute, last_insert_id, named_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enrolment:
    people: int
    images: int
    changed: int  # rows inserted or moved by this run


def enrol(db: Database, folder: Path) -> Enrolment:
    """Make the database's known people match ``folder``."""
    images = known_people.scan(folder)
    changed = 0
    with db.transaction() as conn:
        ids: dict[str, int] = {}
        for name in sorted({k.person for k in images}):
            person_id = conn.query("SELECT id FROM person WHERE name = :n", n=name).scalar()
            if person_id is None:
                execute(conn, "INSERT INTO person (name) VALUES (:n)", n=name)
                person_id = last_insert_id(conn)
                changed += 1
            ids[name] = person_id
        for image in images:
            row = conn.query(
                "SELECT person_id FROM person_images WHERE image_name = :n", n=image.image_name
            ).first()
            if row is None:
                execute(conn, "INSERT INTO person_images (image_name, person_id) VALUES (:n, :p)",
                        n=image.image_name, p=ids[image.person])
                changed += 1
            elif row.person_id != ids[image.person]:
                execute(conn, "UPDATE person_images SET person_id = :p WHERE image_name = :n",
                        n=image.image_name, p=ids[image.person])
                changed += 1
    return Enrolment(people=len(ids), images=len(images), changed=changed)


# Analyse many files; each result has .boxes [(top, right, bottom, left)] and .encodings
# (n x 128), or is the exception analysing that file raised.
AnalyseMany = Callable[[Sequence[Path]], list[Any]]
_IMPORT_LOCK = "kubeface.import-known"


@dataclass(frozen=True)
class Imported:
    encoded: int  # files encoded by this run
    photos: int  # folder photos now in the database
    removed: int  # photos of files gone from the folder


def import_encodings(db: Database, folder: Path, analyse_many: AnalyseMany) -> Imported:
    """Enrol ``folder``, then store the encoding of each new or changed file as a photo of its
    person (its largest face). Replicas importing at once wait for each other on a named lock,
    so the second finds everything done and encodes nothing."""
    with db.connection() as lock_conn, named_lock(lock_conn, _IMPORT_LOCK, 600) as got:
        if not got:
            raise TimeoutError("another import of the known folder held the lock for 600s")
        enrol(db, folder)
        entries = known_people.scan(folder)
        rows = {r.image_name: r for r in db.query(
            "SELECT image_name, person_id, sha256 FROM person_images")}
        digests: dict[str, str] = {}
        for entry in entries:
            try:
                digests[entry.image_name] = paths.file_sha256(entry.path)
            except OSError as exc:
                log.warning("known image %s cannot be read, skipped: %s", entry.image_name, exc)
        todo = [e for e in entries
                if e.image_name in digests and rows[e.image_name].sha256 != digests[e.image_name]]
        if todo:
            log.info("encoding %d known image(s) of %d", len(todo), len(entries))
        results = analyse_many([e.path for e in todo]) if todo else []
        with db.transaction() as conn:
            changed = 0
            for entry, result in zip(todo, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("known image %s skipped: %s", entry.image_name, result)
                    continue
                changed += execute(conn, "DELETE FROM person_photos WHERE source = 'folder'"
                                         " AND file = :f", f=entry.image_name)
                execute(conn, "UPDATE person_images SET sha256 = :s WHERE image_name = :n",
                        s=digests[entry.image_name], n=entry.image_name)
                if not result.boxes:
                    log.warning("known image %s has no face: it cannot match anyone",
                                entry.image_name)
                    continue
                if len(result.boxes) > 1:
                    log.warning("known image %s shows %d faces: using the largest",
                                entry.image_name, len(result.boxes))
                areas = [(b - t) * (r - left) for t, r, b, left in result.boxes]
                largest = areas.index(max(areas))
                people.add_photo(conn, rows[entry.image_name].person_id, "folder",
                                 entry.image_name, digests[entry.image_name],
                                 people.Box(*result.boxes[largest]), result.encodings[largest])
                changed += 1
            # A person changed in people.csv: their folder photos follow the file.
            moved = execute(conn, "UPDATE person_photos ph JOIN person_images pi"
                                  " ON pi.image_name = ph.file SET ph.person_id = pi.person_id"
                                  " WHERE ph.source = 'folder' AND ph.person_id <> pi.person_id")
            names = [e.image_name for e in entries]
            removed = _remove_gone(conn, names)
            if moved or removed or changed:
                people.bump_version(conn)
            photos = conn.query("SELECT COUNT(*) AS n FROM person_photos"
                                " WHERE source = 'folder'").scalar()
    return Imported(encoded=len(todo), photos=int(photos), removed=removed)


def _remove_gone(conn: Any, names: list[str]) -> int:
    """Folder photos (and enrolment rows) of files no longer in the folder."""
    present = " AND file NOT IN :names" if names else ""
    removed = execute(conn, f"DELETE FROM person_photos WHERE source = 'folder'{present}",
                      **({"names": tuple(names)} if names else {}))
    execute(conn, "DELETE FROM person_images" + (" WHERE image_name NOT IN :names" if names
                                                 else ""),
            **({"names": tuple(names)} if names else {}))
    return removed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", type=Path, help="known-people folder (default: KNOWN_PEOPLE)")
    parser.add_argument("--no-encodings", action="store_true",
                        help="record people and images only (no face detection): the face "
                             "service imports the encodings when it starts")


def _local_analyser(settings: Settings) -> AnalyseMany:
    """Encode in this process (dlib), one file after another."""
    from kubeface.face import engine

    models = engine.Engine()

    def analyse_many(paths: Sequence[Path]) -> list[Any]:
        results: list[Any] = []
        for path in progress.track(paths, "encoding known faces"):
            try:
                results.append(models.analyse(path, settings.face_max_side,
                                              settings.face_max_pixels))
            except Exception as exc:  # one bad file must not stop the others
                results.append(exc)
        return results

    return analyse_many


def main(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings)
    folder = args.folder or settings.known_people
    try:
        result = enrol(db, folder)
        log.info("enrolled %d people from %d images (%d rows changed)",
                 result.people, result.images, result.changed)
        if not args.no_encodings:
            imported = import_encodings(db, folder, _local_analyser(settings))
            log.info("known faces: %d encoded now, %d folder photo(s) in the database, "
                     "%d removed", imported.encoded, imported.photos, imported.removed)
    finally:
        db.close()
    return 0
