"""Opening an image to recognise: safely, upright, and no bigger than detection needs.

Every way an image can be bad becomes an :class:`ImageError` with a code (``not_found`` or
``invalid``) and a message for the client; nothing else escapes. The pixel count is read from the
header and checked before any pixel is decoded (a decompression bomb is refused without cost).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kubeface.core import exif, paths

NOT_FOUND = "not_found"
INVALID = "invalid"


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
    name = paths.shown(path.name)
    try:
        file = paths.open_image(path)
    except FileNotFoundError:
        raise ImageError(NOT_FOUND, f"image {name} does not exist") from None
    except paths.NotAFile as exc:
        raise ImageError(INVALID, str(exc)) from None
    except PermissionError:
        raise ImageError(INVALID, f"image {name} cannot be read: permission denied") from None
    except OSError as exc:
        raise ImageError(INVALID, f"image {name} cannot be read: {exc.strerror}") from None
    with file:
        return _decode(file, name, max_side, max_pixels)


def _decode(file: BinaryIO, name: str, max_side: int, max_pixels: int) -> Loaded:
    try:
        im = Image.open(file)
    except UnidentifiedImageError:
        raise ImageError(INVALID, f"{name} is not an image (or not in a format that can be "
                                  "read: JPEG, PNG, GIF, BMP, WebP, TIFF)") from None
    except Image.DecompressionBombError:
        # Pillow's own check (twice its MAX_IMAGE_PIXELS): the limit that applies is ours.
        raise ImageError(INVALID, f"image {name} has more than the {max_pixels} pixels "
                                  "allowed (FACE_MAX_PIXELS); refused before decoding") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(INVALID, f"image {name} cannot be read: {_said(exc)}") from None
    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(INVALID, f"image {name} has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageError(INVALID, f"image {name} is {width}x{height} = {width * height} "
                                      f"pixels, more than the {max_pixels} allowed "
                                      "(FACE_MAX_PIXELS); refused before decoding")
        orientation = exif.orientation(im)
        if orientation in exif.QUARTER_TURNS:
            width, height = height, width
        target = _scaled(width, height, max_side)
        try:
            if target != (width, height) and im.format == "JPEG":
                # Decode a JPEG at 1/2, 1/4 or 1/8 scale directly: much less work on big photos.
                stored = target[::-1] if orientation in exif.QUARTER_TURNS else target
                im.draft("RGB", stored)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "palette images with transparency"
                im.load()
                upright = ImageOps.exif_transpose(im) if orientation != exif.UPRIGHT else im
                rgb = upright.convert("RGB")
            if rgb.size != target:
                rgb = rgb.resize(target, Image.Resampling.BILINEAR)
            pixels = np.asarray(rgb, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            reason = "truncated" if "truncated" in str(exc) else "damaged"
            raise ImageError(INVALID, f"image {name} is {reason} and cannot be decoded: "
                                      f"{_said(exc)}") from None
    return Loaded(pixels, width, height)


def _said(exc: BaseException) -> str:
    """What a decoder said, cut short: the message must stay small."""
    return paths.cut(exc, 200)


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int]:
    longest = max(width, height)
    if not max_side or longest <= max_side:
        return width, height
    factor = max_side / longest
    return max(1, round(width * factor)), max(1, round(height * factor))
