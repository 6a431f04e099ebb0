"""The known-people folder (``KNOWN_PEOPLE``): which image shows whom.

Each image file in the folder (sub-folders included) is one known image. Who is in it comes from
``people.csv`` in the folder when it lists the file (columns ``image,name``; ``image`` relative
to the folder), and otherwise from the file name: ``barack_obama.jpg`` and ``barack_obama_2.jpg``
are both "Barack Obama" (underscores and dashes become spaces, a trailing number is dropped,
each word is capitalised). The face service and ``kubeface enrol`` both read it through here, so
they always agree on the image names that link a face to a ``person``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "people.csv"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
_TRAILING_NUMBER = re.compile(r"[\s_-]*\d+$")


class ManifestError(ValueError):
    """``people.csv`` is malformed; the message says where."""


@dataclass(frozen=True, order=True)
class KnownImage:
    image_name: str  # relative to the folder, with "/" separators: the key in person_images
    person: str
    path: Path


def name_from_file(image_name: str) -> str:
    """The person a file name stands for, by the convention above."""
    stem = Path(image_name).stem
    stem = _TRAILING_NUMBER.sub("", stem) or stem
    words = re.split(r"[\s_-]+", stem)
    return " ".join(w[:1].upper() + w[1:] for w in words if w)


def read_manifest(folder: Path) -> dict[str, str]:
    """``people.csv`` as {image name: person}; empty when there is none."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    people: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or {"image", "name"} - set(reader.fieldnames):
            raise ManifestError(f"{path}: the first line must be the header 'image,name'")
        for line, row in enumerate(reader, start=2):
            image, name = (row.get("image") or "").strip(), (row.get("name") or "").strip()
            if not image or not name:
                raise ManifestError(f"{path}:{line}: both image and name are needed")
            if image in people and people[image] != name:
                raise ManifestError(f"{path}:{line}: {image} is listed twice with two names")
            people[image] = name
    return people


def scan(folder: Path) -> list[KnownImage]:
    """Every known image in ``folder`` with its person, sorted by image name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"known-people folder {folder} does not exist")
    manifest = read_manifest(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        image_name = path.relative_to(folder).as_posix()
        person = manifest.get(image_name) or name_from_file(image_name)
        found.append(KnownImage(image_name, person, path))
    missing = set(manifest) - {k.image_name for k in found}
    if missing:
        raise ManifestError(f"{folder / MANIFEST} lists images that are not there: "
                            f"{', '.join(sorted(missing))}")
    return found
