"""requirements.yml lists exactly the collections the roles and playbooks use.

The list is derived from the tree: every fully qualified module name used as a task key
(`kubernetes.core.k8s:`), every `group/<fqcn>` of module_defaults, and every lookup, filter or
test called by its FQCN in a template. ansible.builtin is part of ansible-core.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support.procs import ROOT

FQCN = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+$")
# lookup('ns.coll.x'), query("ns.coll.x"), | ns.coll.x, is ns.coll.x
IN_TEMPLATE = re.compile(
    r"(?:(?:lookup|query)\(\s*['\"]|\|\s*|\bis\s+(?:not\s+)?)([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+\b"
)
CORE = {"ansible.builtin", "ansible.legacy"}


def _yaml_files() -> list[Path]:
    files = [ROOT / name for name in ("site.yml", "rolling_update.yml", "teardown.yml")]
    for folder in ("roles", "playbooks"):
        files += sorted((ROOT / folder).rglob("*.yml"))
    return files


def _walk(node, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                name = key.removeprefix("group/")
                m = FQCN.match(name)
                if m:
                    found.add(f"{m[1]}.{m[2]}")
            _walk(value, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found)
    elif isinstance(node, str):
        found.update(f"{a}.{b}" for a, b in IN_TEMPLATE.findall(node))


def used_collections() -> set[str]:
    found: set[str] = set()
    for path in _yaml_files():
        for doc in yaml.safe_load_all(path.read_text()):
            _walk(doc, found)
    return found - CORE


def test_requirements_list_every_collection_used():
    listed = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    required = {c["name"] for c in listed}
    used = used_collections()
    assert used, "no collection found: the scan is broken"
    assert "kubernetes.core" in used and "ansible.posix" in used
    assert not used - required, f"used but not in requirements.yml: {sorted(used - required)}"
    assert not required - used, f"in requirements.yml but used nowhere: {sorted(required - used)}"


def test_the_scan_sees_each_kind_of_use():
    found: set[str] = set()
    _walk(
        [
            {"name": "t", "a.b.mod": {"x": "{{ lookup('c.d.look', 'k') }}"}},
            {"module_defaults": {"group/e.f.grp": {}}},
            {"debug": {"msg": "{{ v | g.h.filt }} {{ v is i.j.tst }}"}},
            {"debug": {"msg": "{{ item.stat.exists and x.y.z }}"}},
        ],
        found,
    )
    assert found == {"a.b", "c.d", "e.f", "g.h", "i.j"}
