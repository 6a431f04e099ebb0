"""``kubeface post PATH...``: post image files and folders to the receiver, wait for their
results, and say who was found where.

Folders are walked recursively for image files (:data:`IMAGE_SUFFIXES`). Every file must be
inside UNKNOWN_PEOPLE, the folder the services read posted images from; the paths are posted
relative to it through the receiver's bulk endpoint, ``--batch`` at a time. With ``--wait`` (the
default) each image is followed until it has a final status, with a progress bar, and the
command ends with a table: each person found and in how many images, the count per status, and
every failure with its reason. ``--json`` prints the same as one JSON document instead. The exit
code is 0 when every image got a result, 1 when any failed (or is still unsettled at
``--timeout``) and when the receiver cannot be reached.

The receiver's token (a write token of API_TOKENS) comes from ``--token-file`` or the
KUBEFACE_TOKEN environment variable, never from the command line, where ``ps`` would show it.
An ``https://`` receiver is verified against ``--cacert`` (the deployment's private CA), else
against the system's CAs; the default URL is https:// when TLS_CERT_FILE is set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from rich.console import Console
from rich.table import Table

from kubeface.core.config import Settings
from kubeface.core.known_people import IMAGE_SUFFIXES
from kubeface.core.statuses import TERMINAL, Status
from kubeface.progress import bars as progress_bars

FINAL = {s.value for s in TERMINAL}


class Unreachable(Exception):
    """The receiver did not answer: the message says what and where."""


@dataclass
class Outcome:
    """Every image of one run: what the receiver said, and the failures found before posting."""

    images: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> the image's JSON
    rejected: list[dict[str, str]] = field(default_factory=list)  # {"path", "error"}

    def failures(self) -> list[dict[str, Any]]:
        found = [dict(r) for r in self.rejected]
        for image in self.images.values():
            if image["status"] == Status.FAILED.value:
                found.append({"path": image["path"], "error": image.get("error") or "failed"})
            elif image["status"] not in FINAL:
                found.append({"path": image["path"],
                              "error": f"still {image['status']} when the wait ended"})
        return found

    def people(self) -> dict[str, int]:
        counts = Counter(i["person"] for i in self.images.values() if i.get("person"))
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def counts(self) -> dict[str, int]:
        return dict(Counter(i["status"] for i in self.images.values()))

    def as_json(self) -> dict[str, Any]:
        return {
            "images": [{k: image.get(k) for k in ("id", "path", "status", "person",
                                                   "face_count", "error")}
                       for image in self.images.values()],
            "people": self.people(), "counts": self.counts(), "failures": self.failures(),
        }


def collect(paths: list[Path], root: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The image files under ``paths``, relative to ``root``; and the paths that are refused."""
    root = root.resolve()
    found: dict[str, None] = {}  # ordered, no duplicates
    refused: list[dict[str, str]] = []
    for given in paths:
        if given.is_dir():
            files = sorted(p for p in given.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                refused.append({"path": str(given), "error": "no image files in this folder"})
        elif given.is_file():
            if given.suffix.lower() not in IMAGE_SUFFIXES:
                refused.append({"path": str(given), "error": "not an image file name ("
                                + ", ".join(sorted(IMAGE_SUFFIXES)) + ")"})
                continue
            files = [given]
        else:
            refused.append({"path": str(given), "error": "no such file or folder"})
            continue
        for file in files:
            try:
                found[file.resolve().relative_to(root).as_posix()] = None
            except ValueError:
                refused.append({"path": str(file), "error": f"outside UNKNOWN_PEOPLE ({root}): "
                                "the services read posted images only from there"})
    return list(found), refused


TOKEN_VARIABLE = "KUBEFACE_TOKEN"  # noqa: S105 (a variable name)


class Receiver:
    def __init__(self, url: str, timeout: float = 30.0, token: str | None = None,
                 cacert: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=timeout),
                                        retries=urllib3.Retry(total=3, connect=3, read=0,
                                                              status=0, backoff_factor=0.5),
                                        ca_certs=str(cacert) if cacert else None)

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            reply = self.http.request(method, self.url + path,
                                      body=None if body is None else json.dumps(body),
                                      headers=self.headers)
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unreachable(f"cannot reach the receiver at {self.url} ({reason})") from None
        if reply.status in (401, 403):
            hint = ("set KUBEFACE_TOKEN or --token-file to a write token of the receiver "
                    "(README: Security)") if "Authorization" not in self.headers else \
                "the token is not a write token of this receiver (API_TOKENS)"
            raise Unreachable(f"the receiver at {self.url} answered {reply.status}: {hint}")
        try:
            return reply.status, json.loads(reply.data or b"null")
        except ValueError:
            raise Unreachable(f"the receiver at {self.url} answered {reply.status} with "
                              "something that is not JSON: is that the receiver?") from None

    def post(self, paths: list[str]) -> list[dict[str, Any]]:
        status, body = self._call("POST", "/images/post",
                                  {"paths": [{"path": p} for p in paths]})
        if status not in (200, 202):
            message = body.get("error") if isinstance(body, dict) else body
            raise Unreachable(f"the receiver at {self.url} refused the post ({status}): "
                              f"{message}")
        return body["images"]

    def image(self, image_id: int) -> dict[str, Any]:
        status, body = self._call("GET", f"/images/{image_id}")
        if status != 200:
            raise Unreachable(f"the receiver at {self.url} answered {status} for image "
                              f"{image_id}")
        return body


