"""Pytest plugin: real face photos and a real face-recognition service for tests.

``photos`` is the cached sample set from ``scripts/sample_images.py`` (``known/``, ``unknown/``
with ``expected.json``); ``sample_images`` copies it into the test's KNOWN_PEOPLE and
UNKNOWN_PEOPLE folders; ``face_service`` starts ``kubeface face-service`` on them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeface.core.db import Database
from tests.support.face import FaceService
from tests.support.procs import ROOT


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample set (downloaded and verified once per machine, then cached)."""
    base = tmp_path_factory.mktemp("photos")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample_images.py"),
         "--known", str(base / "known"), "--unknown", str(base / "unknown")],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/sample_images.py failed:\n{result.stdout}\n{result.stderr}")
    return base


@pytest.fixture
def sample_images(photos: Path, image_dirs: tuple[Path, Path]) -> dict[str, dict]:
    """The samples copied into this test's folders; returns expected.json as a dict."""
    known, unknown = image_dirs
    for src, dest in ((photos / "known", known), (photos / "unknown", unknown)):
        for f in src.iterdir():
            shutil.copyfile(f, dest / f.name)
    return json.loads((unknown / "expected.json").read_text())


@pytest.fixture
def face_service(tmp_path: Path, service_env: dict[str, str], db: Database,
                 sample_images: dict[str, dict]) -> Iterator[FaceService]:
    """A started face service (SERVING) on the sample images, stopped afterwards. It imports
    the known folder into the test's database (migrated first, by ``db``)."""
    service = FaceService(tmp_path / "face-service", service_env).start()
    yield service
    service.stop()
