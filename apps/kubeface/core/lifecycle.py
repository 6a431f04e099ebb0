"""The image lifecycle: every change of an image's status, written once, from :class:`Status`.

::

    pending --claim--> processing --settle--> processed | unknown | no_face
       ^                  |  |
       |                  |  +----fail------> failed
       +----release-------+  (a passing fault: tried again later)

    revived to pending by the retry job: failed (after passing faults, or any with
    --include-permanent), processing whose lease expired (its worker died), unknown (--rematch);
    pending not touched for a while is published again, its status unchanged.
    processed <-> unknown when people change: relabelled from the stored faces' matches.

A claim moves an image to ``processing`` with a lease and ``attempts + 1``; every later change
by the same worker holds only while that claim is current (``status = processing`` and the
claim's ``attempts``), so a worker whose lease ran out cannot overwrite a newer claim's outcome.
The functions take the caller's connection: each runs inside the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import records

from kubeface.core import db
from kubeface.core.statuses import TERMINAL, Status

# Every status is a bound parameter (``:pending``, ``:processing``, ...): no literal in the SQL.
_STATUS = {s.name.lower(): s.value for s in Status}
_BOUND = re.compile(r"(?<!:):(\w+)")


def _bound(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names, statuses included (a text() query refuses any other)."""
    values = {**_STATUS, **params}
    return {name: values[name] for name in set(_BOUND.findall(sql))}


def execute(conn: records.Connection, sql: str, **params: Any) -> int:
    return db.execute(conn, sql, **_bound(sql, params))

ERROR_LENGTH = 1024  # images.last_error is VARCHAR(1024)
# The reason a release records while the breaker holds images back; the dashboard counts it.
BREAKER_REASON = "face service circuit breaker open"


def claim(conn: records.Connection, image_id: int, lease_seconds: int) -> bool:
    """pending (or processing with an expired lease) -> processing. True when this call won."""
    return bool(execute(
        conn,
        "UPDATE images SET status = :processing, attempts = attempts + 1,"
        " lease_until = NOW(3) + INTERVAL :lease SECOND"
        " WHERE id = :id AND (status = :pending OR (status = :processing"
        " AND (lease_until IS NULL OR lease_until < NOW(3))))",
        id=image_id, lease=lease_seconds,
    ))


def _while_claimed(conn: records.Connection, image_id: int, attempts: int, sets: str,
                   **params: Any) -> bool:
    """Apply ``sets`` only while the claim made at ``attempts`` is still the current one."""
    return bool(execute(
        conn,
        f"UPDATE images SET {sets}, lease_until = NULL"
        " WHERE id = :id AND status = :processing AND attempts = :attempts",
        id=image_id, attempts=attempts, **params,
    ))


def settle(conn: records.Connection, image_id: int, attempts: int, status: Status,
           person_id: int | None, face_count: int, note: str | None) -> bool:
    """processing -> ``status`` (processed, unknown or no_face). False when the claim was lost."""
    if status not in TERMINAL or status is Status.FAILED:
        raise ValueError(f"an outcome is processed, unknown or no_face, not {status}")
    return _while_claimed(
        conn, image_id, attempts,
        "status = :status, person_id = :person, face_count = :faces, last_error = :note,"
        " retryable = 0",
        status=status.value, person=person_id, faces=face_count,
        note=None if note is None else note[:ERROR_LENGTH],
    )


def fail(conn: records.Connection, image_id: int, attempts: int, reason: str,
         retryable: bool) -> bool:
    """processing -> failed with ``reason``; ``retryable`` when only passing faults made it
    give up (the retry job revives those). False when the claim was lost."""
    return _while_claimed(
        conn, image_id, attempts,
        "status = :failed, person_id = NULL, face_count = NULL, last_error = :reason,"
        " retryable = :retryable",
        reason=reason[:ERROR_LENGTH], retryable=int(retryable),
    )


def release(conn: records.Connection, image_id: int, attempts: int, reason: str,
            attempted: bool) -> bool:
    """processing -> pending, for a later delivery; ``attempted=False`` gives the attempt back
    (the face service was never asked). False when the claim was lost."""
    return _while_claimed(
        conn, image_id, attempts,
        "status = :pending, last_error = :reason, attempts = attempts - :undo",
        reason=reason[:ERROR_LENGTH], undo=0 if attempted else 1,
    )


