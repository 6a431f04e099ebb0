"""Session fixtures: a real MariaDB and real NSQ daemons on free loopback ports.

Each test gets its own database (migrated) and its own nsqd/nsqlookupd pair, so tests never see
each other's rows or messages. Logs of every server go to .artifacts/ for a failed run.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeface.core import config, schema
from kubeface.core.db import Database
from tests.support import minikube_e2e, tls
from tests.support.mariadb import MariaDB
from tests.support.nsq import Nsq
from tests.support.procs import ROOT

# Fixture modules of the parts (face service, processor, ...): each part adds its own here.
pytest_plugins: list[str] = ["tests.support.web_fixtures", "tests.support.face_fixtures",
                              "tests.support.processor_fixtures"]

ARTIFACTS = ROOT / ".artifacts"
_db_numbers = itertools.count(1)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    minikube_e2e.schedule(config, items)


def pytest_sessionfinish() -> None:
    minikube_e2e.RUN.stop()  # a run the session did not wait for (interrupted, -x)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()
    shutil.copy(server.process.log, ARTIFACTS / "mariadbd.log") if ARTIFACTS.exists() else None


@pytest.fixture
def database_name(mariadb: MariaDB) -> Iterator[str]:
    """A new, empty database with the services' user granted on it (dropped afterwards)."""
    name = f"kube_t{os.getpid()}_{next(_db_numbers)}"
    mariadb.create_database(name)
    yield name
    mariadb.drop_database(name)


@pytest.fixture
def nsq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nsq]:
    """nsqlookupd and nsqd; parametrized indirectly with "tls", nsqd requires TLS and a client
    certificate, and ``service_env`` gives the services theirs."""
    certs = tls.make(tmp_path / "nsq-tls") if getattr(request, "param", "plain") == "tls" else None
    daemons = Nsq(tmp_path / "nsq", certs).start()
    yield daemons
    daemons.stop()


@pytest.fixture
def image_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Empty KNOWN_PEOPLE and UNKNOWN_PEOPLE folders."""
    known, unknown = tmp_path / "known_people", tmp_path / "unknown_people"
    known.mkdir()
    unknown.mkdir()
    return known, unknown


@pytest.fixture
def service_env(mariadb: MariaDB, database_name: str, image_dirs: tuple[Path, Path],
                nsq: Nsq) -> dict[str, str]:
    """Every kube-face variable pointing at this test's database, NSQ and folders."""
    known, unknown = image_dirs
    return {
        **mariadb.env(database_name),
        **nsq.env(),
        "KNOWN_PEOPLE": str(known),
        "UNKNOWN_PEOPLE": str(unknown),
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def settings(service_env: dict[str, str]) -> config.Settings:
    return config.load(environ=service_env)


@pytest.fixture
def db(settings: config.Settings) -> Iterator[Database]:
    """The test's database, migrated, as the services see it."""
    database = Database(settings)
    schema.migrate(database)
    yield database
    database.close()
