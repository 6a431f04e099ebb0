"""The test servers' start-up rules, with real processes: the ports of one fixture are distinct,
a port taken before the server binds it moves the fixture to new ports, and a start that fails
half-way leaves no process running (checked in /proc)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.face import FaceService, face_env
from tests.support.mariadb import MariaDB
from tests.support.nsq import Nsq
from tests.support.processor import Processor
from tests.support.procs import PortTaken, free_port, free_ports, listens, running_with_argument
from tests.support.web import WebService


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process's listening socket holds, as when one takes a port between the
    pick and the server's bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def lookupd_running(port: int) -> list[int]:
    return running_with_argument(f"--http-address=127.0.0.1:{port}")


def test_ports_picked_together_are_distinct():
    # Picked one by one, 500 ports out of the ephemeral range repeat more often than not.
    ports = free_ports(500)
    assert len(set(ports)) == 500


def test_nsq_moves_off_a_taken_port_and_leaves_nothing_behind(tmp_path: Path, taken_port: int):
    nsq = Nsq(tmp_path)
    nsq.use_ports([nsq.lookupd_tcp, nsq.lookupd_http, nsq.nsqd_tcp, taken_port])
    first_lookupd = nsq.lookupd_http
    nsq.start()
    try:
        assert taken_port != nsq.nsqd_http
        assert first_lookupd != nsq.lookupd_http
        assert listens(nsq.nsqd.proc.pid, nsq.nsqd_http)
        assert listens(nsq.lookupd.proc.pid, nsq.lookupd_http)
        assert "address already in use" in (tmp_path / "nsqd.log").read_text()
        assert lookupd_running(first_lookupd) == []
        assert lookupd_running(nsq.lookupd_http) == [nsq.lookupd.proc.pid]
    finally:
        nsq.stop()
    assert lookupd_running(nsq.lookupd_http) == []
    assert running_with_argument(f"--data-path={nsq.data}") == []


def test_a_port_taken_at_every_try_fails_and_stops_every_nsqlookupd(tmp_path: Path,
                                                                      taken_port: int):
    tried: list[int] = []

    class AlwaysTaken(Nsq):
        def use_ports(self, ports: list[int]) -> None:
            super().use_ports([*ports[:3], taken_port])
            tried.append(self.lookupd_http)

    with pytest.raises(PortTaken, match="nsqd"):
        AlwaysTaken(tmp_path).start()
    assert len(tried) == Nsq.ATTEMPTS
    assert [lookupd_running(port) for port in tried] == [[]] * Nsq.ATTEMPTS


def test_a_start_failing_for_another_reason_stops_what_it_started(tmp_path: Path):
    nsq = Nsq(tmp_path)
    nsq.data.mkdir(parents=True)
    (nsq.data / "nsqd.dat").write_text("not the metadata nsqd writes\n")
    with pytest.raises(RuntimeError, match="nsqd") as failed:
        nsq.start()
    assert not isinstance(failed.value, PortTaken)  # not retried: new ports would not help
    assert "failed to load metadata" in (tmp_path / "nsqd.log").read_text()
    assert lookupd_running(nsq.lookupd_http) == []


def test_mariadb_moves_off_a_taken_port(tmp_path: Path, taken_port: int):
    server = MariaDB(tmp_path)
    server.use_ports([taken_port])
    server.start()
    try:
        assert server.port != taken_port
        assert listens(server.process.proc.pid, server.port)
        assert "address already in use" in server.process.log.read_text().lower()
        server.create_database()
    finally:
        server.stop()
    assert running_with_argument(f"--datadir={server.datadir}") == []


def test_a_web_service_moves_off_a_taken_port(tmp_path: Path, service_env: dict[str, str],
                                              db, taken_port: int):
    receiver = WebService("receiver", service_env, tmp_path / "receiver.log")
    receiver.use_ports([taken_port])
    receiver.start()
    try:
        assert receiver.port != taken_port
        assert receiver.env["RECEIVER_PORT"] == str(receiver.port)
        assert receiver.call("GET", "/healthz").status == 200
        assert listens(receiver.process.proc.pid, receiver.port)
    finally:
        receiver.stop()


def test_the_face_service_moves_off_a_taken_port(tmp_path: Path, taken_port: int):
    known, unknown = tmp_path / "known", tmp_path / "unknown"
    known.mkdir()
    unknown.mkdir()
    service = FaceService(tmp_path / "face", face_env(known, unknown, tmp_path / "cache"))
    service.use_ports([taken_port, service.metrics_port])
    service.start(wait=False)
    try:
        assert service.port != taken_port
        assert service.env["GRPC_PORT"] == str(service.port)
        assert listens(service.process.proc.pid, service.port)
        assert "cannot listen on" in service.log.read_text()
    finally:
        service.stop()


def test_the_processor_moves_off_a_taken_metrics_port(tmp_path: Path,
                                                      service_env: dict[str, str], db,
                                                      taken_port: int):
    processor = Processor(tmp_path / "processor",
                          {**service_env, "GRPC_ADDRESS": f"127.0.0.1:{free_port()}"})
    processor.use_ports([taken_port])
    processor.start()
    try:
        assert processor.metrics_port != taken_port
        assert "PROCESSOR_METRICS_PORT" in processor.log.read_text()
        assert listens(processor.process.proc.pid, processor.metrics_port)
    finally:
        processor.stop()
