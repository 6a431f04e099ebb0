"""The default path on a real minikube, offline: tests/infra/minikube-e2e.sh.

It builds the offline kit (scripts/airgap/kit.sh: minikube, the Kubernetes binaries and images,
the node image; cached after the first run), starts dockerd in a network namespace of its own,
and runs `ansible-playbook site.yml -e @airgap.yml` there with minikube's docker driver; then, on
that deployment, the cluster tests (every NetworkPolicy both ways, pods killed mid-stream), the
second run, backup and restore into a fresh deployment, the rolling update with its client, the
never-ready rollback, scale.yml, teardown.yml both ways and `minikube delete`.

The suite starts the run in the background once collected and collects this test last
(tests/support/minikube_e2e.py). Needs root; KUBE_FACE_MINIKUBE_E2E=0 leaves it out.
"""

from __future__ import annotations

import sys

import pytest

from tests.support import minikube_e2e


@pytest.mark.slow
@pytest.mark.timeout(7200)  # a fresh machine builds the kit first
@pytest.mark.skipif(minikube_e2e.skip_reason() is not None,
                    reason=minikube_e2e.skip_reason() or "")
def test_site_yml_on_minikube_offline():
    rc, out = minikube_e2e.RUN.wait(timeout=7000)
    sys.stderr.write(out)  # the timings and counts, shown with -s
    assert rc == 0, out[-6000:]
    for line in (
        "site-1: site.yml passed",
        "every pod Ready; smoke test passed through https://",
        "cluster tests passed",
        "site-2: site.yml passed",
        "changed=0",
        "every row back, the frontend lists the 5 newest images",
        "(tag built by the playbook); client:",
        ", 0 failed",
        "never-ready tag rolled back",
        "scale.yml: receiver at 3 ready replicas",
        "teardown.yml kept the data",
        "removed the namespace",
        "minikube delete left nothing",
        "PASSED in",
    ):
        assert line in out, line
