"""The real face-recognition gRPC service (``kubeface face-service``) as a process for tests."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerecog import SERVICE_NAME, face_pb2, face_pb2_grpc
from tests.support.procs import KubefaceProcess

# known/, unknown/ and the unknown photos' expected.json
Folders = tuple[Path, Path, dict[str, dict]]


def copy_samples(photos: Path, base: Path, skip_known: tuple[str, ...] = ()) -> Folders:
    """known/ and unknown/ under ``base`` from the sample set; returns them and expected.json."""
    known, unknown = base / "known_people", base / "unknown_people"
    known.mkdir(parents=True)
    unknown.mkdir(parents=True)
    for f in (photos / "known").iterdir():
        if f.name not in skip_known:
            shutil.copyfile(f, known / f.name)
    for f in (photos / "unknown").iterdir():
        shutil.copyfile(f, unknown / f.name)
    return known, unknown, json.loads((unknown / "expected.json").read_text())


def face_env(known: Path, unknown: Path, cache: Path, **extra: str) -> dict[str, str]:
    """What the face service reads (it needs no database or queue)."""
    return {"KNOWN_PEOPLE": str(known), "UNKNOWN_PEOPLE": str(unknown),
            "FACE_CACHE_DIR": str(cache), "LOG_LEVEL": "INFO", **extra}


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def refusal(service: FaceService, path: str) -> tuple[grpc.StatusCode, str]:
    """The status code and message of an Identify call on ``path`` that must be refused."""
    with pytest.raises(grpc.RpcError) as caught:
        service.identify(path)
    return caught.value.code(), caught.value.details()


class FaceService(KubefaceProcess):
    """``kubeface face-service`` on free loopback ports (gRPC and metrics), its log under
    ``base``; ``port`` restarts it on a port of the test's choice."""

    def __init__(self, base: Path, env: dict[str, str], port: int | None = None) -> None:
        self.base = base
        super().__init__("face-service", {
            **env, **({"GRPC_PORT": str(port)} if port else {}), "BIND_ADDRESS": "127.0.0.1",
        }, base / "face-service.log", port_variables=("GRPC_PORT", "FACE_METRICS_PORT"))

    @property
    def port(self) -> int:
        return int(self.env["GRPC_PORT"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_port(self) -> int:
        return int(self.env["FACE_METRICS_PORT"])

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
        """Start it and wait until it listens, and with ``wait`` until it is SERVING."""
        self.base.mkdir(parents=True, exist_ok=True)

        def launch() -> None:
            self.process.start()
            self.process.wait_port(self.port, timeout=timeout)
            if wait:
                self.wait_serving(timeout)

        self.start_servers(launch)
        return self

    def wait_serving(self, timeout: float = 120.0) -> None:
        self.process.wait_until(
            lambda: self.health() == "SERVING" and self.health(SERVICE_NAME) == "SERVING",
            f"face service on {self.address} SERVING", timeout)
