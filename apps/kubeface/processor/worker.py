"""What the processor does with one message, apart from NSQ: decide, record, and say whether to
finish the message or requeue it (and after how long).

The message is finished only once the database holds the outcome, so a worker killed at any
point loses nothing: nsqd delivers the message again and the claim's lease lets the next worker
take the image.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from kubeface.core import lifecycle, matching
from kubeface.core.config import Settings
from kubeface.core.db import UNAVAILABLE, Database
from kubeface.core.log import image_context
from kubeface.core.messages import MalformedMessage, decode_image_id
from kubeface.processor import store
from kubeface.processor.breaker import BreakerOpen, FaceServiceBreaker
from kubeface.processor.face_client import (
    FaceClient,
    ImageError,
    Recognition,
    ServiceTrouble,
    describe,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Finish the message (``delay`` is None) or requeue it ``delay`` seconds from now."""

    delay: float | None
    why: str

    @property
    def finish(self) -> bool:
        return self.delay is None


def _done(why: str) -> Verdict:
    return Verdict(None, why)


class ImageProcessor:
    """Thread-safe: one per process, shared by the worker threads (one pool, one channel)."""

    def __init__(self, settings: Settings, db: Database, face: FaceClient,
                 breaker: FaceServiceBreaker) -> None:
        self.db, self.face, self.breaker = db, face, breaker
        self.lease = settings.processor_lease_seconds
        self.max_attempts = settings.processor_max_attempts
        self.base_delay = settings.processor_requeue_seconds
        self.max_delay = settings.processor_max_requeue_seconds
        self.tolerance = settings.face_tolerance

    def backoff(self, delivery: int) -> float:
        """Growing delay for the ``delivery``-th try of a message, with jitter so a crowd of
        requeued messages does not come back at one instant."""
        delay = min(self.base_delay * 2 ** min(max(delivery - 1, 0), 30), self.max_delay)
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security

    def _later(self, seconds: float, why: str) -> Verdict:
        return Verdict(max(0.0, seconds), why)

    def handle(self, body: bytes, delivery: int = 1) -> Verdict:
        """The whole life of one message; never raises for bad input or absent services."""
        try:
            image_id = decode_image_id(body)
        except MalformedMessage as exc:
            log.warning("dropping malformed message %r: %s", body[:32], exc)
            return _done(f"malformed: {exc}")
        try:
            with image_context(image_id):
                return self._handle(image_id, delivery)
        except UNAVAILABLE as exc:
            log.warning("image %d: database unavailable, requeued: %s", image_id,
                        str(exc).splitlines()[0][:200], extra={"image_id": image_id})
            return self._later(self.backoff(delivery), "database unavailable")

    def _handle(self, image_id: int, delivery: int) -> Verdict:
        wait = self.breaker.retry_after()
        if wait > 0:
            # Not claimed, so a long outage never uses up the image's attempts.
            return self._later(wait + random.uniform(0, 1), "breaker open")  # noqa: S311
        claimed = store.claim(self.db, image_id, self.lease)
        if isinstance(claimed, store.Missing):
            log.warning("image %d is not in the database: message dropped", image_id)
            return _done("no such image")
        if isinstance(claimed, store.Settled):
            log.info("image %d already %s: duplicate message finished", image_id, claimed.status)
            return _done(f"already {claimed.status}")
        if isinstance(claimed, store.Busy):
            return self._later(claimed.seconds + 0.5, "claimed by another worker")
        if claimed.attempts > self.max_attempts:
            # Claimed that often without an outcome: e.g. a worker crashed on it each time.
            reason = f"gave up after {self.max_attempts} attempts: {claimed.last_error or ''}"
            store.record_failure(self.db, claimed, reason.rstrip(": "), retryable=True)
            log.warning("image %d: %s", image_id, reason)
            return _done("gave up")
        return self._identify(claimed, delivery)

    def _match_again(self, image_id: int, found: Recognition) -> bool:
        """Whether the stored faces must be matched again from their encodings: a person was
        told a face is not them, or people changed after the face service loaded the known
        faces it matched against (a change's own re-match may have run before this image was
        stored, and the service picks the change up only at its next poll)."""
        if found.faces and found.people_version is not None \
                and found.people_version != matching.version(self.db):
            return True
        return matching.has_rejections(self.db, image_id)

    def _identify(self, claimed: store.Claim, delivery: int) -> Verdict:
        image_id = claimed.image_id
        try:
            found = self.breaker.call(self.face.identify, claimed.path)
        except ImageError as exc:
            reason = str(exc)[: store.ERROR_LENGTH]
            store.record_failure(self.db, claimed, reason, retryable=False)
            log.info("image %d failed: %s", image_id, reason)
            return _done("failed")
        except BreakerOpen as exc:
            store.release(self.db, claimed, lifecycle.BREAKER_REASON, attempted=False)
            return self._later(exc.retry_after + random.uniform(0, 1), "breaker open")  # noqa: S311
        except Exception as exc:  # transport errors, UNAVAILABLE, DEADLINE_EXCEEDED, ServiceTrouble
            reason = describe(exc) if not isinstance(exc, ServiceTrouble) else str(exc)
            if claimed.attempts >= self.max_attempts:
                gave_up = f"gave up after {claimed.attempts} attempts: {reason}"
                store.record_failure(self.db, claimed, gave_up, retryable=True)
                log.warning("image %d: %s", image_id, gave_up)
                return _done("gave up")
            store.release(self.db, claimed, reason)
            delay = self.backoff(delivery)
            log.info("image %d: attempt %d: %s; requeued in %.1fs", image_id, claimed.attempts,
                     reason, delay)
            return self._later(delay, reason)
        if store.record_result(self.db, claimed, found):
            if self._match_again(image_id, found):
                matching.rematch(self.db, self.tolerance, [image_id])
            log.info("image %d: %s (%d faces)", image_id, found.status, len(found.faces))
            return _done("recorded")
        log.info("image %d: claim lost to another worker, result dropped", image_id)
        return _done("claim lost")
