"""The README stays true: its configuration table is the code's, its commands exist."""

import re

from kubeface.core.config import VARIABLES
from tests.support.procs import ROOT

README = (ROOT / "README.md").read_text()


def test_configuration_table_matches_the_code():
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, re.M))
    for var in VARIABLES:
        default = "(required)" if var.default is None else f"`{var.default}`"
        assert rows.get(var.name, "").strip() == default, var.name
    assert set(rows) == {v.name for v in VARIABLES}


def test_the_two_commands_exist_and_ci_runs_the_test_command():
    assert "./scripts/quickstart" in README and "./scripts/test" in README
    for script in ("scripts/quickstart", "scripts/test", "scripts/setup.sh"):
        assert (ROOT / script).stat().st_mode & 0o111, script
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
