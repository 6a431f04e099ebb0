"""Real nsqlookupd and nsqd for tests, on free loopback ports, nsqd with a data path."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.support.procs import Fixture, Process, free_ports, tool


class Nsq(Fixture):
    """nsqlookupd and an nsqd registered with it, on four ports picked together."""

    PORTS = 4

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "nsqd-data"
        self.lookupd: Process | None = None
        self.nsqd: Process | None = None
        self.use_ports(free_ports(self.PORTS))

    def use_ports(self, ports: list[int]) -> None:
        self.lookupd_tcp, self.lookupd_http, self.nsqd_tcp, self.nsqd_http = ports

    def start(self) -> Nsq:
        self.data.mkdir(parents=True, exist_ok=True)
        self.start_servers(self._launch)
        return self

    def _launch(self) -> None:
        self.lookupd = Process("nsqlookupd", [
            tool("nsqlookupd"), f"--tcp-address=127.0.0.1:{self.lookupd_tcp}",
            f"--http-address=127.0.0.1:{self.lookupd_http}", "--broadcast-address=127.0.0.1",
        ], self.base / "nsqlookupd.log").start()
        self.lookupd.wait_port(self.lookupd_tcp, self.lookupd_http)
        self.start_nsqd()

    def start_nsqd(self) -> None:
        """nsqd on this fixture's ports (again, after ``stop_nsqd``, with its data on disk)."""
        self.nsqd = Process("nsqd", [
            tool("nsqd"), f"--tcp-address=127.0.0.1:{self.nsqd_tcp}",
            f"--http-address=127.0.0.1:{self.nsqd_http}", "--broadcast-address=127.0.0.1",
            f"--lookupd-tcp-address=127.0.0.1:{self.lookupd_tcp}", f"--data-path={self.data}",
            # Small in-memory queue so restarts prove messages reach disk, not only memory.
            "--mem-queue-size=100",
        ], self.base / "nsqd.log").start()
        self.nsqd.wait_port(self.nsqd_tcp, self.nsqd_http)
        self.nsqd.wait_until(lambda: self._get(self.nsqd_http, "/ping") == "OK", "nsqd ping")

    def stop_nsqd(self) -> None:
        if self.nsqd:
            self.nsqd.stop()

    def stop(self) -> None:
        self.stop_nsqd()
        if self.lookupd:
            self.lookupd.stop()

    @staticmethod
    def _get(port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.read().decode()

    def stats(self) -> dict:
        return json.loads(self._get(self.nsqd_http, "/stats?format=json"))

    def topic_depth(self, topic: str, channel: str | None = None) -> int:
        for t in self.stats().get("topics", []):
            if t["topic_name"] == topic:
                if channel is None:
                    return t["depth"]
                for c in t["channels"]:
                    if c["channel_name"] == channel:
                        return c["depth"] + c["in_flight_count"] + c["deferred_count"]
        return 0

    def env(self) -> dict[str, str]:
        return {
            "NSQ_LOOKUP_ADDRESS": f"127.0.0.1:{self.lookupd_http}",
            "NSQD_HTTP_ADDRESS": f"127.0.0.1:{self.nsqd_http}",
        }
