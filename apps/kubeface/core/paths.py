"""Image paths: what clients may post and what the face service may open.

A client gives a path relative to the unknown-images root (``UNKNOWN_PEOPLE``) or absolute inside
it. :func:`canonical` turns it into the form stored in ``images.path`` (relative, normalised), so
``x.jpg`` and ``/unknown_people/x.jpg`` are one image and the receiver and the face service may
mount the root at different places. :func:`real_file` is the only way a service turns a stored
path into a file to open: it resolves symlinks and refuses anything that ends up outside the root.
:func:`open_image` then opens it only if it is a regular file, without ever blocking (a FIFO
would block a reader for good).

Messages quote a path through :func:`shown`, cut to a few dozen characters: an error message
must stay small whatever the path (gRPC refuses metadata over 16 KiB).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAX_PATH_LENGTH = 1024  # images.path is VARCHAR(1024)
SHOWN_LENGTH = 60


class PathError(ValueError):
    """A path no service will open; the message says why, for the client."""


class OutsideRoot(PathError):
    """A path that leads outside the unknown-images root."""


class NotAFile(PathError):
    """A path that exists but is not a regular file: a directory, FIFO, device or socket."""


def cut(text: object, limit: int = SHOWN_LENGTH) -> str:
    """``text`` with its middle cut out when it is longer than ``limit`` characters."""
    text = str(text)
    return f"{text[: limit * 2 // 3]}...{text[-(limit // 3):]}" if len(text) > limit else text


def shown(text: object, limit: int = SHOWN_LENGTH) -> str:
    """``text`` quoted for a message, cut to about ``limit`` characters."""
    return repr(cut(text, limit))


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
    quoted = shown(raw)
    path = PurePosixPath(raw)
    if ".." in path.parts:
        raise OutsideRoot(f"path {quoted} contains '..': give a path inside the image root")
    normal = PurePosixPath(os.path.normpath(raw))
    if normal.is_absolute():
        base = PurePosixPath(os.path.normpath(Path(root).absolute()))
        if not normal.is_relative_to(base):
            raise OutsideRoot(
                f"path {quoted} is outside the image root {shown(base)}: give a path relative "
                "to it"
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
        raise OutsideRoot(f"path {shown(stored)} leads outside the image root (through a link)")
    return real


def open_image(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file: the open never blocks and never
    follows a link swapped in after :func:`real_file`. :class:`NotAFile` otherwise; the
    ``OSError`` of the open (``FileNotFoundError``, ``PermissionError``, ...) as it is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else f"not a regular file ({_kind(mode)})"
            raise NotAFile(f"{shown(Path(path).name)} is {kind}, not an image")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a link"


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path`` (hex), read in blocks: a known image changed on disk
    is one whose digest differs from the stored one."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
