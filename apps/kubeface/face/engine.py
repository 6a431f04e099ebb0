"""Finding and encoding faces: face_recognition's HOG detector and ResNet encoder, exactly as
``face_recognition.face_locations`` / ``face_encodings`` call them (upsample 1, 5-point
landmarks, one jitter), but with models owned by an :class:`Engine` instead of the library's
module globals, which are not safe to share between threads.

The service runs one Engine per worker process (see ``server``); each worker also runs
:func:`analyse` on the files it is given, so a crash in native code takes down one worker, not
the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubeface.core import metrics
from kubeface.face import images

UPSAMPLE = 1  # face_recognition's default: finds faces down to about 40 pixels
JITTERS = 1


@dataclass
class Analysis:
    """The faces of one image: boxes in the upright original's pixels, 128-d encodings."""

    width: int
    height: int
    boxes: list[tuple[int, int, int, int]]  # (top, right, bottom, left), the library's order
    encodings: np.ndarray  # n x 128 float32


class Engine:
    """One set of dlib models (about 100 MB); use it from one thread at a time."""

    def __init__(self) -> None:
        import dlib  # imported here: only the face service and its workers pay for it

        models = _model_paths()
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(models["five_point"])
        self.encoder = dlib.face_recognition_model_v1(models["encoder"])

    def faces(self, pixels: np.ndarray) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
        """Boxes (in ``pixels``' coordinates) and encodings of every face found."""
        height, width = pixels.shape[:2]
        boxes, encodings = [], []
        for rect in self.detector(pixels, UPSAMPLE):
            shape = self.predictor(pixels, rect)
            encodings.append(np.asarray(self.encoder.compute_face_descriptor(pixels, shape,
                                                                             JITTERS)))
            boxes.append((max(rect.top(), 0), min(rect.right(), width),
                          min(rect.bottom(), height), max(rect.left(), 0)))
        matrix = np.asarray(encodings, dtype=np.float32).reshape(len(encodings), 128)
        return boxes, matrix

    def analyse(self, path: Path, max_side: int, max_pixels: int) -> Analysis:
        loaded = images.load(path, max_side, max_pixels)
        boxes, encodings = self.faces(loaded.pixels)
        sx, sy = loaded.scale_x, loaded.scale_y
        original = [
            (min(round(t * sy), loaded.height), min(round(r * sx), loaded.width),
             min(round(b * sy), loaded.height), min(round(left * sx), loaded.width))
            for t, r, b, left in boxes
        ]
        return Analysis(loaded.width, loaded.height, original, encodings)


def _model_paths() -> dict[str, str]:
    # face_recognition_models finds its files through pkg_resources, which warns on import;
    # the files sit beside its __init__, so look there directly.
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("face_recognition_models is not installed (requirements-face.txt)")
    folder = Path(spec.origin).parent / "models"
    paths = {"five_point": folder / "shape_predictor_5_face_landmarks.dat",
             "encoder": folder / "dlib_face_recognition_resnet_model_v1.dat"}
    for path in paths.values():
        if not path.is_file():
            raise RuntimeError(f"face model {path} is missing")
    return {k: os.fspath(v) for k, v in paths.items()}


# --- worker-process side: one Engine per process, set up by the pool's initializer ---

_engine: Engine | None = None
_limits: tuple[int, int] = (0, 0)


def init_worker(max_side: int, max_pixels: int) -> None:
    """Pool initializer: load the models, in a process group of the worker's own."""
    global _engine, _limits
    import signal
    import threading
    import time

    from PIL import Image

    # A service stop (supervisord's stopasgroup, Ctrl-C) signals the server's process group;
    # the server finishes the calls in flight, then shuts the pool down, so a worker must not
    # die under a running call. Leaving the group keeps those signals away while SIGTERM keeps
    # its default: the pool terminates the other workers when one dies (its queues are then
    # unusable), and an ignored SIGTERM would leave the pool waiting for them forever.
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def orphan_watch() -> None:  # the server was killed outright: do not linger
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True, name="orphan-watch").start()

    # Pillow's own bomb check, as a second line behind images.load's.
    Image.MAX_IMAGE_PIXELS = max_pixels
    _engine = Engine()
    _limits = (max_side, max_pixels)
    metrics.face().worker_started()


def analyse(path: str) -> Analysis:
    """Run in a worker process: the faces of the image at ``path`` (already checked)."""
    if _engine is None:
        raise RuntimeError("engine.init_worker was not run in this process")
    with metrics.face().analysis():
        return _engine.analyse(Path(path), *_limits)


def warm(_: int = 0) -> int:
    """Run in each worker once at start so the first request does not pay for model loading."""
    return os.getpid()
