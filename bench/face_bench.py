#!/usr/bin/env python3
"""Face-recognition benchmark: prints one table, all numbers from one run on the same images.

Usage: .venv/bin/python bench/face_bench.py [--rounds N] [--skip-original]

Rows: the bare face_recognition library called directly (load + detect + encode), at full size
and with the service's longest-side cap; the service's per-image latency through gRPC (one call
at a time); its throughput with one worker process and with one per CPU; threads (each with its
own dlib models) against processes for the same work; and the article's design (every known
image re-encoded on every request) against the service at 1, 10 and 100 known people (for 10 and
100 the sample photos are filed again under more names). The machine is shared: the load
average is printed before and after, and only ratios within this run are compared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "apps")]

import face_recognition  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from facerecog import face_pb2, face_pb2_grpc  # noqa: E402
from kubeface.face import engine  # noqa: E402
from tests.support.face import FaceService  # noqa: E402

ONE_FACE = ["obama2.jpg", "obama3_large.jpg", "obama_32bit.png", "hopper_pillow.jpg",
            "tom_hanks.png"]
MAX_SIDE = 800  # FACE_MAX_SIDE's default


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def per_image(fn: Callable[[Path], object], files: list[Path], rounds: int) -> float:
    """Mean over images of the median of ``rounds`` runs: seconds per image."""
    return statistics.mean(statistics.median(timed(lambda f=f: fn(f)) for _ in range(rounds))
                           for f in files)


class Client:
    """One channel for every call, as the processor keeps one: no connection set-up per call."""

    def __init__(self, service: FaceService) -> None:
        self.service = service
        self.channel = grpc.insecure_channel(service.address)
        self.stub = face_pb2_grpc.IdentityStub(self.channel)

    def identify(self, name: str) -> face_pb2.IdentifyResponse:
        return self.stub.Identify(face_pb2.IdentifyRequest(image_path=name), timeout=300)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the service process and its worker processes."""
        root = self.service.process.proc.pid
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == root or int(fields[1]) == root:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def close(self) -> None:
        self.channel.close()


def cpu_per_image(fn: Callable[[Path], object], files: list[Path], rounds: int,
                  clock: Callable[[], float] = time.process_time) -> float:
    started = clock()
    for _ in range(rounds):
        for f in files:
            fn(f)
    return (clock() - started) / (rounds * len(files))


def bare_full(path: Path) -> list:
    pixels = face_recognition.load_image_file(path)
    return face_recognition.face_encodings(pixels, face_recognition.face_locations(pixels))


def bare_capped(path: Path) -> list:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if max(im.size) > MAX_SIDE:
            factor = MAX_SIDE / max(im.size)
            im = im.resize((round(im.width * factor), round(im.height * factor)))
        pixels = np.asarray(im)
    return face_recognition.face_encodings(pixels, face_recognition.face_locations(pixels))


def original_request(known: list[Path], unknown: Path) -> None:
    """kube-cluster-sample's face service: encode every known image, then the unknown one."""
    encodings = [face_recognition.face_encodings(face_recognition.load_image_file(k))[0]
                 for k in known]
    for face in bare_full(unknown):
        face_recognition.compare_faces(encodings, face)


def known_folder(base: Path, photos: Path, people: int) -> Path:
    """``people`` known images: the three sample photos filed under as many names as needed."""
    folder = base / f"known_{people}"
    folder.mkdir()
    sources = sorted((photos / "known").iterdir())
    for i in range(people):
        shutil.copyfile(sources[i % len(sources)], folder / f"person_{i:03d}.jpg")
    return folder


def service_env(known: Path, unknown: Path, cache: Path, workers: int) -> dict[str, str]:
    return {"KNOWN_PEOPLE": str(known), "UNKNOWN_PEOPLE": str(unknown),
            "FACE_CACHE_DIR": str(cache), "FACE_WORKERS": str(workers), "LOG_LEVEL": "WARNING"}


def throughput(service: Client, names: list[str], clients: int) -> float:
    """Images per second with ``clients`` concurrent callers."""
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(service.identify, names[:clients]))  # connections and caches warm
        started = time.perf_counter()
        list(pool.map(service.identify, names))
        return len(names) / (time.perf_counter() - started)


_local = threading.local()


def _thread_analyse(path: str) -> object:
    if not hasattr(_local, "engine"):
        _local.engine = engine.Engine()  # its own dlib models: never shared between threads
    return _local.engine.analyse(Path(path), MAX_SIDE, 40_000_000)


