#!/usr/bin/env python3
"""Sample known and unknown images from photos that Python packages ship (no photos committed).

Usage: .venv/bin/python scripts/sample_images.py --known DIR --unknown DIR

Photos come from pinned package files fetched with pip (see ``SOURCES``):
face_recognition's sdist test images (Obama, Biden), matplotlib's wheel (Grace Hopper, a logo),
Pillow's sdist (another Grace Hopper) and insightface's wheel (a six-face group photo, a Tom Hanks
portrait, a face mask). A few are derived here: a group photo with Obama added, an Obama photo
stored sideways with an EXIF rotation tag, a 32-bit PNG.

Every expectation written to ``expected.json`` in the unknown folder is checked against the bare
face_recognition library (full resolution, no service code) when the set is first built, with a
margin around the 0.6 tolerance; the measured distances are printed and kept in ``report.txt``
beside the cached set. Everything is cached under ``${KUBE_FACE_CACHE:-~/.cache/kube-face}/photos``,
so a second run is offline and takes milliseconds.

``expected.json``: {"<file>": {"status": "processed"|"unknown"|"no_face",
"person": "<name>"|null, "faces": <count>}}.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

SET_VERSION = "v1"  # bump when the set or its expectations change
TOLERANCE = 0.6
# Margin around the tolerance: a sample whose distance is this close to 0.6 is not a fair test.
MATCH_AT_MOST = 0.5
STRANGER_AT_LEAST = 0.68

# original name -> (pip requirement, "sdist" | "wheel", path of the file inside the archive)
SOURCES: dict[str, tuple[str, str, str]] = {
    "obama.jpg": ("face_recognition==1.3.0", "sdist", "tests/test_images/obama.jpg"),
    "obama2.jpg": ("face_recognition==1.3.0", "sdist", "tests/test_images/obama2.jpg"),
    "obama3.jpg": ("face_recognition==1.3.0", "sdist", "tests/test_images/obama3.jpg"),
    "obama_32bit.png": ("face_recognition==1.3.0", "sdist", "tests/test_images/32bit.png"),
    "biden.jpg": ("face_recognition==1.3.0", "sdist", "tests/test_images/biden.jpg"),
    "grace_hopper.jpg": ("matplotlib==3.11.2", "wheel",
                         "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    "logo2.png": ("matplotlib==3.11.2", "wheel", "matplotlib/mpl-data/sample_data/logo2.png"),
    "hopper.jpg": ("pillow==13.0.0", "sdist", "Tests/images/hopper.jpg"),
    "t1.jpg": ("insightface==2.1", "wheel", "insightface/data/images/t1.jpg"),
    "tom_hanks.png": ("insightface==2.1", "wheel", "insightface/data/images/Tom_Hanks_54745.png"),
    "mask_white.jpg": ("insightface==2.1", "wheel", "insightface/data/images/mask_white.jpg"),
}

# Known folder: file name (the person by the naming convention) -> original.
KNOWN = {
    "barack_obama.jpg": "obama.jpg",
    "joe_biden.jpg": "biden.jpg",
    "grace_hopper.jpg": "grace_hopper.jpg",
}

# Unknown folder: file name -> (how it is made, status, person, faces).
UNKNOWN: dict[str, tuple[str, str, str | None, int]] = {
    "obama2.jpg": ("obama2.jpg", "processed", "Barack Obama", 1),
    "obama3_large.jpg": ("obama3.jpg", "processed", "Barack Obama", 1),  # 1434x2333: scaled
    "obama_32bit.png": ("obama_32bit.png", "processed", "Barack Obama", 1),  # RGBA PNG
    "obama_exif_rotated.jpg": ("<rotated>", "processed", "Barack Obama", 1),
    "hopper_pillow.jpg": ("hopper.jpg", "processed", "Grace Hopper", 1),  # 128x128
    "tom_hanks.png": ("tom_hanks.png", "unknown", None, 1),
    "group_six.jpg": ("t1.jpg", "unknown", None, 6),
    "group_with_obama.jpg": ("<group>", "processed", "Barack Obama", 7),
    "matplotlib_logo.png": ("logo2.png", "no_face", None, 0),
    "face_mask.jpg": ("mask_white.jpg", "no_face", None, 0),
}


def cache_root() -> Path:
    base = os.environ.get("KUBE_FACE_CACHE") or str(Path.home() / ".cache" / "kube-face")
    return Path(base).expanduser() / "photos"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One builder at a time (parallel test sessions share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pip_download(requirement: str, kind: str, dest: Path) -> Path:
    flag = ["--no-binary", ":all:"] if kind == "sdist" else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *flag,
           requirement, "-d", str(dest)]
    # A fixed argv: this interpreter's pip and a pinned requirement from SOURCES.
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"sample_images: pip download {requirement} failed:\n{result.stderr}")
    name = requirement.split("==")[0].lower().replace("-", "_")
    found = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    if len(found) != 1:
        raise SystemExit(f"sample_images: expected one archive for {requirement}, got {found}")
    return found[0]


def _member(archive: Path, suffix: str) -> bytes:
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(suffix)]
            if names:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.endswith("/" + suffix):
                    data = t.extractfile(m)
                    if data is not None:
                        return data.read()
    raise SystemExit(f"sample_images: {suffix} is not in {archive.name}")


def fetch_originals(folder: Path) -> None:
    """Download each package once and keep only the photos (the archives are deleted)."""
    folder.mkdir(parents=True, exist_ok=True)
    by_package: dict[tuple[str, str], list[str]] = {}
    for name, (req, kind, _) in SOURCES.items():
        if not (folder / name).is_file():
            by_package.setdefault((req, kind), []).append(name)
    for (req, kind), names in by_package.items():
        print(f"sample_images: downloading {req} ({kind}) for {', '.join(names)}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            archive = _pip_download(req, kind, Path(tmp))
            for name in names:
                data = _member(archive, SOURCES[name][2])
                (folder / f".{name}.part").write_bytes(data)
                (folder / f".{name}.part").rename(folder / name)


def _derive(originals: Path, how: str, dest: Path) -> None:
    from PIL import Image

    if how == "<rotated>":
        # Stored sideways with EXIF Orientation 6 ("rotate 90 clockwise to view"): a reader
        # that ignores EXIF sees a sideways face and finds none.
        with Image.open(originals / "obama2.jpg") as im:
            exif = Image.Exif()
            exif[0x0112] = 6
            im.transpose(Image.Transpose.ROTATE_90).save(dest, exif=exif, quality=92)
    elif how == "<group>":
        # The six-face group photo with a different photo of Obama (head and shoulders) beside it.
        with Image.open(originals / "t1.jpg") as group, Image.open(originals / "obama2.jpg") as o:
            group, o = group.convert("RGB"), o.convert("RGB")
            head = o.crop((0, 0, o.width, o.width))  # obama2 is portrait, face in the top square
            head = head.resize((group.height, group.height))
            canvas = Image.new("RGB", (group.width + head.width, group.height), "white")
            canvas.paste(group, (0, 0))
            canvas.paste(head, (group.width, 0))
            canvas.save(dest, quality=92)
    else:
        shutil.copyfile(originals / how, dest)


def _encode(path: Path) -> list:
    import face_recognition
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        pixels = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return face_recognition.face_encodings(pixels, face_recognition.face_locations(pixels))


def verify(known: Path, unknown: Path) -> list[str]:
    """Check every expectation with the bare library; returns report lines, exits on a miss."""
    import numpy as np

    names, encodings, report, problems = [], [], [], []
    for file_name in sorted(KNOWN):
        found = _encode(known / file_name)
        if len(found) != 1:
            problems.append(f"known {file_name}: {len(found)} faces, expected 1")
            continue
        names.append(file_name)
        encodings.append(found[0])
    matrix = np.array(encodings)
    people = {n: _person(n) for n in names}
    for file_name, (_, status, person, faces) in sorted(UNKNOWN.items()):
        found = _encode(unknown / file_name)
        best_name, best = None, float("inf")
        closest = []
        for enc in found:
            d = np.linalg.norm(matrix - enc, axis=1)
            closest.append(f"{float(d.min()):.3f}")
            if d.min() < best:
                best, best_name = float(d.min()), names[int(d.argmin())]
        got_status = "no_face" if not found else ("processed" if best <= TOLERANCE else "unknown")
        got_person = people[best_name] if got_status == "processed" and best_name else None
        report.append(f"{file_name}: {len(found)} face(s), closest distance per face "
                      f"[{', '.join(closest)}], best {best_name or '-'} -> {got_status}")
        if (got_status, got_person, len(found)) != (status, person, faces):
            problems.append(f"{file_name}: expected {status}/{person}/{faces} faces, the library "
                            f"says {got_status}/{got_person}/{len(found)}")
        if status == "processed" and best > MATCH_AT_MOST:
            problems.append(f"{file_name}: match at {best:.3f}, too close to {TOLERANCE}")
        if status == "unknown" and best < STRANGER_AT_LEAST:
            problems.append(f"{file_name}: stranger at {best:.3f}, too close to {TOLERANCE}")
    if problems:
        raise SystemExit("sample_images: the samples do not behave as expected:\n  "
                         + "\n  ".join(problems))
    return report


def _person(file_name: str) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
    from kubeface.core.known_people import name_from_file

    return name_from_file(file_name)


def build_set(root: Path) -> Path:
    """The verified sample set in the cache (built once): root/set-VERSION/{known,unknown}."""
    final = root / f"set-{SET_VERSION}"
    if (final / "complete").is_file():
        return final
    with locked(root / ".lock"):
        if (final / "complete").is_file():
            return final
        originals = root / "originals"
        fetch_originals(originals)
        work = Path(tempfile.mkdtemp(prefix=".set-", dir=root))
        known, unknown = work / "known", work / "unknown"
        known.mkdir()
        unknown.mkdir()
        for file_name, original in KNOWN.items():
            shutil.copyfile(originals / original, known / file_name)
        for file_name, (how, *_) in UNKNOWN.items():
            _derive(originals, how, unknown / file_name)
        print("sample_images: checking every expectation with face_recognition", flush=True)
        report = verify(known, unknown)
        expected = {f: {"status": s, "person": p, "faces": n}
                    for f, (_, s, p, n) in sorted(UNKNOWN.items())}
        (unknown / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
        (work / "report.txt").write_text("\n".join(report) + "\n")
        (work / "complete").write_text("")
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        print("\n".join(report))
    return final


def copy_into(sample: Path, known: Path, unknown: Path) -> None:
    for src, dest in ((sample / "known", known), (sample / "unknown", unknown)):
        dest.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            shutil.copyfile(f, dest / f.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--known", type=Path, required=True, help="folder for known people")
    parser.add_argument("--unknown", type=Path, required=True,
                        help="folder for unknown images (+ expected.json)")
    args = parser.parse_args(argv)
    sample = build_set(cache_root())
    copy_into(sample, args.known, args.unknown)
    print(f"sample_images: {len(KNOWN)} known images in {args.known}, {len(UNKNOWN)} unknown "
          f"images and expected.json in {args.unknown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
