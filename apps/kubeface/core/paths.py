"""Image paths: what clients may post and what the face service may open.

A client gives a path relative to the unknown-images root (``UNKNOWN_PEOPLE``) or absolute inside
it. :func:`canonical` turns it into the form stored in ``images.path`` (relative, normalised), so
``x.jpg`` and ``/unknown_people/x.jpg`` are one image and the receiver and the face service may
mount the root at different places. :func:`real_file` is the only way a service turns a stored
path into a file to open: it resolves symlinks and refuses anything that ends up outside the root
(the original opened any file on the machine).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

MAX_PATH_LENGTH = 1024  # images.path is VARCHAR(1024)


class PathError(ValueError):
    """A path no service will open; the message says why, for the client."""


class OutsideRoot(PathError):
    """A path that leads outside the unknown-images root."""


def canonical(raw: object, root: Path) -> str:
    """The stored form of a client's path; :class:`PathError` when it can never be valid."""
    if not isinstance(raw, str):
        raise PathError(f"path must be a string, got {type(raw).__name__}")
    if not raw.strip():
        raise PathError("path is empty")
    if "\x00" in raw:
        raise PathError("path contains a NUL character")
    if len(raw) > MAX_PATH_LENGTH:
        raise PathError(f"path is longer than {MAX_PATH_LENGTH} characters")
    path = PurePosixPath(raw)
    if ".." in path.parts:
        raise OutsideRoot(f"path {raw!r} contains '..': give a path inside the image root")
    normal = PurePosixPath(os.path.normpath(raw))
    if normal.is_absolute():
        base = PurePosixPath(os.path.normpath(Path(root).absolute()))
        if not normal.is_relative_to(base):
            raise OutsideRoot(
                f"path {raw!r} is outside the image root {base}: give a path relative to it"
            )
        normal = normal.relative_to(base)
    if normal.as_posix() in ("", "."):
        raise PathError("path names the image root itself, not an image")
    return normal.as_posix()


def real_file(stored: str, root: Path) -> Path:
    """The real path of an image to open, symlinks resolved; :class:`OutsideRoot` if it leaves
    the root. Whether the file exists is for the caller to find out when it opens it."""
    relative = canonical(stored, root)
    real_root = Path(root).resolve()
    real = (real_root / relative).resolve()
    if not real.is_relative_to(real_root):
        raise OutsideRoot(f"path {stored!r} leads outside the image root (through a link)")
    return real
