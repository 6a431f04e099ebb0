"""``kubeface retry``: the article's cron job.

One run re-publishes, through nsqd's HTTP API:

* ``failed`` images that gave up after transient trouble (``retryable``), at most
  ``RETRY_MAX_RETRIES`` times each, with their attempts reset (``--include-permanent`` also
  takes images that failed for good, e.g. after the missing file was copied in);
* ``pending`` images not touched for ``RETRY_PENDING_AFTER_SECONDS`` (a publish that never
  happened, or a message lost with its nsqd);
* ``processing`` images whose lease expired (their worker died); they go back to ``pending``;
* with ``--rematch``, ``unknown`` images, to be matched again after new people were enrolled:
  those whose face encodings are stored are matched again from them, with no detection and no
  message; only those without are re-published to be detected again.

The database is changed first and the ids published after: if nsqd is away the images stay
``pending`` and a later run publishes them. Publishing twice is harmless (the processor's claim
is atomic and a settled image is not processed again). A Kubernetes CronJob runs it once;
``--every SECONDS`` runs it in a loop for the local target's process supervisor.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import dataclass, field

from kubeface.core import lifecycle, matching
from kubeface.core.config import Settings
from kubeface.core.db import UNAVAILABLE, Database, named_lock
from kubeface.core.queue import Publisher, PublishError

log = logging.getLogger(__name__)

_LOCK = "kubeface.retry"
_PUBLISH_CHUNK = 500


@dataclass
class RetryRun:
    """What one run did: image ids per reason, and whether publishing them worked."""

    failed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    rematched: list[int] = field(default_factory=list)  # unknown, with no stored encodings
    relabelled: int = 0  # unknown images matched again from their stored encodings
    published: int = 0
    skipped: bool = False  # another run held the lock

    @property
    def ids(self) -> list[int]:
        return sorted({*self.failed, *self.pending, *self.expired, *self.rematched})


def collect(db: Database, settings: Settings, rematch: bool = False,
            include_permanent: bool = False, limit: int = 10_000) -> RetryRun:
    """Move every image worth another try back to ``pending``; return what was moved."""
    run = RetryRun()
    with db.transaction() as conn, named_lock(conn, _LOCK, 0) as got:
        if not got:
            run.skipped = True
            return run
        run.failed = lifecycle.revive_failed(conn, settings.retry_max_retries,
                                             include_permanent, limit)
        run.expired = lifecycle.revive_expired(conn, limit)
        run.pending = lifecycle.stale_pending(conn, settings.retry_pending_after_seconds,
                                              run.failed + run.expired, limit)
        if rematch:
            run.rematched = lifecycle.revive_unknown(conn, limit)
    return run


def publish(publisher: Publisher, run: RetryRun) -> None:
    """Publish every id of ``run``; :class:`PublishError` leaves the rest for the next run."""
    ids = run.ids
    for start in range(0, len(ids), _PUBLISH_CHUNK):
        chunk = ids[start:start + _PUBLISH_CHUNK]
        publisher.publish_many(chunk)
        run.published += len(chunk)


def run_once(db: Database, publisher: Publisher, settings: Settings, rematch: bool = False,
             include_permanent: bool = False, limit: int = 10_000) -> RetryRun:
    run = collect(db, settings, rematch, include_permanent, limit)
    if run.skipped:
        log.info("another retry run holds the lock: nothing done")
        return run
    if rematch:
        run.relabelled = matching.rematch(db, settings.face_tolerance).images
    try:
        publish(publisher, run)
    except PublishError:
        # Back-date what was not published so the very next run takes it, not one
        # RETRY_PENDING_AFTER_SECONDS later.
        with db.transaction() as conn:
            lifecycle.due_now(conn, run.ids[run.published:], settings.retry_pending_after_seconds)
        raise
    log.info("retry: %d failed revived, %d stale pending, %d expired claims, %d unknown to "
             "detect again, %d re-labelled from stored faces; %d published", len(run.failed),
             len(run.pending), len(run.expired), len(run.rematched), run.relabelled,
             run.published)
    return run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", type=float, metavar="SECONDS",
                        help="run again every SECONDS until stopped (for a process supervisor; "
                             "a CronJob runs it once)")
    parser.add_argument("--rematch", action="store_true",
                        help="also match 'unknown' images again (after new people were enrolled): "
                             "from their stored face encodings, or, without, by detecting again")
    parser.add_argument("--include-permanent", action="store_true",
                        help="also retry images that failed for good (missing file, not an "
                             "image), e.g. after the files were fixed")
    parser.add_argument("--limit", type=int, default=10_000,
                        help="most images per reason in one run (default 10000)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.every is not None and args.every <= 0:
        log.error("--every needs a positive number of seconds, got %s", args.every)
        return 2
    if args.limit < 1:
        log.error("--limit needs a positive number, got %s", args.limit)
        return 2
    db = Database(settings)
    publisher = Publisher.for_settings(settings)
    stop = threading.Event()
    if args.every is not None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    try:
        while True:
            code = 0
            try:
                run_once(db, publisher, settings, args.rematch, args.include_permanent,
                         args.limit)
            except UNAVAILABLE as exc:
                log.error("retry: database unavailable: %s", str(exc).splitlines()[0][:200])
                code = 1
            except PublishError as exc:
                # The images are pending in the database: a later run publishes them.
                log.error("retry: %s", exc)
                code = 1
            if args.every is None:
                return code
            if stop.wait(args.every):
                return 0
    finally:
        db.close()
