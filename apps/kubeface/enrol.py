"""``kubeface enrol``: record the known people and their images in ``person``/``person_images``.

Idempotent: a second run adds nobody twice; an image whose person changed (people.csv edited)
is moved to the new person.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from kubeface.core import known_people
from kubeface.core.config import Settings
from kubeface.core.db import Database, execute, last_insert_id

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", type=Path, help="known-people folder (default: KNOWN_PEOPLE)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings)
    try:
        result = enrol(db, args.folder or settings.known_people)
    finally:
        db.close()
    log.info("enrolled %d people from %d images (%d rows changed)",
             result.people, result.images, result.changed)
    return 0
