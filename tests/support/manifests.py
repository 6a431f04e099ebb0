"""Rendering the Kubernetes manifests from the real roles, offline (render-only mode).

Three variable sets: the project's defaults (site.yml with inventory/minikube: the settings
passed in by the playbook), a minimal set (the deploy play's roles in a playbook of their own,
with only another namespace and the image tag: the roles' own defaults), and the other branches
(PVC image folders, no autoscalers, no NetworkPolicies, cluster-picked NodePorts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.procs import ROOT, VENV_BIN, ansible_playbook

SHARED = yaml.safe_load((ROOT / "playbooks/group_vars/all/main.yml").read_text())
DEPLOY_PLAY = "Kubernetes | Deploy kube-face"


@dataclass
class Rendered:
    """Every object of one render, with the file it came from."""

    namespace: str
    docs: list[tuple[Path, dict]]
    manifest_dir: Path

    def of_kind(self, kind: str) -> list[dict]:
        return [d for _, d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
        return found[0]


def load(manifest_dir: Path, namespace: str) -> Rendered:
    docs = []
    for path in sorted(manifest_dir.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.relative_to(manifest_dir), doc))
    assert docs, f"nothing rendered in {manifest_dir}"
    return Rendered(namespace, docs, manifest_dir)


def render_site(tmp: Path) -> Rendered:
    out = tmp / "manifests"
    result = ansible_playbook("site.yml", "-i", "inventory/minikube",
                              "-e", "k8s_common_render_only=true",
                              "-e", f"k8s_common_manifest_dir={out}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return load(out, SHARED["kube_face_namespace"])


def deploy_roles() -> list[str]:
    """The roles of the real deploy play, in its order."""
    plays = yaml.safe_load((ROOT / "playbooks" / "kubernetes.yml").read_text())
    play = next(p for p in plays if p["name"] == DEPLOY_PLAY)
    return [r["role"] if isinstance(r, dict) else r for r in play["roles"]]


def render_roles(tmp: Path, extra: dict) -> Rendered:
    """The deploy play's roles in a playbook of their own, with only ``extra`` as variables."""
    out = tmp / "manifests"
    playbook = [{"name": "Render with a minimal variable set", "hosts": "kubernetes",
                 "gather_facts": False, "roles": deploy_roles()}]
    (tmp / "play.yml").write_text(yaml.safe_dump(playbook))
    (tmp / "hosts.yml").write_text(
        "kubernetes:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {VENV_BIN / 'python'}\n")
    variables = {**extra, "k8s_common_render_only": True, "k8s_common_manifest_dir": str(out)}
    (tmp / "vars.json").write_text(json.dumps(variables))
    result = ansible_playbook("play.yml", "-i", "hosts.yml", "-e", "@vars.json", cwd=tmp)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return load(out, extra["k8s_common_namespace"])


# The roles' inputs (the playbook's mapping of kube_face_* settings is not in this play).
MINIMAL = {"k8s_common_namespace": "kf-minimal",
           "k8s_common_image_tag": SHARED["kube_face_version"]}
BRANCHES = {**MINIMAL, "k8s_common_namespace": "kf-branches",
            "k8s_common_images_volume_type": "pvc",
            "k8s_face_autoscale": False, "k8s_processor_autoscale": False,
            "k8s_common_network_policies": False, "k8s_receiver_node_port": "",
            "k8s_frontend_node_port": "", "k8s_common_image_registry": "registry.example:5000/team",
            "k8s_nsq_nsqlookupd_replicas": 3, "k8s_nsq_nsqd_replicas": 2}
