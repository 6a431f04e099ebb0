"""``kubeface face-service``: face recognition over gRPC (package ``facerecog``, port 50051).

The server process holds the known faces and matches against them; detection and encoding run
in a pool of worker processes, one dlib model set each (dlib releases the GIL, but threads sharing
face_recognition's module-level models crashed the interpreter, and processes scaled better in
``bench/face_bench.py``). The health service says NOT_SERVING until the known faces are loaded;
KNOWN_PEOPLE is polled for changes and reloaded without a restart; SIGTERM drains the calls in
flight, then exits.

With a database (MYSQL_USERPASSWORD set) the known faces are the people's photos stored there,
shared by every replica: KNOWN_PEOPLE is imported into it (only new or changed files are
encoded), and the people version is polled every second, so a change made through the API is
matched within seconds and a restart encodes nothing. Without one, KNOWN_PEOPLE is read directly.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from facerecog import SERVICE_NAME, face_pb2, face_pb2_grpc
from kubeface import enrol
from kubeface.core import known_people, matching, metrics, paths
from kubeface.core.config import Settings
from kubeface.core.db import UNAVAILABLE, Database
from kubeface.face import engine, known, observe
from kubeface.face.engine import Analysis
from kubeface.face.images import NOT_FOUND, ImageError

log = logging.getLogger("kubeface.face")

POLL_SECONDS = 2.0  # how often KNOWN_PEOPLE is checked for changes
VERSION_POLL_SECONDS = 1.0  # how often the database's people version is checked
DRAIN_SECONDS = 30.0  # longest wait for calls in flight at SIGTERM


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (containers)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    quota = _cgroup_quota()
    return min(count, max(1, int(quota))) if quota else count


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup (a Kubernetes CPU limit), v2 or v1; None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


class Refused(Exception):
    """A call answered with a gRPC error code; the message is for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Recogniser:
    """The service's logic, without gRPC: a test or a benchmark can call it directly."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.root = settings.unknown_people
        self.cache = known.EncodingCache(settings.face_cache_dir, settings.face_max_side)
        self.known: known.KnownSet | None = None
        # The shared source of known faces; None reads KNOWN_PEOPLE alone.
        self.db = Database(settings) if settings.mysql_userpassword else None
        self.version: int | None = None  # the people version self.known was loaded at
        self._pool_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._pool = self._new_pool()
        self.on_loaded: list = []  # callbacks(KnownSet), e.g. the health service
        self._closing = threading.Event()
        threading.Thread(target=self._watch_workers, daemon=True, name="worker-watch").start()

    def _new_pool(self) -> futures.ProcessPoolExecutor:
        # spawn: a fresh interpreter per worker, no forked gRPC or thread state.
        return futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=engine.init_worker,
            initargs=(self.settings.face_max_side, self.settings.face_max_pixels),
        )

    def warm_up(self) -> None:
        """Start every worker and load its models now, not on the first request."""
        list(self._pool.map(engine.warm, range(self.workers)))

    def _replace_pool(self, broken: futures.ProcessPoolExecutor, what: str) -> None:
        with self._pool_lock:
            if self._pool is broken:  # the first to notice replaces it
                log.error("a recognition worker died (%s): starting a new pool", what)
                self._pool = self._new_pool()

    def _watch_workers(self) -> None:
        """Replace the pool as soon as one of its workers dies, between calls too: the death
        is logged when it happens, and the next call goes to a working pool."""
        while not self._closing.is_set():
            pool = self._pool
            # The executor keeps its processes private; without them, a call finds the pool
            # broken instead (see _submit).
            processes = {p.sentinel: p.pid
                         for p in list(getattr(pool, "_processes", {}).values())}
            try:
                died = processes and multiprocessing.connection.wait(processes, timeout=1.0)
            except (OSError, ValueError):  # a process the executor has just reaped
                died = []
            if not processes:
                self._closing.wait(1.0)
            elif died and not self._closing.is_set():
                self._replace_pool(pool, f"pid {processes[died[0]]}")

    def _submit(self, path: Path) -> tuple[futures.Future, futures.ProcessPoolExecutor]:
        """Hand ``path`` to the pool. A pool found broken before the file reached it (a worker
        died between calls) is replaced, and the file goes to the new one."""
        for _ in range(2):
            pool = self._pool
            try:
                return pool.submit(engine.analyse, os.fspath(path)), pool
            except BrokenProcessPool:
                self._replace_pool(pool, "between calls")
        raise Refused(grpc.StatusCode.INTERNAL,
                      "recognition workers keep dying before they start; try again")

    def _run(self, path: Path, is_active: Callable[[], bool] | None = None) -> Analysis:
        future, pool = self._submit(path)
        try:
            while is_active is not None:
                try:
                    return future.result(timeout=0.5)
                except futures.TimeoutError:
                    # The caller gave up (deadline, cancel): drop the work if no worker has
                    # started it, so an overloaded service does not compute unread answers.
                    if not is_active() and future.cancel():
                        raise Refused(grpc.StatusCode.CANCELLED,
                                      "the call ended before a worker was free") from None
            return future.result()
        except BrokenProcessPool:
            self._replace_pool(pool, f"on {path.name} or a call beside it")
            raise Refused(grpc.StatusCode.INTERNAL,
                          "a recognition worker crashed while this image was being processed; "
                          "try again") from None

    def _run_many(self, files: Sequence[Path]) -> list[Analysis | BaseException]:
        """Analyse files in parallel; each result is an Analysis or its exception. A pool broken
        by a crashing worker is replaced and the batch tried once more."""
        results: list[Analysis | BaseException] = []
        for attempt in (1, 2):
            pool = self._pool
            try:
                pending = [pool.submit(engine.analyse, os.fspath(p)) for p in files]
            except BrokenProcessPool:
                pending = []
            results = []
            for future in pending:
                try:
                    results.append(future.result())
                except BaseException as exc:  # one bad known image must not stop the others
                    results.append(exc)
            broken = len(pending) < len(files) or any(
                isinstance(r, BrokenProcessPool) for r in results)
            if not broken:
                return results
            self._replace_pool(pool, f"while encoding known images, attempt {attempt}")
        if len(results) != len(files):
            return [BrokenProcessPool("recognition workers keep dying")] * len(files)
        return results

    def reload(self) -> known.KnownSet:
        """Read KNOWN_PEOPLE again (cached encodings are reused) and swap the known set; with a
        database, import the folder into it first and load every person's photos from it."""
        with self._reload_lock:
            started = time.monotonic()
            if self.db is None:
                new = known.load(self.settings.known_people, self.cache, self._run_many)
            else:
                self._import_folder()
                new = self._load_database()
            self.known = new
            log.info("known faces loaded: %d face(s) of %d people from %d image(s) in %s "
                     "(%.2fs)", new.faces, new.people, new.images, self.settings.known_people,
                     time.monotonic() - started)
        for callback in self.on_loaded:
            callback(new)
        return new

    def _import_folder(self) -> None:
        folder = self.settings.known_people
        if not folder.is_dir():
            log.info("known-people folder %s does not exist: nothing to import", folder)
            return
        try:
            done = enrol.import_encodings(self.db, folder, self._run_many)
        except known_people.ManifestError as exc:
            log.error("known-people folder not imported: %s", exc)
            return
        log.info("known folder imported: %d file(s) encoded, %d folder photo(s), %d removed",
                 done.encoded, done.photos, done.removed)

    def _load_database(self) -> known.KnownSet:
        version = matching.version(self.db)
        new = known.from_database(self.db, version)
        self.version = version
        return new

    def reload_if_changed(self) -> bool:
        """Load the known faces from the database when its people version moved."""
        if self.db is None or matching.version(self.db) == self.version:
            return False
        with self._reload_lock:
            started = time.monotonic()
            new = self._load_database()
            self.known = new
        log.info("known faces reloaded from the database: %d face(s) of %d people (%.2fs)",
                 new.faces, new.people, time.monotonic() - started)
        for callback in self.on_loaded:
            callback(new)
        return True

    def identify(self, image_path: str,
                 is_active: Callable[[], bool] | None = None) -> face_pb2.IdentifyResponse:
        """The answer for one image; ``is_active`` says whether the caller still waits."""
        current = self.known  # one snapshot for the whole call, whatever a reload does
        if current is None:
            raise Refused(grpc.StatusCode.UNAVAILABLE,
                          "known faces are not loaded yet; try again shortly")
        try:
            real = paths.real_file(image_path, self.root)
        except paths.PathError as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        try:
            analysis = self._run(real, is_active)
        except ImageError as exc:
            code = (grpc.StatusCode.NOT_FOUND if exc.code == NOT_FOUND
                    else grpc.StatusCode.INVALID_ARGUMENT)
            raise Refused(code, exc.message) from None
        return self._answer(current, analysis)

    def _answer(self, current: known.KnownSet,
                analysis: Analysis) -> face_pb2.IdentifyResponse:
        tolerance = self.settings.face_tolerance
        closest, distances = current.match(analysis.encodings)
        faces = []
        for i, (top, right, bottom, left) in enumerate(analysis.boxes):
            distance = float(distances[i])
            matched = distance <= tolerance
            name = current.image_names[closest[i]] if matched else ""
            ids = matched and bool(current.photo_ids)
            faces.append(face_pb2.Face(
                box=face_pb2.Box(top=top, right=right, bottom=bottom, left=left),
                image_name=name, person=current.persons[closest[i]] if matched else "",
                distance=distance, matched=matched,
                encoding=analysis.encodings[i].tolist(),
                photo_id=current.photo_ids[closest[i]] if ids else 0,
                person_id=current.person_ids[closest[i]] if ids else 0,
            ))
        faces.sort(key=lambda f: (f.box.left, f.box.top))
        response = face_pb2.IdentifyResponse(faces=faces, width=analysis.width,
                                             height=analysis.height,
                                             people_version=current.version)
        if not faces:
            response.outcome = face_pb2.OUTCOME_NO_FACE
            return response
        best = min(faces, key=lambda f: f.distance)
        response.distance = best.distance
        if best.matched:
            response.outcome = face_pb2.OUTCOME_MATCH
            response.image_name, response.person = best.image_name, best.person
        else:
            response.outcome = face_pb2.OUTCOME_UNKNOWN
        return response

    def close(self) -> None:
        self._closing.set()  # the workers leaving now are not deaths
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.db is not None:
            self.db.close()


