"""The container images: built through the Ansible role (roles/container_images) against a local
dockerd, run with ``--network host`` on free loopback ports, smoke-tested end to end.

No registry can be reached here, so the role builds from local base images (debootstrap) and also
builds the MariaDB and NSQ stand-ins. Everything runs against scripts/images/dockerd.sh's engine,
whose data root is under ${KUBE_FACE_CACHE:-~/.cache/kube-face}/docker: layers survive between
runs, so a second run rebuilds nothing. Build and run times are printed (``-s``), never asserted.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pymysql
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.procs import ROOT, ansible_playbook, port_open, wait_for
from tests.support.web import PASSWORD, USER, WRITE_TOKEN, credentials_env

pytestmark = pytest.mark.slow

DOCKERD_SH = ROOT / "scripts" / "images" / "dockerd.sh"
CACHE = Path(os.environ.get("KUBE_FACE_CACHE", Path.home() / ".cache" / "kube-face"))
# The client packaged with Debian's dockerd (another docker on PATH may be a newer CLI).
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
TAG = "1.1.0"
SERVICES, FACE = f"kube-face:{TAG}", f"kube-face-face:{TAG}"
MARIADB, NSQ = f"kube-face-mariadb-standin:{TAG}", "kube-face-nsq-standin:v1.3.0"
SERVICE_UID = 10001


def _timing(what: str, seconds: float) -> None:
    print(f"\n[images] {what}: {seconds:.1f} s", file=sys.stderr)


@pytest.fixture(scope="module")
def docker_host() -> Iterator[str]:
    """The local engine; started here (and stopped afterwards) unless it already runs. Each
    user holds a shared lock, so a run never stops the engine under another one."""
    if not DOCKER or not shutil.which("dockerd"):
        pytest.fail("docker.io is not installed: run scripts/setup.sh")
    (CACHE / "docker").mkdir(parents=True, exist_ok=True)
    with open(CACHE / "docker" / "users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        running = subprocess.run([DOCKERD_SH, "status"], check=False).returncode == 0
        host = subprocess.run([DOCKERD_SH, "start"], check=True, capture_output=True,
                              text=True).stdout.strip()
        yield host
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        if not running:
            subprocess.run([DOCKERD_SH, "stop"], check=False)


def docker(host: str, *args: str, check: bool = True, timeout: float = 120,
           **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, "-H", host, *args], capture_output=True, text=True,
                            timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {result.stderr[-3000:]}")
    return result


def run_playbook(host: str, playbook: str, *args: str) -> subprocess.CompletedProcess:
    """A playbook of tests/images against the engine at ``host``, reporting JSON."""
    return ansible_playbook("-i", "localhost,", str(ROOT / "tests" / "images" / playbook), *args,
                            env={"DOCKER_HOST": host}, json=True, timeout=3600)


def play_stats(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, (result.stdout[-6000:] + result.stderr[-3000:])
    return json.loads(result.stdout)["stats"]["localhost"]


def changed_tasks(result: subprocess.CompletedProcess) -> list[str]:
    report = json.loads(result.stdout)
    return [task["task"]["name"] for play in report["plays"] for task in play["tasks"]
            if any(h.get("changed") for h in task["hosts"].values())]


# What the images are built from. Several engineers edit this working tree at once, so the
# images are built from a copy taken once: both builds of the idempotence check see the same code.
SNAPSHOT_FILTER = [
    "--exclude=__pycache__/", "--exclude=*.egg-info/", "--exclude=/apps/facerecog/*_pb2*",
    "--include=/pyproject.toml", "--include=/README.md", "--include=/requirements.lock",
    "--include=/requirements-face.txt", "--include=/apps/***", "--include=/proto/***",
    "--include=/docker/***", "--include=/scripts/", "--include=/scripts/genproto.sh",
    "--include=/scripts/images/***", "--include=/scripts/nsq/***", "--exclude=*",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    snapshot = tmp_path_factory.mktemp("source")
    subprocess.run(["rsync", "-a", *SNAPSHOT_FILTER, f"{ROOT}/", f"{snapshot}/"], check=True)
    return snapshot


def build_images(host: str, source: Path) -> subprocess.CompletedProcess:
    return run_playbook(host, "build_images.yml",
                        "--extra-vars", f"container_images_source_dir={source}")


@pytest.fixture(scope="module")
def built(docker_host: str, source: Path) -> str:
    """Every image, built through the role (cold: minutes; warm: seconds)."""
    started = time.monotonic()
    result = build_images(docker_host, source)
    _timing("build through the role", time.monotonic() - started)
    play_stats(result)
    return docker_host


def test_role_builds_every_image_and_reports_them(built: str) -> None:
    for image in (SERVICES, FACE, MARIADB, NSQ):
        info = json.loads(docker(built, "image", "inspect", image).stdout)[0]
        size = info["Size"] / 1e6
        print(f"[images] {image}: {size:.0f} MB", file=sys.stderr)


def test_a_second_build_changes_nothing(built: str, source: Path) -> None:
    """Idempotent: the cached layers give the same image IDs, so the role reports no change."""
    started = time.monotonic()
    result = build_images(built, source)
    _timing("second (warm) build through the role", time.monotonic() - started)
    play_stats(result)
    assert changed_tasks(result) == []


def test_images_declare_a_non_root_user(built: str) -> None:
    for image in (SERVICES, FACE, MARIADB, NSQ):
        user = json.loads(docker(built, "image", "inspect", image).stdout)[0]["Config"]["User"]
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{image} runs as {user!r}"


def _layer_files(host: str, image: str) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """Every file of every layer of ``image`` (a file deleted in a later layer is still here)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        docker(host, "save", "-o", str(archive), image, timeout=600)
        with tarfile.open(archive) as outer:
            for member in outer.getmembers():
                if not member.name.endswith("layer.tar"):
                    continue
                with tarfile.open(fileobj=outer.extractfile(member)) as layer:
                    for info in layer:
                        yield member.name, layer, info


