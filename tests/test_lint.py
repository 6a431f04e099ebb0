"""The linters the project holds itself to: ruff, yamllint, ansible-lint (production profile)."""

import subprocess

import pytest

from tests.support.procs import ROOT, VENV_BIN


@pytest.mark.parametrize(
    "command",
    [
        [VENV_BIN / "ruff", "check", "apps", "tests", "bench", "scripts"],
        [VENV_BIN / "yamllint", "--strict", "."],
        [VENV_BIN / "ansible-lint", "--profile", "production", "--offline"],
    ],
    ids=["ruff", "yamllint", "ansible-lint"],
)
def test_lint_clean(command):
    result = subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
