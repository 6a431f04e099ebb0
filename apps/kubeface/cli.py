"""The ``kubeface`` command: one entry point for every service and job.

``kubeface <command> [options]``; each command's module is imported only when it runs (the face
service alone loads dlib). A configuration error ends the command with one line on stderr that
names the variable, and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import kubeface
from kubeface.core import auth, config, log
from kubeface.core.db import UNAVAILABLE

# command -> (module, one-line description). Each module has main(settings, args) and may have
# add_arguments(parser).
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("kubeface.core.schema", "apply the database schema migrations"),
    "enrol": ("kubeface.enrol", "record the known people in the database"),
    "face-service": ("kubeface.face.server", "serve face recognition over gRPC (:50051)"),
    "processor": ("kubeface.processor.main", "consume image ids from NSQ and recognise them"),
    "receiver": ("kubeface.receiver.app", "accept image paths over HTTP (:8000)"),
    "frontend": ("kubeface.frontend.app", "show the Persons of Interest table (:8081)"),
    "retry": ("kubeface.retry", "re-publish images that failed or got stuck"),
    "post": ("kubeface.cli_post", "post image files or folders and wait for who is in them"),
    "hash-password": ("kubeface.hash_password",
                      "print an argon2 hash of a password read from stdin (FRONTEND_USERS)"),
}
ALIASES = {"enroll": "enrol"}


def _usage() -> str:
    lines = ["usage: kubeface <command> [options]   (kubeface --version)", "", "commands:"]
    lines += [f"  {name:<14}{desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    if argv[0] in {"-V", "--version"}:
        print(f"kubeface {kubeface.__version__}")
        return 0
    name = ALIASES.get(argv[0], argv[0])
    if name not in COMMANDS:
        print(f"kubeface: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, description = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"kubeface {name}", description=description)
    module = importlib.import_module(module_name)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        settings = config.load()
        log.setup(settings.log_level, settings.log_format, service=name,
                  secrets=auth.secrets_of(settings))
        return int(module.main(settings, args) or 0)
    except config.ConfigError as exc:
        print(f"kubeface {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    except UNAVAILABLE as exc:
        print(f"kubeface {name}: {unreachable_database(settings, exc)}", file=sys.stderr)
        return 1


def unreachable_database(settings: config.Settings, exc: BaseException) -> str:
    """One line: which database could not be used, and the server's or driver's reason."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
    return (f"cannot use the database {settings.mysql_dbname} at {settings.mysql_host}:"
            f"{settings.mysql_port} ({reason})")


if __name__ == "__main__":
    sys.exit(main())
