"""End to end through the real services: MariaDB, nsqd/nsqlookupd, the face service (dlib
models, real photos) and the processor as processes. Faults are real: processes killed and
restarted."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from kubeface.core.db import Database
from tests.support.face import FaceService
from tests.support.processor import Processor, add_images, wait_final

pytestmark = pytest.mark.slow


def results(db: Database, ids: list[int]) -> dict[int, dict]:
    rows = db.query(
        "SELECT i.id, i.status, p.name AS person, i.face_count, i.attempts, i.last_error,"
        " (SELECT COUNT(*) FROM faces f WHERE f.image_id = i.id) AS face_rows"
        " FROM images i LEFT JOIN person p ON p.id = i.person_id"
        f" WHERE i.id IN ({','.join(map(str, ids))})")
    return {int(r.id): r.as_dict() for r in rows}


def check(db: Database, ids: dict[int, str], expected: dict[str, dict]) -> dict[int, dict]:
    """Every image has exactly the sample's expected outcome, face rows included."""
    got = results(db, list(ids))
    for image_id, name in ids.items():
        want = expected[name.rsplit("/", 1)[-1].split("~")[0]]
        row = got[image_id]
        assert (row["status"], row["person"], row["face_count"], row["face_rows"]) == (
            want["status"], want["person"], want["faces"], want["faces"]), (name, row)
    return got


def copies(unknown: Path, expected: dict[str, dict], rounds: int) -> list[str]:
    """``rounds`` copies of every sample under new names (``copy3/obama2.jpg~``...)."""
    paths = []
    for n in range(rounds):
        folder = unknown / f"copy{n}"
        folder.mkdir(exist_ok=True)
        for name in expected:
            shutil.copyfile(unknown / name, folder / f"{name}~{Path(name).suffix}")
            paths.append(f"copy{n}/{name}~{Path(name).suffix}")
    return paths


def test_happy_path_every_sample_gets_its_outcome(processor, db, publisher, sample_images,
                                                  image_dirs):
    _, unknown = image_dirs
    (unknown / "not_an_image.jpg").write_text("this is text, not a JPEG")
    names = [*sample_images, "missing.jpg", "not_an_image.jpg"]
    ids = dict(zip(add_images(db, names), names, strict=True))
    publisher.publish_many(list(ids))
    final = wait_final(db, ids, timeout=180)
    by_name = {ids[i]: s for i, s in final.items()}
    assert by_name["missing.jpg"] == "failed" and by_name["not_an_image.jpg"] == "failed"
    samples = {i: n for i, n in ids.items() if n in sample_images}
    got = check(db, samples, sample_images)
    assert all(r["attempts"] == 1 and r["last_error"] is None for r in got.values())
    failed = results(db, [i for i, n in ids.items() if n not in sample_images])
    assert all(r["last_error"] and r["face_count"] is None for r in failed.values())
