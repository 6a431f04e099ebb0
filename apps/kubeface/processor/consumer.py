"""The NSQ side of the processor: pynsq's Reader on tornado's IOLoop, work in a thread pool.

pynsq runs everything on the IOLoop thread, and a handler that blocks (a face-recognition call
takes a second or more) would stall heartbeats and every other message. So each message is
made asynchronous (``enable_async``), handed to a worker thread, and answered -- finish or
requeue -- back on the IOLoop thread (``add_callback``): pynsq's connections are not
thread-safe. pynsq's own give-up (``max_tries``) is off; the image's attempts in the database
decide. Messages still in flight after ``TOUCH_SECONDS`` are touched so that nsqd does not
hand them to another worker while the face service is still thinking.

This is the only module that imports pynsq (no release since 2021).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import nsq
import tornado.ioloop

from kubeface.core import queue
from kubeface.core.config import Settings
from kubeface.core.messages import CHANNEL, TOPIC
from kubeface.processor.worker import ImageProcessor, Verdict

log = logging.getLogger(__name__)

TOUCH_SECONDS = 20.0  # well inside nsqd's default --msg-timeout of 60 s


class _Reader(nsq.Reader):
    def connect_to_nsqd(self, host, port):  # type: ignore[no-untyped-def]
        conn = super().connect_to_nsqd(host, port)
        if conn is not None:
            conn.on("ready", lambda conn, **_: log.info(
                "consuming %s/%s from nsqd %s", self.topic, self.channel, conn.id))
        return conn


class Consumer:
    """Runs until SIGTERM/SIGINT: then it takes no new messages, waits for those in flight
    (up to ``grace`` seconds, then requeues them), and returns."""

    def __init__(self, settings: Settings, processor: ImageProcessor) -> None:
        self.processor = processor
        self.max_in_flight = settings.processor_max_in_flight
        self.grace = settings.grpc_timeout_seconds + 5
        asyncio.set_event_loop(asyncio.new_event_loop())
        self.loop = tornado.ioloop.IOLoop.current()
        self.pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="image")
        self.in_flight: dict[int, tuple[nsq.Message, float]] = {}
        self.stopping = False
        self.client_name = f"kubeface-processor-{os.getpid()}"
        self.reader = _Reader(
            topic=TOPIC, channel=CHANNEL, message_handler=self._on_message,
            lookupd_http_addresses=[f"http://{settings.nsq_lookup_address}"],
            max_in_flight=self.max_in_flight, max_tries=0,
            lookupd_poll_interval=settings.processor_lookupd_poll_seconds,
            lookupd_poll_jitter=0.1, hostname=self.client_name,
            tls_v1=settings.nsq_tls_files is not None, tls_options=queue.tls_options(settings),
        )
        self._toucher = tornado.ioloop.PeriodicCallback(self._touch, TOUCH_SECONDS * 1000 / 2)

    # --- on the IOLoop thread ---

    def _on_message(self, message: nsq.Message) -> None:
        message.enable_async()
        if self.stopping:
            message.requeue(backoff=False, time_ms=0)
            return
        self.in_flight[id(message)] = (message, time.monotonic())
        future = self.pool.submit(self.processor.handle, message.body, message.attempts)
        future.add_done_callback(
            lambda f: self.loop.add_callback(self._respond, message, f))

    def _respond(self, message: nsq.Message, future: Future[Verdict]) -> None:
        self.in_flight.pop(id(message), None)
        if not message.has_responded():
            try:
                verdict = future.result()
            except Exception:
                log.exception("processing message %r failed unexpectedly", message.body[:32])
                verdict = Verdict(self.processor.backoff(message.attempts), "unexpected error")
            if verdict.finish:
                message.finish()
            else:
                message.requeue(backoff=False, time_ms=int(verdict.delay * 1000))
        if self.stopping and not self.in_flight:
            self._close()

    def _touch(self) -> None:
        now = time.monotonic()
        for message, started in list(self.in_flight.values()):
            if now - started >= TOUCH_SECONDS and not message.has_responded():
                message.touch()

    def _stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping: taking no new messages, %d in flight", len(self.in_flight))
        self.reader.set_max_in_flight(0)
        if not self.in_flight:
            self._close()
        else:
            self.loop.call_later(self.grace, self._give_back)

    def _give_back(self) -> None:
        """Still running after the grace period: let nsqd hand the messages to someone else."""
        for message, _ in list(self.in_flight.values()):
            if not message.has_responded():
                message.requeue(backoff=False, time_ms=0)
        self.in_flight.clear()
        self._close()

    def _close(self) -> None:
        # FIN/REQ are written asynchronously: let them reach nsqd before closing the sockets.
        deadline = time.monotonic() + 2.0

        def finish() -> None:
            writing = any(c.stream and c.stream.writing() for c in self.reader.conns.values())
            if writing and time.monotonic() < deadline:
                self.loop.call_later(0.05, finish)
                return
            self.reader.close()
            self.loop.call_later(0.1, self.loop.stop)

        self.loop.call_later(0.05, finish)

    # --- from the main thread ---

    def run(self) -> None:
        """Serve until a signal stops it."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.asyncio_loop.add_signal_handler(sig, self._stop)  # type: ignore[attr-defined]
        self._toucher.start()
        log.info("processor %s starting: topic %s, channel %s, %d in flight at most",
                 self.client_name, TOPIC, CHANNEL, self.max_in_flight)
        try:
            self.loop.start()
        finally:
            self._toucher.stop()
            self.pool.shutdown(wait=False, cancel_futures=True)
            log.info("processor stopped")
