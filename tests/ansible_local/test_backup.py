"""Backup and restore on the local target, the whole round trip: deploy (the smoke test posts
the samples, enrolment ran), back up with the photos, tear down removing the data, deploy a fresh
target, restore, and find every row of every table back, with the frontend showing the images
and their people."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import urllib3

from tests.support.local_target import Target, scratch_target
from tests.support.web import log_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def contents(target: Target) -> dict[str, list[dict]]:
    """Every row of every table of the deployment's database, in primary-key order."""
    conn = pymysql.connect(host="127.0.0.1", port=target.ports["mysql"], user="kubeface",
                           password=target.password("kubeface"), database="kube",
                           connect_timeout=5, cursorclass=pymysql.cursors.DictCursor)
    tables: dict[str, list[dict]] = {}
    with conn, conn.cursor() as cur:
        cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        for name in [next(iter(row.values())) for row in cur.fetchall()]:
            cur.execute(f"SELECT * FROM `{name}` ORDER BY 1")
            tables[name] = list(cur.fetchall())
    return tables


def frontend_page(target: Target) -> str:
    """The table as the admin sees it: over HTTPS verified by the deployment's CA, logged in
    with the generated password."""
    http = urllib3.PoolManager(retries=False, timeout=10,
                               ca_certs=str(target.data / "tls" / "ca.crt"))
    site = f"https://127.0.0.1:{target.ports['frontend']}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if http.request("GET", site + "/healthz").status == 200:
                break
        except urllib3.exceptions.HTTPError:
            pass
        assert time.monotonic() < deadline, "the frontend did not answer /healthz"
        time.sleep(1)
    session = log_in(http, site, "admin", target.password("frontend_admin_password"))
    page = http.request("GET", site + "/", headers={"Cookie": f"kubeface_session={session}"})
    assert page.status == 200, page.status
    return page.data.decode()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with scratch_target(tmp_path_factory.mktemp("ansible_backup")) as target:
        yield target


def test_backup_teardown_deploy_restore_brings_everything_back(target: Target, tmp_path):
    target.play("deploy", "site.yml")
    before = contents(target)
    assert len(before["images"]) >= 2 and before["person"], "the smoke test posted nothing"
    assert {row["status"] for row in before["images"]} - {"pending", "processing"}
    photos = sorted(p.name for p in (target.data / "known_people").iterdir())

    backups = tmp_path / "backups"
    target.play("backup", "playbooks/backup.yml", "-e", f"kube_face_backup_dir={backups}",
                "-e", "kube_face_backup_photos=true")
    (backup,) = backups.glob("kube-face-local-*.tar.gz")
    assert backup.stat().st_mode & 0o777 == 0o600
    with tarfile.open(backup) as archive:
        names = archive.getnames()
    assert "./database.sql" in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if "/known_people/" in n) == photos
    for user in ("kubeface", "kubeface_migrate"):
        assert target.password(user) not in target.runs["backup"].stdout

    target.play("teardown", "teardown.yml", "-e", "kube_face_local_remove_data=true")
    assert not target.data.exists()
    target.play("redeploy", "site.yml", "-e", "kube_face_local_smoke_test=false")
    fresh = contents(target)
    assert fresh["images"] == [] and fresh["faces"] == []  # nothing but what enrolment wrote
    for photo in (target.data / "known_people").iterdir():
        photo.unlink()  # the restore must bring the photos back too

    target.play("restore", "playbooks/restore.yml", "-e", f"backup={backup}")
    assert contents(target) == before
    assert sorted(p.name for p in (target.data / "known_people").iterdir()) == photos
    status = target.supervisorctl("status").stdout.splitlines()
    assert all(" RUNNING " in line for line in status), status
    page = frontend_page(target)
    for image in before["images"]:
        assert image["path"] in page, image["path"]
    people = {row["id"]: row["name"] for row in before["person"]}
    shown = {people[row["person_id"]] for row in before["images"] if row["person_id"]}
    assert shown and all(name in page for name in shown), shown


def test_restore_refuses_a_file_that_is_not_a_backup(target: Target, tmp_path):
    bogus = tmp_path / "bogus.tar.gz"
    with tarfile.open(bogus, "w:gz") as archive:
        note = tmp_path / "note.txt"
        note.write_text("not a dump")
        archive.add(note, arcname="note.txt")
    with pytest.raises(AssertionError, match=r"not a backup of playbooks/backup\.yml"):
        target.play("restore-bogus", "playbooks/restore.yml", "-e", f"backup={bogus}")
    with pytest.raises(AssertionError, match="no backup file"):
        target.play("restore-missing", "playbooks/restore.yml", "-e",
                    f"backup={Path(tmp_path) / 'missing.tar.gz'}")
