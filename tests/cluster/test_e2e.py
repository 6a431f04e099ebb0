"""The project's real playbooks against a real cluster, through scripts/cluster/e2e.sh.

Stage 1 (always): a real v1.34 control plane with kwok fake nodes (the first run on a machine
builds it from the Go module proxy, about 16 minutes; then cached). Stage 2 (a real kubelet and
containerd running the project's images) only with KUBE_FACE_STAGE2=1: see the README's
"Testing: the real cluster".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.procs import ROOT

E2E = ROOT / "scripts" / "cluster" / "e2e.sh"
SAMPLER = ROOT / "scripts" / "cluster" / "rollout_sampler.py"


def _run_stage(stage: int) -> str:
    proc = subprocess.run(
        [str(E2E), "--stage", str(stage)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    out = proc.stdout + proc.stderr
    sys.stderr.write(out)  # the timings and counts, shown with -s
    assert proc.returncode == 0, out[-6000:]
    assert f"PASSED stage {stage}" in out
    return out


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a cold machine builds the cluster first (about 16 min)
def test_stage1_playbooks_on_a_real_control_plane():
    out = _run_stage(1)
    for line in (
        "rendered objects exist on the API server",
        "Deployments available:",
        "CronJob batch/v1 retry exists",
        "Secret kube-face-secret holds:",
        "site-2: site.yml passed",
        "changed=0",
        "never-ready tag detected and rolled back",
        "The rollout of receiver to tag",
    ):
        assert line in out


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(
    os.environ.get("KUBE_FACE_STAGE2") != "1",
    reason="stage 2 (real kubelet, about 30 min cold) runs with KUBE_FACE_STAGE2=1",
)
def test_stage2_playbooks_on_a_real_node():
    out = _run_stage(2)
    assert "every pod Ready" in out
    assert "client during the rollout:" in out
    assert ", 0 failed" in out


OLD, NEW, BOTH = ["a:1"], ["a:2"], ["a:1", "a:2"]


def _row(pods: int, available: int, images: list[str], t: float) -> dict:
    return {
        "t": t,
        "replicas": 2,
        "max_surge": 1,
        "max_unavailable": 0,
        "pods": pods,
        "terminating": 0,
        "ready": available,
        "available": available,
        "images": images,
    }


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        # A faithful rollout: surge to 3, never below 2 available, ends on the new image.
        ([_row(2, 2, OLD, 0), _row(3, 2, BOTH, 1), _row(2, 2, NEW, 2)], None),
        ([_row(2, 2, OLD, 0), _row(4, 2, BOTH, 1), _row(2, 2, NEW, 2)], "maxSurge"),
        ([_row(2, 2, OLD, 0), _row(2, 1, BOTH, 1), _row(2, 2, NEW, 2)], "maxUnavailable"),
        ([_row(2, 2, OLD, 0), _row(2, 2, BOTH, 1), _row(2, 2, NEW, 2)], "no surge pod"),
        ([_row(2, 2, OLD, 0), _row(3, 2, BOTH, 1), _row(3, 2, BOTH, 2)], "last sample"),
    ],
)
def test_sampler_check_catches_a_broken_bound(tmp_path, rows, problem):
    """The bounds check itself, fed samples that break each bound (a fault no rollout gives)."""
    out = tmp_path / "samples.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run(
        [sys.executable, str(SAMPLER), "check", "--out", str(out), "--to-image", "a:2"],
        capture_output=True,
        text=True,
        check=False,
    )
    summary = json.loads(proc.stdout)
    if problem is None:
        assert proc.returncode == 0 and summary["problems"] == [], summary
        assert summary["max_pods"] == 3 and summary["min_available"] == 2
    else:
        assert proc.returncode == 1
        assert any(problem in p for p in summary["problems"]), summary
