"""Every NetworkPolicy kube-face ships, enforced, both ways, on the test's minikube.

The cluster runs with the kit's NetworkPolicy CNI (scripts/airgap/netpol: minikube's bridge plus
kube-network-policies), deployed by tests/infra/minikube-e2e.sh and kept (tests/support/minikube).
Throw-away pods, one per identity (the labels of a receiver, a processor, ...), each made by a Job
(so no Deployment or StatefulSet adopts it) and never Ready (so no Service sends it traffic),
try a TCP connection to every guarded port at once and print what opened. The expected matrix:

  MySQL 3306                 only pods labelled kube-face-db-client, in kube-face's namespace
  face gRPC                  processor, receiver, frontend (the people API and the dashboard)
  face metrics               anyone (Prometheus may run anywhere; no secret in it)
  nsqd 4150/4151             receiver, processor, retry, frontend (uploads, the dashboard's stats)
  nsqlookupd 4160/4161       nsqd (registers), processor (looks nsqd up)

and the receiver and frontend answer through their NodePorts. Opt-in: KUBE_FACE_CLUSTER_TESTS=1.
"""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import minikube

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # pods start slowly on a loaded node
    pytest.mark.skipif(os.environ.get("KUBE_FACE_CLUSTER_TESTS") != "1",
                       reason="needs the kept minikube cluster: KUBE_FACE_CLUSTER_TESTS=1 (root)"),
]

# Runs in each probe pod: connect to every target at once, print {target: outcome}. A target is
# tried again until it opens or WINDOW seconds pass: the agent knows a new pod by its IP only once
# the pod's status reaches it through the API server, and drops what comes from an IP it does not
# know yet (on a loaded node, for several seconds).
WINDOW = 60
PROBE = textwrap.dedent(f"""
    import json, socket, sys, time
    from concurrent.futures import ThreadPoolExecutor
    def attempt(host, port):
        try:
            socket.create_connection((host, int(port)), timeout=4).close()
            return "open"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return type(exc).__name__
    def connect(target):
        host, port = target.rsplit(":", 1)
        deadline = time.monotonic() + {WINDOW}
        while True:
            outcome = attempt(host, port)
            if outcome == "open" or time.monotonic() > deadline:
                return outcome
            time.sleep(1)
    targets = sys.argv[1:]
    with ThreadPoolExecutor(len(targets)) as pool:
        print("PROBE " + json.dumps(dict(zip(targets, pool.map(connect, targets)))))
""")

RUN = uuid.uuid4().hex[:6]


def _identity(name: str | None, namespace: str, db_client: bool = False) -> dict[str, str]:
    labels = {"kube-face-probe": RUN}
    if name:
        labels |= {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": namespace,
                   "app.kubernetes.io/part-of": "kube-face"}
    if db_client:
        labels["kube-face-db-client"] = "true"
    return labels


def _targets(cluster: minikube.Cluster) -> dict[str, str]:
    """What each guarded port is called in the matrix, and host:port to connect to."""
    ns, svc = cluster.namespace, f"{cluster.namespace}.svc.cluster.local"
    ports = {}
    for service in cluster.json("-n", ns, "get", "services")["items"]:
        for port in service["spec"]["ports"]:
            ports[(service["metadata"]["name"], port["port"])] = port.get("name", "")
    face = {name: number for (svc_name, number), name in ports.items() if svc_name == "face"}
    grpc = next(n for name, n in face.items() if "metric" not in name)
    metrics = next(n for name, n in face.items() if "metric" in name)
    # The headless Services resolve to the pods; the first replica of each StatefulSet.
    return {
        "mysql": f"mysql.{svc}:3306",
        "face-grpc": f"face.{svc}:{grpc}",
        "face-metrics": f"face.{svc}:{metrics}",
        "nsqd-tcp": f"nsqd.{svc}:4150",
        "nsqd-http": f"nsqd.{svc}:4151",
        "nsqlookupd-tcp": f"nsqlookupd-0.nsqlookupd.{svc}:4160",
        "nsqlookupd-http": f"nsqlookupd-0.nsqlookupd.{svc}:4161",
    }


