"""Face-service fixtures: sample folders and a service shared by a module's read-only tests.

Read-only tests share one service per module (starting one costs seconds: two worker processes
load dlib); tests that change folders or stop the service start their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.face import FaceService, Folders, copy_samples, face_env


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
