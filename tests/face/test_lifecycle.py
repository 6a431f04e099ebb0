"""The face service's life: health before and after loading, reloads, the cache, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from facerecog import face_pb2, face_pb2_grpc
from kubeface.core.metrics import _alive
from tests.support.face import FaceService, copy_samples, face_env
from tests.support.procs import children, wait_for
from tests.test_metrics import scrape, value


def test_not_serving_until_known_faces_load_then_serving(photos, tmp_path, start_service):
    known, unknown, _ = copy_samples(photos, tmp_path, skip_known=("barack_obama.jpg",
                                                                   "joe_biden.jpg",
                                                                   "grace_hopper.jpg"))
    service = start_service(face_env(known, unknown, tmp_path / "cache"), wait=False)
    wait_for(lambda: service.health() == "NOT_SERVING", "health answers", 120,
             service.process.proc, service.log)
    # Give it time to find the (empty) folder: it must still not claim to serve.
    wait_for(lambda: "known faces not loaded" in service.log.read_text(), "empty folder seen",
             120, service.process.proc, service.log)
    assert service.health() == "NOT_SERVING"
    assert service.health("facerecog.Identity") == "NOT_SERVING"
    with pytest.raises(grpc.RpcError) as caught:
        service.identify("obama2.jpg")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # retry later, not a bad image
    with pytest.raises(grpc.RpcError) as caught:
        service.reload()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no face" in caught.value.details()

    shutil.copyfile(photos / "known" / "barack_obama.jpg", known / "barack_obama.jpg")
    service.wait_serving(60)  # picked up by the folder watch, no call needed
    assert service.identify("obama2.jpg").person == "Barack Obama"


def test_a_person_added_to_the_folder_is_recognised_without_restart(photos, tmp_path,
                                                                    start_service):
    known, unknown, _ = copy_samples(photos, tmp_path, skip_known=("grace_hopper.jpg",))
    service = start_service(face_env(known, unknown, tmp_path / "cache"))
    pid = service.process.proc.pid
    before = service.identify("hopper_pillow.jpg")
    assert before.outcome == face_pb2.OUTCOME_UNKNOWN

    # Pillow's Hopper is a different photo from matplotlib's, which is the one filed.
    shutil.copyfile(photos / "known" / "grace_hopper.jpg", known / "grace_hopper.jpg")
    wait_for(lambda: service.identify("hopper_pillow.jpg").person == "Grace Hopper",
             "Grace Hopper recognised after the folder changed", 60)
    assert service.process.proc.pid == pid and service.running  # the same process, no restart

    (known / "grace_hopper.jpg").unlink()
    reply = service.reload()  # the explicit call answers with what is loaded now
    assert (reply.known_images, reply.known_faces, reply.people) == (2, 2, 2)
    assert service.identify("hopper_pillow.jpg").outcome == face_pb2.OUTCOME_UNKNOWN


def test_people_csv_names_the_person(photos, tmp_path, start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    (known / "people.csv").write_text("image,name\nbarack_obama.jpg,President Obama\n")
    service = start_service(face_env(known, unknown, tmp_path / "cache"))
    response = service.identify("obama2.jpg")
    assert (response.person, response.image_name) == ("President Obama", "barack_obama.jpg")


def test_a_restart_reads_encodings_from_the_cache(photos, tmp_path, start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    env = face_env(known, unknown, tmp_path / "cache")
    first = start_service(env, name="first")
    assert "encoding 3 known image(s) (0 from the cache)" in first.log.read_text()
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3
    assert first.stop() == 0

    second = start_service(env, name="second")
    log = second.log.read_text()
    assert "known faces loaded: 3 face(s)" in log and "known image(s) (" not in log
    assert second.identify("obama2.jpg").person == "Barack Obama"
    # A changed file is a new key: it is encoded again, the others still come from the cache.
    shutil.copyfile(photos / "unknown" / "hopper_pillow.jpg", known / "grace_hopper.jpg")
    reply = second.reload()
    assert reply.known_faces == 3
    assert "encoding 1 known image(s) (2 from the cache)" in second.log.read_text()


def test_tolerance_is_configurable(photos, tmp_path, start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    service = start_service(face_env(known, unknown, tmp_path / "cache", FACE_TOLERANCE="0.3"))
    strict = service.identify("obama2.jpg")  # 0.35 from the known Obama: no match at 0.3
    assert strict.outcome == face_pb2.OUTCOME_UNKNOWN
    assert 0.3 < strict.distance < 0.6
    assert service.identify("hopper_pillow.jpg").person == "Grace Hopper"  # 0.18


def test_sigterm_drains_calls_in_flight_then_exits(photos, tmp_path, start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    service = start_service(face_env(known, unknown, tmp_path / "cache"))
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = service.identify("group_with_obama.jpg")
        except grpc.RpcError as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    # Four calls of about a second each on two workers: SIGTERM lands while they run.
    time.sleep(0.5)
    service.process.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(120)
    assert service.process.proc.wait(60) == 0
    assert all(isinstance(r, face_pb2.IdentifyResponse) for r in results.values()), results
    assert [r.person for r in results.values()] == ["Barack Obama"] * 4
    assert "stopping: draining" in service.log.read_text()


def test_a_crashed_worker_fails_one_call_and_the_service_recovers(photos, tmp_path,
                                                                  start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    service = start_service(face_env(known, unknown, tmp_path / "cache", FACE_WORKERS="1"))
    workers = _workers(service)
    assert workers
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["result"] = service.identify("group_with_obama.jpg")
        except grpc.RpcError as exc:
            outcome["result"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    # A native crash in dlib looks like this from outside: the worker is gone mid-call.
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    caller.join(120)
    result = outcome["result"]
    assert isinstance(result, grpc.RpcError) and result.code() == grpc.StatusCode.INTERNAL
    assert "crashed" in result.details()
    # The next call gets a fresh worker, and the service never stopped serving.
    assert service.identify("obama2.jpg").person == "Barack Obama"
    assert service.health() == "SERVING"


def test_calls_whose_caller_gave_up_are_not_computed(photos, tmp_path, start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    service = start_service(face_env(known, unknown, tmp_path / "cache", FACE_WORKERS="1"))
    with grpc.insecure_channel(service.address) as channel:
        stub = face_pb2_grpc.IdentityStub(channel)
        busy = stub.Identify.future(face_pb2.IdentifyRequest(image_path="group_with_obama.jpg"),
                                    timeout=120)
        time.sleep(0.1)
        # The one worker is busy for a second or more; these callers wait 0.3 s only.
        impatient = [stub.Identify.future(face_pb2.IdentifyRequest(image_path="obama2.jpg"),
                                          timeout=0.3) for _ in range(4)]
        for call in impatient:
            with pytest.raises(grpc.RpcError) as caught:
                call.result()
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert busy.result().person == "Barack Obama"
    # The executor hands one call beyond the busy worker to it at once; the rest are dropped.
    wait_for(lambda: "CANCELLED the call ended before a worker was free"
             in service.log.read_text(), "a queued call dropped", 30)
    assert service.identify("obama2.jpg").person == "Barack Obama"


def test_an_idle_worker_killed_is_replaced_and_the_next_call_answered(photos, tmp_path,
                                                                    start_service):
    known, unknown, _ = copy_samples(photos, tmp_path)
    service = start_service(face_env(known, unknown, tmp_path / "cache", FACE_WORKERS="2"))
    wait_for(lambda: value(scrape(service.metrics_port), "kubeface_face_workers_alive") == 2,
             "two workers counted", 60)
    workers = _workers(service)
    assert len(workers) == 2
    # Killed while waiting for work: it dies holding the task queue's lock.
    os.kill(workers[0], signal.SIGKILL)
    # Noticed and logged at once, not at the next call.
    wait_for(lambda: f"a recognition worker died (pid {workers[0]})" in service.log.read_text(),
             "the death logged", 30)
    # Bounded: a pool that never noticed the death would leave this call to its deadline.
    assert service.identify("obama2.jpg", timeout=60).person == "Barack Obama"
    assert service.identify("hopper_pillow.jpg", timeout=60).person == "Grace Hopper"
    assert service.health() == "SERVING"
    assert service.log.read_text().count("a recognition worker died") == 1
    # The old pool is gone, none left behind (its survivor is ended beside the new pool's start).
    wait_for(lambda: not any(_alive(pid) for pid in workers), "the old pool's workers gone", 30)
    wait_for(lambda: value(scrape(service.metrics_port), "kubeface_face_workers_alive")
             == len(_workers(service)) > 0, "the live workers counted", 60)


def _workers(service: FaceService) -> list[int]:
    """The pool's workers (spawned interpreters), not multiprocessing's resource tracker."""
    return [p for p in children(service.process.proc.pid)
            if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]

