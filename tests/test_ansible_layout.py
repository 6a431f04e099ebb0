"""The Ansible entry points: playbooks/group_vars/ reaches every playbook, whatever the inventory
(no group_vars symlinks: every play lives in playbooks/)."""

import json
import subprocess

import pytest
import yaml

from tests.support.procs import ROOT, ansible_playbook

GROUP_VARS = yaml.safe_load((ROOT / "playbooks/group_vars/all/main.yml").read_text())


def shown_config(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    task = report["plays"][0]["tasks"][0]
    return task["hosts"]["localhost"]["msg"]


@pytest.mark.parametrize("inventory", ["inventory/local", "inventory/minikube"])
def test_group_vars_reach_a_playbook_in_playbooks_dir(inventory):
    shown = shown_config(ansible_playbook("playbooks/show_config.yml", "-i", inventory, json=True))
    assert shown["namespace"] == GROUP_VARS["kube_face_namespace"]
    assert int(shown["receiver_port"]) == GROUP_VARS["kube_face_receiver_port"]


def test_group_vars_reach_playbooks_with_a_users_own_inventory(tmp_path):
    """An inventory elsewhere has no group_vars beside it: the playbook side must supply them."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "local:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
    )
    shown = shown_config(ansible_playbook("playbooks/show_config.yml", "-i", str(inventory),
                                          json=True))
    assert shown["context"] == GROUP_VARS["kube_face_context"]
    assert shown["target_groups"] == ["local"]
    # And through the root entry point, whose imported plays live in playbooks/: only the
    # preflight play, which fails on an undefined kube_face_* variable (it deploys nothing).
    result = ansible_playbook("site.yml", "-i", str(inventory), "--tags", "preflight",
                              json=True)
    assert result.returncode == 0, result.stdout[-3000:]
    tasks = [t for play in json.loads(result.stdout)["plays"] for t in play["tasks"]]
    preflight = [t for t in tasks if t["task"]["name"].startswith("Preflight |")]
    assert preflight and all(t["hosts"]["localhost"].get("failed") is not True for t in preflight)
    # Nothing else ran but fact gathering and the roles' argument checks (tagged "always").
    others = {t["task"]["name"] for t in tasks} - {t["task"]["name"] for t in preflight}
    assert all(n == "Gathering Facts" or "Validating arguments" in n for n in others), others


def test_a_users_inventory_overrides_the_settings_through_its_group(tmp_path):
    """The documented override: a group's own variables in the inventory win over the shared
    settings of playbooks/group_vars/all/ (the root entry point and playbooks/ alike)."""
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "kubernetes.yml").write_text("kube_face_namespace: kf-override\n")
    (tmp_path / "hosts.yml").write_text(
        "kubernetes:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
    )
    shown = shown_config(ansible_playbook("playbooks/show_config.yml", "-i",
                                          str(tmp_path / "hosts.yml"), json=True))
    assert shown["namespace"] == "kf-override"
    assert int(shown["receiver_port"]) == GROUP_VARS["kube_face_receiver_port"]


def test_no_group_vars_symlinks():
    """Settings live in one real folder: nothing links to them."""
    links = [str(p.relative_to(ROOT)) for folder in ("inventory", "playbooks", "roles")
             for p in (ROOT / folder).rglob("*") if p.is_symlink()]
    assert links == []
    assert not (ROOT / "group_vars").exists()


@pytest.mark.parametrize("playbook", ["site.yml", "rolling_update.yml"])
@pytest.mark.parametrize("inventory", ["inventory/local", "inventory/minikube"])
def test_entry_points_pass_syntax_check(playbook, inventory):
    result = ansible_playbook(playbook, "-i", inventory, "--syntax-check", json=True)
    assert result.returncode == 0, result.stdout + result.stderr
