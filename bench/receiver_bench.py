#!/usr/bin/env python3
"""Receiver benchmark: paths accepted per second, one per request against bulk posts.

Usage: .venv/bin/python bench/receiver_bench.py [--single 1000] [--clients 1,4] [--bulk 100,1000]
       [--bulk-paths 10000]

Real MariaDB, nsqd/nsqlookupd and ``kubeface receiver`` as processes on free loopback ports
(the test support code starts them). Every path is new, so each is stored as a pending row and
its id published: single posts are ``POST /image/post`` one after another on keep-alive
connections (from 1 and from several client threads); bulk posts are ``POST /images/post`` with
100 and 1000 paths (one transaction, one multi-row INSERT, one nsqd ``/mpub`` each). Every
answer is checked (202 and an id per path) and, at the end, nsqd's topic depth must equal the
number of paths posted. Prints paths/s and the ratio of each to single posts from one client
(target: bulk at least 20x). The machine is shared: the load average is printed before and
after, and only ratios within one run are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "apps")]

import urllib3  # noqa: E402

from kubeface.core import config, schema  # noqa: E402
from kubeface.core.db import Database  # noqa: E402
from kubeface.core.messages import TOPIC  # noqa: E402
from tests.support.mariadb import MariaDB  # noqa: E402
from tests.support.nsq import Nsq  # noqa: E402
from tests.support.web import WRITE_TOKEN, WebService  # noqa: E402


def _post(http: urllib3.PoolManager, url: str, payload: dict) -> dict:
    r = http.request("POST", url, body=json.dumps(payload).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded",
                              "Authorization": f"Bearer {WRITE_TOKEN}"})
    if r.status != 202:
        raise RuntimeError(f"{url} answered {r.status}: {r.data[:300]!r}")
    return json.loads(r.data)


def run_single(base: str, prefix: str, count: int, clients: int) -> float:
    """Seconds to post ``count`` new paths one per request from ``clients`` threads."""
    per_client = count // clients
    errors: list[BaseException] = []

    def client(k: int) -> None:
        http = urllib3.PoolManager(maxsize=1, retries=False)
        try:
            for i in range(per_client):
                answer = _post(http, base + "/image/post", {"path": f"{prefix}/{k}/{i}.jpg"})
                assert answer["already_posted"] is False and answer["published"] is True
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def run_bulk(base: str, prefix: str, total: int, size: int) -> float:
    http = urllib3.PoolManager(maxsize=1, retries=False)
    started = time.perf_counter()
    for b in range(total // size):
        answer = _post(http, base + "/images/post", {"paths": [
            {"path": f"{prefix}/{b}/{i}.jpg"} for i in range(size)]})
        assert answer["accepted"] == size and answer["published"] is True
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--single", type=int, default=1000, help="single posts per row")
    parser.add_argument("--clients", default="1,4", help="client threads for single posts")
    parser.add_argument("--bulk", default="100,1000", help="paths per bulk post")
    parser.add_argument("--bulk-paths", type=int, default=10000, help="paths per bulk row")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="receiver-bench-") as tmp:
        base = Path(tmp)
        mariadb = MariaDB(base / "mariadb").start()
        nsq = Nsq(base / "nsq").start()
        receiver = None
        try:
            mariadb.create_database("kube")
            env = {**mariadb.env("kube"), **nsq.env(), "UNKNOWN_PEOPLE": str(base / "unknown"),
                   "KNOWN_PEOPLE": str(base / "known"), "LOG_LEVEL": "WARNING"}
            db = Database(config.load(environ=env))
            schema.migrate(db)
            db.close()
            receiver = WebService("receiver", env, base / "receiver.log").start()
            url = receiver.url
            print(f"load average before: {os.getloadavg()[0]:.2f} "
                  f"({os.cpu_count()} CPUs)")
            run_single(url, "warmup", 50, 1)  # connections, pools, first-query costs
            posted = 50
            rows: list[tuple[str, int, int, float]] = []
            for clients in (int(c) for c in args.clients.split(",")):
                seconds = run_single(url, f"single{clients}", args.single, clients)
                n = args.single // clients * clients
                rows.append((f"single, {clients} client(s)", n, n, seconds))
                posted += n
            for size in (int(s) for s in args.bulk.split(",")):
                total = max(size, args.bulk_paths // size * size)
                seconds = run_bulk(url, f"bulk{size}", total, size)
                rows.append((f"bulk of {size}, 1 client", total // size, total, seconds))
                posted += total
            depth = nsq.topic_depth(TOPIC)
            print(f"load average after:  {os.getloadavg()[0]:.2f}")
        finally:
            if receiver is not None:
                receiver.stop()
            nsq.stop()
            mariadb.stop()

    baseline = rows[0][2] / rows[0][3]
    print(f"\n{'mode':<26}{'requests':>9}{'paths':>8}{'seconds':>9}{'paths/s':>10}"
          f"{'vs single':>11}")
    for mode, requests, paths, seconds in rows:
        rate = paths / seconds
        print(f"{mode:<26}{requests:>9}{paths:>8}{seconds:>9.2f}{rate:>10.0f}"
              f"{rate / baseline:>10.1f}x")
    print(f"\nnsqd topic {TOPIC!r} depth {depth}, paths posted {posted}: "
          f"{'every id published once' if depth == posted else 'MISMATCH'}")
    return 0 if depth == posted else 1


if __name__ == "__main__":
    sys.exit(main())
