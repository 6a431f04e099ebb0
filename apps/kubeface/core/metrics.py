"""Prometheus metrics of every kube-face service, with the official ``prometheus-client``.

Every name starts with ``kubeface_``. Each service's metrics are built on first use
(:func:`http`, :func:`processor`, :func:`face`), so that the face service can switch
``prometheus-client`` to its multiprocess mode (:func:`use_multiprocess`) before any of its
metrics exist: its recognition workers are separate processes, each writing its own values to a
file under ``PROMETHEUS_MULTIPROC_DIR``, and a scrape of the server adds them up. Values the
process reads at scrape time (messages in flight, the database pool, the breaker's state, nsqd's
depths) are collectors, which work in both modes.

Recording a metric never raises into the caller: an operator's view must not break the work.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from kubeface.core.queue import get_json

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECOGNITION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
SETTLE_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
                  4 * 3600.0, 24 * 3600.0)

# Collectors of this process's live state, added to every scrape in either mode.
_collectors: list[Any] = []


# --- multiprocess mode (the face service) --------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def use_multiprocess() -> Callable[[], None]:
    """Put this process and the processes it starts from now on in multiprocess mode.

    ``PROMETHEUS_MULTIPROC_DIR`` is used when set (a pod's emptyDir) and emptied, since values
    left by a previous run would be added to this one's; otherwise a private temporary folder
    is made. Returns the clean-up to call when the service stops."""
    given = multiprocess_dir()
    path = given or tempfile.mkdtemp(prefix="kubeface-metrics-")
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
    os.environ[MULTIPROC_ENV] = path  # spawned workers inherit it and start in this mode
    values.ValueClass = values.MultiProcessValue()

    def cleanup() -> None:
        if not given:
            shutil.rmtree(path, ignore_errors=True)

    return cleanup


_PID_FILE = re.compile(r"_(\d+)\.db$")


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed worker not reaped yet is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def forget_dead_processes(path: str) -> list[int]:
    """Drop the live gauges of processes that are gone (a worker that crashed or was replaced),
    so ``kubeface_face_workers_alive`` counts only the living. Counters and histograms of dead
    workers stay: what they counted did happen."""
    dead = []
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _PID_FILE.search(name)
        if match and not _alive(pid := int(match.group(1))):
            multiprocess.mark_process_dead(pid, path)
            dead.append(pid)
    return dead


def exposition() -> bytes:
    """This process's scrape in Prometheus text format."""
    path = multiprocess_dir()
    if path:
        forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path)
        for collector in _collectors:
            registry.register(collector)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _add_collector(collector: Any) -> None:
    _collectors.append(collector)
    if not multiprocess_dir():
        REGISTRY.register(collector)


class _Collector:
    """A collector from a function that yields metric families at scrape time."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape must not fail because one source did
            log.warning("metrics: %s failed: %s", getattr(self._collect, "__name__", "?"), exc)

    def describe(self) -> list[Metric]:
        return []  # no names known in advance: never checked for duplicates at registration


def _safe(func: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except Exception as exc:
            log.warning("metrics: recording %s failed: %s", func.__name__, exc)
    return wrapper


def gauge(name: str, documentation: str, value: float,
          labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


# --- HTTP services: the receiver and the frontend ------------------------------------------


class HttpMetrics:
    def __init__(self) -> None:
        self.requests = Counter(
            "kubeface_http_requests", "HTTP requests answered, by service, route and status code",
            ["service", "route", "method", "code"])
        self.duration = Histogram(
            "kubeface_http_request_duration_seconds",
            "Time to answer an HTTP request (until the app returned its body)",
            ["service", "route", "method"], buckets=HTTP_BUCKETS)
        self.images_posted = Counter(
            "kubeface_images_posted", "New images accepted by the receiver (not the repeats)")

    @_safe
    def observe(self, service: str, route: str, method: str, code: str, seconds: float) -> None:
        self.requests.labels(service, route, method, code).inc()
        self.duration.labels(service, route, method).observe(seconds)

    @_safe
    def posted(self, count: int) -> None:
        if count:
            self.images_posted.inc(count)


@functools.cache
def http() -> HttpMetrics:
    return HttpMetrics()


def _route_of(environ: dict[str, Any]) -> str:
    """The route's rule (``/images/<image_id>``), never the raw path: the label set stays
    small whatever clients send."""
    route = environ.get("bottle.route")
    return getattr(route, "rule", None) or "unmatched"


def instrument(app: Callable[..., Any], service: str, database: Any = None) -> Callable[..., Any]:
    """Wrap a Bottle WSGI app: count and time every request by route and code, and answer
    ``GET /metrics`` with this process's scrape (``database``: its pool use is shown too)."""
    metrics = http()
    if database is not None:
        watch_pool(service, database)

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD") in {
                "GET", "HEAD"}:
            body = exposition()
            start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                      ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [body]
        started = time.perf_counter()
        status: list[str] = []

        def recording_start_response(code: str, headers: Any, *exc_info: Any) -> Any:
            status[:] = [code.split(" ", 1)[0]]
            return start_response(code, headers, *exc_info)

        try:
            return app(environ, recording_start_response)
        finally:
            metrics.observe(service, _route_of(environ), environ.get("REQUEST_METHOD", "?"),
                            status[0] if status else "500", time.perf_counter() - started)

    return wsgi


