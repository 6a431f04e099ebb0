"""Opening an image to recognise: safely, upright, and no bigger than detection needs.

Every way an image can be bad becomes an :class:`ImageError` with a code (``not_found`` or
``invalid``) and a message for the client; nothing else escapes. The pixel count is read from the
header and checked before any pixel is decoded (a decompression bomb is refused without cost).
"""

from __future__ import annotations

import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

NOT_FOUND = "not_found"
INVALID = "invalid"
_ORIENTATION = 0x0112
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image a quarter


class ImageError(Exception):
    """An image the service will not recognise; ``code`` is NOT_FOUND or INVALID."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message

    def __str__(self) -> str:
        return self.message


@dataclass
class Loaded:
    """RGB pixels to detect on, and the upright original's size to map boxes back to."""

    pixels: np.ndarray  # H x W x 3, uint8, upright, scaled down to max_side
    width: int  # upright original, EXIF applied
    height: int

    @property
    def scale_x(self) -> float:
        return self.width / self.pixels.shape[1]

    @property
    def scale_y(self) -> float:
        return self.height / self.pixels.shape[0]


def load(path: Path, max_side: int, max_pixels: int) -> Loaded:
    """The image at ``path``, upright (EXIF), longest side at most ``max_side`` (0: as is)."""
    name = path.name
    try:
        # Only regular files: opening a FIFO or a device would block or never end.
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise ImageError(INVALID, f"{name!r} is {kind}, not an image")
        im = Image.open(path)
    except FileNotFoundError:
        raise ImageError(NOT_FOUND, f"image {name!r} does not exist") from None
    except IsADirectoryError:
        raise ImageError(INVALID, f"{name!r} is a directory, not an image") from None
    except PermissionError:
        raise ImageError(INVALID, f"image {name!r} cannot be read: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(INVALID, f"{name!r} is not an image (or not in a format that can be "
                                  "read: JPEG, PNG, GIF, BMP, WebP, TIFF)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(INVALID, f"image {name!r} is too large: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(INVALID, f"image {name!r} cannot be read: {exc}") from None
    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(INVALID, f"image {name!r} has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageError(INVALID, f"image {name!r} is {width}x{height} = {width * height} "
                                      f"pixels, more than the {max_pixels} allowed "
                                      "(FACE_MAX_PIXELS); refused before decoding")
        try:
            orientation = im.getexif().get(_ORIENTATION, 1)
        except Exception:  # a damaged EXIF block must not lose the picture
            orientation = 1
        if orientation in _SWAPS_SIDES:
            width, height = height, width
        target = _scaled(width, height, max_side)
        try:
            if target != (width, height) and im.format == "JPEG":
                # Decode a JPEG at 1/2, 1/4 or 1/8 scale directly: much less work on big photos.
                stored = target[::-1] if orientation in _SWAPS_SIDES else target
                im.draft("RGB", stored)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "palette images with transparency"
                im.load()
                upright = ImageOps.exif_transpose(im) if orientation != 1 else im
                rgb = upright.convert("RGB")
            if rgb.size != target:
                rgb = rgb.resize(target, Image.Resampling.BILINEAR)
            pixels = np.asarray(rgb, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            reason = "truncated" if "truncated" in str(exc) else "damaged"
            raise ImageError(INVALID, f"image {name!r} is {reason} and cannot be decoded: "
                                      f"{exc}") from None
    return Loaded(pixels, width, height)


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int]:
    longest = max(width, height)
    if not max_side or longest <= max_side:
        return width, height
    factor = max_side / longest
    return max(1, round(width * factor)), max(1, round(height * factor))
