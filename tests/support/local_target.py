"""A scratch deployment of the local target (site.yml -i inventory/local) for tests: its own data
directory and free ports (never the defaults, so a real quick start on the machine is left
alone), its playbook runs with JSON reports, and what to read in them."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import VENV_BIN, ansible_playbook, free_ports

PORT_VARS = ("receiver", "frontend", "face", "nsqd_tcp", "nsqd_http", "nsqd_https",
             "nsqlookupd_tcp", "nsqlookupd_http", "mysql", "processor_metrics", "face_metrics")


class Target:
    """One scratch deployment: its variables, data directory and the playbook runs made on it."""

    def __init__(self, base: Path, data: Path | None = None) -> None:
        self.base = base
        self.data = data or base / "data"
        self.ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True))
        self.vars = {f"kube_face_{name}_port": port for name, port in self.ports.items()}
        self.vars.update(kube_face_local_data_dir=str(self.data),
                         # one recognition worker: the machine is shared
                         kube_face_local_env={"FACE_WORKERS": "1", "LOG_FORMAT": "json"})
        self.vars_file = base / "vars.json"
        self.vars_file.write_text(json.dumps(self.vars))
        self.runs: dict[str, subprocess.CompletedProcess] = {}

    def play(self, label: str, playbook: str, *args: str) -> dict:
        result = ansible_playbook(playbook, "-i", "inventory/local", "-e", f"@{self.vars_file}",
                                  *args, json=True, timeout=1800)
        self.runs[label] = result
        (self.base / f"{label}.json").write_text(result.stdout)
        assert result.returncode == 0, (f"{label}: rc {result.returncode}\n"
                                        + failed_tasks(result))
        return json.loads(result.stdout)

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c",
                               str(self.data / "supervisor" / "supervisord.conf"), *args],
                              capture_output=True, text=True, timeout=60)

    def password(self, user: str) -> str:
        return (self.data / "secrets" / user).read_text().strip()


def failed_tasks(result: subprocess.CompletedProcess) -> str:
    """The failed tasks of a JSON-callback run, or the raw tail when it is not JSON."""
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return (result.stdout + result.stderr)[-4000:]
    lines = []
    for task in tasks(report):
        for host in task["hosts"].values():
            if host.get("failed") and not host.get("ignore_errors"):
                lines.append(f"{task['task']['name']}: {json.dumps(host)[:1500]}")
    return "\n".join(lines) or result.stderr[-4000:]


def tasks(report: dict) -> list[dict]:
    return [task for play in report["plays"] for task in play["tasks"]]


def changed_tasks(report: dict) -> list[str]:
    """Names of the tasks that reported a change (to say which one broke idempotence)."""
    return [t["task"]["name"] for t in tasks(report)
            if any(h.get("changed") for h in t["hosts"].values())]


def task_result(report: dict, name: str) -> dict:
    for task in tasks(report):
        # a role's task is named "<role> : <name>"
        if task["task"]["name"].split(" : ")[-1] == name:
            return task["hosts"]["localhost"]
    raise AssertionError(f"no task {name!r} in the run")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (supervisord daemonises, so this machine's init,
    which may reap late, is its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@contextmanager
def scratch_target(base: Path) -> Iterator[Target]:
    """A Target with its reports under ``base`` whose processes are shut down afterwards,
    whatever happened. Its data directory is in a folder of its own: deployed by root, the
    programs run as an unprivileged user that must pass through the folders above it, and
    pytest resets its own folder to 0700 (an ACL's mask included) whenever a session starts."""
    outside = Path(tempfile.mkdtemp(prefix="kube-face-target-"))
    target = Target(base, outside / "data")
    try:
        yield target
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int((target.data / "supervisor" / "supervisord.pid").read_text())
            target.supervisorctl("shutdown")
            gone(pid, timeout=180)
        shutil.rmtree(outside, ignore_errors=True)
