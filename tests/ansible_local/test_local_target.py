"""The local Ansible target end to end: site.yml -i inventory/local on a scratch data directory
and free ports (never the defaults, so a real quick start on this machine is left alone).

Few playbook runs, shared by the module (each takes minutes on two cores): check mode before
anything exists, the deployment (which ends with the smoke test), a second run and a check-mode
run that must change nothing, then teardown keeping the data and teardown removing it.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.support import tls
from tests.support.local_target import (
    Target,
    alive,
    changed_tasks,
    gone,
    scratch_target,
    task_result,
    tasks,
)
from tests.support.nsq import ERROR, tcp_command
from tests.support.procs import VENV_BIN, port_open

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

PROGRAMS = {"mariadb", "nsqlookupd", "nsqd", "face-service", "processor", "receiver", "frontend",
            "retry"}
# The services whose logs are kube-face's own (LOG_FORMAT=json): one JSON object per line.
JSON_LOGS = ("face-service", "processor", "receiver", "frontend", "retry")
# Deployed by root, every program runs as this system user (kube_face_local_service_user).
SERVICE_USER = "kube-face"
AS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with scratch_target(tmp_path_factory.mktemp("ansible_local")) as target:
        yield target


@pytest.fixture(scope="module")
def fresh_check(target: Target) -> dict:
    """Check mode before the first deployment: it must run through and write nothing."""
    return target.play("check-fresh", "site.yml", "--check")


@pytest.fixture(scope="module")
def first(target: Target, fresh_check: dict) -> dict:
    return target.play("first", "site.yml")


@pytest.fixture(scope="module")
def second(target: Target, first: dict) -> dict:
    return target.play("second", "site.yml")


@pytest.fixture(scope="module")
def check(target: Target, second: dict) -> dict:
    return target.play("check", "site.yml", "--check")


def test_check_mode_before_anything_exists_writes_nothing(target, fresh_check):
    assert not target.data.exists()


def test_first_run_deploys_everything_and_the_smoke_test_passes(target, first):
    expected = json.loads((target.data / "unknown_people" / "expected.json").read_text())
    table = task_result(first, "Smoke test | Show the results")["msg"]
    assert len(table) == len(expected) + 1, table
    rows = {line.split()[1]: line for line in table[1:]}
    assert set(rows) == set(expected)
    for name, want in expected.items():
        assert rows[name].endswith("  ok"), rows[name]
        assert f" {want['status']} " in rows[name]
        if want["person"]:
            assert want["person"] in rows[name]
    verdict = task_result(first, "Smoke test | Check every image got its expected result and the "
                             "frontend shows it")
    assert verdict["msg"] == f"smoke test passed: {len(expected)} images, every one as expected"
    status = target.supervisorctl("status").stdout.splitlines()
    assert {line.split()[0] for line in status} == PROGRAMS
    assert all(" RUNNING " in line for line in status), status


def test_second_run_changes_nothing(second):
    assert second["stats"]["localhost"]["changed"] == 0, changed_tasks(second)
    assert second["stats"]["localhost"]["failures"] == 0


def test_check_mode_on_the_deployment_changes_nothing(check):
    assert check["stats"]["localhost"]["changed"] == 0, changed_tasks(check)


def test_secrets_are_private_and_never_shown(target, first, second):
    for user in ("kubeface", "kubeface_migrate"):
        secret = target.data / "secrets" / user
        assert secret.stat().st_mode & 0o777 == 0o600
        password = target.password(user)
        assert len(password) == 32
        for label, run in target.runs.items():
            assert password not in run.stdout + run.stderr, f"{user}'s password in {label}'s output"
        for log in (target.data / "log").iterdir():
            assert password not in log.read_text(errors="replace"), f"{user}'s password in {log}"
    for name in JSON_LOGS:
        lines = (target.data / "log" / f"{name}.log").read_text().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        assert events and all(e["service"] == name for e in events), name
        # Never on a command line: no process of this machine has it in its arguments.
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
                assert password.encode() not in cmdline.read_bytes(), cmdline
    for private in ("secrets", "supervisor"):
        assert (target.data / private).stat().st_mode & 0o777 == 0o700
    # The services' user reads its configuration through its group, and cannot change it; the
    # migration user's password stays the deployer's alone.
    assert mode_and_group(target.data / "config") == (
        (0o710, SERVICE_USER) if AS_ROOT else (0o700, grp.getgrgid(os.getegid()).gr_name))
    assert mode_and_group(target.data / "config" / "kubeface.env")[0] == (0o640 if AS_ROOT
                                                                          else 0o600)
    assert (target.data / "config" / "migrate.env").stat().st_mode & 0o777 == 0o600
    for secret in (target.data / "secrets").iterdir():
        assert secret.stat().st_uid == os.geteuid(), secret


CREDENTIALS = ("api_write_token", "api_read_token", "frontend_admin_password",
               "frontend_session_key", "frontend_users")


def test_generated_credentials_are_private_required_and_never_shown(target, first, second):
    import urllib3

    found = {name: (target.data / "secrets" / name).read_text().strip() for name in CREDENTIALS}
    for name in CREDENTIALS:
        assert (target.data / "secrets" / name).stat().st_mode & 0o777 == 0o600, name
    user, _, hashed = found.pop("frontend_users").partition(":")
    assert user == "admin" and hashed.startswith("$argon2id$")
    values = [*found.values(), hashed]
    assert all(len(v) >= 24 for v in values)
    for value in values:
        for label, run in target.runs.items():
            assert value not in run.stdout + run.stderr, f"a credential in {label}'s output"
        for log in (target.data / "log").iterdir():
            assert value not in log.read_text(errors="replace"), f"a credential in {log}"
        # Never in a command line, never in a process's environment: only in the 0600 files.
        for proc in Path("/proc").glob("[0-9]*"):
            for listing in ("cmdline", "environ"):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError,
                                         PermissionError):
                    assert value.encode() not in (proc / listing).read_bytes(), proc / listing
    # The services take them: the API refuses requests without a token, the frontend without
    # a login; the write token and the admin password work (the smoke test used them too).
    ca = target.data / "tls" / "ca.crt"  # the target serves HTTPS unless kube_face_local_tls
    scheme = "https" if ca.exists() else "http"
    http = urllib3.PoolManager(retries=False, ca_certs=str(ca) if ca.exists() else None)
    api = f"{scheme}://127.0.0.1:{target.ports['receiver']}"
    assert http.request("GET", api + "/images").status == 401
    assert http.request("GET", api + "/images", headers={
        "Authorization": f"Bearer {found['api_read_token']}"}).status == 200
    assert http.request("POST", api + "/image/post", body=b'{"path": "x.jpg"}', headers={
        "Authorization": f"Bearer {found['api_read_token']}"}).status == 403
    site = f"{scheme}://127.0.0.1:{target.ports['frontend']}"
    assert http.request("GET", site + "/").status == 401
    assert http.request("GET", site + "/healthz").status == 200


def test_services_database_user_has_data_privileges_on_kube_only(target, first):
    conn = pymysql.connect(host="127.0.0.1", port=target.ports["mysql"], user="kubeface",
                           password=target.password("kubeface"), database="kube",
                           connect_timeout=5)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM images")
        assert cur.fetchone()[0] >= 2
        cur.execute("SHOW GRANTS")
        grants = [row[0] for row in cur.fetchall()]
        assert any("SELECT, INSERT, UPDATE, DELETE ON `kube`.*" in g for g in grants), grants
        assert not any(" ON *.*" in g and "USAGE" not in g for g in grants), grants
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("DROP TABLE images")
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("CREATE DATABASE other")
    # Root has no password at all: it cannot log in over TCP.
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=target.ports["mysql"], user="root", password="",
                        connect_timeout=5)


def mode_and_group(path: Path) -> tuple[int, str]:
    info = path.stat()
    return info.st_mode & 0o777, grp.getgrgid(info.st_gid).gr_name


def uids(pid: int) -> set[int]:
    """Real, effective, saved and filesystem uids of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError(f"no Uid line for {pid}")


def descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def service_user_acl_entries(target: Target) -> list[str]:
    """The ACL entries naming the service user on the folders above the interpreter, the
    NSQ binaries and the data directory (where the deployment grants traverse)."""
    nsq = (VENV_BIN.parents[1] / ".tools" / "bin").glob("nsq*")
    files = [Path(os.path.realpath(p)) for p in (VENV_BIN / "python", *nsq)] + [target.data]
    folders = sorted({str(d) for f in files for d in f.parents if d != Path("/") and d.exists()})
    listing = subprocess.run(["getfacl", "--absolute-names", *folders], capture_output=True,
                             text=True, check=True).stdout
    return [line for line in listing.splitlines() if line.startswith(f"user:{SERVICE_USER}:")]


def test_every_program_runs_as_the_unprivileged_service_user(target, first):
    """Deployed by root, supervisord alone stays root (it switches users): every program and
    every process they start (the face service's workers) runs as the service user, with all
    four uids; deployed by another user, as that user."""
    expected = pwd.getpwnam(SERVICE_USER).pw_uid if AS_ROOT else os.geteuid()
    assert expected != 0
    supervisord = int((target.data / "supervisor" / "supervisord.pid").read_text())
    assert uids(supervisord) == {os.geteuid()}
    programs = running_pids(target)
    processes = descendants(supervisord)
    assert set(programs.values()) <= processes
    assert len(processes) > len(programs)  # the face service's worker at least
    wrong = {pid: uids(pid) for pid in processes if uids(pid) != {expected}}
    assert not wrong, (wrong, programs)
    if AS_ROOT:
        # Only traverse (x) entries, no read, and only for that user.
        entries = service_user_acl_entries(target)
        assert entries and set(entries) == {f"user:{SERVICE_USER}:--x"}, entries
        assert (target.data / "tls" / "ca.key").stat().st_mode & 0o777 == 0o600
        assert mode_and_group(target.data / "tls" / "server.key") == (0o640, SERVICE_USER)


