"""Pytest plugin: the real image processor on this test's database, NSQ and face service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeface.core import config
from kubeface.core.db import Database
from kubeface.core.queue import Publisher
from kubeface.enrol import enrol
from tests.support.face import FaceService
from tests.support.processor import Processor


@pytest.fixture
def processor_env(service_env: dict[str, str], face_service: FaceService, db: Database,
                  sample_images: dict[str, dict]) -> dict[str, str]:
    """The environment of a processor wired to this test's services, with the database
    migrated (by ``db``) and the sample people enrolled."""
    enrol(db, Path(service_env["KNOWN_PEOPLE"]))
    return {**service_env, "GRPC_ADDRESS": face_service.address}


@pytest.fixture
def processor(tmp_path: Path, processor_env: dict[str, str]) -> Iterator[Processor]:
    """A started ``kubeface processor`` (subscribed to images/ch), stopped afterwards."""
    proc = Processor(tmp_path / "processor", processor_env).start()
    yield proc
    proc.stop()


@pytest.fixture
def publisher(service_env: dict[str, str]) -> Publisher:
    """Publishes image ids to this test's nsqd, as the receiver and the retry job do."""
    return Publisher.for_settings(config.load(service_env))