def _machine_only_certificates(host: str) -> list[bytes]:
    """Certificates this machine trusts beyond Debian's bundle (the TLS-intercepting CA)."""
    def certs(pem: bytes) -> set[bytes]:
        blocks = pem.split(b"-----BEGIN CERTIFICATE-----")[1:]
        return {b.split(b"-----END CERTIFICATE-----")[0].replace(b"\n", b"") for b in blocks}

    ours = certs(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes())
    debian = certs(docker(host, "run", "--rm", "--network", "none", "--entrypoint", "cat", FACE,
                          "/etc/ssl/certs/ca-certificates.crt").stdout.encode())
    # Match on a line-sized slice of the base64 body: PEM files wrap at 64 characters.
    return [c[64:128] for c in ours - debian]


def test_images_carry_no_build_tools_caches_or_machine_ca(built: str) -> None:
    """The face image holds the services image's layers too: one scan covers both."""
    extra_certs = _machine_only_certificates(built)
    print(f"[images] certificates only this machine trusts: {len(extra_certs)}", file=sys.stderr)
    forbidden_names = ("grpc_tools/", ".whl", "/.cache/pip/", "bin/gcc", "bin/cc", "bin/pip",
                       "site-packages/pip/")
    found: list[str] = []
    for layer, tar, info in _layer_files(built, FACE):
        name = "/" + info.name
        # The standard library's own pip wheel (python:3.12-slim has it too) is no build leftover.
        if "/ensurepip/_bundled/" not in name and any(f in name for f in forbidden_names):
            found.append(f"{layer}: {name}")
        if extra_certs and info.isfile() and info.size < 5_000_000 and (
                name.endswith((".crt", ".pem", ".cer")) or "cert" in name.lower()):
            data = tar.extractfile(info).read().replace(b"\n", b"")
            found += [f"{layer}: {name} holds this machine's CA" for c in extra_certs if c in data]
    assert found == []


# --- the containers -------------------------------------------------------------------------

