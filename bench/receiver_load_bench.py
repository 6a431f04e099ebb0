#!/usr/bin/env python3
"""Receiver under load, beside the original Go receiver: single posts from many clients.

Usage: .venv/bin/python bench/receiver_load_bench.py [--posts 2000] [--clients 1,4,16,64]
       [--rounds 2] [--original PATH]

Real MariaDB and nsqd (the test support code starts them on free loopback ports); both
receivers use the same ones, each its own database. Every post is ``POST /image/post`` of a new
path on a keep-alive connection per client thread; for each client count the two receivers are
run ``--rounds`` times, alternating which goes first, and each run sends ``--posts`` posts. A
failed request (an error, a reset connection, an answer that is not a stored and published
image) is counted, never retried; the run fails unless there are none, and unless each
database holds one row per post and nsqd one message per post. Prints posts/s of each, the
ratio ours/original, and the CPU time per post of the receiver and of receiver, MariaDB and nsqd
together (read from /proc: less sensitive than wall time to other work on the machine). The
machine may be shared: the load average is printed; compare only numbers of one run.

The original is Skarlso/kube-cluster-sample ``receiver/``, built from its source with only its
hard-coded listen address replaced (without ``--original``, only ours is measured):

    git clone https://github.com/Skarlso/kube-cluster-sample && cd kube-cluster-sample
    sed -i -e 's|ListenAndServe(":8000"|ListenAndServe(os.Getenv("RECEIVER_LISTEN")|' \\
        -e 's|"net/http"|"net/http"\\n\\t"os"|' receiver/pkg/service/service.go
    go build -o /tmp/original-receiver ./receiver/cmd     # modules from the Go module proxy

and passed as ``--original /tmp/original-receiver`` (or ``ORIGINAL_RECEIVER=...``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "apps")]

from kubeface.core import config, schema  # noqa: E402
from kubeface.core.db import Database  # noqa: E402
from kubeface.core.messages import TOPIC  # noqa: E402
from tests.support.mariadb import MariaDB  # noqa: E402
from tests.support.nsq import Nsq  # noqa: E402
from tests.support.procs import Process, free_port, wait_for  # noqa: E402
from tests.support.web import WRITE_TOKEN, WebService  # noqa: E402

# The original's table, as its database setup script creates it (what its INSERT needs).
ORIGINAL_SCHEMA = ("CREATE TABLE images (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                   "path VARCHAR(255) NOT NULL, person INT, status INT)")


@dataclass
class Run:
    seconds: float = 0.0
    posts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def ours_ok(status: int, body: bytes) -> bool:
    if status != 202:
        return False
    answer = json.loads(body)
    return answer["published"] is True and answer["already_posted"] is False


def original_ok(status: int, body: bytes) -> bool:
    # It answers 200 whatever happened; success is written in the body.
    return status == 200 and b"image sent to nsq" in body


def run(port: int, ok: Callable[[int, bytes], bool], prefix: str, posts: int,
        clients: int, pids: dict[str, int]) -> Run:
    """``posts`` new paths posted one per request from ``clients`` threads; the CPU time
    each process of ``pids`` spent meanwhile."""
    result = Run()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        failures: Counter[str] = Counter()
        latencies = []
        start.wait()
        for i in range(posts // clients):
            body = json.dumps({"path": f"{prefix}/{k}/{i}.jpg"}).encode()
            began = time.perf_counter()
            try:
                # The original takes no token and ignores the header: the same request to both.
                conn.request("POST", "/image/post", body,
                             {"Content-Type": "application/x-www-form-urlencoded",
                              "Authorization": f"Bearer {WRITE_TOKEN}"})
                reply = conn.getresponse()
                data = reply.read()
                if not ok(reply.status, data):
                    failures[f"answer {reply.status} {data[:80]!r}"] += 1
                if reply.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                failures[type(exc).__name__] += 1
                conn.close()
            latencies.append(time.perf_counter() - began)
        conn.close()
        with lock:
            result.failures.update(failures)
            result.latencies.extend(latencies)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - began
    result.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    result.posts = posts // clients * clients
    return result


def start_original(binary: str, mariadb: MariaDB, nsq: Nsq, log: Path) -> tuple[Process, int]:
    port = free_port()
    proc = Process("original receiver", [
        binary, "--db-host=127.0.0.1", f"--db-port={mariadb.port}", "--db-dbname=original",
        f"--db-username-password={mariadb.user}:{mariadb.password}",
        f"--producer-address=127.0.0.1:{nsq.nsqd_tcp}",
    ], log, env={**os.environ, "RECEIVER_LISTEN": f"127.0.0.1:{port}"}).start()
    proc.wait_port(port)
    return proc, port


def count_rows(mariadb: MariaDB, database: str) -> int:
    with mariadb.root(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM images")
        return cur.fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=2000, help="posts per run")
    parser.add_argument("--clients", default="1,4,16,64", help="client threads, one per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per receiver and count")
    parser.add_argument("--original", default=os.environ.get("ORIGINAL_RECEIVER"),
                        help="the original receiver's binary (see the module's docstring)")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="receiver-load-") as tmp:
        base = Path(tmp)
        mariadb = MariaDB(base / "mariadb").start()
        nsq = Nsq(base / "nsq").start()
        stop: list[Callable[[], object]] = [mariadb.stop, nsq.stop]
        try:
            mariadb.create_database("kube")
            env = {**mariadb.env("kube"), **nsq.env(), "UNKNOWN_PEOPLE": str(base / "unknown"),
                   "KNOWN_PEOPLE": str(base / "known")}
            db = Database(config.load(environ=env))
            schema.migrate(db)
            db.close()
            ours = WebService("receiver", env, base / "receiver.log").start()
            stop.insert(0, ours.stop)
            receivers = {"ours": (ours.port, ours_ok, "kube")}
            shared = {"mariadbd": mariadb.process.proc.pid, "nsqd": nsq.nsqd.proc.pid}
            pids = {"ours": ours.process.proc.pid}
            if args.original:
                mariadb.create_database("original")
                with mariadb.root("original") as conn, conn.cursor() as cur:
                    cur.execute(ORIGINAL_SCHEMA)
                original, port = start_original(args.original, mariadb, nsq,
                                                base / "original.log")
                stop.insert(0, original.stop)
                receivers["original"] = (port, original_ok, "original")
                pids["original"] = original.proc.pid
            print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
            expected = Counter()
            for name, (port, ok, _) in receivers.items():  # connections, pools, first queries
                warm = run(port, ok, "warmup", 64, 4, {})
                assert not warm.failures, (name, warm.failures)
                expected[name] += warm.posts
            results: dict[tuple[str, int], list[Run]] = {}
            for clients in levels:
                for r in range(args.rounds):
                    order = list(receivers) if r % 2 == 0 else list(reversed(receivers))
                    for name in order:
                        port, ok, _ = receivers[name]
                        done = run(port, ok, f"c{clients}r{r}", args.posts, clients,
                                   {"receiver": pids[name], **shared})
                        results.setdefault((name, clients), []).append(done)
                        expected[name] += done.posts - done.failures.total()
            print(f"load average after:  {os.getloadavg()[0]:.2f}")
            stored = {name: count_rows(mariadb, database)
                      for name, (_, _, database) in receivers.items()}
            with contextlib.suppress(TimeoutError):  # a mismatch is reported below
                wait_for(lambda: nsq.topic_depth(TOPIC) >= sum(expected.values()),
                         "nsqd depth", 10)
        finally:
            depth = nsq.topic_depth(TOPIC)
            for action in stop:
                action()

    print(f"\n{'clients':>7} {'receiver':>9} {'posts':>6} {'seconds':>8} {'posts/s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'CPU ms/post: receiver':>22} {'+db+nsqd':>8} "
          f"{'failed':>6}")
    failed = 0
    for clients in levels:
        for name in receivers:
            runs = results[(name, clients)]
            posts, seconds = sum(r.posts for r in runs), sum(r.seconds for r in runs)
            latencies = sorted(x for r in runs for x in r.latencies)
            failures = sum((r.failures for r in runs), Counter())
            failed += failures.total()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            mine = sum(r.cpu["receiver"] for r in runs) * 1000 / posts
            total = sum(sum(r.cpu.values()) for r in runs) * 1000 / posts
            print(f"{clients:>7} {name:>9} {posts:>6} {seconds:>8.2f} {posts / seconds:>8.0f} "
                  f"{statistics.median(latencies) * 1000:>7.1f} {p99 * 1000:>7.1f} "
                  f"{mine:>22.2f} {total:>8.2f} {failures.total():>6}  {dict(failures) or ''}")
    if "original" in receivers:
        print("\nours / original (posts/s):")
        for clients in levels:
            rate = {name: sum(r.posts for r in results[(name, clients)])
                    / sum(r.seconds for r in results[(name, clients)]) for name in receivers}
            print(f"  {clients:>3} client(s): {rate['ours'] / rate['original']:.2f}x")
    consistent = stored == dict(expected) and depth == sum(expected.values())
    print(f"\nrows stored {stored}, posts answered as stored {dict(expected)}; nsqd topic "
          f"{TOPIC!r} depth {depth}: {'consistent' if consistent else 'MISMATCH'}")
    print(f"failed requests: {failed}")
    return 0 if consistent and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
