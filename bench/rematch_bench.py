#!/usr/bin/env python3
"""Re-matching stored faces after a change of people, against detecting them again.

Usage: .venv/bin/python bench/rematch_bench.py [--faces 10000] [--rounds 2] [--repeat 3]

Both in one run, on one real MariaDB:

* re-detect: every ``unknown`` image re-queued to be detected again (what ``kubeface retry
  --rematch`` still does for images whose encodings are not stored) on the sample photos
  copied ``--rounds`` times, every one of them made ``unknown`` first, through nsqd, the
  processor and the face service (dlib): from the re-queue to the last result written.
  Seconds per image are measured, and scaled to ``--faces`` images.
* re-match: ``--faces`` stored faces (one per image; encodings drawn around 1,000 identities
  with the spread of dlib's, 100 of them already known), then one new person is created, given
  a photo, and every stored face is matched again (:func:`kubeface.core.matching.rematch`):
  from the create to the last image re-labelled. Median of ``--repeat`` new people.

Prints both and their ratio. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "apps"), str(ROOT / "bench")]

import numpy as np  # noqa: E402
from pipeline_bench import Pipeline, copies, sample_set  # noqa: E402

IDENTITIES = 1000
KNOWN_IDENTITIES = 100
SPREAD = 0.09  # per-dimension spread of dlib encodings (their norm is close to 1)
SAME_PERSON = 0.35  # typical distance between two photos of one person


def redetect(system: Pipeline, names: list[str], rounds: int) -> tuple[float, int]:
    """Seconds and images of detecting the sample copies again, all made ``unknown`` first."""
    from kubeface.core import lifecycle
    from kubeface.core.statuses import Status
    from tests.support.processor import add_images, wait_final

    paths = copies(system.unknown, names, rounds, "redetect-")
    ids = add_images(system.db, paths)
    system.publisher.publish_many(ids)
    wait_final(system.db, ids, timeout=3600)
    listed = ",".join(map(str, ids))
    unknown = Status.UNKNOWN.value
    system.db.execute(f"UPDATE images SET status = :unknown WHERE id IN ({listed})"
                      " AND face_count > 0", unknown=unknown)
    count = system.db.query(f"SELECT COUNT(*) AS n FROM images WHERE id IN ({listed})"
                            " AND status = :unknown", unknown=unknown)[0].n
    start = time.perf_counter()
    with system.db.transaction() as conn:
        revived = lifecycle.revive_unknown(conn, len(ids), unencoded_only=False)
    system.publisher.publish_many(revived)
    wait_final(system.db, revived, timeout=3600)
    return time.perf_counter() - start, int(count)


def stored_faces(system: Pipeline, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` images with one stored face each; returns the identity centres."""
    from kubeface.core import matching, people
    from kubeface.core.statuses import Status

    centres = rng.normal(0, SPREAD, size=(IDENTITIES, 128)).astype(np.float32)
    who = rng.integers(0, IDENTITIES, size=count)
    noise = rng.normal(size=(count, 128)).astype(np.float32)
    noise *= (SAME_PERSON / np.linalg.norm(noise, axis=1))[:, None]
    faces = centres[who] + noise
    for start in range(0, count, 2000):
        block = range(start, min(start + 2000, count))
        rows = json.dumps([[f"synthetic/{i}.jpg", faces[i].tolist()] for i in block])
        with system.db.transaction() as conn:
            conn.query("INSERT INTO images (path, status, face_count) SELECT jt.p, :unknown, 1"
                       " FROM JSON_TABLE(:rows, '$[*]' COLUMNS (p VARCHAR(1024) PATH '$[0]'))"
                       " AS jt", rows=rows, unknown=Status.UNKNOWN.value)
        ids = {r.path: int(r.id) for r in system.db.query(
            "SELECT id, path FROM images WHERE path LIKE 'synthetic/%' AND id NOT IN"
            " (SELECT image_id FROM faces)")}
        with system.db.transaction() as conn:
            for i in block:
                conn.query("INSERT INTO faces (image_id, face_index, box_top, box_right,"
                           " box_bottom, box_left, distance, encoding)"
                           " VALUES (:id, 0, 0, 50, 50, 0, 0.9, :e)",
                           id=ids[f"synthetic/{i}.jpg"], e=matching.encode(faces[i]))
    for k in range(KNOWN_IDENTITIES):
        person = people.create_person(system.db, f"Known {k}")
        people.add_uploaded_photo(system.db, person.id, f"people/known{k}.jpg", "0" * 64,
                                  people.Box(0, 1, 1, 0), centres[k])
    return centres


def add_and_rematch(system: Pipeline, name: str, encoding: np.ndarray) -> tuple[float, object]:
    from kubeface.core import matching, people

    start = time.perf_counter()
    person = people.create_person(system.db, name)
    people.add_uploaded_photo(system.db, person.id, f"people/{name}.jpg", "0" * 64,
                              people.Box(0, 1, 1, 0), encoding)
    result = matching.rematch(system.db, 0.6)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=10_000, help="stored faces to re-match")
    parser.add_argument("--rounds", type=int, default=2, help="copies of the sample set to "
                                                              "detect again")
    parser.add_argument("--repeat", type=int, default=3, help="new people added, one by one")
    args = parser.parse_args()
    rng = np.random.default_rng(14)
    with tempfile.TemporaryDirectory(prefix="kubeface-rematch-bench-") as tmp:
        base = Path(tmp)
        known, unknown, names = sample_set(base)
        system = Pipeline(base / "run", known, unknown, 4)
        try:
            system.start()
            system.measure(names, 1)  # warm-up: connections, page cache, worker models
            seconds, images = redetect(system, names, args.rounds)
            per_image = seconds / images
            print(f"re-detect: {images} images in {seconds:.2f}s = "
                  f"{per_image:.3f}s per image, {os.cpu_count()} cores; "
                  f"load {os.getloadavg()[0]:.1f}")
            centres = stored_faces(system, args.faces, rng)
            from kubeface.core import matching

            matching.rematch(system.db, 0.6)  # the state before: every face matched once
            times = []
            for n in range(args.repeat):
                took, result = add_and_rematch(system, f"New {n}",
                                               centres[KNOWN_IDENTITIES + n])
                times.append(took)
                print(f"add one person + re-match: {result.faces} stored faces compared, "
                      f"{result.changed} changed, {result.images} images re-labelled in "
                      f"{took:.3f}s (re-match alone {result.seconds:.3f}s); "
                      f"load {os.getloadavg()[0]:.1f}")
        finally:
            system.stop()
    median = statistics.median(times)
    scaled = per_image * args.faces
    print(f"median add + re-match of {args.faces} faces: {median:.3f}s (target < 2 s)")
    print(f"re-detect scaled to {args.faces} images: {scaled:.0f}s; ratio "
          f"{scaled / median:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
