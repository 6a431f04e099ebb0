"""A deployed kube-face on the test's minikube, for the cluster tests and benchmarks.

The cluster is the one tests/infra/minikube-e2e.sh deploys (site.yml -e @airgap.yml in a network
namespace of its own, see tests/infra/README.md) and keeps running. It is described by a file of
shell assignments (NETNS, HOME, PROFILE, NAMESPACE), named by KUBE_FACE_CLUSTER_ENV or
.artifacts/minikube-e2e/cluster.env. :func:`enter` joins that namespace for this process (the
node's address and NodePorts exist only there) and returns a :class:`Cluster`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import ROOT

ENV_FILE = Path(os.environ.get("KUBE_FACE_CLUSTER_ENV",
                               ROOT / ".artifacts" / "minikube-e2e" / "cluster.env"))


def read_env(path: Path = ENV_FILE) -> dict[str, str]:
    """The KEY=VALUE lines of the cluster's description (shell quoting allowed)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.removeprefix("export ").strip()] = " ".join(shlex.split(value))
    return values


@dataclass
class Cluster:
    netns: str
    home: Path
    profile: str
    namespace: str
    docker_host: str = ""  # the namespace's dockerd, which minikube's docker driver asks

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "DOCKER_HOST": self.docker_host,
                "KUBECONFIG": str(self.home / ".kube" / "config"),
                "PATH": f"{self.home / '.local' / 'bin'}:{os.environ['PATH']}"}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--context", self.profile, *args], env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: rc {proc.returncode}\n"
                                 f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "--validate=false", "-f", "-",
                     stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def node_ip(self) -> str:
        return subprocess.run(["minikube", "ip", "--profile", self.profile], env=self.env,
                              capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()

    def node_url(self, service: str) -> str:
        """http(s)://<node>:<the Service's NodePort>: https when the Deployment of the same
        name serves TLS (TLS_CERT_FILE)."""
        spec = self.json("-n", self.namespace, "get", "service", service)["spec"]
        pod = self.json("-n", self.namespace, "get", "deployment", service)["spec"]["template"]
        tls = any(e["name"] == "TLS_CERT_FILE" for e in pod["spec"]["containers"][0].get("env", []))
        return f"{'https' if tls else 'http'}://{self.node_ip()}:{spec['ports'][0]['nodePort']}"

    def receiver_url(self) -> str:
        return self.node_url("receiver")

    def frontend_url(self) -> str:
        return self.node_url("frontend")

    def pods(self, name: str) -> list[dict[str, Any]]:
        """The pods of one component (label app.kubernetes.io/name), not being deleted."""
        items = self.json("-n", self.namespace, "get", "pods", "-l",
                          f"app.kubernetes.io/name={name}")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready(self, name: str) -> int:
        return sum(1 for p in self.pods(name) for c in p["status"].get("conditions", [])
                   if c["type"] == "Ready" and c["status"] == "True")

    def image(self, deployment: str) -> str:
        spec = self.json("-n", self.namespace, "get", "deployment", deployment)["spec"]
        return spec["template"]["spec"]["containers"][0]["image"]

    def api_headers(self) -> dict[str, str]:
        """The receiver API's Authorization header, with a write token from the Secret's
        API tokens (comma-separated scope:token), or none when the Secret holds no tokens."""
        data = self.json("-n", self.namespace, "get", "secret", "kube-face-secret")["data"]
        for key, value in sorted(data.items()):
            if "token" not in key:
                continue
            for entry in base64.b64decode(value).decode().split(","):
                scope, _, token = entry.strip().partition(":")
                if scope == "write" and token:
                    return {"Authorization": f"Bearer {token}"}
        return {}

    def images_dir(self) -> Path:
        """The host folder minikube mounts into the node (the images' hostPath)."""
        return self.home / ".cache" / "kube-face" / "images"


@contextlib.contextmanager
def enter(path: Path = ENV_FILE) -> Iterator[Cluster]:
    """Join the cluster's network namespace for this thread and the processes and threads it
    starts, and leave it at the end."""
    env = read_env(path)
    cluster = Cluster(env["NETNS"], Path(env["HOME"]), env.get("PROFILE", "kube-face-cluster"),
                      env.get("NAMESPACE", "face"), env.get("DOCKER_HOST", ""))
    with open("/proc/thread-self/ns/net") as own, open(f"/run/netns/{cluster.netns}") as target:
        os.setns(target.fileno(), os.CLONE_NEWNET)
        try:
            yield cluster
        finally:
            os.setns(own.fileno(), os.CLONE_NEWNET)


def http(method: str, url: str, body: Any = None, timeout: float = 10,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request; (status, JSON body or text). A connection error is status 0."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    # The deployment's own CA signs the certificate; what is under test here is not TLS.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, TimeoutError) as exc:
        return 0, str(exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(what: str, check: Any, timeout: float, interval: float = 2) -> Any:
    """Call check() until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


FINAL = {"processed", "unknown", "no_face", "failed"}


def sample_copies(cluster: Cluster, count: int, prefix: str) -> dict[str, dict[str, Any]]:
    """count copies of the sample unknown photos under new names (prefix-NNNN-<sample>) in the
    folder the pods see; {path to post: its expected result from expected.json}."""
    folder = cluster.images_dir() / "unknown_people"
    expected = json.loads((folder / "expected.json").read_text())
    samples = sorted(expected)
    copies = {}
    for n in range(count):
        sample = samples[n % len(samples)]
        name = f"{prefix}-{n:04d}-{Path(sample).name}"
        data = (folder / sample).read_bytes()
        (folder / name).write_bytes(data)
        copies[name] = expected[sample]
    return copies


def remove_copies(cluster: Cluster, prefix: str) -> None:
    for path in (cluster.images_dir() / "unknown_people").glob(f"{prefix}-*"):
        path.unlink()


def all_images(receiver: str, headers: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    """Every stored image whose path starts with prefix, through the receiver's listing."""
    rows, offset = [], 0
    while True:
        status, body = http("GET", f"{receiver}/images?limit=1000&offset={offset}",
                            headers=headers, timeout=30)
        assert status == 200, (status, body)
        page = body["images"]
        rows += [r for r in page if r["path"].startswith(prefix)]
        if len(page) < 1000:
            return rows
        offset += len(page)


def wrong_results(rows: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    """What differs from expected.json: missing, stored twice, not final, or another result."""
    problems = []
    by_path: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    for path, want in expected.items():
        got = by_path.get(path, [])
        if len(got) != 1:
            problems.append(f"{path}: stored {len(got)} times")
            continue
        row = got[0]
        if (row["status"], row["person"], row["face_count"] or 0) != (
                want["status"], want["person"], want["faces"]):
            problems.append(f"{path}: {row['status']} {row['person']} {row['face_count']} "
                            f"(expected {want['status']} {want['person']} {want['faces']}; "
                            f"error {row.get('error')})")
    return problems


class Poster:
    """Posts paths one by one at a steady pace in a thread (POST /image/post), recording each
    request: (seconds since start, path, outcome, HTTP status). A refused or reset connection
    is tried once more (a post is idempotent: the same path answers its existing id), and both
    attempts are recorded."""

    def __init__(self, receiver: str, headers: dict[str, str], paths: list[str],
                 interval: float) -> None:
        self.receiver, self.headers, self.paths, self.interval = receiver, headers, paths, interval
        self.records: list[tuple[float, str, str, int]] = []
        self.ids: dict[str, int] = {}
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poster:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    def now(self) -> float:
        return time.monotonic() - self.started

    def _post(self, path: str) -> tuple[str, int]:
        status, body = http("POST", f"{self.receiver}/image/post", {"path": path},
                            headers=self.headers, timeout=10)
        if status in (200, 202):
            self.ids[path] = body["id"]
            return "ok", status
        return ("connection" if status == 0 else f"http {status}"), status

    def _run(self) -> None:
        for path in self.paths:
            if self.stop.is_set():
                return
            t = self.now()
            outcome, status = self._post(path)
            self.records.append((t, path, outcome, status))
            if outcome == "connection":
                outcome, status = self._post(path)
                self.records.append((self.now(), path, outcome + " (retry)", status))
            self.stop.wait(self.interval)

    def posted(self) -> list[str]:
        return [path for path in self.paths if path in self.ids]
