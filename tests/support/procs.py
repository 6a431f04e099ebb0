"""Starting and stopping real server processes for tests, on free loopback ports.

A fixture's ports are picked together, so they are distinct; a server that finds one taken
anyway (another process bound it between the pick and the server's bind) is started again on
new ports; and a start that fails half-way stops everything it had started (``Fixture``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
VENV_BIN = ROOT / ".venv" / "bin"
# What a server logs when it cannot bind a port (Go, MariaDB and Python say the first; the face
# service's gRPC server the second).
BIND_FAILURES = ("address already in use", "cannot listen on")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now (the kernel's picks). Each
    socket stays bound until all are picked, so the kernel cannot hand out one number twice."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def free_port() -> int:
    """One TCP port nothing listens on right now."""
    return free_ports(1)[0]


def ansible_playbook(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
                     json: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """``ansible-playbook`` of the project's environment with the project's ansible.cfg and
    roles, from any folder; output captured as text, one JSON report with ``json``, and
    ``env`` added to the environment."""
    environ = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
               "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1",
               **({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json else {}),
               **(env or {})}
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout, check=False)


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


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds a listening TCP socket on ``port`` (from /proc). A
    connection that succeeds proves less: it may reach another process that took the port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except FileNotFoundError:
            continue
    return False


def pids_where(test: Callable[[Path], bool]) -> list[int]:
    """The processes whose /proc entry passes ``test`` (those gone meanwhile are skipped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if test(entry):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def running_with_argument(argument: str) -> list[int]:
    """The processes that run with ``argument`` on their command line."""
    return pids_where(lambda entry: argument.encode() in
                      (entry / "cmdline").read_bytes().split(b"\0"))


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid``."""
    return pids_where(lambda entry: int(
        (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid)


def tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class PortTaken(RuntimeError):
    """A server exited because a port picked for it was taken before it could bind it."""


class Process:
    """One background process with its log file; stop() is SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name, self.argv, self.log, self.env, self.cwd = name, list(argv), log, env, cwd
        self.proc: subprocess.Popen | None = None
        self._log_from = 0

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._log_from = out.tell()
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

    def output(self) -> str:
        """What the process logged since its last start (the log file is appended to)."""
        with self.log.open("rb") as f:
            f.seek(self._log_from)
            return f.read().decode(errors="replace")

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """``wait_for`` while this process runs; PortTaken when it exits because a port of its
        was taken, RuntimeError when it exits for another reason."""
        try:
            wait_for(check, what, timeout, self.proc, self.log)
        except RuntimeError as exc:
            if not self.running and any(f in self.output().lower() for f in BIND_FAILURES):
                raise PortTaken(str(exc)) from None
            raise

    def wait_port(self, *ports: int, timeout: float = 30.0) -> None:
        """Wait until this very process listens on every one of ``ports``."""
        self.wait_until(lambda: all(listens(self.proc.pid, p) for p in ports),
                        f"{self.name} on port(s) {', '.join(map(str, ports))}", timeout)


class Fixture:
    """Servers that a test starts as one, on ports picked together.

    A subclass takes its ports in ``use_ports()`` (called with ``PORTS`` distinct free ports
    before the first start) and stops whatever of its servers runs in ``stop()``. Its start
    calls ``start_servers(launch)``: when a server finds a port taken (``PortTaken``), what was
    started is stopped and ``launch`` runs again on new ports; on any other failure, what was
    started is stopped before the error is raised. Nothing outlives a failed start.
    """

    PORTS = 1
    ATTEMPTS: ClassVar[int] = 3
    # True when the test chose a port (a restart on the same port): a taken one is then the
    # test's failure, never moved.
    ports_fixed = False

    def use_ports(self, ports: list[int]) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def start_servers(self, launch: Callable[[], None]) -> None:
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                launch()
                return
            except BaseException as exc:
                self.stop()
                if not isinstance(exc, PortTaken) or self.ports_fixed or attempt == self.ATTEMPTS:
                    raise
            self.use_ports(free_ports(self.PORTS))


class KubefaceProcess(Fixture):
    """``python -m kubeface <command>`` as a test process, logging to ``log``.

    It sees exactly the test's configuration: the machine's environment without any variable
    kube-face reads, then ``env``, and never a developer's ``.env`` file. Its ports are the
    variables ``port_variables``: those ``env`` does not set are picked together, and picked
    again when the service finds one taken.
    """

    def __init__(self, command: str, env: dict[str, str], log: Path,
                 name: str | None = None, port_variables: Sequence[str] = ()) -> None:
        from kubeface.core.config import VARIABLES

        ours = {v.name for v in VARIABLES}
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ours},
            **env,
            "KUBEFACE_ENV_FILE": str(log.parent / "no.env"),
        }
        self._picked = [v for v in port_variables if v not in env]
        self.PORTS = len(self._picked)
        self.ports_fixed = len(self._picked) < len(port_variables)
        self.use_ports(free_ports(self.PORTS))
        # Process keeps this very dict: a port changed in self.env applies to the next start.
        self.process = Process(name or command, [sys.executable, "-m", "kubeface", command], log,
                               env=self.env, cwd=ROOT)

    def use_ports(self, ports: list[int]) -> None:
        self.env.update(zip(self._picked, map(str, ports), strict=True))

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