class IdentityServicer(face_pb2_grpc.IdentityServicer):
    """Identify for every caller; Reload, which makes the service re-read and re-encode the
    known people, only through ``admin_socket`` when there is one (a Unix socket in a folder
    only the service's user may enter: TCP on loopback is open to every user of the machine)."""

    def __init__(self, recogniser: Recogniser, admin_socket: Path | None = None) -> None:
        self.recogniser = recogniser
        self.admin_socket = admin_socket

    def Identify(self, request, context):
        started = time.monotonic()
        try:
            response = self.recogniser.identify(request.image_path, context.is_active)
        except Refused as exc:
            log.info("identify %r: %s %s", request.image_path, exc.code.name, exc.message)
            metrics.face().identified(exc.code.name, started)
            context.abort(exc.code, exc.message)
        log.info("identify %r: %s, %d face(s), %s (%.0f ms)", request.image_path,
                 face_pb2.Outcome.Name(response.outcome), len(response.faces),
                 response.person or "-", (time.monotonic() - started) * 1000)
        metrics.face().identified(face_pb2.Outcome.Name(response.outcome), started)
        return response

    def Reload(self, request, context):
        if self.admin_socket is not None and not context.peer().startswith("unix:"):
            log.warning("Reload refused to %s: it is answered only on FACE_ADMIN_SOCKET",
                        context.peer()[:100])
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"Reload is answered only on the Unix socket {self.admin_socket} "
                          "(FACE_ADMIN_SOCKET)")
        try:
            loaded = self.recogniser.reload()
        except known.NoKnownFaces as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return face_pb2.ReloadResponse(known_images=loaded.images, known_faces=loaded.faces,
                                       people=loaded.people)


