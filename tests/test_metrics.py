"""Prometheus metrics: each one is made to move by a real event (a post, a page view, an image
settling, a worker dying, the face service going away) and then read from the real service's
scrape."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from facerecog import face_pb2
from kubeface.core.messages import CHANNEL, TOPIC
from tests.support.face import FaceService
from tests.support.processor import Processor, add_images, ensure_channel, wait_final
from tests.support.procs import free_port, wait_for

Samples = dict[tuple[str, frozenset], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("kubeface_") or family.name.startswith(
            ("python_", "process_")), family.name
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _ in samples)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_receiver_counts_requests_by_route_and_code_and_images_posted(receiver, nsq):
    before = scrape(receiver.port)
    assert receiver.post_json("/image/post", {"path": "a.jpg"}).status == 202
    assert receiver.post_json("/image/post", {"path": "a.jpg"}).status == 200  # a repeat
    reply = receiver.post_json("/images/post", {"paths": [{"path": "b.jpg"}, {"path": "c.jpg"}]})
    assert reply.status == 202
    assert receiver.call("GET", "/images/12345").status == 404
    assert receiver.call("GET", "/no/such/thing").status == 404
    assert receiver.post_json("/image/post", {"nopath": 1}).status == 400
    after = scrape(receiver.port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kubeface_images_posted_total") == 3  # a, b, c; the repeat is not new
    requests = "kubeface_http_requests_total"
    assert moved(requests, service="receiver", route="/image/post", code="202") == 1
    assert moved(requests, service="receiver", route="/image/post", code="200") == 1
    assert moved(requests, service="receiver", route="/image/post", code="400") == 1
    assert moved(requests, service="receiver", route="/images/post", code="202") == 1
    # The route's rule, not the id a client sent: the label set stays bounded.
    assert moved(requests, service="receiver", route="/images/<image_id>", code="404") == 1
    assert moved(requests, service="receiver", route="unmatched", code="404") == 1
    duration = "kubeface_http_request_duration_seconds_count"
    assert moved(duration, service="receiver", route="/image/post", method="POST") == 3
    assert value(after, "kubeface_db_pool_size", service="receiver") >= 1
    # Every request has returned its connection by the time of the scrape.
    assert value(after, "kubeface_db_pool_checked_out", service="receiver") == 0
    assert has(after, "kubeface_db_pool_overflow")
    # The scrape itself is not counted as a route, and the other endpoints still answer.
    assert value(after, requests, route="/metrics") == 0
    assert receiver.call("GET", "/healthz").status == 200


def test_frontend_counts_page_views(frontend):
    before = scrape(frontend.port)
    assert frontend.call("GET", "/").status == 200
    assert frontend.call("GET", "/images/99").status == 404
    after = scrape(frontend.port)
    requests = "kubeface_http_requests_total"
    assert value(after, requests, service="frontend", route="/", code="200") - value(
        before, requests, service="frontend", route="/", code="200") == 1
    assert value(after, requests, service="frontend", code="404") - value(
        before, requests, service="frontend", code="404") == 1
    assert value(after, "kubeface_http_request_duration_seconds_bucket", service="frontend",
                 route="/", le="+Inf") >= 1


def _pick(expected: dict[str, dict], status: str) -> str:
    return next(name for name, want in expected.items() if want["status"] == status)


def _identify_ignoring_errors(face: FaceService, path: str) -> None:
    with contextlib.suppress(grpc.RpcError):
        face.identify(path)


def _worker_pids(folder: Path, server_pid: int) -> set[int]:
    """Recognition workers, found by the live-gauge files they write."""
    pids = {int(f.stem.rsplit("_", 1)[1]) for f in folder.glob("gauge_livesum_*.db")}
    return pids - {server_pid}


@pytest.mark.slow
def test_pipeline_metrics_from_the_processor_and_the_face_service(
        tmp_path, service_env, db, sample_images, image_dirs, publisher, nsq):
    """Real face service (two worker processes, multiprocess metrics) and processor: images
    settle by status, Identify is counted by outcome, workers are counted alive (a killed one
    is forgotten, its replacement counted), the queue's depth is in the processor's scrape,
    and the breaker's state and transitions follow the face service going away."""
    from kubeface.enrol import enrol

    enrol(db, Path(service_env["KNOWN_PEOPLE"]))
    multiproc = tmp_path / "face-metrics"
    face = FaceService(tmp_path / "face", {
        **service_env, "FACE_WORKERS": "2", "FACE_METRICS_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}).start()
    processor = Processor(tmp_path / "processor", {
        **service_env, "GRPC_ADDRESS": face.address,
        "PROCESSOR_METRICS_PORT": str(free_port())})
    face_port = int(face.env["FACE_METRICS_PORT"])
    proc_port = int(processor.env["PROCESSOR_METRICS_PORT"])
    try:
        assert get(face_port, "/readyz")[0] == 200
        assert get(face_port, "/healthz")[0] == 200
        face_before = scrape(face_port)
        known = len(list(Path(service_env["KNOWN_PEOPLE"]).glob("*.jpg")))
        assert value(face_before, "kubeface_known_faces") >= known > 0
        assert value(face_before, "kubeface_known_people") >= 1
        # Each worker counts itself once its models are loaded.
        wait_for(lambda: value(scrape(face_port), "kubeface_face_workers_alive") == 2,
                 "two workers alive", 120)

        # A channel nobody consumes: every published id waits there, as work would.
        ensure_channel(service_env)
        urllib.request.urlopen(urllib.request.Request(
            f"http://{service_env['NSQD_HTTP_ADDRESS']}/channel/create?topic={TOPIC}"
            "&channel=audit", method="POST"), timeout=5).close()
        processor.start()
        assert get(proc_port, "/healthz")[0] == 200
        wait_for(lambda: get(proc_port, "/readyz")[0] == 200, "processor ready")
        before = scrape(proc_port)
        assert value(before, "kubeface_breaker_state", state="closed") == 1
        assert value(before, "kubeface_breaker_state", state="open") == 0

        no_face, match = _pick(sample_images, "no_face"), _pick(sample_images, "processed")
        names = [no_face, match, "missing.jpg"]
        posted = time.monotonic()
        ids = add_images(db, names)
        publisher.publish_many(ids)
        final = wait_final(db, ids, timeout=180)
        assert [final[i] for i in ids] == ["no_face", "processed", "failed"]
        after = scrape(proc_port)
        waited = time.monotonic() - posted

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("kubeface_images_settled_total", status="no_face") == 1
        assert moved("kubeface_images_settled_total", status="processed") == 1
        assert moved("kubeface_images_settled_total", status="failed") == 1
        assert moved("kubeface_image_settle_seconds_count") == 3
        # Each image's time from its post to its outcome: within the test's own wait.
        assert 0 < moved("kubeface_image_settle_seconds_sum") <= 3 * waited
        assert value(after, "kubeface_image_settle_seconds_bucket", status="no_face",
                     le="+Inf") == 1
        assert value(after, "kubeface_messages_in_flight") == 0
        assert value(after, "kubeface_messages_in_flight_limit") == 4
        assert value(after, "kubeface_db_pool_size", service="processor") >= 1
        assert value(after, "kubeface_db_pool_checked_out", service="processor") == 0
        node = service_env["NSQD_HTTP_ADDRESS"]
        assert value(after, "kubeface_nsq_up", nsqd=node) == 1
        assert value(after, "kubeface_nsq_channel_depth", nsqd=node, topic=TOPIC,
                     channel="audit") == 3
        assert value(after, "kubeface_nsq_channel_depth", topic=TOPIC, channel=CHANNEL) == 0
        assert value(after, "kubeface_nsq_channel_clients", topic=TOPIC, channel=CHANNEL) == 1

        face_after = scrape(face_port)
        calls = "kubeface_identify_calls_total"
        assert value(face_after, calls, outcome="OUTCOME_NO_FACE") - value(
            face_before, calls, outcome="OUTCOME_NO_FACE") == 1
        assert value(face_after, calls, outcome="OUTCOME_MATCH") - value(
            face_before, calls, outcome="OUTCOME_MATCH") == 1
        assert value(face_after, calls, outcome="NOT_FOUND") - value(
            face_before, calls, outcome="NOT_FOUND") == 1
        assert value(face_after, "kubeface_identify_duration_seconds_count") - value(
            face_before, "kubeface_identify_duration_seconds_count") == 3
        # Recorded inside the worker processes (the two images, and any known image a reload
        # encoded meanwhile), added up by the server's scrape.
        assert value(face_after, "kubeface_face_analysis_seconds_count") - value(
            face_before, "kubeface_face_analysis_seconds_count") >= 2

        # The face service hangs (stopped, not dead): the processor's call waits for its
        # deadline, and the scrape shows the message in flight meanwhile.
        hung = add_images(db, [f"{no_face}~"])
        shutil.copyfile(Path(image_dirs[1]) / no_face, Path(image_dirs[1]) / f"{no_face}~")
        os.kill(face.process.proc.pid, signal.SIGSTOP)
        try:
            publisher.publish_many(hung)
            wait_for(lambda: value(scrape(proc_port), "kubeface_messages_in_flight") == 1,
                     "one message in flight in the scrape", 30)
        finally:
            os.kill(face.process.proc.pid, signal.SIGCONT)
        wait_final(db, hung, timeout=120)
        wait_for(lambda: value(scrape(proc_port), "kubeface_messages_in_flight") == 0,
                 "nothing in flight once it settled", 30)

        # The workers die in the middle of a call (a native crash looks so from outside): the
        # scrape forgets them, and counts only the one worker the next call starts.
        workers = _worker_pids(multiproc, face.process.proc.pid)
        assert len(workers) == 2
        caller = threading.Thread(target=_identify_ignoring_errors, args=(face, match))
        caller.start()
        time.sleep(0.3)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        caller.join(120)
        wait_for(lambda: value(scrape(face_port), "kubeface_face_workers_alive") == 0,
                 "the killed workers forgotten", 30)
        assert face.identify(no_face).outcome == face_pb2.OUTCOME_NO_FACE
        wait_for(lambda: value(scrape(face_port), "kubeface_face_workers_alive") == 1,
                 "the new worker counted", 60)
        assert len(_worker_pids(multiproc, face.process.proc.pid)) == 1

        # The face service goes away: the breaker opens, and the scrape says so.
        face.kill()
        down = add_images(db, [match + "~"])
        publisher.publish_many(down)
        wait_for(lambda: value(scrape(proc_port), "kubeface_breaker_state",
                               state="open") == 1, "breaker open in the scrape", 60)
        opened = scrape(proc_port)
        assert value(opened, "kubeface_breaker_transitions_total", from_state="closed",
                     to_state="open") == 1
        assert value(opened, "kubeface_breaker_state", state="closed") == 0
    finally:
        processor.stop()
        face.stop()


def test_processor_refuses_to_start_on_a_metrics_port_in_use(tmp_path, service_env, db):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = Processor(tmp_path / "p", {**service_env, "PROCESSOR_METRICS_PORT": str(port)})
        proc.process.start()
        assert proc.process.proc.wait(60) == 1
    assert "cannot serve metrics on 127.0.0.1:" in proc.log.read_text()
    assert "Traceback" not in proc.log.read_text()


def test_scrape_and_probe_endpoints_of_the_metrics_port(tmp_path):
    """The port's own contract, without a service: 404 elsewhere, a failing check is a 503
    with its reason, a check that raises is a 503 too."""
    from kubeface.core import metrics_server

    def broken() -> tuple[bool, str]:
        raise RuntimeError("no database")

    server = metrics_server.start("127.0.0.1", 0, "test", healthz=lambda: (False, "wedged"),
                                  readyz=broken)
    try:
        assert get(server.port, "/healthz") == (503, '{"status": "unavailable", '
                                                     '"detail": "wedged"}')
        code, body = get(server.port, "/readyz")
        assert code == 503 and "no database" in body
        assert get(server.port, "/nothing")[0] == 404
        assert get(server.port, "/metrics")[0] == 200
    finally:
        server.stop()


def test_database_pool_use_follows_connections_held(db):
    """In-process, on the test's real database: a connection held shows as checked out."""
    from prometheus_client import REGISTRY, generate_latest

    from kubeface.core import metrics

    def samples() -> Samples:
        found: Samples = {}
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
            for s in family.samples:
                found[(s.name, frozenset(s.labels.items()))] = s.value
        return found

    service = f"pool-test-{id(db)}"
    metrics.watch_pool(service, db)
    idle = value(samples(), "kubeface_db_pool_checked_out", service=service)
    with db.connection(), db.connection():
        held = value(samples(), "kubeface_db_pool_checked_out", service=service)
    assert (idle, held) == (0, 2)
    assert value(samples(), "kubeface_db_pool_checked_out", service=service) == 0


def test_processor_liveness_fails_while_its_event_loop_is_wedged():
    """A real tornado IOLoop on its own thread, made to block as a wedged handler would."""
    import asyncio
    import types

    import tornado.ioloop

    from kubeface.processor.observe import loop_alive

    started = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        holder["loop"] = tornado.ioloop.IOLoop.current()
        holder["loop"].add_callback(started.set)
        holder["loop"].start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    consumer = types.SimpleNamespace(loop=holder["loop"], in_flight={})
    try:
        assert loop_alive(consumer, 2.0)[0] is True
        holder["loop"].add_callback(time.sleep, 3.0)  # blocks the loop's thread
        ok, detail = loop_alive(consumer, 1.0)
        assert not ok and "has not run a callback" in detail
        assert loop_alive(consumer, 5.0)[0] is True  # it recovers once the block ends
    finally:
        holder["loop"].add_callback(holder["loop"].stop)
        thread.join(10)
