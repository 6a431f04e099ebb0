"""Migrations against a real MariaDB: idempotent, in step with the code, constraints enforced."""

import subprocess
import sys

import pytest
import sqlalchemy.exc

from kubeface.core import schema
from kubeface.core.db import Database
from kubeface.core.statuses import TERMINAL, Status


def table_definitions(db: Database) -> dict[str, str]:
    names = [r[0] for r in db.query("SHOW TABLES")]
    return {n: db.query(f"SHOW CREATE TABLE `{n}`")[0][1] for n in names}


def test_migrations_run_twice_leave_the_schema_unchanged(db):
    before = table_definitions(db)
    assert {"person", "person_images", "images", "faces", "schema_migrations"} <= set(before)
    assert schema.migrate(db) == []
    assert table_definitions(db) == before


def test_the_migrate_command_applies_then_does_nothing(service_env, mariadb, database_name):
    env = {**service_env, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "kubeface", "migrate"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "0001_initial" in first.stderr
    assert second.returncode == 0 and "none (up to date)" in second.stderr
    # The password is never in the output.
    assert mariadb.password not in first.stderr + second.stderr


def test_status_column_matches_the_code(db):
    column = db.query(
        "SELECT COLUMN_TYPE AS t FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'images' AND COLUMN_NAME = 'status'"
    )[0].t
    assert column == "enum(" + ",".join(f"'{s.value}'" for s in Status) + ")"
    assert Status.PENDING not in TERMINAL and Status.PROCESSING not in TERMINAL


def test_person_images_refers_to_a_real_person(db):
    # A person's image that names no person is impossible: a foreign key refuses it.
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        db.execute("INSERT INTO person_images (image_name, person_id) VALUES ('x.jpg', 12345)")


def test_an_image_path_is_unique_and_status_starts_pending(db):
    db.execute("INSERT INTO images (path) VALUES ('a/b.jpg')")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        db.execute("INSERT INTO images (path) VALUES ('a/b.jpg')")
    row = db.query("SELECT status, attempts FROM images WHERE path = 'a/b.jpg'")[0]
    assert (row.status, row.attempts) == ("pending", 0)


def test_a_long_path_is_stored_and_unique(db):
    long_path = "d/" * 400 + "x.jpg"  # 805 characters: longer than an index on the path allows
    db.execute("INSERT INTO images (path) VALUES (:p)", p=long_path)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        db.execute("INSERT INTO images (path) VALUES (:p)", p=long_path)


def test_a_failed_transaction_rolls_back_and_raises(db):
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.query("INSERT INTO person (name) VALUES ('Rolled Back')")
        raise RuntimeError("boom")
    assert db.query("SELECT COUNT(*) AS n FROM person")[0].n == 0


def test_an_edited_applied_migration_is_refused(db, tmp_path):
    for m in schema.migrations():
        sql = m.sql.replace("name VARCHAR(255) NOT NULL,", "name VARCHAR(200) NOT NULL,", 1)
        (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(sql)
    with pytest.raises(schema.MigrationError, match="0001_initial was changed after it was"):
        schema.migrate(db, tmp_path)


def test_an_edited_comment_is_not_a_schema_change(db, tmp_path):
    for m in schema.migrations():
        (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text("-- a new comment\n" + m.sql)
    assert schema.migrate(db, tmp_path) == []


def test_a_new_migration_is_applied_once(db, tmp_path):
    for m in schema.migrations():
        (tmp_path / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    (tmp_path / "0999_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS extra (id INT PRIMARY KEY);\n"
    )
    assert [m.name for m in schema.migrate(db, tmp_path)] == ["extra"]
    assert schema.migrate(db, tmp_path) == []


def test_init_sql_matches_the_migrate_command(mariadb, settings, database_name):
    """The MySQL container's init script and `kubeface migrate` build the same schema."""
    with mariadb.root(database_name) as conn, conn.cursor() as cur:
        for statement in schema.init_sql().split(";\n"):
            if statement.strip():
                cur.execute(statement)
    db = Database(settings)
    try:
        assert schema.migrate(db) == []  # everything already recorded as applied
        assert {"person", "person_images", "images", "faces"} <= set(table_definitions(db))
    finally:
        db.close()