def watch(recogniser: Recogniser, stop: threading.Event) -> None:
    """Load the known faces, then reload whenever KNOWN_PEOPLE changes (polled), and with a
    database whenever its people version moves."""
    folder = recogniser.settings.known_people
    tried: tuple | None = None
    next_folder_check = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_folder_check:
            next_folder_check = time.monotonic() + POLL_SECONDS
            current = known.snapshot(folder)
            if current != tried:
                tried = current
                try:
                    recogniser.reload()
                except known.NoKnownFaces as exc:
                    state = ("keeping the faces loaded before" if recogniser.known
                             else "NOT_SERVING")
                    log.error("known faces not loaded (%s): %s", state, exc)
                except UNAVAILABLE as exc:
                    tried = None  # try again at the next check
                    log.warning("known faces not loaded, the database is unavailable: %s",
                                str(exc).splitlines()[0][:200])
                except Exception:
                    tried = None  # e.g. the schema is not migrated yet
                    log.exception("reloading the known faces failed")
        if recogniser.db is not None and recogniser.known is not None:
            try:
                recogniser.reload_if_changed()
            except Exception as exc:
                log.warning("people version not checked: %s", str(exc).splitlines()[0][:200])
        stop.wait(VERSION_POLL_SECONDS if recogniser.db is not None else POLL_SECONDS)


