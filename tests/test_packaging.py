"""Packaging: uv.lock matches pyproject.toml and records a hash for every file, requirements.lock
is its export, the face pins agree everywhere, and `pyproject.toml`'s face extra installs, in a
clean environment, a face service that imports face_recognition without compiling dlib."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.procs import ROOT, VENV_BIN

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
LOCKED = {p["name"]: p for p in LOCK["package"]}


def uv(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess:
    environ = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", **(env or {})}
    return subprocess.run([str(VENV_BIN / "uv"), *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout, check=False)


def pins(requirements: list[str]) -> dict[str, str]:
    """{normalised name: version} of ``name==version`` requirements."""
    found = {}
    for line in requirements:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"not pinned: {line}"
        found[canonicalize_name(req.name)] = spec.version
    return found


def test_uv_lock_matches_pyproject(tmp_path: Path):
    # Offline, with an empty cache: the check compares the lock with pyproject.toml alone.
    result = uv("lock", "--check", "--offline", "--python", sys.executable,
                env={"UV_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_locked_file_has_a_hash():
    files = [(p["name"], f) for p in LOCK["package"] if "registry" in p["source"]
             for f in p.get("wheels", []) + ([p["sdist"]] if "sdist" in p else [])]
    assert len(files) > 100
    assert [name for name, f in files if not f.get("hash", "").startswith("sha256:")] == []


def test_requirements_lock_is_the_export_of_uv_lock(tmp_path: Path):
    """requirements.lock names the command that wrote it; that command writes it again."""
    text = (ROOT / "requirements.lock").read_text()
    command = re.search(r"^#\s+(uv export .*)$", text, re.M).group(1)
    argv = shlex.split(command)[1:]
    assert argv[-2:] == ["-o", "requirements.lock"]
    result = uv(*argv[:-1], str(tmp_path / "requirements.lock"))
    assert result.returncode == 0, result.stderr
    exported = (tmp_path / "requirements.lock").read_text().splitlines()[2:]
    assert exported == text.splitlines()[2:], "requirements.lock is stale: run " + command


def test_face_pins_agree_and_dlib_is_never_the_source_package():
    """requirements-face.txt (installed with --no-deps) holds the face extra and the
    dependencies of face_recognition that the services' set lacks, at the locked versions."""
    extra = pins(PYPROJECT["project"]["optional-dependencies"]["face"])
    face_txt = pins([line for line in (ROOT / "requirements-face.txt").read_text().splitlines()
                     if line and not line.startswith("#")])
    assert extra.items() <= face_txt.items()
    assert {name: LOCKED[name]["version"] for name in face_txt} == face_txt
    assert "dlib" not in LOCKED
    assert PYPROJECT["tool"]["uv"]["exclude-dependencies"] == ["dlib"]


def test_setuptools_stays_below_82():
    # From 82 on, `import face_recognition` prints a hint and exits the process with code 0.
    runtime = pins(PYPROJECT["project"]["dependencies"])
    assert int(runtime["setuptools"].split(".")[0]) < 82
    assert LOCKED["setuptools"]["version"] == runtime["setuptools"]


# What a checkout holds of the package (the generated gRPC modules are not part of it).
SOURCE = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "apps", "proto")


@pytest.mark.slow
def test_face_extra_installs_a_working_face_service_in_a_clean_venv(tmp_path: Path):
    """`uv pip install '.[face]'` from a clean copy of the source, at the locked versions
    (constraints), from uv's cache when setup filled it: the build generates the gRPC code, the
    face libraries import, and `kubeface face-service --help` runs."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "*_pb2*"))
        else:
            shutil.copy(ROOT / name, src / name)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text((ROOT / "requirements.lock").read_text())
    venv = tmp_path / "venv"
    assert uv("venv", "--quiet", "--python", sys.executable, str(venv)).returncode == 0
    install = ["pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
               "--constraints", str(constraints), f"{src}[face]"]
    result = uv(*install, "--offline", timeout=600)
    if result.returncode != 0:  # something is not in uv's cache yet
        result = uv(*install, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr

    listing = uv("pip", "list", "--python", str(venv / "bin" / "python"), "--format", "freeze")
    names = {canonicalize_name(line.split("==")[0]) for line in listing.stdout.splitlines()}
    assert {"dlib-bin", "face-recognition", "face-recognition-models"} <= names
    assert "dlib" not in names
    imports = subprocess.run(
        [str(venv / "bin" / "python"), "-W", "ignore", "-c",
         "import face_recognition, dlib, facerecog.face_pb2_grpc; print('ok')"],
        capture_output=True, text=True, timeout=120, check=False)
    assert imports.stdout.splitlines()[-1:] == ["ok"], imports.stderr
    help_ = subprocess.run([str(venv / "bin" / "kubeface"), "face-service", "--help"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert help_.returncode == 0, help_.stderr
    assert "usage: kubeface face-service" in help_.stdout
