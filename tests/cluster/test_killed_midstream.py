"""Pods killed mid-stream on the test's minikube: nothing lost, nothing stored twice.

A client posts a stream of new images (copies of the sample photos under new names) to the
receiver's NodePort. During the stream one pod at a time is deleted with
`kubectl delete pod --grace-period=0 --force`: a face-service pod, a processor pod, nsqd-0,
mysql-0, a receiver pod. For each: the time until the component is Ready again and until an image
posted after the deletion is settled (the recovery time), and the client's failed requests. Only
in the mysql-0 window (deletion until MySQL is Ready again, plus the pools' reconnect) is a 503
the promise; those are counted and posted again afterwards, as a client told "503" does.

At the end every posted image is settled with the result expected.json gives its sample, exactly
once in the database. Images left failed or stuck by a deletion are what the retry CronJob
re-publishes: when any remain after the stream, the test runs that CronJob's job once, as its
schedule would, and says so.

Opt-in: KUBE_FACE_CLUSTER_TESTS=1 with the kept cluster (tests/support/minikube). Environment:
KUBE_FACE_KILL_STEPS (comma-separated, default all five, in order), KUBE_FACE_KILL_INTERVAL
(seconds between two posts, default 1.0). The table: .artifacts/cluster/killed-midstream.json.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.support import minikube
from tests.support.procs import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.environ.get("KUBE_FACE_CLUSTER_TESTS") != "1",
                       reason="needs the kept minikube cluster: KUBE_FACE_CLUSTER_TESTS=1 (root)"),
]

# step -> (component label, how to pick the pod)
STEPS = {"face": "face", "processor": "processor", "nsqd-0": "nsqd", "mysql-0": "mysql",
         "receiver": "receiver"}
MYSQL_RECONNECT_GRACE = 30.0


def _pod(cluster: minikube.Cluster, step: str) -> str:
    if step.endswith("-0"):
        return step
    pods = [p for p in cluster.pods(STEPS[step]) if p["status"].get("phase") == "Running"]
    assert pods, f"no running {step} pod"
    return pods[0]["metadata"]["name"]


def _settled(receiver: str, headers: dict[str, str], image_id: int) -> bool:
    status, body = minikube.http("GET", f"{receiver}/images/{image_id}", headers=headers)
    return status == 200 and body["status"] in minikube.FINAL


def _kill(cluster: minikube.Cluster, poster: minikube.Poster, receiver: str,
          headers: dict[str, str], step: str) -> dict[str, Any]:
    component = STEPS[step]
    before = cluster.ready(component)
    pod = _pod(cluster, step)
    uid = cluster.json("-n", cluster.namespace, "get", "pod", pod)["metadata"]["uid"]
    t_kill = poster.now()
    cluster.kubectl("-n", cluster.namespace, "delete", "pod", pod, "--grace-period=0", "--force")
    # Ready again: as many Ready pods as before, none of them the deleted one (a StatefulSet's
    # pod comes back under the same name, so wait for that one to have left first).
    minikube.wait_for(f"{pod} gone", lambda: all(
        p["metadata"]["uid"] != uid for p in cluster.pods(component)), 60, interval=0.5)
    minikube.wait_for(f"{component} Ready again", lambda: cluster.ready(component) >= before, 600)
    t_ready = poster.now()
    # The flow again: the first image posted after Ready is settled.
    posted_after = minikube.wait_for(
        "an image posted after the recovery", lambda: next(
            (poster.ids[p] for t, p, outcome, _ in list(poster.records)
             if t > t_ready and outcome == "ok"), None), 120, interval=0.5)
    minikube.wait_for("that image settled", lambda: _settled(receiver, headers, posted_after),
                      600, interval=1)
    t_flow = poster.now()
    return {"step": step, "pod": pod, "t_kill": round(t_kill, 1),
            "ready_s": round(t_ready - t_kill, 1), "flow_s": round(t_flow - t_kill, 1)}


def test_pods_killed_midstream_lose_nothing():
    steps = os.environ.get("KUBE_FACE_KILL_STEPS", ",".join(STEPS)).split(",")
    interval = float(os.environ.get("KUBE_FACE_KILL_INTERVAL", "1.0"))
    prefix = f"kill-{uuid.uuid4().hex[:6]}"
    with minikube.enter() as cluster:
        receiver, headers = cluster.receiver_url(), cluster.api_headers()
        # Enough names for the whole stream: each step takes up to a few minutes.
        expected = minikube.sample_copies(cluster, int(len(steps) * 180 / interval) + 60, prefix)
        try:
            _run(cluster, receiver, headers, steps, interval, prefix, expected)
        finally:
            minikube.remove_copies(cluster, prefix)


def _run(cluster: minikube.Cluster, receiver: str, headers: dict[str, str], steps: list[str],
         interval: float, prefix: str, expected: dict[str, Any]) -> None:
    results = []
    with minikube.Poster(receiver, headers, sorted(expected), interval) as poster:
        time.sleep(15)
        for step in steps:
            results.append(_kill(cluster, poster, receiver, headers, step))
            time.sleep(10)
    records = poster.records
    # Each request's window: the mysql-0 one allows 503.
    mysql = next((r for r in results if r["step"] == "mysql-0"), None)
    window = ((mysql["t_kill"], mysql["t_kill"] + mysql["ready_s"] + MYSQL_RECONNECT_GRACE)
              if mysql else (0.0, -1.0))
    failed, in_window = Counter(), Counter()
    for t, _path, outcome, _status in records:
        if outcome == "ok" or outcome == "connection":  # a first attempt, tried again
            continue
        if outcome == "http 503" and window[0] <= t <= window[1]:
            in_window[outcome] += 1
        else:
            failed[outcome] += 1
    for row in results:
        start, end = row["t_kill"], row["t_kill"] + row["flow_s"]
        row["first_attempts_refused"] = sum(1 for t, _, o, _ in records
                                            if o == "connection" and start <= t <= end)
    # What a client told 503 does: post again.
    posted = set(poster.posted())
    for path in sorted({p for _, p, o, _ in records if o != "ok"} - posted):
        status, body = minikube.http("POST", f"{receiver}/image/post", {"path": path},
                                     headers=headers)
        assert status in (200, 202), (path, status, body)
        posted.add(path)
    want = {p: expected[p] for p in posted}
    retry_run = _settle(cluster, receiver, headers, prefix, want)
    rows = minikube.all_images(receiver, headers, prefix)
    problems = minikube.wrong_results(rows, want)
    summary = {"steps": results, "posted": len(posted), "requests": len(records),
               "failed_outside_mysql_window": dict(failed), "mysql_window_503": dict(in_window),
               "retry_job_run": retry_run, "wrong": problems[:20]}
    out = ROOT / ".artifacts" / "cluster"
    out.mkdir(parents=True, exist_ok=True)
    (out / "killed-midstream.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{'step':10} {'pod':40} {'Ready again':>12} {'flow again':>11} {'refused':>8}")
    for row in results:
        print(f"{row['step']:10} {row['pod']:40} {row['ready_s']:>11.1f}s "
              f"{row['flow_s']:>10.1f}s {row['first_attempts_refused']:>8}")
    print(f"{len(posted)} images posted in {len(records)} requests; 503 in the mysql-0 window: "
          f"{sum(in_window.values())}; failed elsewhere: {dict(failed)}; "
          f"retry job run: {retry_run}; wrong: {len(problems)}")
    assert not failed, summary
    assert not problems, summary


def _settle(cluster: minikube.Cluster, receiver: str, headers: dict[str, str], prefix: str,
            want: dict[str, Any]) -> bool:
    """Wait for every image to be settled as expected; if some are not after a while, run the
    retry CronJob's job once and wait again. Whether it had to run."""

    def done() -> bool:
        return not minikube.wrong_results(minikube.all_images(receiver, headers, prefix), want)

    try:
        minikube.wait_for("every image settled as expected", done, 300, interval=5)
        return False
    except AssertionError:
        job = f"retry-now-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("-n", cluster.namespace, "create", "job", job, "--from=cronjob/retry")
        minikube.wait_for("every image settled after the retry job", done, 600, interval=5)
        return True
