"""The circuit breaker against real gRPC: transport failures from a port nothing listens on, and
the real grpc.health.v1 servicer (grpcio-health-checking) to answer NOT_SERVING or SERVING on
demand -- the one fault the face service itself cannot be made to show at will. The end-to-end
tests drive the breaker with the real face service."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kubeface.processor.breaker import BreakerOpen, FaceServiceBreaker
from kubeface.processor.face_client import (
    SERVICE_NAME,
    FaceClient,
    ImageError,
    NotServing,
    ServiceTrouble,
)
from tests.support.procs import free_port


class HealthOnly:
    """A gRPC server on ``port`` with only the standard health service."""

    def __init__(self, port: int) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{port}")

    def set(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        self.health.set(SERVICE_NAME, status)

    def __enter__(self) -> HealthOnly:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(0).wait()


def make(port: int, fail_max: int = 5, reset: float = 0.3, cap: float = 1.0):
    client = FaceClient(f"127.0.0.1:{port}", timeout=2.0, health_timeout=1.0)
    breaker = FaceServiceBreaker(client.check_health, fail_max=fail_max, reset_seconds=reset,
                                 max_reset_seconds=cap, exclude=[ImageError, ServiceTrouble])
    return client, breaker


def fail_transport(client, breaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(grpc.RpcError) as info:
            breaker.call(client.identify, "x.jpg")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def wait_open_over(breaker) -> None:
    deadline = time.monotonic() + 10
    while breaker.retry_after() > 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_opens_after_five_transport_failures_and_then_lets_nothing_through():
    client, breaker = make(free_port())
    fail_transport(client, breaker, 4)
    assert breaker.current_state == "closed"
    fail_transport(client, breaker, 1)
    assert breaker.current_state == "open"
    calls = []
    with pytest.raises(BreakerOpen) as info:
        breaker.call(lambda: calls.append(1))
    assert calls == [] and 0 < info.value.retry_after <= 0.3


def test_application_answers_never_count():
    client, breaker = make(free_port(), fail_max=2)

    def no_face():
        raise ImageError("not an image")

    for _ in range(50):
        with pytest.raises(ImageError):
            breaker.call(no_face)
    assert breaker.current_state == "closed" and breaker.fail_counter == 0
    # An answer between transport failures resets the count: they must be consecutive.
    fail_transport(client, breaker, 1)
    with pytest.raises(ImageError):
        breaker.call(no_face)
    fail_transport(client, breaker, 1)
    assert breaker.current_state == "closed"


def test_half_open_closes_only_when_health_answers_serving():
    port = free_port()
    client, breaker = make(port, fail_max=1, reset=0.3, cap=1.0)
    fail_transport(client, breaker, 1)
    assert breaker.current_state == "open"
    with HealthOnly(port) as server:
        server.set(serving=False)
        wait_open_over(breaker)
        calls = []
        with pytest.raises(BreakerOpen, match="NOT_SERVING"):
            breaker.call(lambda: calls.append(1))
        assert calls == [] and breaker.current_state == "open"
        server.set(serving=True)
        wait_open_over(breaker)
        assert breaker.call(lambda: "answer") == "answer"
        assert breaker.current_state == "closed"
        client.check_health()  # the probe itself agrees
        server.set(serving=False)
        with pytest.raises(NotServing):
            client.check_health()


def test_open_period_doubles_while_the_service_stays_down_up_to_the_cap():
    client, breaker = make(free_port(), fail_max=1, reset=0.2, cap=0.5)
    fail_transport(client, breaker, 1)
    periods = [breaker.reset_timeout]
    for _ in range(3):
        wait_open_over(breaker)
        with pytest.raises(BreakerOpen):
            breaker.call(lambda: None)
        periods.append(breaker.reset_timeout)
    assert periods == [0.2, 0.4, 0.5, 0.5]


def test_closing_resets_the_open_period():
    port = free_port()
    client, breaker = make(port, fail_max=1, reset=0.2, cap=5.0)
    fail_transport(client, breaker, 1)
    wait_open_over(breaker)
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: None)
    assert breaker.reset_timeout == pytest.approx(0.4)
    with HealthOnly(port) as server:
        server.set(serving=True)
        wait_open_over(breaker)
        breaker.call(lambda: None)
    assert breaker.current_state == "closed" and breaker.reset_timeout == pytest.approx(0.2)


def test_calls_run_concurrently_through_a_closed_breaker():
    """pybreaker's own call() holds a lock for the whole call; ours must not serialise."""
    _, breaker = make(free_port())
    inside, release = [], futures.Future()

    def slow():
        inside.append(1)
        release.result(5)
        return True

    with futures.ThreadPoolExecutor(3) as pool:
        running = [pool.submit(breaker.call, slow) for _ in range(3)]
        deadline = time.monotonic() + 5
        while len(inside) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(inside) == 3
        release.set_result(None)
        assert all(f.result(5) for f in running)
