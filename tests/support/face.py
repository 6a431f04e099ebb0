"""The real face-recognition gRPC service (``kubeface face-service``) as a process for tests."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerecog import face_pb2, face_pb2_grpc
from tests.support.procs import KubefaceProcess, free_port, wait_for

SERVICE_NAME = "facerecog.Identity"


class FaceService(KubefaceProcess):
    """``kubeface face-service`` on a free loopback port, its log under ``base``."""

    def __init__(self, base: Path, env: dict[str, str], port: int | None = None) -> None:
        self.base = base
        self._port_was_picked = port is None
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        super().__init__("face-service", {
            **env, "GRPC_PORT": str(self.port), "BIND_ADDRESS": "127.0.0.1",
        }, base / "face-service.log")

    def health(self, service: str = "", timeout: float = 2.0) -> str:
        """The health service's answer for ``service`` ("" is the whole server), by name."""
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def identify(self, image_path: str, timeout: float = 120.0) -> face_pb2.IdentifyResponse:
        """One Identify call on a new channel; a refusal raises ``grpc.RpcError``."""
        with grpc.insecure_channel(self.address) as channel:
            stub = face_pb2_grpc.IdentityStub(channel)
            return stub.Identify(face_pb2.IdentifyRequest(image_path=image_path),
                                 timeout=timeout)

    def reload(self, timeout: float = 120.0) -> face_pb2.ReloadResponse:
        with grpc.insecure_channel(self.address) as channel:
            return face_pb2_grpc.IdentityStub(channel).Reload(face_pb2.ReloadRequest(),
                                                              timeout=timeout)

    def start(self, wait: bool = True, timeout: float = 120.0) -> FaceService:
        self.base.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self.process.start()
            if not self._lost_port():
                break
            # Another process took the free port between our pick and the bind: pick again.
            self._move_to(free_port())
        if wait:
            self.wait_serving(timeout)
        return self

    def _lost_port(self) -> bool:
        if not self._port_was_picked:
            return False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "face service listening on" in text.split("cannot listen")[-1]:
                return False
            if self.process.proc is not None and self.process.proc.poll() is not None:
                return "cannot listen on" in text
            time.sleep(0.05)
        return False

    def _move_to(self, port: int) -> None:
        self.port, self.address = port, f"127.0.0.1:{port}"
        self.env["GRPC_PORT"] = str(port)

    def wait_serving(self, timeout: float = 120.0) -> None:
        wait_for(lambda: self.health() == "SERVING" and self.health(SERVICE_NAME) == "SERVING",
                 f"face service on {self.address} SERVING", timeout, self.process.proc, self.log)