# --- the database pool (any service) -------------------------------------------------------


def watch_pool(service: str, database: Any) -> None:
    """Show the SQLAlchemy pool of ``database`` (a :class:`kubeface.core.db.Database`)."""

    def pool_use() -> Iterator[Metric]:
        pool = database.pool
        size = GaugeMetricFamily("kubeface_db_pool_size", "Connections the pool keeps open",
                                 labels=["service"])
        size.add_metric([service], pool.size())
        used = GaugeMetricFamily("kubeface_db_pool_checked_out",
                                 "Database connections in use right now", labels=["service"])
        used.add_metric([service], pool.checkedout())
        overflow = GaugeMetricFamily(
            "kubeface_db_pool_overflow",
            "Connections open beyond the pool size (negative: pool slots not opened yet)",
            labels=["service"])
        overflow.add_metric([service], pool.overflow())
        yield from (size, used, overflow)

    _add_collector(_Collector(pool_use))


# --- the processor -------------------------------------------------------------------------


class ProcessorMetrics:
    def __init__(self) -> None:
        self.settled = Counter("kubeface_images_settled",
                               "Images that reached a final status in this processor",
                               ["status"])
        self.settle_seconds = Histogram(
            "kubeface_image_settle_seconds",
            "Time from an image's post to its final status", ["status"],
            buckets=SETTLE_BUCKETS)
        self.transitions = Counter("kubeface_breaker_transitions",
                                   "Circuit breaker state changes", ["from_state", "to_state"])

    @_safe
    def image_settled(self, status: str, seconds: float | None) -> None:
        self.settled.labels(status).inc()
        if seconds is not None:
            self.settle_seconds.labels(status).observe(max(0.0, seconds))

    def watch_breaker(self, breaker: Any) -> None:
        """Count ``breaker``'s transitions (a pybreaker listener) and show its state."""
        import pybreaker

        transitions = self.transitions

        class Listener(pybreaker.CircuitBreakerListener):
            def state_change(self, cb, old_state, new_state) -> None:  # type: ignore[no-untyped-def]
                with contextlib.suppress(Exception):
                    old = old_state.name if old_state else "none"
                    transitions.labels(old, new_state.name).inc()

        breaker.add_listener(Listener())
        states = (pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN)
        for old in states:  # every series exists from the start, at 0
            for new in states:
                if old != new:
                    transitions.labels(old, new)

        def state() -> Iterator[Metric]:
            current = breaker.current_state
            family = GaugeMetricFamily(
                "kubeface_breaker_state",
                "Face-service circuit breaker: 1 for its current state", labels=["state"])
            for name in states:
                family.add_metric([name], 1.0 if name == current else 0.0)
            yield family
            yield gauge("kubeface_breaker_open_seconds",
                        "Length of the breaker's current or next open period",
                        float(breaker.reset_timeout))

        _add_collector(_Collector(state))

    def watch_in_flight(self, count: Callable[[], int], limit: int) -> None:
        def in_flight() -> Iterator[Metric]:
            yield gauge("kubeface_messages_in_flight",
                        "NSQ messages this processor is working on", float(count()))
            yield gauge("kubeface_messages_in_flight_limit",
                        "Most messages this processor works on at once", float(limit))

        _add_collector(_Collector(in_flight))

    def watch_nsq(self, lookupd_http: str, timeout: float = 2.0,
                  tls: ssl.SSLContext | None = None) -> None:
        """nsqd's topic and channel depths, asked at scrape time from every nsqd that
        nsqlookupd knows (one scrape shows the whole queue); over HTTPS with ``tls``."""
        _add_collector(_Collector(lambda: nsq_stats(lookupd_http, timeout, tls)))