def run(receiver: Receiver, files: list[str], batch: int, wait: bool, timeout: float,
        poll: float, console: Console, quiet: bool) -> Outcome:
    outcome = Outcome()
    with progress_bars(console, disable=quiet) as progress:
        posting = progress.add_task("posting", total=len(files))
        for start in range(0, len(files), batch):
            for image in receiver.post(files[start:start + batch]):
                outcome.images[image["id"]] = image
            progress.advance(posting, min(batch, len(files) - start))
        if not wait:
            return outcome
        waiting = progress.add_task("recognising",
                                    total=len(outcome.images))
        open_ids = [i for i, image in outcome.images.items() if image["status"] not in FINAL]
        progress.update(waiting, completed=len(outcome.images) - len(open_ids))
        deadline = time.monotonic() + timeout
        # Already-settled repeats count at once; the others are asked for until they settle.
        while open_ids and time.monotonic() < deadline:
            still = []
            for image_id in open_ids:
                image = receiver.image(image_id)
                outcome.images[image_id] = image
                if image["status"] in FINAL:
                    progress.advance(waiting)
                else:
                    still.append(image_id)
            open_ids = still
            if open_ids:
                time.sleep(poll)
        for image_id, image in list(outcome.images.items()):
            if "error" not in image:  # a repeat that was final when posted: its details
                outcome.images[image_id] = receiver.image(image_id)
    return outcome


def report(outcome: Outcome, console: Console) -> None:
    people = Table(title="People found", title_justify="left")
    people.add_column("person")
    people.add_column("images", justify="right")
    for person, count in outcome.people().items():
        people.add_row(person, str(count))
    if not outcome.people():
        people.add_row("(nobody known)", "0")
    console.print(people)
    counts = Table(title="Images by status", title_justify="left")
    counts.add_column("status")
    counts.add_column("images", justify="right")
    for status, count in sorted(outcome.counts().items()):
        counts.add_row(status, str(count))
    console.print(counts)
    failures = outcome.failures()
    if failures:
        table = Table(title=f"Failures ({len(failures)})", title_justify="left")
        table.add_column("path")
        table.add_column("reason")
        for failure in failures:
            table.add_row(failure["path"], failure["error"])
        console.print(table)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="image files or folders (searched recursively), in UNKNOWN_PEOPLE")
    parser.add_argument("--receiver", help="receiver URL (default: http://127.0.0.1:"
                                           "RECEIVER_PORT, https:// when TLS_CERT_FILE is set)")
    parser.add_argument("--cacert", type=Path,
                        help="CA certificate an https:// receiver is verified against (the "
                             "deployment's ca.crt; default: the system's CAs)")
    parser.add_argument("--token-file", type=Path,
                        help=f"file holding the receiver's write token (default: "
                             f"${TOKEN_VARIABLE})")
    parser.add_argument("--batch", type=int, default=500,
                        help="paths per bulk post (default 500)")
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                        help="follow the images until each has a result (default: on)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for the results (default 600)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: when the output is a terminal)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document instead of progress and tables")


def main(settings: Settings, args: argparse.Namespace) -> int:
    if not 1 <= args.batch <= settings.receiver_max_paths:
        print(f"kubeface post: --batch must be from 1 to {settings.receiver_max_paths} "
              "(RECEIVER_MAX_PATHS)", file=sys.stderr)
        return 2
    scheme = "https" if settings.tls_cert_file else "http"
    url = args.receiver or f"{scheme}://127.0.0.1:{settings.receiver_port}"
    if args.cacert and not args.cacert.is_file():
        print(f"kubeface post: --cacert {str(args.cacert)!r} is not a file", file=sys.stderr)
        return 2
    try:
        token = (args.token_file.read_text().strip() if args.token_file
                 else os.environ.get(TOKEN_VARIABLE, "").strip())
    except OSError as exc:
        print(f"kubeface post: cannot read --token-file: {exc.strerror}", file=sys.stderr)
        return 2
    # Connection retries are this command's business: its one-line error says what failed.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    files, refused = collect(args.paths, settings.unknown_people)
    # Progress and tables go to stderr when the JSON document takes stdout.
    console = Console(stderr=args.json, highlight=False)
    show = console.is_terminal if args.progress is None else args.progress
    quiet = args.json or not show
    outcome = Outcome(rejected=refused)
    if files:
        try:
            receiver = Receiver(url, token=token or None, cacert=args.cacert)
            posted = run(receiver, files, args.batch, args.wait, args.timeout, 1.0, console,
                         quiet)
        except Unreachable as exc:
            print(f"kubeface post: {exc}", file=sys.stderr)
            return 1
        outcome.images = posted.images
    if args.json:
        print(json.dumps(outcome.as_json(), ensure_ascii=False, indent=2))
    elif args.wait:
        report(outcome, console)
    else:
        console.print(f"posted {len(outcome.images)} image(s); not waiting for the results")
        for failure in outcome.rejected:
            console.print(f"refused: {failure['path']}: {failure['error']}")
    if not files and not refused:
        return 1
    if args.wait:
        return 1 if outcome.failures() else 0
    return 1 if outcome.rejected else 0
