"""Starting and stopping real server processes for tests, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    """Path of a tool installed by scripts/setup.sh (.tools/bin) or found on PATH."""
    candidate = TOOLS_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/setup.sh first")
    return found


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0,
             proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll ``check`` until it is true; fail with the process's log when it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail(log)}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s\n{tail(log)}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class Process:
    """One background process with its log file; stop() is SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name, self.argv, self.log, self.env, self.cwd = name, list(argv), log, env, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM); SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        if self.running:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        """Crash it: SIGKILL, no chance to clean up."""
        if self.running:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        wait_for(lambda: port_open(port), f"{self.name} on port {port}", timeout,
                 self.proc, self.log)


class KubefaceProcess:
    """``python -m kubeface <command>`` as a test process, logging to ``log``.

    It sees exactly the test's configuration: the machine's environment without any variable
    kube-face reads, then ``env``, and never a developer's ``.env`` file.
    """

    def __init__(self, command: str, env: dict[str, str], log: Path,
                 name: str | None = None) -> None:
        from kubeface.core.config import VARIABLES

        ours = {v.name for v in VARIABLES}
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ours},
            **env,
            "KUBEFACE_ENV_FILE": str(log.parent / "no.env"),
        }
        # Process keeps this very dict: a port changed in self.env applies to the next start.
        self.process = Process(name or command, [sys.executable, "-m", "kubeface", command], log,
                               env=self.env, cwd=ROOT)

    @property
    def log(self) -> Path:
        return self.process.log

    @property
    def running(self) -> bool:
        return self.process.running

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the services drain what is in flight and exit); returns the exit code."""
        return self.process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, nothing cleaned up."""
        self.process.kill()

    def tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)