# identity -> (component name or None, db-client label, other namespace, what must open)
MATRIX: dict[str, tuple[str | None, bool, bool, set[str]]] = {
    "unlabelled": (None, False, False, {"face-metrics"}),
    "db-client": (None, True, False, {"mysql", "face-metrics"}),
    "db-client-elsewhere": (None, True, True, {"face-metrics"}),
    "processor": ("processor", False, False,
                  {"face-grpc", "face-metrics", "nsqd-tcp", "nsqd-http", "nsqlookupd-tcp",
                   "nsqlookupd-http"}),
    "receiver": ("receiver", True, False,
                 {"mysql", "face-grpc", "face-metrics", "nsqd-tcp", "nsqd-http"}),
    "frontend": ("frontend", True, False,
                 {"mysql", "face-grpc", "face-metrics", "nsqd-tcp", "nsqd-http"}),
    "retry": ("retry", True, False, {"mysql", "face-metrics", "nsqd-tcp", "nsqd-http"}),
    "face": ("face", True, False, {"mysql", "face-metrics"}),
    "nsqd": ("nsqd", False, False, {"face-metrics", "nsqlookupd-tcp", "nsqlookupd-http"}),
    "mysql": ("mysql", False, False, {"face-metrics"}),
}


def _probe_job(name: str, namespace: str, labels: dict[str, str], image: str,
               targets: list[str]) -> dict[str, Any]:
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                  "capabilities": {"drop": ["ALL"]}}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kube-face-probe": RUN}},
        "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": 900, "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "probe", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", PROBE, *targets],
                        "securityContext": restricted,
                        # Never Ready: no Service selecting these labels sends it traffic.
                        "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 30},
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"memory": "64Mi"}},
                    }],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[minikube.Cluster]:
    with minikube.enter() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def reachability(cluster: minikube.Cluster) -> dict[str, dict[str, str]]:
    """{identity: {target: outcome}} from one probe pod per identity, all run together."""
    targets = _targets(cluster)
    image = cluster.image("receiver")
    elsewhere = f"kube-face-probe-{RUN}"
    cluster.kubectl("create", "namespace", elsewhere)
    jobs = []
    try:
        for identity, (name, db_client, other_ns, _) in MATRIX.items():
            ns = elsewhere if other_ns else cluster.namespace
            job = f"probe-{identity}-{RUN}"
            jobs.append((identity, ns, job))
            cluster.apply([_probe_job(job, ns, _identity(name, cluster.namespace, db_client),
                                      image, list(targets.values()))])
        results = {}
        for identity, ns, job in jobs:
            cluster.kubectl("-n", ns, "wait", "--for=condition=Complete", f"job/{job}",
                            "--timeout=900s", timeout=920)
            logs = cluster.kubectl("-n", ns, "logs", f"job/{job}").stdout
            line = next(ln for ln in logs.splitlines() if ln.startswith("PROBE "))
            outcome = json.loads(line.removeprefix("PROBE "))
            results[identity] = {what: outcome[addr] for what, addr in targets.items()}
        print("\nreachability (open / timeout = dropped by a policy):")
        for identity, row in results.items():
            print(f"  {identity:20} " + " ".join(f"{k}={v}" for k, v in row.items()))
        return results
    finally:
        cluster.kubectl("-n", cluster.namespace, "delete", "jobs", "-l", f"kube-face-probe={RUN}",
                        "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)


@pytest.mark.parametrize("identity", list(MATRIX))
def test_each_policy_both_ways(identity: str, reachability: dict[str, dict[str, str]]):
    allowed = MATRIX[identity][3]
    row = reachability[identity]
    wrong = {what: outcome for what, outcome in row.items()
             if (outcome == "open") != (what in allowed)}
    assert not wrong, f"{identity}: expected open only {sorted(allowed)}, got {row}"
    # A denied port is dropped by the policy (a timeout), not refused by a missing listener:
    # the same port opens for some other identity in the matrix.
    for what, outcome in row.items():
        if what not in allowed:
            assert outcome == "timeout", f"{identity} -> {what}: {outcome}"


def test_every_guarded_port_opens_for_someone(reachability: dict[str, dict[str, str]]):
    opened = {what for row in reachability.values() for what, o in row.items() if o == "open"}
    assert opened == set(next(iter(reachability.values()))), opened


def test_policies_exist_for_each_guarded_service(cluster: minikube.Cluster):
    policies = cluster.json("-n", cluster.namespace, "get", "networkpolicies")["items"]
    assert {p["metadata"]["name"] for p in policies} >= {"mysql", "face", "nsqd", "nsqlookupd"}


def test_nodeports_answer(cluster: minikube.Cluster):
    for url in (cluster.receiver_url() + "/healthz", cluster.frontend_url() + "/healthz"):
        status, body = minikube.http("GET", url)
        assert status == 200, (url, status, body)
