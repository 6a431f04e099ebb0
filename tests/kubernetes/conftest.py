"""The manifests of three variable sets, rendered once per session (tests/support/manifests.py):
the project's defaults, a minimal set and the other branches."""

from __future__ import annotations

import pytest

from tests.support.manifests import BRANCHES, MINIMAL, Rendered, render_roles, render_site


@pytest.fixture(scope="session", params=["defaults", "minimal", "branches"])
def rendered(request, tmp_path_factory) -> Rendered:
    tmp = tmp_path_factory.mktemp(f"k8s-{request.param}")
    if request.param == "defaults":
        return render_site(tmp)
    return render_roles(tmp, MINIMAL if request.param == "minimal" else BRANCHES)
