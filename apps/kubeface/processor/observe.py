"""The processor's metrics and health port (``PROCESSOR_METRICS_PORT``).

``/healthz`` is the liveness probe: it asks the NSQ event loop to run a no-op and fails when it
does not within :data:`LOOP_SECONDS` (a wedged processor holds its messages and takes no new
ones; restarting it hands them to another). ``/readyz``: the database answers and the consumer
is connected to at least one nsqd.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kubeface.core import metrics, metrics_server, queue
from kubeface.core.config import Settings
from kubeface.core.db import Database

if TYPE_CHECKING:  # the consumer imports the store, which imports this module
    from kubeface.processor.consumer import Consumer

LOOP_SECONDS = 10.0


def settled(status: str, seconds: float) -> None:
    """Count an image that reached ``status`` ``seconds`` after its post."""
    metrics.processor().image_settled(status, seconds)


def loop_alive(consumer: Consumer, seconds: float = LOOP_SECONDS) -> tuple[bool, str]:
    """Whether the consumer's event loop runs a no-op within ``seconds``."""
    ran = threading.Event()
    consumer.loop.add_callback(ran.set)
    if ran.wait(seconds):
        return True, f"event loop running, {len(consumer.in_flight)} message(s) in flight"
    return False, f"the NSQ event loop has not run a callback for {seconds:.0f}s"


def start(settings: Settings, db: Database, consumer: Consumer) -> metrics_server.MetricsServer:
    """Watch the consumer, the breaker, the pool and nsqd, and serve the port."""
    observed = metrics.processor()
    observed.watch_breaker(consumer.processor.breaker)
    observed.watch_in_flight(lambda: len(consumer.in_flight), consumer.max_in_flight)
    observed.watch_nsq(settings.nsq_lookup_address, tls=queue.tls_context(settings))
    metrics.watch_pool("processor", db)

    def ready() -> tuple[bool, str]:
        try:
            db.ping()
        except Exception as exc:
            return False, f"database unreachable ({type(exc).__name__})"
        if not consumer.reader.conns:
            return False, "not connected to any nsqd yet"
        return True, f"consuming from {len(consumer.reader.conns)} nsqd"

    return metrics_server.start(settings.bind_address, settings.processor_metrics_port,
                                "processor", healthz=lambda: loop_alive(consumer),
                                readyz=ready)
