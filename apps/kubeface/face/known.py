"""The known faces: read from KNOWN_PEOPLE once, cached on disk by content, matched at once.

Each known image gives one encoding (its largest face, when a picture has several: the person
the image is filed under is the one it is about). Encodings are cached in ``FACE_CACHE_DIR`` under
the SHA-256 of the file's bytes and the settings that change an encoding, so a restart or a
reload only encodes new or changed files. Matching is one float32 matrix product over every
known encoding, whatever their number.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kubeface.core import known_people, matching, paths
from kubeface.core.db import Database
from kubeface.face.engine import JITTERS, UPSAMPLE, Analysis
from kubeface.face.images import ImageError

log = logging.getLogger(__name__)
CACHE_FORMAT = 1  # bump when what is cached changes


class NoKnownFaces(Exception):
    """KNOWN_PEOPLE gave no usable face; the message says why."""


@dataclass(frozen=True)
class KnownSet:
    """An immutable snapshot; a reload builds a new one and swaps the reference."""

    matrix: np.ndarray  # n x 128 float32
    image_names: tuple[str, ...]
    persons: tuple[str, ...]
    images: int  # known image files seen (some may have had no face)
    # Database ids of each row's photo and person; empty when read from the folder alone.
    photo_ids: tuple[int, ...] = ()
    person_ids: tuple[int, ...] = ()
    # The database's people version these rows were read at (0 when read from the folder).
    version: int = 0
    squared: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "squared", np.einsum("ij,ij->i", self.matrix, self.matrix))

    @property
    def faces(self) -> int:
        return len(self.image_names)

    @property
    def people(self) -> int:
        return len(set(self.persons))

    def match(self, encodings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the closest known face and its distance, for each row of ``encodings``.

        |a-b|^2 = |a|^2 + |b|^2 - 2ab over the whole matrix at once; the winner's distance is
        then recomputed exactly in float64, so reported distances match the library's.
        """
        queries = np.asarray(encodings, dtype=np.float32)
        if not len(queries) or not self.faces:
            return np.zeros(len(queries), dtype=np.int64), np.full(len(queries), np.inf)
        squared = (np.einsum("ij,ij->i", queries, queries)[:, None] + self.squared[None, :]
                   - 2.0 * (queries @ self.matrix.T))
        best = squared.argmin(axis=1)
        exact = np.linalg.norm(self.matrix[best].astype(np.float64)
                               - np.asarray(encodings, dtype=np.float64), axis=1)
        return best, exact


class EncodingCache:
    """``<dir>/<sha256>-<variant>.npy`` holding 0 or 1 encodings; unwritable means uncached."""

    def __init__(self, folder: Path, max_side: int) -> None:
        self.folder = folder
        self.variant = f"f{CACHE_FORMAT}-s{max_side}-u{UPSAMPLE}-j{JITTERS}"
        self.usable = True

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}-{self.variant}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            value = np.load(self._path(digest), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return value if value.ndim == 2 and value.shape[1] == 128 else None

    def put(self, digest: str, value: np.ndarray) -> None:
        if not self.usable:
            return
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file, even with two services.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, value.astype(np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            self.usable = False
            log.warning("encoding cache %s is not writable (%s): known faces will be encoded "
                        "again at every start", self.folder, exc)


def _largest(analysis: Analysis) -> np.ndarray:
    if not analysis.boxes:
        return np.zeros((0, 128), dtype=np.float32)
    areas = [(b - t) * (r - left) for t, r, b, left in analysis.boxes]
    return analysis.encodings[int(np.argmax(areas))][None, :]


# Analyse many files (in the worker pool); each result is an Analysis or the exception it raised.
AnalyseMany = Callable[[Sequence[Path]], list[Analysis | BaseException]]


def load(folder: Path, cache: EncodingCache, analyse_many: AnalyseMany) -> KnownSet:
    """Every known face in ``folder``; :class:`NoKnownFaces` when there is none to match."""
    try:
        entries = known_people.scan(folder)
    except (FileNotFoundError, known_people.ManifestError) as exc:
        raise NoKnownFaces(str(exc)) from None
    digests, chosen = {}, {}
    for entry in entries:
        try:
            digests[entry.image_name] = paths.file_sha256(entry.path)
        except OSError as exc:
            log.warning("known image %s cannot be read, skipped: %s", entry.image_name, exc)
            continue
        cached = cache.get(digests[entry.image_name])
        if cached is not None:
            chosen[entry.image_name] = cached
    todo = [e for e in entries if e.image_name in digests and e.image_name not in chosen]
    if todo:
        log.info("encoding %d known image(s) (%d from the cache)", len(todo), len(chosen))
    for entry, result in zip(todo, analyse_many([e.path for e in todo]), strict=True):
        if isinstance(result, ImageError):
            log.warning("known image %s skipped: %s", entry.image_name, result.message)
            continue
        if isinstance(result, BaseException):
            log.warning("known image %s skipped: %r", entry.image_name, result)
            continue
        if len(result.boxes) > 1:
            log.warning("known image %s shows %d faces: using the largest", entry.image_name,
                        len(result.boxes))
        chosen[entry.image_name] = _largest(result)
        cache.put(digests[entry.image_name], chosen[entry.image_name])
    names, persons, rows = [], [], []
    for entry in entries:
        value = chosen.get(entry.image_name)
        if value is None:
            continue
        if not len(value):
            log.warning("known image %s has no face: it cannot match anyone", entry.image_name)
            continue
        names.append(entry.image_name)
        persons.append(entry.person)
        rows.append(value[0])
    if not rows:
        raise NoKnownFaces(f"no face found in the {len(entries)} image(s) of known-people "
                           f"folder {folder}")
    return KnownSet(np.asarray(rows, dtype=np.float32), tuple(names), tuple(persons),
                    len(entries))


def from_database(db: Database, version: int) -> KnownSet:
    """Every person's photos as stored in the database (may be none: nobody is known yet),
    read after the people version was ``version``: the rows are that version or newer."""
    table = matching.load_known(db)
    return KnownSet(table.matrix, table.files, table.names, len(table),
                    tuple(table.photo_ids.tolist()), tuple(table.person_ids.tolist()), version)


def snapshot(folder: Path) -> tuple:
    """What a change of the folder changes: every file's name, size and modification time."""
    try:
        found = []
        for path in folder.rglob("*"):
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.append((path.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
        return tuple(sorted(found))
    except OSError:
        return ()
