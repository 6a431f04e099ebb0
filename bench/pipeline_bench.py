#!/usr/bin/env python3
"""End-to-end throughput of the pipeline against the bare face library, on the same images and
the same cores.

Usage: .venv/bin/python bench/pipeline_bench.py [--rounds 4] [--repeat 2] [--in-flight 4]

* bare: ``face_recognition`` itself (HOG detection with upsample 1, 5-point encodings with one
  jitter, ``face_distance`` against the known encodings) in one process per core, each image
  made upright and scaled to FACE_MAX_SIDE first, as the service does -- so the comparison is
  the same work, not full-resolution photos against scaled ones. Models load before the clock.
* pipeline: real MariaDB, nsqd/nsqlookupd, ``kubeface face-service`` (one worker per core) and
  ``kubeface processor``, as processes on free loopback ports. After a warm-up round, the clock
  runs from the INSERT of the rows and the publish of their ids to the last result written.

The images are the sample set (``scripts/sample_images.py``), copied ``--rounds`` times under
new names. Prints images/s for each and the ratio (target: at least 0.85). The bare run is done
before and after the pipeline and averaged, since other work on the machine moves both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "apps")]

MAX_SIDE = 800  # FACE_MAX_SIDE's default


def _bare_init(known: list[str]) -> None:
    global _KNOWN
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    import face_recognition  # loads the models before the clock starts
    import numpy as np

    encodings = []
    for path in known:
        encodings.extend(face_recognition.face_encodings(_pixels(path)))
    _KNOWN = np.asarray(encodings)


def _pixels(path: str):
    # The service's own loader (upright, JPEG draft decoding, scaled to MAX_SIDE): the same
    # decoding work on both sides, so the difference is the hops and nothing else.
    from kubeface.face.images import load

    return load(Path(path), MAX_SIDE, 40_000_000).pixels


def _bare_one(path: str) -> tuple[int, float]:
    import face_recognition

    cpu = time.process_time()
    pixels = _pixels(path)
    boxes = face_recognition.face_locations(pixels, number_of_times_to_upsample=1, model="hog")
    for encoding in face_recognition.face_encodings(pixels, boxes, num_jitters=1):
        face_recognition.face_distance(_KNOWN, encoding)
    return len(boxes), time.process_time() - cpu


def bare(paths: list[Path], known: list[Path], workers: int) -> tuple[float, float, int]:
    """Every image through the library in ``workers`` processes: (wall seconds, CPU seconds,
    faces found)."""
    with get_context("spawn").Pool(workers, _bare_init, ([str(k) for k in known],)) as pool:
        pool.map(_bare_one, [str(paths[0])] * workers)  # every worker up and warm
        start = time.perf_counter()
        done = pool.map(_bare_one, [str(p) for p in paths], chunksize=1)
        wall = time.perf_counter() - start
    return wall, sum(c for _, c in done), sum(f for f, _ in done)


def group_cpu(groups: set[int]) -> float:
    """CPU seconds (user + system) of every live process in the process groups ``groups``."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) in groups:  # pgrp; utime and stime follow at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def sample_set(base: Path) -> tuple[Path, Path, list[str]]:
    """The sample images under ``base``: the known and unknown folders, the unknown names."""
    known, unknown = base / "known", base / "unknown"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "sample_images.py"),
                    "--known", str(known), "--unknown", str(unknown)],
                   check=True, capture_output=True)
    return known, unknown, sorted(json.loads((unknown / "expected.json").read_text()))


def copies(unknown: Path, names: list[str], rounds: int, tag: str) -> list[str]:
    paths = []
    for n in range(rounds):
        folder = unknown / f"{tag}{n}"
        folder.mkdir()
        for name in names:
            shutil.copyfile(unknown / name, folder / name)
            paths.append(f"{tag}{n}/{name}")
    return paths


