"""Sample a Deployment's pods through the Kubernetes API during a rollout, then check the bounds.

  sample: rollout_sampler.py sample --kubeconfig K --namespace N --deployment D
                                    --out F --stop-file S
  check:  rollout_sampler.py check --out F --to-image IMAGE

`sample` watches the pods until the stop file exists and writes one JSON line per pod event (and
at least one a second): the Deployment's
wanted replicas and strategy, the pods of its selector (those without a deletionTimestamp, which
are what maxSurge bounds, and the terminating ones apart), how many of them are Ready, the
Deployment's availableReplicas, and the images of the pods. `check` fails (exit 1) when any
sample had more pods than replicas + maxSurge or fewer available than replicas - maxUnavailable,
or when the samples never saw the rollout happen (no pod of the new image, or not all on it at
the end). Used by e2e.sh; stage 1 (kwok) and stage 2 (real kubelet) alike.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path


def _resolve(value: int | str | None, replicas: int, *, round_up: bool) -> int:
    """An int-or-percent of the strategy, resolved the way the Deployment controller does."""
    if value is None:
        value = "25%"
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        exact = replicas * int(text[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def _ready(pod) -> bool:
    for cond in pod.status.conditions or []:
        if cond.type == "Ready":
            return cond.status == "True"
    return False


def sample(args: argparse.Namespace) -> int:
    from kubernetes import client, config, watch  # the client ansible's kubernetes.core uses

    config.load_kube_config(config_file=args.kubeconfig)
    apps = client.AppsV1Api()
    core = client.CoreV1Api()
    stop = Path(args.stop_file)
    dep = apps.read_namespaced_deployment(args.deployment, args.namespace)
    selector = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())
    pods: dict[str, object] = {}
    version = ""

    def relist() -> str:
        listed = core.list_namespaced_pod(args.namespace, label_selector=selector)
        pods.clear()
        pods.update({p.metadata.name: p for p in listed.items})
        return listed.metadata.resource_version

    def record(out, dep) -> None:
        live = [p for p in pods.values() if p.metadata.deletion_timestamp is None]
        rolling = dep.spec.strategy.rolling_update
        row = {
            "t": time.time(),
            "replicas": dep.spec.replicas,
            "max_surge": rolling.max_surge if rolling else None,
            "max_unavailable": rolling.max_unavailable if rolling else None,
            "pods": len(live),
            "terminating": len(pods) - len(live),
            "ready": sum(1 for p in live if _ready(p)),
            "available": dep.status.available_replicas or 0,
            "images": sorted({c.image for p in live for c in p.spec.containers}),
        }
        out.write(json.dumps(row) + "\n")
        out.flush()

    # A watch sees every pod event, so a surge pod that lives for a fraction of a second (kwok
    # makes pods Ready at once) is counted; a row is also written at least once a second.
    with open(args.out, "a", encoding="utf-8") as out:
        while not stop.exists():
            try:
                if not version:
                    version = relist()
                    record(out, apps.read_namespaced_deployment(args.deployment, args.namespace))
                for event in watch.Watch().stream(
                    core.list_namespaced_pod,
                    args.namespace,
                    label_selector=selector,
                    resource_version=version,
                    timeout_seconds=1,
                ):
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    if event["type"] == "DELETED":
                        pods.pop(pod.metadata.name, None)
                    else:
                        pods[pod.metadata.name] = pod
                    record(out, apps.read_namespaced_deployment(args.deployment, args.namespace))
                record(out, apps.read_namespaced_deployment(args.deployment, args.namespace))
            except Exception as exc:  # 410 Gone or an API hiccup: recorded, then list again
                out.write(json.dumps({"t": time.time(), "error": str(exc)[:200]}) + "\n")
                out.flush()
                version = ""
                time.sleep(args.interval)
    return 0


def check(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
    errors = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    problems: list[str] = []
    if len(rows) < 3:
        problems.append(f"only {len(rows)} samples")
    max_pods, min_available, min_ready = 0, None, None
    for r in rows:
        replicas = r["replicas"]
        surge = _resolve(r["max_surge"], replicas, round_up=True)
        unavailable = _resolve(r["max_unavailable"], replicas, round_up=False)
        if unavailable == 0 and surge == 0:
            unavailable = 1  # what the controller does when both resolve to 0
        max_pods = max(max_pods, r["pods"])
        if min_available is None or r["available"] < min_available:
            min_available = r["available"]
        min_ready = r["ready"] if min_ready is None else min(min_ready, r["ready"])
        if r["pods"] > replicas + surge:
            problems.append(
                f"{r['pods']} pods > replicas {replicas} + maxSurge {surge} at {r['t']:.1f}"
            )
        if r["available"] < replicas - unavailable or r["ready"] < replicas - unavailable:
            problems.append(
                f"available {r['available']} / ready {r['ready']} < replicas {replicas} - "
                f"maxUnavailable {unavailable} at {r['t']:.1f}"
            )
    if rows:
        if not any(args.to_image in r["images"] for r in rows):
            problems.append(f"no sample saw a pod of {args.to_image}: the rollout was not observed")
        if rows[-1]["images"] != [args.to_image] or rows[-1]["ready"] != rows[-1]["replicas"]:
            problems.append(f"last sample is not all Ready on {args.to_image}: {rows[-1]}")
        if not any(len(r["images"]) > 1 for r in rows):
            problems.append("no sample saw old and new pods together: the rollout was not observed")
        last = rows[-1]
        surge = _resolve(last["max_surge"], last["replicas"], round_up=True)
        if (
            surge > 0
            and _resolve(last["max_unavailable"], last["replicas"], round_up=False) == 0
            and max_pods <= last["replicas"]
        ):
            # With maxUnavailable 0 the controller must add a pod first: not seeing it means
            # the sampler missed states, and then its bounds prove nothing.
            problems.append(
                f"no surge pod seen (max {max_pods} pods): the sampler missed the rollout"
            )
    summary = {
        "samples": len(rows),
        "api_errors": len(errors),
        "seconds": round(rows[-1]["t"] - rows[0]["t"], 1) if rows else 0,
        "max_pods": max_pods,
        "min_available": min_available,
        "min_ready": min_ready,
        "max_terminating": max((r["terminating"] for r in rows), default=0),
        "problems": problems[:10],
    }
    print(json.dumps(summary))
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--kubeconfig", required=True)
    s.add_argument("--namespace", required=True)
    s.add_argument("--deployment", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--interval", type=float, default=0.2)
    c = sub.add_parser("check")
    c.add_argument("--out", required=True)
    c.add_argument("--to-image", required=True)
    args = parser.parse_args()
    return sample(args) if args.cmd == "sample" else check(args)


if __name__ == "__main__":
    sys.exit(main())
