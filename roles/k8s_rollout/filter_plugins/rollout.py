"""Filters for the k8s_rollout role: rollout status as ``kubectl rollout status`` reads it.

``kubernetes.core.k8s`` with ``wait: true`` can return in the middle of a rolling update (it never
compares ``updatedReplicas``), so the role polls the object and asks :func:`rollout_status`,
which follows kubectl's DeploymentStatusViewer and StatefulSetStatusViewer
(k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go).
"""

from __future__ import annotations

from typing import Any

TIMED_OUT_REASON = "ProgressDeadlineExceeded"


def _deployment(obj: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    name = meta.get("name", "?")
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return _waiting(f"deployment {name}: waiting for the new spec to be observed")
    for condition in status.get("conditions", []):
        if condition.get("type") == "Progressing" and condition.get("reason") == TIMED_OUT_REASON:
            return {"done": False, "failed": True,
                    "message": f"deployment {name} exceeded its progress deadline: "
                               f"{condition.get('message', '')}".rstrip(": ")}
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return _waiting(f"deployment {name}: {updated} of {wanted} new replicas updated")
    if replicas > updated:
        return _waiting(f"deployment {name}: {replicas - updated} old replicas pending termination")
    if available < updated:
        return _waiting(f"deployment {name}: {available} of {updated} updated replicas available")
    return {"done": True, "failed": False,
            "message": f"deployment {name} successfully rolled out ({available} available)"}


def _statefulset(obj: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    name = meta.get("name", "?")
    strategy = spec.get("updateStrategy", {}) or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return {"done": True, "failed": False,
                "message": f"statefulset {name}: {strategy.get('type')} updates are not tracked"}
    observed = status.get("observedGeneration", 0)
    if not observed or meta.get("generation", 0) > observed:
        return _waiting(f"statefulset {name}: waiting for the new spec to be observed")
    wanted = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < wanted:
        return _waiting(f"statefulset {name}: {ready} of {wanted} pods ready")
    partition = (strategy.get("rollingUpdate") or {}).get("partition", 0) or 0
    if partition > 0:
        if status.get("updatedReplicas", 0) < wanted - partition:
            return _waiting(f"statefulset {name}: {status.get('updatedReplicas', 0)} of "
                            f"{wanted - partition} pods updated")
        return {"done": True, "failed": False,
                "message": f"statefulset {name}: partitioned roll out complete"}
    if status.get("updateRevision") != status.get("currentRevision"):
        return _waiting(f"statefulset {name}: {status.get('updatedReplicas', 0)} of {wanted} "
                        f"pods at revision {status.get('updateRevision')}")
    return {"done": True, "failed": False,
            "message": f"statefulset {name} rolling update complete ({ready} ready)"}


def _waiting(message: str) -> dict[str, Any]:
    return {"done": False, "failed": False, "message": message}


def rollout_status(obj: dict[str, Any] | None) -> dict[str, Any]:
    """``{"done", "failed", "message"}`` for a Deployment or StatefulSet as the API returns it."""
    if not obj:
        return {"done": False, "failed": True, "message": "the object does not exist"}
    kind = obj.get("kind")
    if kind == "Deployment":
        return _deployment(obj)
    if kind == "StatefulSet":
        return _statefulset(obj)
    return {"done": False, "failed": True, "message": f"cannot follow the rollout of a {kind}"}


def repository(image: str) -> str:
    """``image`` without its tag or digest: ``reg:5000/app:1.0`` -> ``reg:5000/app``."""
    repo = image.split("@", 1)[0]
    name_start = repo.rfind("/") + 1
    if ":" in repo[name_start:]:
        repo = repo[: name_start + repo[name_start:].rindex(":")]
    return repo


def with_tag(image: str, tag: str) -> str:
    """``image`` with its tag (or digest) replaced by ``tag``."""
    return f"{repository(image)}:{tag}"


def retag_patch(obj: dict[str, Any], container: str, tag: str) -> dict[str, Any]:
    """A strategic-merge patch (what ``kubectl set image`` sends) giving ``container`` the new
    tag, and every container or init container of the pod that runs the same image repository
    too (the migrate init container runs the service's own image)."""
    pod = obj["spec"]["template"]["spec"]
    main = next((c for c in pod.get("containers", []) if c["name"] == container), None)
    if main is None:
        names = [c["name"] for c in pod.get("containers", [])]
        raise ValueError(f"no container {container!r} in {obj['metadata']['name']} (has {names})")
    repo = repository(main["image"])
    patch: dict[str, Any] = {}
    for field in ("initContainers", "containers"):
        changed = [{"name": c["name"], "image": with_tag(c["image"], tag)}
                   for c in pod.get(field, []) if repository(c["image"]) == repo]
        if changed:
            patch[field] = changed
    return {"spec": {"template": {"spec": patch}}}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "k8s_rollout_status": rollout_status,
            "k8s_rollout_with_tag": with_tag,
            "k8s_rollout_retag_patch": retag_patch,
        }