@functools.cache
def processor() -> ProcessorMetrics:
    return ProcessorMetrics()


def nsq_stats(lookupd_http: str, timeout: float = 2.0,
              tls: ssl.SSLContext | None = None) -> Iterator[Metric]:
    up = GaugeMetricFamily("kubeface_nsq_up", "1 when the nsqd answered its /stats",
                           labels=["nsqd"])
    topic_depth = GaugeMetricFamily("kubeface_nsq_topic_depth",
                                    "Messages waiting in an nsqd topic", labels=["nsqd", "topic"])
    depth = GaugeMetricFamily("kubeface_nsq_channel_depth",
                              "Messages waiting in an nsqd channel (memory and disk)",
                              labels=["nsqd", "topic", "channel"])
    in_flight = GaugeMetricFamily("kubeface_nsq_channel_in_flight",
                                  "Messages delivered and not yet finished",
                                  labels=["nsqd", "topic", "channel"])
    deferred = GaugeMetricFamily("kubeface_nsq_channel_deferred",
                                 "Messages requeued with a delay",
                                 labels=["nsqd", "topic", "channel"])
    clients = GaugeMetricFamily("kubeface_nsq_channel_clients", "Consumers of a channel",
                                labels=["nsqd", "topic", "channel"])
    lookupd_up = 1.0
    try:
        producers = get_json(f"http://{lookupd_http}/nodes", timeout).get("producers", [])
    except Exception as exc:
        log.warning("metrics: nsqlookupd %s: %s", lookupd_http, exc)
        producers, lookupd_up = [], 0.0
    yield gauge("kubeface_nsq_lookupd_up", "1 when nsqlookupd answered", lookupd_up)
    for producer in producers:
        node = f"{producer.get('broadcast_address')}:{producer.get('http_port')}"
        try:
            # With TLS nsqd's plain port (the one nsqlookupd knows) names its HTTPS port.
            stats = get_json(f"http://{node}/stats?format=json", timeout, tls)
        except Exception as exc:
            log.warning("metrics: nsqd %s /stats: %s", node, exc)
            up.add_metric([node], 0.0)
            continue
        up.add_metric([node], 1.0)
        for topic in stats.get("topics", []):
            name = topic["topic_name"]
            topic_depth.add_metric([node, name], topic.get("depth", 0))
            for channel in topic.get("channels", []):
                labels = [node, name, channel["channel_name"]]
                depth.add_metric(labels, channel.get("depth", 0))
                in_flight.add_metric(labels, channel.get("in_flight_count", 0))
                deferred.add_metric(labels, channel.get("deferred_count", 0))
                clients.add_metric(labels, len(channel.get("clients", [])))
    yield from (up, topic_depth, depth, in_flight, deferred, clients)


# --- the face service ----------------------------------------------------------------------


class FaceMetrics:
    """Built in the server after :func:`use_multiprocess`, and in each worker process."""

    def __init__(self) -> None:
        self.identify = Counter("kubeface_identify_calls",
                                "Identify calls answered, by outcome or gRPC error code",
                                ["outcome"])
        self.identify_seconds = Histogram(
            "kubeface_identify_duration_seconds", "Time to answer one Identify call",
            ["outcome"], buckets=RECOGNITION_BUCKETS)
        self.analysis_seconds = Histogram(
            "kubeface_face_analysis_seconds",
            "Detection and encoding of one image in a worker process",
            buckets=RECOGNITION_BUCKETS)
        self.known_faces = Gauge("kubeface_known_faces", "Known faces loaded",
                                 multiprocess_mode="livesum")
        self.known_people = Gauge("kubeface_known_people", "Known people loaded",
                                  multiprocess_mode="livesum")
        self.workers_alive = Gauge("kubeface_face_workers_alive",
                                   "Recognition worker processes alive",
                                   multiprocess_mode="livesum")

    @_safe
    def identified(self, outcome: str, started: float) -> None:
        self.identify.labels(outcome).inc()
        self.identify_seconds.labels(outcome).observe(time.monotonic() - started)

    @_safe
    def known_loaded(self, known: Any) -> None:
        self.known_faces.set(known.faces)
        self.known_people.set(known.people)

    @_safe
    def worker_started(self) -> None:
        self.workers_alive.set(1)

    @contextlib.contextmanager
    def analysis(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.analysis_seconds.observe(time.monotonic() - started)


@functools.cache
def face() -> FaceMetrics:
    return FaceMetrics()
