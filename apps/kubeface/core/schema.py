"""Ordered, idempotent schema migrations: ``kubeface migrate``.

Migrations are the files ``core/migrations/NNNN_name.sql``, applied in order; each applied one
is recorded with its checksum in ``schema_migrations``, so a second run does nothing and an
edited, already-applied migration is refused rather than silently diverging. Two processes
migrating at once (two pods starting) serialise on a named lock.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from kubeface.core.config import Settings
from kubeface.core.db import Database, named_lock

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK = "kubeface.migrate"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT UNSIGNED NOT NULL,
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


class MigrationError(RuntimeError):
    """The database's recorded migrations disagree with the files."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """Of the statements only, so that editing a comment is not a schema change."""
        return hashlib.sha256("\n;\n".join(self.statements()).encode()).hexdigest()

    def statements(self) -> list[str]:
        """The statements of the file: separated by lines ending in ``;``, comments dropped."""
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in version order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def migrate(db: Database, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the migrations the database lacks; returns those applied (none on a second run)."""
    applied: list[Migration] = []
    # One transaction around it all: MySQL commits each DDL statement implicitly anyway, and the
    # final commit covers the last bookkeeping row.
    with db.transaction() as conn, named_lock(conn, _LOCK, 60) as got:
        if not got:
            raise MigrationError("another migration holds the lock for over 60 s")
        conn.query(_BOOKKEEPING)
        done = {
            r.version: r.checksum
            for r in conn.query("SELECT version, checksum FROM schema_migrations").all()
        }
        for migration in migrations(directory):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed "
                        "after it was applied: add a new migration instead"
                    )
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            # DDL cannot be rolled back in MySQL: the files are written to be re-runnable
            # should a run stop half-way.
            for statement in migration.statements():
                conn.query(statement)
            conn.query(
                "INSERT INTO schema_migrations (version, name, checksum)"
                " VALUES (:v, :n, :c)",
                v=migration.version, n=migration.name, c=migration.checksum,
            )
            applied.append(migration)
    return applied


def init_sql(directory: Path = MIGRATIONS_DIR) -> str:
    """All migrations as one SQL script that also records them as applied: for a MySQL
    container's ``/docker-entrypoint-initdb.d``, so a later ``kubeface migrate`` agrees."""
    parts = [_BOOKKEEPING.strip() + ";"]
    for m in migrations(directory):
        parts.extend(s + ";" for s in m.statements())
        parts.append(
            "INSERT IGNORE INTO schema_migrations (version, name, checksum) VALUES "
            f"({m.version}, '{m.name}', '{m.checksum}');"
        )
    return "\n\n".join(parts) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-sql", action="store_true",
        help="print the whole schema as one init script instead of applying it",
    )


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.print_sql:
        print(init_sql(), end="")
        return 0
    db = Database(settings)
    try:
        applied = migrate(db)
    finally:
        db.close()
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "none (up to date)"
    log.info("migrations applied: %s", names)
    return 0
