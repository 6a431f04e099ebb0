"""The real image processor (``kubeface processor``) as a process for tests, and helpers to wait
for images to settle."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from kubeface.core import config, queue
from kubeface.core.db import Database
from kubeface.core.messages import CHANNEL, TOPIC
from kubeface.core.statuses import TERMINAL
from tests.support.procs import KubefaceProcess

# Fast reactions for tests; every one can be overridden through ``env``.
TEST_DEFAULTS = {
    "PROCESSOR_LOOKUPD_POLL_SECONDS": "1",
    "PROCESSOR_REQUEUE_SECONDS": "0.2",
    "PROCESSOR_MAX_REQUEUE_SECONDS": "2",
    "PROCESSOR_LEASE_SECONDS": "20",
    "GRPC_TIMEOUT_SECONDS": "15",
    "BREAKER_RESET_SECONDS": "1",
    "BREAKER_MAX_RESET_SECONDS": "4",
}


def _nsqd_http(env: dict[str, str], path: str, method: str = "GET") -> bytes:
    """nsqd's HTTP API as the services use it with ``env`` (HTTPS with NSQ_TLS_*)."""
    settings = config.load(env)
    context = queue.tls_context(settings)
    request = urllib.request.Request(queue.nsqd_url(settings.nsqd_http_address, path, context),
                                     method=method)
    with urllib.request.urlopen(request, timeout=2, context=context) as response:
        return response.read()


def ensure_channel(env: dict[str, str]) -> None:
    """Create topic ``images`` and channel ``ch`` on nsqd, so nsqlookupd lists the nsqd at once
    and messages published before the first consumer wait in the channel."""
    _nsqd_http(env, f"/topic/create?topic={TOPIC}", "POST")
    _nsqd_http(env, f"/channel/create?topic={TOPIC}&channel={CHANNEL}", "POST")


class Processor(KubefaceProcess):
    """``python -m kubeface processor`` with ``env`` (the test's database, NSQ and face service),
    its log under ``base``."""

    def __init__(self, base: Path, env: dict[str, str], name: str = "processor") -> None:
        self.base = base
        super().__init__("processor", {**TEST_DEFAULTS, **env}, base / f"{name}.log", name,
                         port_variables=("PROCESSOR_METRICS_PORT",))

    @property
    def metrics_port(self) -> int:
        return int(self.env["PROCESSOR_METRICS_PORT"])

    @property
    def client_name(self) -> str:
        return f"kubeface-processor-{self.process.proc.pid}"

    def subscribed(self) -> bool:
        """True once nsqd lists this process as a client of channel ``ch``."""
        stats = json.loads(_nsqd_http(self.env, f"/stats?format=json&topic={TOPIC}"))
        for topic in stats.get("topics", []):
            for channel in topic.get("channels", []):
                if channel["channel_name"] == CHANNEL and any(
                    c.get("hostname") == self.client_name for c in channel.get("clients", [])
                ):
                    return True
        return False

    def start(self, timeout: float = 60.0) -> Processor:
        """Start it and wait until it consumes (subscribed on nsqd)."""
        self.base.mkdir(parents=True, exist_ok=True)
        ensure_channel(self.env)

        def launch() -> None:
            self.process.start()
            self.process.wait_until(self.subscribed, f"{self.process.name} subscribed to "
                                    f"{TOPIC}/{CHANNEL}", timeout)

        self.start_servers(launch)
        return self


def statuses(db: Database, ids: Iterable[int]) -> dict[int, str]:
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    rows = db.query(f"SELECT id, status FROM images WHERE id IN ({','.join(map(str, ids))})")
    return {int(r.id): r.status for r in rows}


def wait_final(db: Database, ids: Iterable[int], timeout: float = 120.0) -> dict[int, str]:
    """Wait until every image of ``ids`` has a terminal status; returns {id: status}.
    TimeoutError names the images still unsettled."""
    ids = [int(i) for i in ids]
    deadline = time.monotonic() + timeout
    while True:
        try:
            now = statuses(db, ids)
        except Exception:  # the database may be restarting in a fault test
            now = {}
        if len(now) == len(ids) and all(s in TERMINAL for s in now.values()):
            return now
        if time.monotonic() > deadline:
            left = {i: now.get(i, "?") for i in ids if now.get(i) not in TERMINAL}
            raise TimeoutError(f"{len(left)} images not settled after {timeout:.0f}s: "
                               f"{dict(list(left.items())[:20])}")
        time.sleep(0.2)


def add_images(db: Database, paths: Iterable[str]) -> list[int]:
    """Insert ``paths`` as pending images (what the receiver does); returns their ids."""
    ids = []
    with db.transaction() as conn:
        for path in paths:
            conn.query("INSERT INTO images (path) VALUES (:p)", p=path)
            ids.append(int(conn.query("SELECT LAST_INSERT_ID() AS id").scalar()))
    return ids
