"""The processor's database writes: the atomic claim and the outcome of an image.

A claim is one UPDATE that moves an image from ``pending`` (or ``processing`` with an expired
lease: its worker crashed) to ``processing`` with a new lease and ``attempts + 1``. Two
replicas racing for one image: exactly one UPDATE matches. Every later write is guarded by
``status = 'processing' AND attempts = <the claim's attempts>``, so a worker whose lease ran
out and whose image was claimed again cannot overwrite the newer claim's result.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import records

from facerecog import face_pb2
from kubeface.core import matching
from kubeface.core.db import Database, execute
from kubeface.core.statuses import TERMINAL, Status
from kubeface.processor import observe

log = logging.getLogger(__name__)

ERROR_LENGTH = 1024  # images.last_error is VARCHAR(1024)

OUTCOME_STATUS = {
    face_pb2.OUTCOME_MATCH: Status.PROCESSED,
    face_pb2.OUTCOME_UNKNOWN: Status.UNKNOWN,
    face_pb2.OUTCOME_NO_FACE: Status.NO_FACE,
}


@dataclass(frozen=True)
class Claim:
    """This worker holds the image until ``lease`` seconds after the claim."""

    image_id: int
    path: str
    attempts: int
    last_error: str | None


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
        won = execute(
            conn,
            "UPDATE images SET status = 'processing', attempts = attempts + 1,"
            " lease_until = NOW(3) + INTERVAL :lease SECOND"
            " WHERE id = :id AND (status = 'pending' OR (status = 'processing'"
            " AND (lease_until IS NULL OR lease_until < NOW(3))))",
            id=image_id, lease=lease_seconds,
        )
        row = conn.query(
            "SELECT path, status, attempts, last_error,"
            " GREATEST(0, TIMESTAMPDIFF(MICROSECOND, NOW(3), lease_until)) / 1e6 AS lease_left"
            " FROM images WHERE id = :id",
            id=image_id,
        ).first()
    if row is None:
        return Missing()
    if won:
        return Claim(image_id, row.path, int(row.attempts), row.last_error)
    status = Status(row.status)
    if status in TERMINAL:
        return Settled(status)
    # pending but not claimable cannot happen; processing with a live lease is another worker.
    return Busy(float(row.lease_left or 0.0))


def _guarded(conn: records.Connection, claimed: Claim, sets: str, **params: object) -> bool:
    """Apply ``sets`` to the image only while ``claimed`` is still the current claim."""
    return bool(execute(
        conn,
        f"UPDATE images SET {sets}, lease_until = NULL"
        " WHERE id = :id AND status = 'processing' AND attempts = :attempts",
        id=claimed.image_id, attempts=claimed.attempts, **params,
    ))


def _person_of_image(conn: records.Connection, image_name: str) -> int | None:
    if not image_name:
        return None
    return conn.query(
        "SELECT person_id FROM person_images WHERE image_name = :n", n=image_name
    ).scalar()


def record_result(db: Database, claimed: Claim, response: face_pb2.IdentifyResponse) -> bool:
    """Write the status, person, face count and every face row in one transaction. False when
    the claim was lost (another worker owns the image now)."""
    status = OUTCOME_STATUS[response.outcome]
    note = None
    with db.transaction() as conn:
        people = {
            name: _person_of_image(conn, name)
            for name in {f.image_name for f in response.faces if f.image_name}
            | ({response.image_name} if response.image_name else set())
        }
        for face in response.faces:
            if face.person_id:  # the service matched a photo stored in the database
                people[face.image_name] = face.person_id
        person_id = people.get(response.image_name) if status == Status.PROCESSED else None
        if status == Status.PROCESSED and person_id is None:
            # The face service knows a picture the database does not: enrolment is behind.
            note = (f"matched known image {response.image_name!r} ({response.person}), which "
                    "is not enrolled in the database: run kubeface enrol")
            log.warning("image %d: %s", claimed.image_id, note)
        if not _guarded(
            conn, claimed,
            "status = :status, person_id = :person, face_count = :faces,"
            " last_error = :note, retryable = 0",
            status=status.value, person=person_id, faces=len(response.faces), note=note,
        ):
            return False
        # faces has UNIQUE(image_id, face_index): replace the whole set, in this transaction.
        conn.query("DELETE FROM faces WHERE image_id = :id", id=claimed.image_id)
        for index, face in enumerate(response.faces):
            conn.query(
                "INSERT INTO faces (image_id, face_index, box_top, box_right, box_bottom,"
                " box_left, person_id, known_image, photo_id, distance, encoding)"
                " VALUES (:id, :i, :t, :r, :b, :l, :p, :k, :ph, :d, :e)",
                id=claimed.image_id, i=index, t=face.box.top, r=face.box.right,
                b=face.box.bottom, l=face.box.left,
                p=(face.person_id or people.get(face.image_name)) if face.matched else None,
                k=face.image_name or None, ph=face.photo_id or None,
                # No one known at all: no distance (MySQL cannot store infinity).
                d=face.distance if math.isfinite(face.distance) else None,
                e=_encoding(face),
            )
    observe.settled(db, claimed.image_id, status.value)
    return True


def _encoding(face: face_pb2.Face) -> bytes | None:
    """The face's encoding as stored, so it can be matched again without detection."""
    return matching.encode(face.encoding) if len(face.encoding) == matching.DIMENSIONS else None


def record_failure(db: Database, claimed: Claim, reason: str, retryable: bool) -> bool:
    """``failed`` with the reason (and no faces). False when the claim was lost."""
    with db.transaction() as conn:
        if not _guarded(
            conn, claimed,
            "status = 'failed', person_id = NULL, face_count = NULL, last_error = :reason,"
            " retryable = :retryable",
            reason=reason[:ERROR_LENGTH], retryable=int(retryable),
        ):
            return False
        conn.query("DELETE FROM faces WHERE image_id = :id", id=claimed.image_id)
    observe.settled(db, claimed.image_id, Status.FAILED.value)
    return True


def release(db: Database, claimed: Claim, reason: str, attempted: bool = True) -> bool:
    """Back to ``pending`` for a later delivery; ``attempted=False`` when the face service was
    never asked (the breaker was open), so the attempt does not count."""
    with db.transaction() as conn:
        return _guarded(
            conn, claimed,
            "status = 'pending', last_error = :reason, attempts = attempts - :undo",
            reason=reason[:ERROR_LENGTH], undo=0 if attempted else 1,
        )
