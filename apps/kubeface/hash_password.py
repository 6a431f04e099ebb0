"""``kubeface hash-password``: an argon2id hash for FRONTEND_USERS, of a password read from
standard input (never from the command line, where ``ps`` shows it to every local user).

At a terminal it asks twice without echo; otherwise it reads the first line of the input:
``kubeface hash-password < file`` or ``printf %s "$PW" | kubeface hash-password``.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from kubeface.core import auth, config
from kubeface.core.config import Settings

MIN_LENGTH = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="print name:hash, an entry of FRONTEND_USERS")


def _read() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def main(_settings: Settings, args: argparse.Namespace) -> int:
    if args.name is not None and not (1 <= len(args.name) <= 64
                                      and set(args.name) <= config.USER_CHARS):
        print("kubeface hash-password: --name takes 1 to 64 of A-Z a-z 0-9 . _ @ -",
              file=sys.stderr)
        return 2
    try:
        password = _read()
    except ValueError as exc:
        print(f"kubeface hash-password: {exc}", file=sys.stderr)
        return 2
    if len(password) < MIN_LENGTH:
        print(f"kubeface hash-password: a password needs at least {MIN_LENGTH} characters",
              file=sys.stderr)
        return 2
    hashed = auth.hash_password(password)
    print(f"{args.name}:{hashed}" if args.name else hashed)
    return 0