def _listen_ports(count: int) -> list[int]:
    """Free loopback ports below the kernel's ephemeral range. The containers bind them minutes
    after they are picked, and in that time a port from free_port() (the kernel's pick, from the
    ephemeral range) was once taken by an outgoing connection; these never are."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, low)
        if port not in ports and not port_open(port):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            ports.append(port)
    return ports


class Stack:
    """The kube-face containers of one test run, on free loopback ports of this machine."""

    def __init__(self, host: str, base: Path) -> None:
        self.host, self.base = host, base
        self.prefix = f"kftest-{os.getpid()}"
        self.names: list[str] = []
        names = ("mysql", "lookupd_tcp", "lookupd_http", "nsqd_tcp", "nsqd_http", "grpc",
                 "receiver", "frontend")
        self.ports = dict(zip(names, _listen_ports(len(names)), strict=True))
        self.password = secrets.token_urlsafe(18)
        self.known, self.unknown = base / "known_people", base / "unknown_people"

    def env_file(self, name: str, values: dict[str, str]) -> Path:
        """Secrets reach containers through a 0600 file, never a command line."""
        path = self.base / f"{name}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
        return path

    @property
    def service_env(self) -> dict[str, str]:
        p = self.ports
        return {
            "MYSQL_CONNECTION": "127.0.0.1", "MYSQL_PORT": str(p["mysql"]), "MYSQL_DBNAME": "kube",
            "MYSQL_USERPASSWORD": f"kubeface:{self.password}",
            "NSQ_LOOKUP_ADDRESS": f"127.0.0.1:{p['lookupd_http']}",
            "NSQD_HTTP_ADDRESS": f"127.0.0.1:{p['nsqd_http']}",
            "GRPC_ADDRESS": f"127.0.0.1:{p['grpc']}", "GRPC_PORT": str(p["grpc"]),
            "RECEIVER_PORT": str(p["receiver"]), "FRONTEND_PORT": str(p["frontend"]),
            "BIND_ADDRESS": "127.0.0.1", "FACE_WORKERS": "1", "LOG_LEVEL": "INFO",
            "PROCESSOR_REQUEUE_SECONDS": "1", "PROCESSOR_LOOKUPD_POLL_SECONDS": "1",
            **credentials_env(),
        }

    def _mounts(self) -> list[str]:
        return ["-v", f"{self.known}:/data/known_people:ro",
                "-v", f"{self.unknown}:/data/unknown_people:ro"]

    def run(self, name: str, image: str, *args: str, env: dict[str, str] | None = None,
            detach: bool = True, mounts: bool = False) -> subprocess.CompletedProcess:
        # As the Kubernetes target runs them (restricted Pod Security Standard): read-only root
        # filesystem with a writable /tmp, no capabilities, no privilege escalation.
        argv = ["run", "--network", "host", "--name", f"{self.prefix}-{name}", "--read-only",
                "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        argv += ["--tmpfs", "/run/mysqld:uid=999,gid=999"] if image == MARIADB else []
        argv += ["-d"] if detach else []
        argv += ["--env-file", str(self.env_file(name, env))] if env else []
        argv += self._mounts() if mounts else []
        self.names.append(f"{self.prefix}-{name}")
        return docker(self.host, *argv, image, *args, timeout=300)

    def container(self, name: str) -> dict:
        return json.loads(docker(self.host, "inspect", f"{self.prefix}-{name}").stdout)[0]

    def logs(self, name: str) -> str:
        r = docker(self.host, "logs", "--tail", "60", name, check=False)
        return r.stdout + r.stderr

    def save_logs(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            r = docker(self.host, "logs", name, check=False)
            (folder / f"{name.removeprefix(self.prefix + '-')}.log").write_text(r.stdout + r.stderr)

    def remove(self) -> None:
        if self.names:
            docker(self.host, "rm", "-f", "-v", *self.names, check=False)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def _face_serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=2)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _readable_by_everyone(folder: Path) -> None:
    """The containers' users are not this machine's: the sample folders must be world-readable."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def stack(built: str) -> Iterator[Stack]:
    base = Path(tempfile.mkdtemp(prefix="kube-face-images-"))
    s = Stack(built, base)
    samples = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample_images.py"),
         "--known", str(s.known), "--unknown", str(s.unknown)],
        capture_output=True, text=True, check=False)
    assert samples.returncode == 0, samples.stdout + samples.stderr
    _readable_by_everyone(base)
    started = time.monotonic()
    try:
        p = s.ports
        s.run("mysql", MARIADB, f"--port={p['mysql']}", "--bind-address=127.0.0.1",
              env={"MYSQL_DATABASE": "kube", "MYSQL_USER": "kubeface",
                   "MYSQL_PASSWORD": s.password,
                   "MYSQL_ROOT_PASSWORD": secrets.token_urlsafe(18)})
        s.run("nsqlookupd", NSQ, "nsqlookupd", f"--tcp-address=127.0.0.1:{p['lookupd_tcp']}",
              f"--http-address=127.0.0.1:{p['lookupd_http']}", "--broadcast-address=127.0.0.1")
        s.run("nsqd", NSQ, "nsqd", f"--tcp-address=127.0.0.1:{p['nsqd_tcp']}",
              f"--http-address=127.0.0.1:{p['nsqd_http']}", "--broadcast-address=127.0.0.1",
              f"--lookupd-tcp-address=127.0.0.1:{p['lookupd_tcp']}", "--data-path=/data")
        wait_for(lambda: pymysql.connect(host="127.0.0.1", port=p["mysql"], user="kubeface",
                                         password=s.password, database="kube",
                                         connect_timeout=2).close() is None,
                 "MariaDB container", 120)
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{p['lookupd_http']}/ping"), "nsqlookupd")
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{p['nsqd_http']}/ping"), "nsqd")
        # As on Kubernetes: migrate runs once, then the face service imports the known folder
        # into the database itself (no enrolment job; the services image has no dlib).
        result = s.run("migrate", SERVICES, "migrate", env=s.service_env, detach=False,
                       mounts=True)
        assert result.returncode == 0, result.stderr
        s.run("face", FACE, env=s.service_env, mounts=True)
        for service in ("processor", "receiver", "frontend"):
            s.run(service, SERVICES, service, env=s.service_env, mounts=True)
        wait_for(lambda: _face_serving(f"127.0.0.1:{p['grpc']}"), "face service SERVING", 180)
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{p['receiver']}/readyz"), "receiver", 60)
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{p['frontend']}/readyz"), "frontend", 60)
        _timing("containers up (MariaDB, NSQ, migrate, face, processor, receiver, frontend)",
                time.monotonic() - started)
        yield s
    finally:
        s.save_logs(ROOT / ".artifacts" / "images")
        s.remove()
        shutil.rmtree(base, ignore_errors=True)


