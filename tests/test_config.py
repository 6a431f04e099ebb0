"""Configuration: defaults, .env files, and one clear line for a bad value."""

import subprocess
import sys
from pathlib import Path

import pytest

from kubeface.core import config
from kubeface.core.config import VARIABLES, ConfigError, Settings


def test_defaults_are_the_articles_local_values():
    s = config.load(environ={})
    assert (s.mysql_host, s.mysql_port, s.mysql_dbname) == ("127.0.0.1", 3306, "kube")
    assert s.nsq_lookup_address == "127.0.0.1:4161"
    assert s.grpc_address == "127.0.0.1:50051"
    assert (s.receiver_port, s.frontend_port, s.grpc_port) == (8000, 8081, 50051)
    assert s.face_tolerance == 0.6
    assert s.breaker_fail_max == 5


def test_user_password_is_split_on_the_first_colon():
    s = config.load(environ={"MYSQL_USERPASSWORD": "kubeface:pa:ss@word"})
    assert (s.mysql_user, s.mysql_password) == ("kubeface", "pa:ss@word")


def test_every_variable_has_a_settings_field_and_back():
    fields = set(Settings.__dataclass_fields__)
    assert {v.attr for v in VARIABLES} == fields


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MYSQL_PORT", "abc", "an integer from 1 to 65535"),
        ("MYSQL_PORT", "70000", "an integer from 1 to 65535"),
        ("NSQ_LOOKUP_ADDRESS", "nsqlookupd", "host:port"),
        ("GRPC_ADDRESS", "face:port", "host:port"),
        ("FACE_TOLERANCE", "1.5", "a number from 0.0 to 1.0"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG"),
        ("MYSQL_USERPASSWORD", "nocolon", "user:password"),
        ("MYSQL_DBNAME", "   ", "a non-empty string"),
    ],
)
def test_malformed_value_names_the_variable(name, value, expected):
    with pytest.raises(ConfigError) as err:
        config.load(environ={name: value})
    assert str(err.value).startswith(f"{name} is malformed: expected {expected}")


def test_a_malformed_secret_is_not_echoed():
    with pytest.raises(ConfigError) as err:
        config.load(environ={"MYSQL_USERPASSWORD": "hunter2-no-colon"})
    assert "hunter2" not in str(err.value)


def test_missing_required_value():
    with pytest.raises(ConfigError, match="MYSQL_USERPASSWORD is not set"):
        config.load(environ={}, required=["MYSQL_USERPASSWORD"])
    with pytest.raises(ConfigError, match="MYSQL_USERPASSWORD is not set"):
        _ = config.load(environ={}).mysql_user


def test_repr_hides_the_password():
    s = config.load(environ={"MYSQL_USERPASSWORD": "u:topsecret"})
    assert "topsecret" not in repr(s)


def test_env_file_fills_gaps_and_the_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / "dev.env"
    env_file.write_text("MYSQL_PORT=3307\nRECEIVER_PORT=9000\n")
    monkeypatch.setenv(config.ENV_FILE_VARIABLE, str(env_file))
    monkeypatch.setenv("RECEIVER_PORT", "9001")
    s = config.load()
    assert (s.mysql_port, s.receiver_port) == (3307, 9001)


def run_kubeface(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeface", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_the_command_stops_with_one_line_naming_the_variable(tmp_path):
    result = run_kubeface("migrate", env={"MYSQL_PORT": "not-a-port", "PATH": "/usr/bin"},
                          cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "kubeface migrate: configuration error: MYSQL_PORT is malformed: expected an integer "
        "from 1 to 65535, got 'not-a-port'"
    ]


def test_the_command_reports_a_missing_password_in_one_line(tmp_path):
    result = run_kubeface("enrol", env={"PATH": "/usr/bin"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kubeface enrol: configuration error: MYSQL_USERPASSWORD is not set: expected "
        "user:password"
    ]


def test_unknown_command_lists_the_commands(tmp_path):
    result = run_kubeface("frobnicate", env={"PATH": "/usr/bin"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr
    assert "migrate" in result.stderr and "face-service" in result.stderr


def test_the_version_has_one_source_and_the_deployment_agrees():
    import tomllib

    import yaml

    import kubeface
    from kubeface.receiver import openapi

    root = Path(__file__).resolve().parents[1]
    released = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert kubeface.__version__ == released  # read from the installed package's metadata
    assert openapi.document(config.load(environ={}))["info"]["version"] == released
    # Ansible tags the images with its own copy: it must be the same release.
    shared = yaml.safe_load((root / "playbooks/group_vars/all/main.yml").read_text())
    assert shared["kube_face_version"] == released
