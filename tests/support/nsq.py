"""Real nsqlookupd and nsqd for tests, on free loopback ports, nsqd with a data path; with
certificates, nsqd as the local target runs it: TLS required, client certificates verified."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import urllib.request
from pathlib import Path

from kubeface.core.queue import nsqd_url
from tests.support import tls as tls_files
from tests.support.procs import Fixture, Process, free_ports, tool

RESPONSE, ERROR = 0, 1  # NSQ frame types


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("nsqd closed the connection")
        data += chunk
    return data


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    size = struct.unpack(">l", _read(sock, 4))[0]
    data = _read(sock, size)
    return struct.unpack(">l", data[:4])[0], data[4:]


def tcp_command(port: int, command: bytes,
                tls: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """nsqd's answer (frame type, data) to one raw ``command`` on its TCP port. With ``tls``:
    first IDENTIFY asking for TLS (allowed in the clear) and the upgrade with that context."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"  V2")
        if tls is None:
            sock.sendall(command)
            return _frame(sock)
        body = json.dumps({"tls_v1": True, "feature_negotiation": True}).encode()
        sock.sendall(b"IDENTIFY\n" + struct.pack(">l", len(body)) + body)
        kind, data = _frame(sock)
        assert kind == RESPONSE and json.loads(data)["tls_v1"] is True, data
        with tls.wrap_socket(sock, server_hostname="127.0.0.1") as secured:
            assert _frame(secured) == (RESPONSE, b"OK")
            secured.sendall(command)
            return _frame(secured)


class Nsq(Fixture):
    """nsqlookupd and an nsqd registered with it, on five ports picked together (the fifth is
    nsqd's HTTPS port, used with ``tls``)."""

    PORTS = 5

    def __init__(self, base: Path, tls: tls_files.Certificates | None = None) -> None:
        self.base = base
        self.data = base / "nsqd-data"
        self.tls = tls
        self.client_tls = tls_files.nsq_client_context(tls) if tls else None
        self.lookupd: Process | None = None
        self.nsqd: Process | None = None
        self.use_ports(free_ports(self.PORTS))

    def use_ports(self, ports: list[int]) -> None:
        self.lookupd_tcp, self.lookupd_http, self.nsqd_tcp, self.nsqd_http, *https = ports
        self.nsqd_https = https[0] if https else free_ports(1)[0]

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
        tls_args = [] if self.tls is None else [
            f"--https-address=127.0.0.1:{self.nsqd_https}", f"--tls-cert={self.tls.cert}",
            f"--tls-key={self.tls.key}", f"--tls-root-ca-file={self.tls.ca}",
            "--tls-required=true", "--tls-client-auth-policy=require-verify",
            "--tls-min-version=tls1.2"]
        self.nsqd = Process("nsqd", [
            tool("nsqd"), f"--tcp-address=127.0.0.1:{self.nsqd_tcp}",
            f"--http-address=127.0.0.1:{self.nsqd_http}", "--broadcast-address=127.0.0.1",
            f"--lookupd-tcp-address=127.0.0.1:{self.lookupd_tcp}", f"--data-path={self.data}",
            # Small in-memory queue so restarts prove messages reach disk, not only memory.
            "--mem-queue-size=100", *tls_args,
        ], self.base / "nsqd.log").start()
        self.nsqd.wait_port(self.nsqd_tcp, self.nsqd_http, *([self.nsqd_https] if self.tls else []))
        self.nsqd.wait_until(lambda: self.get("/ping") == "OK", "nsqd ping")

    def stop_nsqd(self) -> None:
        if self.nsqd:
            self.nsqd.stop()

    def stop(self) -> None:
        self.stop_nsqd()
        if self.lookupd:
            self.lookupd.stop()

    @property
    def nsqd_api(self) -> str:
        """The address of nsqd's HTTP API the services use: its HTTPS port with ``tls``."""
        return f"127.0.0.1:{self.nsqd_https if self.tls else self.nsqd_http}"

    def get(self, path: str) -> str:
        """nsqd's answer to GET ``path``, asked as the services ask."""
        url = nsqd_url(self.nsqd_api, path, self.client_tls)
        with urllib.request.urlopen(url, timeout=2, context=self.client_tls) as reply:
            return reply.read().decode()

    def stats(self) -> dict:
        return json.loads(self.get("/stats?format=json"))

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
            "NSQD_HTTP_ADDRESS": self.nsqd_api,
            **(self.tls.nsq_env() if self.tls else {}),
        }
