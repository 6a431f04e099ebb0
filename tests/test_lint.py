"""The linters the project holds itself to: ruff, yamllint, ansible-lint (production profile)."""

import subprocess

import pytest

from tests.support.procs import ROOT

BIN = ROOT / ".venv" / "bin"


@pytest.mark.parametrize(
    "command",
    [
        [BIN / "ruff", "check", "apps", "tests", "bench", "scripts"],
        [BIN / "yamllint", "--strict", "."],
        [BIN / "ansible-lint", "--profile", "production", "--offline"],
    ],
    ids=["ruff", "yamllint", "ansible-lint"],
)
def test_lint_clean(command):
    result = subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