class Pipeline:
    """MariaDB, NSQ, the face service and the processor, started once for every measurement."""

    def __init__(self, base: Path, known: Path, unknown: Path, in_flight: int) -> None:
        self.base, self.known, self.unknown, self.in_flight = base, known, unknown, in_flight
        self.parts: list = []
        self.runs = 0

    def start(self) -> None:
        from kubeface.core import config, schema
        from kubeface.core.db import Database
        from kubeface.core.queue import Publisher
        from kubeface.enrol import enrol
        from tests.support.face import FaceService
        from tests.support.mariadb import MariaDB
        from tests.support.nsq import Nsq
        from tests.support.processor import Processor

        mariadb = MariaDB(self.base / "mariadb").start()
        self.parts.append(mariadb)
        nsq = Nsq(self.base / "nsq").start()
        self.parts.append(nsq)
        mariadb.create_database("kube")
        env = {**mariadb.env("kube"), **nsq.env(), "KNOWN_PEOPLE": str(self.known),
               "UNKNOWN_PEOPLE": str(self.unknown), "LOG_LEVEL": "WARNING"}
        self.db = Database(config.load(environ=env))
        schema.migrate(self.db)
        enrol(self.db, self.known)
        face = FaceService(self.base / "face", env).start()
        self.parts.append(face)
        self.parts.append(Processor(self.base / "processor", {
            **env, "GRPC_ADDRESS": face.address,
            "PROCESSOR_MAX_IN_FLIGHT": str(self.in_flight),
        }).start())
        self.publisher = Publisher(env["NSQD_HTTP_ADDRESS"])

    def groups(self) -> set[int]:
        """Process groups of every server (each is started in its own session)."""
        procs = []
        for part in self.parts:
            procs += [getattr(part, "process", None), getattr(part, "lookupd", None),
                      getattr(part, "nsqd", None)]
        return {p.proc.pid for p in procs if p is not None and p.proc is not None}

    def measure(self, names: list[str], rounds: int) -> tuple[float, float, int, int]:
        """``rounds`` copies of ``names`` from INSERT+publish to the last result written:
        (wall seconds, CPU seconds of all servers, images, faces recorded)."""
        from tests.support.processor import add_images, wait_final

        self.runs += 1
        paths = copies(self.unknown, names, rounds, f"run{self.runs}-")
        groups = self.groups()
        cpu = group_cpu(groups)
        start = time.perf_counter()
        ids = add_images(self.db, paths)
        self.publisher.publish_many(ids)
        wait_final(self.db, ids, timeout=3600)
        seconds = time.perf_counter() - start
        cpu = group_cpu(groups) - cpu
        faces = self.db.query(
            f"SELECT COALESCE(SUM(face_count), 0) AS n FROM images WHERE id IN "
            f"({','.join(map(str, ids))})")[0].n
        return seconds, cpu, len(ids), int(faces)

    def stop(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
        for part in reversed(self.parts):
            part.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="copies of the sample set")
    parser.add_argument("--repeat", type=int, default=2, help="pipeline measurements")
    parser.add_argument("--in-flight", type=int, default=4, help="PROCESSOR_MAX_IN_FLIGHT")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="kubeface-bench-") as tmp:
        base = Path(tmp)
        known, unknown, names = sample_set(base)
        known_files = sorted(p for p in known.iterdir() if p.suffix != ".csv")
        images = [unknown / n for n in names] * args.rounds
        print(f"{len(images)} images per run ({len(names)} samples x {args.rounds}), "
              f"{cores} cores, max side {MAX_SIDE}px, processor in-flight {args.in_flight}")
        system = Pipeline(base / "run", known, unknown, args.in_flight)
        wall_ratios, cpu_ratios = [], []
        try:
            system.start()
            system.measure(names, 1)  # warm-up: connections, page cache, worker models
            bare_s, bare_cpu, faces_bare = bare(images, known_files, cores)
            print(f"bare library, {cores} processes: {bare_s:.2f}s, "
                  f"{len(images) / bare_s:.2f} images/s, {bare_cpu:.2f} CPU-s "
                  f"({faces_bare} faces); load {os.getloadavg()[0]:.1f}")
            for _ in range(args.repeat):
                seconds, cpu, count, faces = system.measure(names, args.rounds)
                print(f"pipeline (INSERT+publish -> results written): {seconds:.2f}s, "
                      f"{count / seconds:.2f} images/s, {cpu:.2f} CPU-s in all servers "
                      f"({faces} faces); load {os.getloadavg()[0]:.1f}")
                after, after_cpu, _ = bare(images, known_files, cores)
                print(f"bare library: {after:.2f}s, {len(images) / after:.2f} images/s, "
                      f"{after_cpu:.2f} CPU-s; load {os.getloadavg()[0]:.1f}")
                # Against the bare runs just before and after it: other work on the machine
                # moves wall-clock numbers; CPU seconds per image are steadier.
                wall_ratios.append((count / seconds) / (len(images) / ((bare_s + after) / 2)))
                cpu_ratios.append(((bare_cpu + after_cpu) / 2) / cpu)
                bare_s, bare_cpu = after, after_cpu
        finally:
            system.stop()

        print("throughput ratio pipeline/bare (wall clock) per run: "
              + ", ".join(f"{r:.3f}" for r in wall_ratios)
              + f"; median {statistics.median(wall_ratios):.3f}")
        print("CPU ratio bare/pipeline (library CPU / all servers' CPU) per run: "
              + ", ".join(f"{r:.3f}" for r in cpu_ratios)
              + f"; median {statistics.median(cpu_ratios):.3f}")
        print("target >= 0.85; the CPU ratio is the throughput ratio a machine with no other "
              "load would show when the pipeline keeps every core busy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