def test_nsqd_answers_only_tls_with_the_services_certificate(target, first):
    """Another local user, without the services' client certificate, can neither publish nor
    use nsqd's admin API; the smoke test (first) went through it with the certificate."""
    tls_dir = target.data / "tls"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{target.ports['nsqd_http']}/stats", timeout=10)
    assert refused.value.code == 403 and json.loads(refused.value.read()) == {
        "message": "TLS_REQUIRED", "https_port": target.ports["nsqd_https"]}
    stats = f"https://127.0.0.1:{target.ports['nsqd_https']}/stats?format=json"
    with pytest.raises(OSError):
        urllib.request.urlopen(stats, timeout=10, context=tls.client_context(tls_dir / "ca.crt"))
    kind, data = tcp_command(target.ports["nsqd_tcp"], b"PUB images\n" + bytes([0, 0, 0, 1, 49]))
    assert kind == ERROR and b"TLS required" in data, data
    services = tls.client_context(tls_dir / "ca.crt")
    services.load_cert_chain(tls_dir / "nsq-client.crt", tls_dir / "nsq-client.key")
    with urllib.request.urlopen(stats, timeout=10, context=services) as reply:
        topics = {t["topic_name"]: t for t in json.loads(reply.read())["topics"]}
    assert topics["images"]["message_count"] >= 10  # the smoke test's samples
    assert (tls_dir / "nsq-client.key").stat().st_mode & 0o007 == 0  # other users: nothing


def running_pids(target: Target) -> dict[str, int]:
    """{program: pid} from supervisorctl status, every program RUNNING."""
    lines = target.supervisorctl("status").stdout.splitlines()
    pids = {line.split()[0]: int(line.split("pid ")[1].split(",")[0]) for line in lines
            if " RUNNING " in line}
    assert set(pids) == PROGRAMS, lines
    return pids


def test_a_changed_configuration_restarts_its_programs_and_nothing_else(target, check):
    """The restart handler: a run that changes the services' environment restarts the
    services (once each), and MariaDB and NSQ, whose configuration did not change, keep running."""
    before = running_pids(target)
    env = {**target.vars["kube_face_local_env"], "LOG_LEVEL": "DEBUG"}
    report = target.play("reconfigure", "site.yml", "-e", json.dumps({"kube_face_local_env": env}),
                         "-e", "kube_face_local_smoke_test=false")
    after = running_pids(target)
    restarted = {name for name in PROGRAMS if after[name] != before[name]}
    assert restarted == {"face-service", "processor", "receiver", "frontend", "retry"}
    handler = "Supervisor | Restart the programs whose configuration changed"
    restarts = [r["item"] for task in tasks(report) if task["task"]["name"].endswith(handler)
                for r in task["hosts"]["localhost"].get("results", [])]
    assert sorted(restarts) == sorted(restarted)
    # Back to the module's configuration: the services restart once more, the rest does not.
    target.play("reconfigure-back", "site.yml", "-e", "kube_face_local_smoke_test=false")
    assert {n for n, pid in running_pids(target).items() if pid != after[n]} == restarted


def test_teardown_stops_everything_and_removes_data_only_when_asked(target, first, second,
                                                                     check):
    supervisord_pid = target.data / "supervisor" / "supervisord.pid"
    mariadbd_pid = target.data / "mariadb" / "mariadbd.pid"
    pids = [int(p.read_text()) for p in (supervisord_pid, mariadbd_pid)]

    assert all(alive(pid) for pid in pids)
    target.play("teardown", "teardown.yml")
    assert all(gone(pid) for pid in pids), pids
    assert not supervisord_pid.exists() and not mariadbd_pid.exists()
    assert not [name for name, port in target.ports.items() if port_open(port)]
    assert (target.data / "mariadb" / "data").is_dir(), "data kept without the flag"

    # The entries stay while another deployment's programs run as the user (a parallel test).
    others = subprocess.run(["pgrep", "-u", SERVICE_USER, "-f", f"^{VENV_BIN.parent}"],
                            capture_output=True, check=False).returncode == 0
    if AS_ROOT and not others:
        assert service_user_acl_entries(target) == [], "teardown left ACL entries"

    target.play("teardown-remove", "teardown.yml", "-e", "kube_face_local_remove_data=true")
    assert not target.data.exists()
