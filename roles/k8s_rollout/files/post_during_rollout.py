#!/usr/bin/env python3
"""Post to the receiver continuously while a rollout runs, and count the requests that failed.

Started in the background by rolling_update.yml; it stops when the stop file appears (or after
--max-seconds) and prints one JSON summary: requests sent, answered 2xx, failed (any other
answer, a refused or reset connection, a timeout), the failures by kind and the first few.
Standard library only: it runs with the Python that runs Ansible.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path


def post(url: str, body: bytes, timeout: float, context: ssl.SSLContext | None = None,
         token: str = "") -> str:
    """``ok`` for a 2xx answer, else what went wrong (``http 503``, ``ConnectionRefusedError``)."""
    # The article's curl call: a JSON body sent as a form (curl -d's default content type).
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 (main() accepts http and https URLs only)
        url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout,  # noqa: S310
                                    context=context) as answer:
            answer.read()
            return "ok" if 200 <= answer.status < 300 else f"http {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"http {exc.code}"
    except urllib.error.URLError as exc:
        return type(exc.reason).__name__ if isinstance(exc.reason, Exception) else str(exc.reason)
    except (OSError, ValueError) as exc:
        return type(exc).__name__


def run(url: str, path: str, stop_file: Path, interval: float, max_seconds: float,
        timeout: float, context: ssl.SSLContext | None = None, token: str = "") -> dict:
    body = json.dumps({"path": path}).encode()
    outcomes: Counter[str] = Counter()
    first_failures: list[str] = []
    started = time.monotonic()
    while not stop_file.exists() and time.monotonic() - started < max_seconds:
        outcome = post(url, body, timeout, context, token)
        outcomes[outcome] += 1
        if outcome != "ok" and len(first_failures) < 10:
            first_failures.append(f"{time.monotonic() - started:.1f}s: {outcome}")
        time.sleep(interval)
    sent = sum(outcomes.values())
    return {
        "sent": sent,
        "ok": outcomes["ok"],
        "failed": sent - outcomes["ok"],
        "failures": {k: v for k, v in outcomes.items() if k != "ok"},
        "first_failures": first_failures,
        "seconds": round(time.monotonic() - started, 1),
        "stopped_by": "stop file" if stop_file.exists() else "max seconds",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True,
                        help="receiver base URL, e.g. http://192.168.49.2:30800")
    parser.add_argument("--path", required=True,
                        help="image path to post (relative to UNKNOWN_PEOPLE)")
    parser.add_argument("--stop-file", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between two posts")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--timeout", type=float, default=5, help="seconds one request may take")
    parser.add_argument("--cacert", default="",
                        help="CA certificate an https:// receiver is verified against")
    parser.add_argument("--token-file", type=Path,
                        help="file holding the receiver's write token (API_TOKENS)")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        parser.error(f"--url must be an http:// or https:// URL, got {args.url!r}")
    context = ssl.create_default_context(cafile=args.cacert) if args.cacert else None
    token = args.token_file.read_text().strip() if args.token_file else ""
    summary = run(args.url.rstrip("/") + "/image/post", args.path, args.stop_file,
                  args.interval, args.max_seconds, args.timeout, context, token)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
