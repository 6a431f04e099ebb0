"""The README and docs/ stay true and the repository stands alone.

The configuration table is the code's, the commands exist, every link leads to a file, the README
stays a short user's guide, and nothing points outside the repository or at issue numbers.
"""

import re
import subprocess

import pytest
import yaml

from kubeface.core.config import VARIABLES
from tests.support.procs import ROOT

README = (ROOT / "README.md").read_text()
README_MAX_LINES = 300

# Written so that this file does not match its own patterns.
FORBIDDEN = {
    "a path outside the repository": re.compile(r"\.\./shared"),
    "notes kept outside the repository": re.compile(r"\b(?:ENVIRONMENT|DESIGN)\.md\b"),
    "an issue number": re.compile(r"\bissues?\s*#?[0-9]+", re.I),
    "narration of the build machines": re.compile(r"\b(?:these\s+machines|other\s+engineers)\b",
                                                  re.I),
}
# Folders that are not the project's text: generated, installed or produced by runs.
_SKIP_DIRS = {".git", ".venv", ".tools", ".artifacts", "node_modules", "__pycache__", ".cache"}


def _project_files() -> list:
    """Every file of the repository: tracked and new ones (git), else a walk of the tree."""
    try:
        command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if not _SKIP_DIRS & set(p.relative_to(ROOT).parts)]
    return [f for f in files if f.is_file() and not f.is_symlink()]


def test_configuration_table_matches_the_code():
    rows = {name: (default.strip(), meaning.strip()) for name, default, meaning in
            re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \| ([^|]+) \|", README, re.M)}
    for var in VARIABLES:
        # No default: the help says whether the variable must be set or may stay unset.
        defaults = {"(required)", "(unset)"} if var.default is None else {f"`{var.default}`"}
        assert rows.get(var.name, ("", ""))[0] in defaults, var.name
        assert rows[var.name][1] == var.help, var.name
    assert set(rows) == {v.name for v in VARIABLES}


def test_the_two_commands_exist_and_ci_runs_the_test_command():
    assert "./scripts/quickstart" in README and "./scripts/test" in README
    for script in ("scripts/quickstart", "scripts/test", "scripts/setup.sh"):
        assert (ROOT / script).stat().st_mode & 0o111, script
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_a_short_users_guide():
    lines = README.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to docs/"
    for heading in ("## The two commands", "## Deploying locally", "## Deploying to Kubernetes",
                    "## Using it", "## Configuration", "## Documentation"):
        assert re.search(f"^{re.escape(heading)}$", README, re.M), heading


@pytest.mark.parametrize("doc", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_every_relative_link_leads_to_a_file(doc):
    path = ROOT / doc
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{doc} links to missing files: {broken}"


def test_the_repository_stands_alone():
    found = []
    for file in _project_files():
        text = file.read_bytes().decode("utf-8", errors="replace")
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{file.relative_to(ROOT)}:{line}: {what} ({match.group(0)!r})")
    assert not found, "\n".join(found)


ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta/argument_specs.yml").exists())
_ABBREVIATIONS = {"dir": "directory", "min": "minimum", "max": "maximum", "num": "number"}
_FILLER = {"a", "an", "the", "of", "for", "to", "in", "on", "its", "it", "is", "set", "by"}


def _words(text: str) -> set:
    text = re.sub(r"\(?group_vars/\S*\)?", "", text.lower())
    words = set(re.findall(r"[a-z0-9]+", text)) - _FILLER
    return {_ABBREVIATIONS.get(w, w) for w in words}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_role_documents_its_inputs(role):
    """A README names every input, and no description only restates its variable's name."""
    readme = role / "README.md"
    assert readme.exists(), f"{role.name} has no README.md"
    text = readme.read_text()
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    missing, restating = [], []
    for entry in specs.values():
        for name, option in (entry.get("options") or {}).items():
            if name.startswith("kube_face_"):
                # Project-wide settings: the README may list them or point at group_vars.
                pass
            elif f"`{name}`" not in text:
                missing.append(name)
            description = option.get("description") or ""
            if isinstance(description, list):
                description = " ".join(description)
            if _words(description) <= _words(name.replace("_", " ")) | {"k8s"}:
                restating.append(f"{name}: {description!r}")
    assert not missing, f"{role.name}/README.md does not mention {missing}"
    assert not restating, f"{role.name} descriptions that only restate the name: {restating}"
