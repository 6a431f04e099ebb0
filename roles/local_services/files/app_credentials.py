"""Generate, once, the credentials of the receiver and the frontend into SECRETS_DIR, and keep
them: a write token, a read token, the session key, the password of the frontend user ``admin``
and its ``admin:<argon2 hash>`` entry (made again only when it no longer matches the password).

Each is a 0600 file; nothing is printed but the names of the files written, one per line.
"""

import os
import sys
from pathlib import Path

from kubeface.core import auth

ADMIN = "admin"


def _write(path: Path, value: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    print(path.name)


def _keep_or_make(path: Path, make) -> str:
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    value = make()
    _write(path, value)
    return value


def main(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("api_write_token", "api_read_token", "frontend_session_key"):
        _keep_or_make(folder / name, auth.new_secret)
    password = _keep_or_make(folder / "frontend_admin_password", lambda: auth.new_secret(18))
    entry = folder / "frontend_users"
    current = entry.read_text().strip() if entry.is_file() else ""
    name, _, hashed = current.partition(":")
    if name != ADMIN or not auth.Users([(ADMIN, hashed)]).verify(ADMIN, password):
        _write(entry, f"{ADMIN}:{auth.hash_password(password)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
