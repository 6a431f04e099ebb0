"""The processor's database writes: the atomic claim and the outcome of an image.

The status changes are :mod:`kubeface.core.lifecycle`'s. A claim moves an image to
``processing``: two replicas racing for one image, exactly one wins. Every later write holds only
while that claim is current, so a worker whose lease ran out and whose image was claimed again
cannot overwrite the newer claim's result. Here: what a claim found, and the rows that go with
an outcome (the person, every face).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import records

from kubeface.core import lifecycle, matching
from kubeface.core.db import Database
from kubeface.core.statuses import TERMINAL, Status
from kubeface.processor import observe
from kubeface.processor.face_client import FoundFace, Recognition

log = logging.getLogger(__name__)

ERROR_LENGTH = lifecycle.ERROR_LENGTH


@dataclass(frozen=True)
class Claim:
    """This worker holds the image until ``lease`` seconds after the claim."""

    image_id: int
    path: str
    attempts: int
    last_error: str | None
    age: float = 0.0  # seconds since the post, by the database's clock at the claim
    claimed_at: float = field(default_factory=time.monotonic)

    def since_post(self) -> float:
        """Seconds since the image was posted: its age at the claim and the time since."""
        return self.age + time.monotonic() - self.claimed_at


@dataclass(frozen=True)
class Busy:
    """Another worker holds a live lease on the image for ``seconds`` more."""

    seconds: float


@dataclass(frozen=True)
class Settled:
    """The image already has a terminal status (a duplicate or late message)."""

    status: Status


@dataclass(frozen=True)
class Missing:
    """No such image in the database."""


def claim(db: Database, image_id: int, lease_seconds: int) -> Claim | Busy | Settled | Missing:
    with db.transaction() as conn:
        won = lifecycle.claim(conn, image_id, lease_seconds)
        row = conn.query(
            "SELECT path, status, attempts, last_error,"
            " GREATEST(0, TIMESTAMPDIFF(MICROSECOND, NOW(3), lease_until)) / 1e6 AS lease_left,"
            " TIMESTAMPDIFF(MICROSECOND, created_at, NOW(3)) / 1e6 AS age"
            " FROM images WHERE id = :id",
            id=image_id,
        ).first()
    if row is None:
        return Missing()
    if won:
        return Claim(image_id, row.path, int(row.attempts), row.last_error, float(row.age))
    status = Status(row.status)
    if status in TERMINAL:
        return Settled(status)
    # pending but not claimable cannot happen; processing with a live lease is another worker.
    return Busy(float(row.lease_left or 0.0))


def _person_of_image(conn: records.Connection, image_name: str) -> int | None:
    if not image_name:
        return None
    return conn.query(
        "SELECT person_id FROM person_images WHERE image_name = :n", n=image_name
    ).scalar()


def record_result(db: Database, claimed: Claim, found: Recognition) -> bool:
    """Write the status, person, face count and every face row in one transaction. False when
    the claim was lost (another worker owns the image now)."""
    status = found.status
    note = None
    with db.transaction() as conn:
        people = {
            name: _person_of_image(conn, name)
            for name in {f.known_image for f in found.faces if f.known_image}
            | ({found.known_image} if found.known_image else set())
        }
        for face in found.faces:
            if face.person_id:  # the service matched a photo stored in the database
                people[face.known_image] = face.person_id
        person_id = people.get(found.known_image) if status == Status.PROCESSED else None
        if status == Status.PROCESSED and person_id is None:
            # The face service knows a picture the database does not: enrolment is behind.
            note = (f"matched known image {found.known_image!r} ({found.person}), which "
                    "is not enrolled in the database: run kubeface enrol")
            log.warning("image %d: %s", claimed.image_id, note)
        if not lifecycle.settle(conn, claimed.image_id, claimed.attempts, status, person_id,
                                len(found.faces), note):
            return False
        # faces has UNIQUE(image_id, face_index): replace the whole set, in this transaction.
        conn.query("DELETE FROM faces WHERE image_id = :id", id=claimed.image_id)
        for index, face in enumerate(found.faces):
            conn.query(
                "INSERT INTO faces (image_id, face_index, box_top, box_right, box_bottom,"
                " box_left, person_id, known_image, photo_id, distance, encoding)"
                " VALUES (:id, :i, :t, :r, :b, :l, :p, :k, :ph, :d, :e)",
                id=claimed.image_id, i=index, t=face.box.top, r=face.box.right,
                b=face.box.bottom, l=face.box.left,
                p=(face.person_id or people.get(face.known_image)) if face.matched else None,
                k=face.known_image, ph=face.photo_id, d=face.distance, e=_encoding(face),
            )
    observe.settled(status.value, claimed.since_post())
    return True


def _encoding(face: FoundFace) -> bytes | None:
    """The face's encoding as stored, so it can be matched again without detection."""
    return matching.encode(face.encoding) if len(face.encoding) == matching.DIMENSIONS else None


def record_failure(db: Database, claimed: Claim, reason: str, retryable: bool) -> bool:
    """``failed`` with the reason (and no faces). False when the claim was lost."""
    with db.transaction() as conn:
        if not lifecycle.fail(conn, claimed.image_id, claimed.attempts, reason, retryable):
            return False
        conn.query("DELETE FROM faces WHERE image_id = :id", id=claimed.image_id)
    observe.settled(Status.FAILED.value, claimed.since_post())
    return True


def release(db: Database, claimed: Claim, reason: str, attempted: bool = True) -> bool:
    """Back to ``pending`` for a later delivery; ``attempted=False`` when the face service was
    never asked (the breaker was open), so the attempt does not count."""
    with db.transaction() as conn:
        return lifecycle.release(conn, claimed.image_id, claimed.attempts, reason, attempted)