def pool_rate(kind: str, workers: int, files: list[str]) -> float:
    if kind == "threads":
        pool = ThreadPoolExecutor(workers)
        work = _thread_analyse
    else:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                   initializer=engine.init_worker,
                                   initargs=(MAX_SIDE, 40_000_000))
        work = engine.analyse
    with pool:
        list(pool.map(work, files[:workers]))  # models loaded in every worker first
        started = time.perf_counter()
        list(pool.map(work, files))
        return len(files) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per image (median taken)")
    parser.add_argument("--skip-original", action="store_true",
                        help="leave out the original design at 100 known people (slow)")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory(prefix="face-bench-") as tmp:
        base = Path(tmp)
        photos = base / "photos"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "sample_images.py"),
                        "--known", str(photos / "known"), "--unknown", str(photos / "unknown")],
                       check=True, stdout=subprocess.DEVNULL)
        unknown = photos / "unknown"
        files = [unknown / n for n in ONE_FACE]
        sizes = ", ".join(f"{Image.open(f).width}x{Image.open(f).height}" for f in files)
        print(f"images: {', '.join(ONE_FACE)} ({sizes})", flush=True)

        bare_full(files[0])  # the library's import and model loading are not per-image costs
        full = per_image(bare_full, files, args.rounds)
        capped = per_image(bare_capped, files, args.rounds)
        capped_cpu = cpu_per_image(bare_capped, files, args.rounds)
        rows.append(("bare library, full size (load + detect + encode)", f"{full:.3f} s/image",
                     ""))
        rows.append((f"bare library, longest side {MAX_SIDE} px", f"{capped:.3f} s/image",
                     f"CPU {capped_cpu:.3f} s/image"))
        print("bare library done", flush=True)

        # Service latency, one call at a time, 3 known people.
        known3 = photos / "known"
        service = FaceService(base / "svc1", service_env(known3, unknown, base / "cache",
                                                         cpus)).start()
        client = Client(service)
        try:
            latency = per_image(lambda f: client.identify(f.name), files, args.rounds)
            service_cpu = cpu_per_image(lambda f: client.identify(f.name), files, args.rounds,
                                        client.cpu_seconds)
            rows.append(("service via gRPC, one call at a time", f"{latency:.3f} s/image",
                         f"{latency / capped:.2f}x bare at {MAX_SIDE} px, "
                         f"{latency / full:.2f}x bare at full size"))
            rows.append(("service CPU (server + workers), one call at a time",
                         f"{service_cpu:.3f} s/image",
                         f"{service_cpu / capped_cpu:.2f}x bare CPU at {MAX_SIDE} px"))
            calls = [f.name for f in files] * 4
            rate_all = throughput(client, calls, clients=2 * cpus)
        finally:
            client.close()
            service.stop()
        service = FaceService(base / "svc-one", service_env(known3, unknown, base / "cache",
                                                            1)).start()
        client = Client(service)
        try:
            rate_one = throughput(client, calls, clients=2 * cpus)
        finally:
            client.close()
            service.stop()
        rows.append(("service throughput, 1 worker process", f"{rate_one:.2f} images/s", ""))
        rows.append((f"service throughput, {cpus} worker processes (all CPUs)",
                     f"{rate_all:.2f} images/s", f"{rate_all / rate_one:.2f}x one worker"))
        print("service done", flush=True)

        # Threads with their own models against processes, same work, no gRPC.
        work = [os.fspath(f) for f in files] * 4
        one = pool_rate("threads", 1, work)
        threads = pool_rate("threads", cpus, work)
        procs = pool_rate("processes", cpus, work)
        rows.append(("engine, 1 thread", f"{one:.2f} images/s", ""))
        rows.append((f"engine, {cpus} threads (own dlib models each)", f"{threads:.2f} images/s",
                     f"{threads / one:.2f}x one thread"))
        rows.append((f"engine, {cpus} processes", f"{procs:.2f} images/s",
                     f"{procs / one:.2f}x one thread"))
        print("threads/processes done", flush=True)

        # The article's design against the service, by number of known people.
        probe = unknown / "obama2.jpg"
        for people in (1, 10, 100):
            if people == 100 and args.skip_original:
                continue
            folder = known_folder(base, photos, people)
            known_files = sorted(folder.iterdir())
            original = timed(lambda k=known_files: original_request(k, probe))
            service = FaceService(base / f"svc-{people}",
                                  service_env(folder, unknown, base / "cache", cpus)).start()
            client = Client(service)
            try:
                client.identify(probe.name)
                ours = statistics.median(timed(lambda c=client: c.identify(probe.name))
                                         for _ in range(max(3, args.rounds)))
            finally:
                client.close()
                service.stop()
            rows.append((f"original design (re-encode known per request), {people} known",
                         f"{original:.3f} s/request", ""))
            rows.append((f"service, {people} known", f"{ours:.3f} s/request",
                         f"{original / ours:.1f}x faster than the original"))
            print(f"{people} known done", flush=True)

    load_after = os.getloadavg()
    import dlib

    print()
    print(f"machine: {cpus} CPUs, load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; Python {sys.version.split()[0]}, dlib {dlib.__version__}")
    print("| measurement | value | ratio |")
    print("| --- | --- | --- |")
    for name, value, ratio in rows:
        print(f"| {name} | {value} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