def _listen_on_socket(server: grpc.Server, path: Path) -> int:
    """Listen on the Unix socket ``path`` too; its folder is made 0700 if it is new, and the
    socket 0600: only the service's user (and root) may connect."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    umask = os.umask(0o177)  # created 0600, not made so after a moment of being open
    try:
        bound = server.add_insecure_port(f"unix:{path}")
    finally:
        os.umask(umask)
    if bound:
        path.chmod(0o600)
    return bound


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="recognition worker processes (default: FACE_WORKERS, 0: per CPU)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    workers = args.workers if getattr(args, "workers", None) else settings.face_workers
    workers = workers or available_cpus()
    # Before any metric exists and before the workers start: they inherit the mode.
    metrics_cleanup = metrics.use_multiprocess()
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    recogniser = Recogniser(settings, workers)

    def serving(_: known.KnownSet) -> None:
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    recogniser.on_loaded.append(serving)
    try:
        metrics_port = observe.start(settings, recogniser)
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d (FACE_METRICS_PORT): %s",
                  settings.bind_address, settings.face_metrics_port, exc)
        recogniser.close()
        metrics_cleanup()
        return 1
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max(8, workers * 4),
                                   thread_name_prefix="grpc"),
        # Never share the port with another process that happens to bind it too.
        options=[("grpc.so_reuseport", 0)],
    )
    admin_socket = settings.face_admin_socket
    face_pb2_grpc.add_IdentityServicer_to_server(IdentityServicer(recogniser, admin_socket),
                                                 server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{settings.bind_address}:{settings.grpc_port}"
    try:
        bound = server.add_insecure_port(address)
        if bound and admin_socket is not None:
            address = f"{address} and unix:{admin_socket}"
            bound = _listen_on_socket(server, admin_socket)
    except (RuntimeError, OSError):
        bound = 0
    if not bound:
        log.error("cannot listen on %s (in use, or not an address of this machine)", address)
        recogniser.close()
        metrics_port.stop()
        metrics_cleanup()
        return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    log.info("face service listening on %s with %d worker process(es), tolerance %.2f, "
             "max side %d px", address, workers, settings.face_tolerance,
             settings.face_max_side)
    try:
        recogniser.warm_up()
        watcher = threading.Thread(target=watch, args=(recogniser, stop), daemon=True,
                                   name="known-watch")
        watcher.start()
        stop.wait()
        log.info("stopping: draining calls in flight (up to %.0fs)", DRAIN_SECONDS)
    finally:
        # Also on a failed start: never leave a half-started server holding the port.
        stop.set()
        health_servicer.enter_graceful_shutdown()
        server.stop(DRAIN_SECONDS).wait()
        recogniser.close()
        metrics_port.stop()
        metrics_cleanup()
    log.info("stopped")
    return 0