def relabel(conn: records.Connection) -> int:
    """processed | unknown -> processed with the person of the temporary table ``relabel``, or
    unknown when it has none (a re-match of stored faces); returns the images changed."""
    return execute(
        conn,
        "UPDATE images i JOIN relabel r ON r.image_id = i.id"
        " SET i.person_id = r.person_id,"
        " i.status = IF(r.person_id IS NULL, :unknown, :processed),"
        " i.last_error = NULL"
        " WHERE NOT (i.person_id <=> r.person_id)"
        " OR i.status <> IF(r.person_id IS NULL, :unknown, :processed)"
        " OR i.last_error IS NOT NULL",
    )


# --- the retry job's revivals: each locks the rows it changes and returns their ids ---


def _revive(conn: records.Connection, where: str, sets: str, limit: int,
            **params: Any) -> list[int]:
    select = f"SELECT id FROM images WHERE {where} ORDER BY id LIMIT {int(limit)} FOR UPDATE"
    ids = [int(r.id) for r in conn.query(select, **_bound(select, params)).all()]
    if ids:
        execute(conn, f"UPDATE images SET {sets} WHERE id IN :ids", ids=tuple(ids), **params)
    return ids


def revive_failed(conn: records.Connection, max_retries: int, include_permanent: bool,
                  limit: int) -> list[int]:
    """failed -> pending, attempts reset, at most ``max_retries`` times an image: those that gave
    up after passing faults, or every failed one with ``include_permanent``."""
    return _revive(
        conn,
        "status = :failed AND retries < :max_retries"
        + ("" if include_permanent else " AND retryable = 1"),
        "status = :pending, attempts = 0, retries = retries + 1, retryable = 0,"
        " lease_until = NULL",
        limit, max_retries=max_retries,
    )


def revive_expired(conn: records.Connection, limit: int) -> list[int]:
    """processing whose lease expired (its worker stopped) -> pending."""
    return _revive(
        conn, "status = :processing AND lease_until < NOW(3)",
        "status = :pending, lease_until = NULL, last_error = :why", limit,
        why="claim expired: its worker stopped before an outcome",
    )


def stale_pending(conn: records.Connection, age_seconds: int, skip: Collection[int],
                  limit: int) -> list[int]:
    """pending images untouched for ``age_seconds`` (a publish that never happened, a message
    lost with its nsqd), except ``skip``; their clock restarts, so each is published again at
    most once a period."""
    return _revive(
        conn,
        "status = :pending AND updated_at < NOW(3) - INTERVAL :age SECOND"
        + (" AND id NOT IN :skip" if skip else ""),
        "updated_at = NOW(3)", limit, age=age_seconds, **({"skip": tuple(skip)} if skip else {}),
    )


def revive_unknown(conn: records.Connection, limit: int, unencoded_only: bool = True) -> list[int]:
    """unknown -> pending, to be detected and matched again. By default only the images with a
    face whose encoding is not stored (rows from before encodings were kept): the others are
    matched again from their stored encodings, with no detection (``core.matching.rematch``)."""
    where = "status = :unknown"
    if unencoded_only:
        where += (" AND (NOT EXISTS (SELECT 1 FROM faces f WHERE f.image_id = images.id)"
                  " OR EXISTS (SELECT 1 FROM faces f WHERE f.image_id = images.id"
                  " AND f.encoding IS NULL))")
    return _revive(conn, where, "status = :pending, attempts = 0, lease_until = NULL", limit)


def due_now(conn: records.Connection, image_ids: Collection[int], age_seconds: int) -> None:
    """Back-date pending ``image_ids`` past ``age_seconds``: the very next retry run takes them
    (their publish failed)."""
    if image_ids:
        execute(conn, "UPDATE images SET updated_at = NOW(3) - INTERVAL :age SECOND"
                      " WHERE status = :pending AND id IN :ids",
                age=age_seconds + 1, ids=tuple(image_ids))
