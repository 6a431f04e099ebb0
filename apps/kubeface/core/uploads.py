"""Image files received over HTTP: checked whole before anything is stored, then stored under
the unknown-images root by content hash, so the same bytes are one file (and one image).

A file is accepted only when Pillow decodes every pixel of it: an empty, truncated or damaged
file, or one that is not an image, is refused with the reason; a file whose header claims more
pixels than allowed is refused before decoding.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from kubeface.core.people import PeopleError

UPLOADS = "uploads"  # images posted to /images/upload
PHOTOS = "people"  # people's photos and crops of named faces
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp",
           "TIFF": ".tiff"}
CROP_MARGIN = 0.25  # of the face box's size, on each side


class UploadError(PeopleError):
    """A file that is not stored; ``status`` is 400 (not a usable image) or 413 (too big)."""


@dataclass(frozen=True)
class Checked:
    data: bytes
    sha256: str
    suffix: str
    width: int
    height: int

    def relative(self, folder: str) -> str:
        """Its path under the unknown-images root."""
        return f"{folder}/{self.sha256}{self.suffix}"


def check(name: str, data: bytes, max_pixels: int) -> Checked:
    """The file as an image fit to store, or :class:`UploadError` saying why not."""
    shown = repr(name[:60])
    if not data:
        raise UploadError(400, f"file {shown} is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            kind = im.format or ""
            if kind not in FORMATS:
                raise UploadError(400, f"file {shown} is a {kind or 'unknown'} image; accepted: "
                                       f"{', '.join(FORMATS)}")
            if width * height > max_pixels:
                raise UploadError(413, f"image {shown} is {width}x{height} pixels, more than "
                                       f"the {max_pixels} allowed (FACE_MAX_PIXELS)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError(400, f"file {shown} is not an image (JPEG, PNG, GIF, BMP, WebP or "
                               "TIFF)") from None
    except Image.DecompressionBombError:
        raise UploadError(413, f"image {shown} has too many pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise UploadError(400, f"image {shown} cannot be decoded: it is truncated or damaged "
                               f"({str(exc)[:80]})") from None
    if width <= 0 or height <= 0:
        raise UploadError(400, f"image {shown} has no pixels")
    return Checked(data, hashlib.sha256(data).hexdigest(), FORMATS[kind], width, height)


def store(root: Path, relative: str, data: bytes) -> bool:
    """Write ``data`` at ``root/relative`` unless it is there already; True when written.
    Written to a temporary name and renamed, so no reader ever sees half a file."""
    path = root / relative
    if path.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def remove(root: Path, relative: str) -> None:
    (root / relative).unlink(missing_ok=True)


def crop(path: Path, box: tuple[int, int, int, int], max_pixels: int) -> Checked:
    """A JPEG of the face at ``box`` (top, right, bottom, left, in the upright picture's
    pixels) with a margin around it."""
    top, right, bottom, left = box
    with Image.open(path) as im:
        if im.size[0] * im.size[1] > max_pixels:
            raise UploadError(413, "the image has too many pixels to crop")
        upright = ImageOps.exif_transpose(im).convert("RGB")
    mx, my = int((right - left) * CROP_MARGIN), int((bottom - top) * CROP_MARGIN)
    area = (max(left - mx, 0), max(top - my, 0), min(right + mx, upright.width),
            min(bottom + my, upright.height))
    out = io.BytesIO()
    upright.crop(area).save(out, "JPEG", quality=90)
    data = out.getvalue()
    return Checked(data, hashlib.sha256(data).hexdigest(), ".jpg", area[2] - area[0],
                   area[3] - area[1])
