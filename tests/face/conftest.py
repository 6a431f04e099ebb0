"""Face-service test helpers: sample folders and a service shared by a module's read-only tests.

Read-only tests share one service per module (starting one costs seconds: two worker processes
load dlib); tests that change folders or stop the service start their own.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.face import FaceService

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


@pytest.fixture(scope="module")
def shared_folders(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Folders:
    return copy_samples(photos, tmp_path_factory.mktemp("faces"))


@pytest.fixture(scope="module")
def shared_service(shared_folders: Folders,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceService]:
    known, unknown, _ = shared_folders
    base = tmp_path_factory.mktemp("face-service")
    service = FaceService(base, face_env(known, unknown, base / "cache")).start()
    yield service
    service.stop()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., FaceService]]:
    """Start face services for one test (each on its own port); all stopped afterwards."""
    started: list[FaceService] = []

    def start(env: dict[str, str], wait: bool = True, name: str = "face") -> FaceService:
        service = FaceService(tmp_path / f"{name}-{len(started)}", env)
        started.append(service)
        return service.start(wait=wait)

    yield start
    for service in started:
        service.stop()
