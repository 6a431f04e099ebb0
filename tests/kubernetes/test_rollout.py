"""rolling_update.yml's pieces that run without a cluster: the rollout-status logic (kubectl's),
the image retagging, the client that counts failed requests, and the playbooks' refusals."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import ROOT, ansible_playbook, wait_for
from tests.support.web import WRITE_TOKEN

ROLE = ROOT / "roles" / "k8s_rollout"
_spec = importlib.util.spec_from_file_location("rollout", ROLE / "filter_plugins" / "rollout.py")
rollout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rollout)


def deployment(generation=2, observed=2, wanted=3, **status) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "receiver", "generation": generation},
            "spec": {"replicas": wanted},
            "status": {"observedGeneration": observed, **status}}


def test_a_rollout_is_done_only_when_every_replica_is_new_and_available():
    done = deployment(updatedReplicas=3, replicas=3, availableReplicas=3)
    assert rollout.rollout_status(done) == {
        "done": True, "failed": False,
        "message": "deployment receiver successfully rolled out (3 available)"}


@pytest.mark.parametrize(("obj", "waiting_for"), [
    # The controller has not seen the new spec yet: the old status says nothing.
    (deployment(generation=3, observed=2, updatedReplicas=3, replicas=3, availableReplicas=3),
     "new spec to be observed"),
    # Every replica available, but only one is new: what `k8s wait: true` can return on.
    (deployment(updatedReplicas=1, replicas=3, availableReplicas=3), "1 of 3 new replicas"),
    # All new ones created, an old pod still terminating (maxSurge).
    (deployment(updatedReplicas=3, replicas=4, availableReplicas=3), "1 old replicas pending"),
    # All new, not yet ready.
    (deployment(updatedReplicas=3, replicas=3, availableReplicas=2), "2 of 3 updated replicas"),
])
def test_a_rollout_in_progress_is_not_done(obj, waiting_for):
    state = rollout.rollout_status(obj)
    assert (state["done"], state["failed"]) == (False, False)
    assert waiting_for in state["message"]


def test_an_exceeded_progress_deadline_fails_at_once():
    stuck = deployment(updatedReplicas=1, replicas=4, availableReplicas=3, conditions=[
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "receiver-5d8" has timed out progressing.'}])
    state = rollout.rollout_status(stuck)
    assert (state["done"], state["failed"]) == (False, True)
    assert "exceeded its progress deadline" in state["message"]
    assert "timed out progressing" in state["message"]


def test_statefulsets_follow_kubectl_too():
    sts = {"kind": "StatefulSet", "metadata": {"name": "nsqd", "generation": 4},
           "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}},
           "status": {"observedGeneration": 4, "readyReplicas": 2, "updatedReplicas": 1,
                      "currentRevision": "nsqd-a", "updateRevision": "nsqd-b"}}
    assert not rollout.rollout_status(sts)["done"]
    sts["status"].update(updatedReplicas=2, currentRevision="nsqd-b")
    assert rollout.rollout_status(sts)["done"]
    sts["status"]["readyReplicas"] = 1
    assert "1 of 2 pods ready" in rollout.rollout_status(sts)["message"]


def test_a_missing_object_or_another_kind_fails():
    assert rollout.rollout_status({})["failed"]
    assert rollout.rollout_status({"kind": "DaemonSet", "metadata": {}})["failed"]


@pytest.mark.parametrize(("image", "expected"), [
    ("kube-face:1.1.0", "kube-face:1.2.0"),
    ("kube-face", "kube-face:1.2.0"),
    ("registry.example:5000/team/kube-face:1.1.0", "registry.example:5000/team/kube-face:1.2.0"),
    ("registry.example:5000/kube-face", "registry.example:5000/kube-face:1.2.0"),
    ("kube-face:1.1.0@sha256:" + "a" * 64, "kube-face:1.2.0"),
])
def test_with_tag_replaces_only_the_tag(image, expected):
    assert rollout.with_tag(image, "1.2.0") == expected


def test_the_patch_retags_the_service_and_its_migrate_init_container_only():
    obj = {"metadata": {"name": "receiver"}, "spec": {"template": {"spec": {
        "initContainers": [{"name": "migrate", "image": "r:5000/kube-face:1.1.0"}],
        "containers": [{"name": "receiver", "image": "r:5000/kube-face:1.1.0"},
                       {"name": "sidecar", "image": "other:1"}]}}}}
    assert rollout.retag_patch(obj, "receiver", "1.2.0") == {"spec": {"template": {"spec": {
        "initContainers": [{"name": "migrate", "image": "r:5000/kube-face:1.2.0"}],
        "containers": [{"name": "receiver", "image": "r:5000/kube-face:1.2.0"}]}}}}
    with pytest.raises(ValueError, match="no container 'nope'"):
        rollout.retag_patch(obj, "nope", "1.2.0")


class _Receiver(BaseHTTPRequestHandler):
    """Answers like a receiver whose pods come and go: 202, then 503 for a while."""

    answers: ClassVar[list[int]] = []
    bodies: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        self.bodies.append((self.headers["Content-Type"], self.rfile.read(length).decode()))
        code = self.answers.pop(0) if self.answers else 202
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def run_client(url: str, stop_file: Path, max_seconds: float = 30,
               token_file: Path | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, str(ROLE / "files" / "post_during_rollout.py"), f"--url={url}",
         "--path=unknown0001.jpg", f"--stop-file={stop_file}", "--interval=0.01",
         f"--max-seconds={max_seconds}", "--timeout=2",
         *([f"--token-file={token_file}"] if token_file else [])],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_client_counts_every_failed_request(tmp_path):
    """The fault (503s, then no server at all) is injected: a real receiver cannot be made to."""
    _Receiver.answers = [202, 503, 503, 200]
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop = tmp_path / "stop"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    # Stop the server after a moment: every later post is a refused connection.
    timer = threading.Timer(0.5, lambda: (server.shutdown(), server.server_close()))
    timer.start()
    threading.Timer(1.0, stop.touch).start()
    summary = run_client(url, stop)
    timer.join()
    assert summary["stopped_by"] == "stop file"
    assert summary["sent"] == summary["ok"] + summary["failed"]
    assert summary["failures"]["http 503"] == 2
    # After the shutdown: refused connections (and a reset for a post caught mid-way).
    assert summary["failures"].get("ConnectionRefusedError", 0) > 0, summary
    assert summary["failed"] == sum(summary["failures"].values())
    assert summary["ok"] == len(_Receiver.bodies) - 2
    # The article's curl call: JSON sent as a form.
    assert _Receiver.bodies[0] == ("application/x-www-form-urlencoded",
                                   '{"path": "unknown0001.jpg"}')


def test_the_client_stops_on_its_own_after_max_seconds(tmp_path):
    summary = run_client("http://127.0.0.1:9", tmp_path / "never", max_seconds=0.3)
    assert summary["stopped_by"] == "max seconds"
    assert summary["ok"] == 0 and summary["failed"] == summary["sent"] > 0


def test_rolling_update_without_a_tag_refuses_before_touching_a_cluster():
    result = ansible_playbook("rolling_update.yml", "-i", "inventory/minikube")
    assert result.returncode != 0
    assert "Give the new image tag: -e rolling_update_tag=" in result.stdout


def test_scale_refuses_an_unknown_service_before_touching_a_cluster():
    result = ansible_playbook("playbooks/scale.yml", "-i", "inventory/minikube",
                              "-e", '{"scale": {"mysql": 3}}')
    assert result.returncode != 0
    assert "MySQL has one" in result.stdout


def answered(receiver) -> float:
    """Posts the receiver has answered 2xx, from its own metrics."""
    text = receiver.call("GET", "/metrics").text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "kubeface_http_requests_total"
               and s.labels.get("route") == "/image/post" and s.labels["code"].startswith("2"))


def test_the_client_against_the_real_receiver_counts_its_stop(receiver, tmp_path):
    """The article's call, with the write token from a file, is accepted by the real receiver
    (NSQ and MariaDB behind it); when the receiver process stops mid-run, every post after that
    is counted as failed."""
    stop = tmp_path / "stop"
    token = tmp_path / "token"
    token.write_text(WRITE_TOKEN + "\n")

    def stop_mid_run():
        # Once the client has had some answers, not after a fixed time: a loaded machine may
        # start the client slowly.
        wait_for(lambda: answered(receiver) >= 10, "the client's first posts", timeout=60)
        receiver.stop()
        threading.Timer(1.0, stop.touch).start()

    threading.Thread(target=stop_mid_run, daemon=True).start()
    summary = run_client(receiver.url, stop, token_file=token)
    assert summary["ok"] >= 10, summary
    assert summary["failed"] > 0 and summary["failures"].get("ConnectionRefusedError"), summary
    # A post caught mid-way by the stop fails as a reset, a broken pipe or a closed connection.
    assert set(summary["failures"]) <= {"ConnectionRefusedError", "ConnectionResetError",
                                        "BrokenPipeError", "RemoteDisconnected"}, summary
