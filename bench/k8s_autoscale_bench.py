#!/usr/bin/env python3
"""The HorizontalPodAutoscalers under a burst, on the test's minikube.

Usage: .venv/bin/python bench/k8s_autoscale_bench.py [--images 300] [--every 5] [--cool-down 420]

Needs the kept cluster of tests/infra/minikube-e2e.sh (tests/support/minikube.py says how), as
root: it joins the cluster's network namespace. It copies the sample photos under new names into
the folder the pods see, posts them all at once through the receiver's NodePort (bulk posts of
50), and every --every seconds records: replicas (and Ready) of the face service and the
processors, their CPU from metrics-server (millicores, summed over the pods) and the largest
pod's memory (MiB), each HPA's utilisation, nsqd's topic depth (every nsqd's /stats through the
API server's proxy) and the images settled. It keeps sampling after the last image settles until
both HPAs are back at their minimum or --cool-down seconds pass (the scale-down stabilisation
window is 300 s by default).

Prints the table and a summary, and writes .artifacts/bench/k8s-autoscale.{json,svg}: the curve
as a plot (replicas; CPU; depth and settled). Exits non-zero when an image did not end as
expected.json says, or was stored twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.support import minikube  # noqa: E402

BULK = 50


def millicores(value: str) -> float:
    if value.endswith("n"):
        return int(value[:-1]) / 1e6
    if value.endswith("u"):
        return int(value[:-1]) / 1e3
    if value.endswith("m"):
        return float(value[:-1])
    return float(value) * 1000


def mebibytes(value: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "k": 1e3 / 2**20, "M": 1e6 / 2**20}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[:-len(suffix)]) * factor
    return float(value) / 2**20


def usage(cluster: minikube.Cluster, name: str) -> tuple[float, float] | None:
    """metrics-server's figures for a component's pods: CPU in millicores summed over the pods,
    and the largest pod's memory in MiB (what a pod's request and limit must cover)."""
    proc = cluster.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/"
                           f"{cluster.namespace}/pods?labelSelector=app.kubernetes.io%2Fname%3D"
                           f"{name}", check=False)
    if proc.returncode != 0:
        return None
    items = json.loads(proc.stdout)["items"]
    if not items:
        return None
    return (sum(millicores(c["usage"]["cpu"]) for p in items for c in p["containers"]),
            max(sum(mebibytes(c["usage"]["memory"]) for c in p["containers"]) for p in items))


def hpa(cluster: minikube.Cluster) -> dict[str, dict[str, Any]]:
    out = {}
    for item in cluster.json("-n", cluster.namespace, "get", "hpa")["items"]:
        status = item.get("status", {})
        util = next((m["resource"]["current"].get("averageUtilization")
                     for m in status.get("currentMetrics") or []
                     if m.get("type") == "Resource"), None)
        out[item["metadata"]["name"]] = {
            "current": status.get("currentReplicas"), "desired": status.get("desiredReplicas"),
            "min": item["spec"].get("minReplicas", 1), "max": item["spec"]["maxReplicas"],
            "utilization": util,
            "target": item["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]}
    return out


def depth(cluster: minikube.Cluster) -> int | None:
    """Messages queued in the images topic over every nsqd (topic + channels, in memory and on
    disk), through the API server's proxy: the NetworkPolicy admits only kube-face's pods."""
    total = 0
    for pod in cluster.pods("nsqd"):
        name = pod["metadata"]["name"]
        proc = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{cluster.namespace}/pods/"
                               f"{name}:4151/proxy/stats?format=json&topic=images", check=False)
        if proc.returncode != 0:
            return None
        for topic in json.loads(proc.stdout).get("topics") or []:
            total += topic["depth"] + sum(ch["depth"] + ch["in_flight_count"]
                                          for ch in topic.get("channels") or [])
    return total


def settled(receiver: str, headers: dict[str, str], prefix: str) -> tuple[int, int]:
    rows = minikube.all_images(receiver, headers, prefix)
    return sum(r["status"] in minikube.FINAL for r in rows), len(rows)


def sample(cluster: minikube.Cluster, receiver: str, headers: dict[str, str], prefix: str,
           t: float) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(t, 1)}
    for name in ("face", "processor"):
        status = cluster.json("-n", cluster.namespace, "get", "deployment", name)["status"]
        row[f"{name}_replicas"] = status.get("replicas", 0)
        row[f"{name}_ready"] = status.get("readyReplicas", 0)
        used = usage(cluster, name)
        row[f"{name}_cpu_m"], row[f"{name}_mem_mi"] = used if used else (None, None)
    for name, h in hpa(cluster).items():
        row[f"{name}_hpa_util"] = h["utilization"]
        row[f"{name}_hpa_desired"] = h["desired"]
    row["depth"] = depth(cluster)
    row["settled"], row["stored"] = settled(receiver, headers, prefix)
    return row


def post_burst(receiver: str, headers: dict[str, str], paths: list[str]) -> float:
    start = time.monotonic()
    for i in range(0, len(paths), BULK):
        body = {"paths": [{"path": p} for p in paths[i:i + BULK]]}
        status, answer = minikube.http("POST", f"{receiver}/images/post", body,
                                       headers=headers, timeout=60)
        if status not in (200, 202):
            raise SystemExit(f"bulk post answered {status}: {answer}")
    return time.monotonic() - start


def svg(rows: list[dict[str, Any]], total: int, limits: dict[str, dict[str, Any]]) -> str:
    """Three stacked panels over time: replicas, CPU (millicores), depth and settled."""
    width, height, left, top, gap = 900, 210, 70, 30, 45
    t_max = max(r["t"] for r in rows) or 1
    panels = [
        ("replicas", [("face_replicas", "#1f77b4", "face"),
                      ("processor_replicas", "#ff7f0e", "processor")],
         max(h["max"] for h in limits.values()) if limits else 8),
        ("CPU (millicores, all pods)", [("face_cpu_m", "#1f77b4", "face"),
                                        ("processor_cpu_m", "#ff7f0e", "processor")], None),
        ("images", [("depth", "#2ca02c", "nsqd depth"), ("settled", "#d62728", "settled")],
         total),
    ]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 160}" '
             f'height="{len(panels) * (height + gap) + top}" font-family="sans-serif" '
             'font-size="12"><rect width="100%" height="100%" fill="white"/>']
    for i, (title, series, y_max) in enumerate(panels):
        y0 = top + i * (height + gap)
        values = [r[key] for key, _, _ in series for r in rows if r.get(key) is not None]
        y_max = y_max or max(values or [1]) * 1.1 or 1
        parts.append(f'<text x="{left}" y="{y0 - 8}" font-weight="bold">{title}</text>')
        parts.append(f'<rect x="{left}" y="{y0}" width="{width}" height="{height}" '
                     'fill="none" stroke="#999"/>')
        for frac in (0, 0.5, 1):
            y = y0 + height - frac * height
            parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">'
                         f'{y_max * frac:.0f}</text>')
        for n, (key, colour, label) in enumerate(series):
            points = " ".join(f"{left + r['t'] / t_max * width:.1f},"
                              f"{y0 + height - r[key] / y_max * height:.1f}"
                              for r in rows if r.get(key) is not None)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                         'stroke-width="2"/>')
            parts.append(f'<text x="{left + width + 10}" y="{y0 + 15 + 16 * n}" '
                         f'fill="{colour}">{label}</text>')
    y = len(panels) * (height + gap) + top - 20
    parts.append(f'<text x="{left}" y="{y}">0 s</text><text x="{left + width}" y="{y}" '
                 f'text-anchor="end">{t_max:.0f} s</text></svg>')
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--every", type=float, default=5, help="seconds between two samples")
    parser.add_argument("--timeout", type=float, default=1800, help="for every image to settle")
    parser.add_argument("--cool-down", type=float, default=420,
                        help="after the last image, how long to wait for the scale-down")
    args = parser.parse_args()
    prefix = f"burst-{uuid.uuid4().hex[:6]}"
    out = ROOT / ".artifacts" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with minikube.enter() as cluster:
        receiver, headers = cluster.receiver_url(), cluster.api_headers()
        limits = hpa(cluster)
        expected = minikube.sample_copies(cluster, args.images, prefix)
        try:
            rows = [sample(cluster, receiver, headers, prefix, 0.0)]
            start = time.monotonic()
            posted_in = post_burst(receiver, headers, sorted(expected))
            header = (f"{'t s':>6} {'face':>5} {'proc':>5} {'face m':>7} {'proc m':>7} "
                      f"{'face %':>6} {'proc %':>6} {'depth':>6} {'settled':>8}")
            print(f"{args.images} images posted in {posted_in:.1f} s\n{header}")
            done_at = None
            while True:
                row = sample(cluster, receiver, headers, prefix, time.monotonic() - start)
                rows.append(row)
                print(f"{row['t']:>6.0f} {row['face_replicas']:>5} {row['processor_replicas']:>5} "
                      f"{row['face_cpu_m'] or 0:>7.0f} {row['processor_cpu_m'] or 0:>7.0f} "
                      f"{row.get('face_hpa_util') or '-':>6} "
                      f"{row.get('processor_hpa_util') or '-':>6} "
                      f"{row['depth'] if row['depth'] is not None else '-':>6} "
                      f"{row['settled']:>4}/{args.images}", flush=True)
                if done_at is None and row["settled"] >= args.images:
                    done_at = row["t"]
                at_min = all(row[f"{n}_replicas"] <= limits[n]["min"] for n in limits)
                if done_at is not None and (at_min or row["t"] - done_at > args.cool_down):
                    break
                if done_at is None and row["t"] > args.timeout:
                    break
                time.sleep(args.every)
            problems = minikube.wrong_results(minikube.all_images(receiver, headers, prefix),
                                              expected)
        finally:
            minikube.remove_copies(cluster, prefix)
    peak = {n: max(r[f"{n}_replicas"] for r in rows) for n in ("face", "processor")}
    peak_mem = {n: max((r[f"{n}_mem_mi"] or 0 for r in rows), default=0)
                for n in ("face", "processor")}
    summary = {"images": args.images, "posted_in_s": round(posted_in, 1),
               "all_settled_at_s": done_at, "peak_replicas": peak,
               "peak_pod_memory_mi": peak_mem,
               "final_replicas": {n: rows[-1][f"{n}_replicas"] for n in ("face", "processor")},
               "hpa": limits, "wrong": problems[:20], "rows": rows}
    (out / "k8s-autoscale.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "k8s-autoscale.svg").write_text(svg(rows, args.images, limits))
    print(f"settled: all {args.images} at {done_at} s; peak replicas {peak}; peak memory of "
          f"one pod (MiB) {peak_mem}; at the end {summary['final_replicas']}; "
          f"wrong: {len(problems)}; plot: {out / 'k8s-autoscale.svg'}")
    for line in problems[:20]:
        print("  " + line)
    return 1 if problems or done_at is None else 0


if __name__ == "__main__":
    sys.exit(main())