def test_smoke_test_passes_against_the_containers(stack: Stack) -> None:
    """Samples posted with the article's curl calls, recognised, shown by the frontend."""
    p = stack.ports
    extra = stack.base / "smoke-vars.json"
    extra.write_text(json.dumps({
        "smoke_test_receiver_url": f"http://127.0.0.1:{p['receiver']}",
        "smoke_test_frontend_url": f"http://127.0.0.1:{p['frontend']}",
        "smoke_test_expected_file": str(stack.unknown / "expected.json"),
        "smoke_test_timeout": 240, "smoke_test_poll_delay": 1,
        "smoke_test_token": WRITE_TOKEN, "smoke_test_frontend_user": USER,
        "smoke_test_frontend_password": PASSWORD,
    }))
    extra.chmod(0o600)
    started = time.monotonic()
    result = run_playbook(stack.host, "smoke.yml", "--extra-vars", f"@{extra}")
    _timing("smoke test", time.monotonic() - started)
    logs = "\n".join(f"--- {n}\n{stack.logs(n)}" for n in stack.names[-4:])
    assert result.returncode == 0, result.stdout[-6000:] + logs


def test_every_container_runs_as_non_root(stack: Stack) -> None:
    """Checked on the running processes themselves, as the kernel sees them."""
    for name in ("mysql", "nsqlookupd", "nsqd", "face", "processor", "receiver", "frontend"):
        state = stack.container(name)["State"]
        assert state["Running"], f"{name} is not running:\n{stack.logs(stack.prefix + '-' + name)}"
        status = Path(f"/proc/{state['Pid']}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert all(int(u) != 0 for u in uids), f"{name} runs with uids {uids}"
        whoami = docker(stack.host, "exec", f"{stack.prefix}-{name}", "id", "-u").stdout.strip()
        assert whoami != "0", f"a shell in {name} is root"
    assert stack.container("migrate")["Config"]["User"].startswith(str(SERVICE_UID))


def test_services_stop_cleanly_on_sigterm(stack: Stack) -> None:
    """As PID 1 a process gets no default SIGTERM handling: each service must install its own,
    or every rollout waits out the grace period and kills it."""
    problems = []
    for name in ("processor", "receiver", "frontend", "face", "nsqd", "nsqlookupd", "mysql"):
        started = time.monotonic()
        docker(stack.host, "stop", "-t", "20", f"{stack.prefix}-{name}", timeout=60)
        code = stack.container(name)["State"]["ExitCode"]
        _timing(f"docker stop {name} (exit {code})", time.monotonic() - started)
        if code != 0:
            problems.append(f"{name} exited with {code}")
    assert problems == []
