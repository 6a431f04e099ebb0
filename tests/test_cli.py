"""The ``kubeface`` command for people: ``--version``, ``kubeface post`` against the real
services (progress, the people table, failures, JSON, exit codes), and one line, not a
traceback, when the database or the receiver cannot be reached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kubeface
from kubeface.core.config import VARIABLES
from tests.support.procs import ROOT, free_port
from tests.support.web import READ_TOKEN, WRITE_TOKEN


def kubeface_cmd(*args: str, env: dict[str, str], timeout: float = 300
                 ) -> subprocess.CompletedProcess:
    """``python -m kubeface`` with exactly ``env`` of kube-face's variables (no .env file)."""
    ours = {v.name for v in VARIABLES}
    full = {**{k: v for k, v in os.environ.items() if k not in ours}, **env,
            "KUBEFACE_ENV_FILE": "/nonexistent/kubeface.env", "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "kubeface", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_version():
    result = kubeface_cmd("--version", env={})
    assert (result.returncode, result.stdout.strip()) == (0, f"kubeface {kubeface.__version__}")


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path):
    port = free_port()
    result = kubeface_cmd("enrol", "--folder", str(tmp_path), env={
        "MYSQL_PORT": str(port), "MYSQL_USERPASSWORD": "kubeface:pw-not-shown"}, timeout=60)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"kubeface enrol: cannot use the database kube at 127.0.0.1:{port} (")
    assert "pw-not-shown" not in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_receiver_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    port = free_port()
    result = kubeface_cmd("post", str(tmp_path / "a.jpg"), env={
        "UNKNOWN_PEOPLE": str(tmp_path), "RECEIVER_PORT": str(port)}, timeout=120)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"kubeface post: cannot reach the receiver at http://127.0.0.1:{port}")


def test_post_refuses_paths_it_cannot_post_before_asking_anyone(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "b.jpg").write_bytes(b"x")
    (root / "notes.txt").write_text("x")
    (root / "empty").mkdir()
    result = kubeface_cmd("post", "--json", str(outside / "b.jpg"), str(root / "notes.txt"),
                          str(root / "empty"), str(root / "missing.jpg"),
                          env={"UNKNOWN_PEOPLE": str(root), "RECEIVER_PORT": str(free_port())})
    assert result.returncode == 1
    reasons = {Path(f["path"]).name: f["error"] for f in json.loads(result.stdout)["failures"]}
    assert reasons["b.jpg"].startswith("outside UNKNOWN_PEOPLE")
    assert reasons["notes.txt"].startswith("not an image file name")
    assert reasons["empty"] == "no image files in this folder"
    assert reasons["missing.jpg"] == "no such file or folder"


@pytest.mark.slow
def test_post_a_folder_waits_and_reports_who_was_found(processor, receiver, sample_images,
                                                        image_dirs, service_env):
    _, unknown = image_dirs
    nested = unknown / "batch" / "inner"
    nested.mkdir(parents=True)
    for name in sample_images:
        shutil.copyfile(unknown / name, nested / name)
    (unknown / "batch" / "broken.jpg").write_text("this is text, not a JPEG")
    (unknown / "batch" / "readme.txt").write_text("not an image name: never posted")
    env = {**service_env, "RECEIVER_PORT": str(receiver.port)}
    # No token, then a read token: refused, saying where a token goes; nothing was posted.
    for token, hint in (("", "set KUBEFACE_TOKEN or --token-file"),
                        (READ_TOKEN, "not a write token")):
        refused = kubeface_cmd("post", str(nested), env={**env, "KUBEFACE_TOKEN": token})
        assert refused.returncode == 1 and hint in refused.stderr, refused.stderr
        assert not token or token not in refused.stderr  # never echoed
    assert receiver.get_json("/images")["images"] == []
    token_file = nested.parent.parent.parent / "token"
    token_file.write_text(WRITE_TOKEN + "\n")

    result = kubeface_cmd("post", "--json", "--batch", "3", "--token-file", str(token_file),
                          str(unknown / "batch"), env=env)
    assert result.returncode == 1, result.stderr  # broken.jpg failed
    report = json.loads(result.stdout)
    assert len(report["images"]) == len(sample_images) + 1
    by_name = {Path(i["path"]).name: i for i in report["images"]}
    for name, want in sample_images.items():
        assert (by_name[name]["status"], by_name[name]["person"]) == (want["status"],
                                                                      want["person"]), name
    expected_people: dict[str, int] = {}
    for want in sample_images.values():
        if want["person"]:
            expected_people[want["person"]] = expected_people.get(want["person"], 0) + 1
    assert report["people"] == expected_people
    (failure,) = report["failures"]
    assert failure["path"] == "batch/broken.jpg" and failure["error"]

    # Again, for people: progress bars, then the tables; all already posted, nothing failed
    # among the samples, so exit 0.
    result = kubeface_cmd("post", "--progress", str(nested),
                          env={**env, "KUBEFACE_TOKEN": WRITE_TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "posting" in result.stdout and "recognising" in result.stdout
    assert "People found" in result.stdout and "Images by status" in result.stdout
    for person in expected_people:
        assert person in result.stdout
    assert "Failures" not in result.stdout


def test_progress_bars_only_on_a_terminal():
    import io

    from rich.console import Console

    from kubeface import progress

    shown = io.StringIO()
    items = list(progress.track(range(7), "encoding known faces",
                                Console(file=shown, force_terminal=True, width=100)))
    assert items == list(range(7))
    assert "encoding known faces" in shown.getvalue() and "7/7" in shown.getvalue()
    piped = io.StringIO()
    assert list(progress.track([1, 2], "x", Console(file=piped, force_terminal=False))) == [1, 2]
    assert piped.getvalue() == ""


def test_hash_password_reads_stdin_and_prints_a_hash_the_frontend_accepts():
    from argon2 import PasswordHasher

    from kubeface.core import config

    password = "a long passphrase, never an argument"
    result = subprocess.run([sys.executable, "-m", "kubeface", "hash-password", "--name",
                             "alice"], input=password + "\n", capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=False,
                            env={**os.environ, "KUBEFACE_ENV_FILE": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    entry = result.stdout.strip()
    name, _, hashed = entry.partition(":")
    assert name == "alice" and hashed.startswith("$argon2id$") and password not in entry
    assert PasswordHasher().verify(hashed, password)
    users = config.load(environ={"FRONTEND_USERS": f"{entry} bob:{hashed}"}).frontend_users
    assert dict(users) == {"alice": hashed, "bob": hashed}
    short = subprocess.run([sys.executable, "-m", "kubeface", "hash-password"], input="short\n",
                           capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
