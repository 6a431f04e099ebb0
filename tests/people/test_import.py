"""``kubeface enrol`` imports the known folder into the database with real dlib encodings,
idempotently: unchanged files are never encoded again."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from kubeface.core import matching
from kubeface.enrol import _local_analyser, import_encodings


@pytest.fixture(scope="module")
def analyser():
    from kubeface.core import config

    calls: list[int] = []
    encode = _local_analyser(config.load(environ={}))

    def counted(paths):
        calls.append(len(paths))
        return encode(paths)

    counted.calls = calls
    return counted


def folder_photos(db):
    return {r.file: r.name for r in db.query(
        "SELECT ph.file, p.name FROM person_photos ph JOIN person p ON p.id = ph.person_id"
        " WHERE ph.source = 'folder'")}


def test_import_is_idempotent_and_follows_the_folder(db, photos, tmp_path, analyser):
    known = tmp_path / "known"
    shutil.copytree(photos / "known", known)
    first = import_encodings(db, known, analyser)
    assert first.encoded == 3 and first.photos == 3
    assert folder_photos(db) == {"barack_obama.jpg": "Barack Obama",
                                 "joe_biden.jpg": "Joe Biden",
                                 "grace_hopper.jpg": "Grace Hopper"}
    version = matching.version(db)

    again = import_encodings(db, known, analyser)
    assert again.encoded == 0 and again.photos == 3
    assert matching.version(db) == version  # nothing changed: no replica reloads

    # The stored encoding is the library's: a second photo of Obama is within 0.5 of it.
    table = matching.load_known(db)
    probe = analyser([photos / "unknown" / "obama2.jpg"])[0].encodings
    best, distance = table.match(probe)
    assert table.names[best[0]] == "Barack Obama" and distance[0] < 0.5

    # people.csv renames a file's person; a removed file loses its photo.
    (known / "people.csv").write_text("image,name\njoe_biden.jpg,President Biden\n")
    (known / "grace_hopper.jpg").unlink()
    moved = import_encodings(db, known, analyser)
    assert moved.encoded == 0 and moved.removed == 1
    assert folder_photos(db) == {"barack_obama.jpg": "Barack Obama",
                                 "joe_biden.jpg": "President Biden"}
    assert matching.version(db) > version

    # A file whose content changed is encoded again; a file with no face gives no photo.
    shutil.copyfile(photos / "unknown" / "matplotlib_logo.png", known / "barack_obama.jpg")
    changed = import_encodings(db, known, analyser)
    assert changed.encoded == 1 and "barack_obama.jpg" not in folder_photos(db)
    assert np.isfinite(matching.load_known(db).matrix).all()


def test_a_photo_deleted_through_the_api_is_not_imported_again(db, photos, tmp_path, analyser):
    known = tmp_path / "known"
    shutil.copytree(photos / "known", known)
    import_encodings(db, known, analyser)
    db.execute("DELETE FROM person_photos WHERE file = 'joe_biden.jpg'")
    assert import_encodings(db, known, analyser).encoded == 0
    assert "joe_biden.jpg" not in folder_photos(db)


def test_the_enrol_command_imports_encodings(service_env, db, photos, image_dirs):
    known, _ = image_dirs
    for f in (photos / "known").iterdir():
        shutil.copyfile(f, known / f.name)
    run = subprocess.run([sys.executable, "-m", "kubeface", "enrol"], env=service_env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert "3 encoded now, 3 folder photo(s)" in run.stderr + run.stdout
    assert len(folder_photos(db)) == 3
