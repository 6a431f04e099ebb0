"""``kubeface processor``: consume image ids from NSQ, recognise them, record the outcome."""

from __future__ import annotations

import argparse
import logging

from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.processor import observe
from kubeface.processor.breaker import FaceServiceBreaker
from kubeface.processor.consumer import Consumer
from kubeface.processor.face_client import FaceClient, ImageError, ServiceTrouble
from kubeface.processor.worker import ImageProcessor

log = logging.getLogger(__name__)


def build(settings: Settings, db: Database, face: FaceClient) -> ImageProcessor:
    """The processor's parts, wired as in production (tests build the same)."""
    breaker = FaceServiceBreaker(
        face.check_health,
        fail_max=settings.breaker_fail_max,
        reset_seconds=settings.breaker_reset_seconds,
        max_reset_seconds=settings.breaker_max_reset_seconds,
        # The service answered: the image's fault, or a server error that is not an outage.
        exclude=[ImageError, ServiceTrouble],
    )
    return ImageProcessor(settings, db, face, breaker)


def main(settings: Settings, args: argparse.Namespace) -> int:
    if settings.processor_lease_seconds <= settings.grpc_timeout_seconds:
        log.warning("PROCESSOR_LEASE_SECONDS (%d) should exceed GRPC_TIMEOUT_SECONDS (%.0f): a "
                    "slow call could outlive its claim", settings.processor_lease_seconds,
                    settings.grpc_timeout_seconds)
    if settings.processor_max_in_flight > 2 * settings.db_pool_size:
        log.warning("PROCESSOR_MAX_IN_FLIGHT (%d) exceeds the database pool (DB_POOL_SIZE %d, "
                    "twice that with overflow): workers will wait for connections",
                    settings.processor_max_in_flight, settings.db_pool_size)
    db = Database(settings)
    face = FaceClient(settings.grpc_address, settings.grpc_timeout_seconds)
    try:
        consumer = Consumer(settings, build(settings, db, face))
        try:
            port = observe.start(settings, db, consumer)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%d (PROCESSOR_METRICS_PORT): %s",
                      settings.bind_address, settings.processor_metrics_port, exc)
            return 1
        try:
            consumer.run()
        finally:
            port.stop()
    finally:
        face.close()
        db.close()
    return 0
