"""The minikube end-to-end run (tests/infra/minikube-e2e.sh) as a background job of the suite.

The run spends most of its half hour waiting on the cluster (pods starting, rollouts, playbooks),
so the suite starts it as soon as collection is done and runs the other tests meanwhile; its test,
collected last, waits for it and checks what it printed. Run alone, the test starts it itself.

On by default for root (it needs network namespaces and cgroups); KUBE_FACE_MINIKUBE_E2E=0 leaves
it out. Its output goes to .artifacts/minikube-e2e.out as it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import IO

import pytest

from tests.support.procs import ROOT

SCRIPT = ROOT / "tests" / "infra" / "minikube-e2e.sh"
OUTPUT = ROOT / ".artifacts" / "minikube-e2e.out"
TEST = "tests/cluster/test_minikube.py::test_site_yml_on_minikube_offline"


def skip_reason() -> str | None:
    """Why the run cannot happen here, or None."""
    if os.environ.get("KUBE_FACE_MINIKUBE_E2E", "1") == "0":
        return "KUBE_FACE_MINIKUBE_E2E=0"
    if os.geteuid() != 0:
        return "the minikube end-to-end run needs root (network namespaces, cgroups)"
    return None


class _Run:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: IO[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None:
            return
        OUTPUT.parent.mkdir(exist_ok=True)
        self.out = open(OUTPUT, "wb")  # noqa: SIM115 -- closed by wait() or stop()
        # Its own process group: stop() can end the script and everything it started.
        self.proc = subprocess.Popen([str(SCRIPT)], cwd=ROOT, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float) -> tuple[int, str]:
        """Start the run if it is not running, wait for its end; (exit code, output)."""
        self.start()
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = -1
        self._close()
        return rc, OUTPUT.read_text(errors="replace")

    def stop(self) -> None:
        """End a run still going (an interrupted or failed session): the script's trap deletes
        the cluster and its namespace, so give it time to."""
        if self.proc is None or self.proc.poll() is not None:
            self._close()
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 300
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


RUN = _Run()


def schedule(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the run's test to the end and start the run now, when it is selected and can run."""
    chosen = [item for item in items if item.nodeid == TEST]
    if not chosen:
        return
    items.remove(chosen[0])
    items.append(chosen[0])
    if config.option.collectonly or skip_reason() is not None:
        return
    RUN.start()
