"""EXIF orientation, read one way by the face service and the frontend.

The face service turns a picture upright before it looks for faces, so the stored face boxes are
in the upright picture's pixels; the frontend draws them over the picture as the browser shows it
(upright too). Both must agree on which orientations swap width and height.
"""

from __future__ import annotations

from PIL import ExifTags, Image

UPRIGHT = 1
QUARTER_TURNS = frozenset({5, 6, 7, 8})
"""The orientations that turn the picture a quarter: its upright width is its stored height."""


def orientation(im: Image.Image) -> int:
    """The picture's EXIF orientation (1 to 8); :data:`UPRIGHT` when it has none, or when the
    EXIF block is damaged (a damaged block must not lose the picture)."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, UPRIGHT)
    except Exception:  # Pillow raises many kinds on a broken EXIF block
        return UPRIGHT
    return value if isinstance(value, int) and 1 <= value <= 8 else UPRIGHT
