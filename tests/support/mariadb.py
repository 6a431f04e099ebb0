"""A real MariaDB server for tests: own datadir, socket and free loopback port."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pymysql

from tests.support.procs import Fixture, Process, free_ports, tool


class MariaDB(Fixture):
    """``mariadbd`` in ``base``; root over the socket, the services' user over TCP."""

    database = "kube"
    user = "kubeface"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.password = secrets.token_urlsafe(16)
        self.process: Process | None = None
        self.use_ports(free_ports(self.PORTS))

    def use_ports(self, ports: list[int]) -> None:
        (self.port,) = ports

    def install(self) -> None:
        if self.datadir.exists():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        install_db = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
        Process("mariadb-install-db", [
            install_db, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db",
        ], self.base / "install.log").start().proc.wait(120)

    def start(self) -> MariaDB:
        self.install()
        self.start_servers(self._launch)
        return self

    def _launch(self) -> None:
        self.process = Process("mariadbd", [
            tool("mariadbd"), "--no-defaults", f"--datadir={self.datadir}",
            f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
            "--user=root", "--skip-log-bin", f"--pid-file={self.base / 'mysqld.pid'}",
            "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=500",
        ], self.base / "mariadbd.log").start()
        self.process.wait_until(lambda: self.root().close() is None, "mariadbd", 60)
        self.process.wait_port(self.port)

    def stop(self) -> None:
        if self.process:
            self.process.stop(60)

    def root(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database,
                               autocommit=True, connect_timeout=2)

    def create_database(self, name: str | None = None) -> None:
        """The database and the services' user with the privileges the services need."""
        name = name or self.database
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            for host in ("127.0.0.1", "localhost"):
                cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'{host}' "
                            "IDENTIFIED BY %s", (self.password,))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{self.user}'@'{host}'")

    def drop_database(self, name: str) -> None:
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def env(self, database: str | None = None) -> dict[str, str]:
        """The kube-face variables that point a service at this server."""
        return {
            "MYSQL_CONNECTION": "127.0.0.1",
            "MYSQL_PORT": str(self.port),
            "MYSQL_DBNAME": database or self.database,
            "MYSQL_USERPASSWORD": f"{self.user}:{self.password}",
        }
