"""Database access for every service: one pooled ``records`` database per process.

records 0.6 on SQLAlchemy 2 has two traps this module exists to avoid: ``Database.transaction()``
swallows exceptions (it rolls back and returns normally), and ``Database.query()`` keeps its
connection checked out until the lazy result is garbage-collected (a pool drained one
connection per request). Here every query fetches its rows and returns the connection at once,
and a failed transaction rolls back *and* raises.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import records
import sqlalchemy.event
import sqlalchemy.exc
import sqlalchemy.pool
from sqlalchemy.engine import URL

from kubeface.core.config import Settings

# Errors that mean "the database is not reachable right now": retry later, never mark an image
# failed because of them.
UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def url(settings: Settings) -> URL:
    """The SQLAlchemy URL (a URL object, so a password with ``@`` or ``:`` needs no escaping)."""
    return URL.create(
        "mysql+pymysql",
        username=settings.mysql_user,
        password=settings.mysql_password,
        host=settings.mysql_host,
        port=settings.mysql_port,
        database=settings.mysql_dbname,
        query={"charset": "utf8mb4"},
    )


class Database:
    """A connection pool with short, explicit connections and transactions."""

    def __init__(self, settings: Settings, connect_timeout: int = 5, threads: int = 0) -> None:
        """``threads``: how many threads of the process may each need a connection at once (a
        web server's workers): the pool keeps that many, and at least DB_POOL_SIZE, so that no
        thread waits for another's connection."""
        self._db = records.Database(
            url(settings),
            pool_size=max(settings.db_pool_size, threads),
            max_overflow=settings.db_pool_size,
            # connection() ends what was left open itself: no ROLLBACK round trip after a
            # transaction that has committed.
            pool_reset_on_return=None,
            pool_use_lifo=True,  # the busiest connections stay in use, the others idle
            pool_recycle=1800,
            pool_timeout=connect_timeout,
            isolation_level="READ COMMITTED",
            connect_args={"connect_timeout": connect_timeout},
        )
        _check_on_checkout(self._db.get_engine().pool)

    @contextmanager
    def connection(self) -> Iterator[records.Connection]:
        """A pooled connection, returned to the pool on exit."""
        conn = self._db.get_connection()
        try:
            yield conn
        finally:
            try:
                if conn._conn.in_transaction():  # a query outside transaction() began one
                    conn._conn.rollback()
            finally:
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[records.Connection]:
        """A connection inside one transaction: committed on success, rolled back and re-raised
        on any error."""
        with self.connection() as conn:
            tx = conn.transaction()
            try:
                yield conn
            except BaseException:
                tx.rollback()
                raise
            tx.commit()

    def query(self, sql: str, **params: Any) -> list[records.Record]:
        """Run one read-only statement and return all its rows."""
        with self.transaction() as conn:
            return conn.query(sql, **params).all()

    def execute(self, sql: str, **params: Any) -> int:
        """Run one writing statement in its own transaction; returns the rows it matched."""
        with self.transaction() as conn:
            return execute(conn, sql, **params)

    @property
    def pool(self) -> sqlalchemy.pool.Pool:
        """The connection pool (its use is shown in the metrics)."""
        return self._db.get_engine().pool

    def ping(self) -> None:
        """Raise one of :data:`UNAVAILABLE` when the database cannot answer."""
        self.query("SELECT 1")

    def close(self) -> None:
        self._db.close()


PING_AFTER_IDLE_SECONDS = 0.25


def _check_on_checkout(pool: sqlalchemy.pool.Pool) -> None:
    """A pooled connection is checked before it is handed out, and replaced if the database
    has closed it: a restart of the database fails no request. The check costs no round trip
    for a connection in steady use: a MySQL server never writes to an idle connection, so one
    whose socket is readable has been closed (a restart closes every socket, and can take less
    than 0.2 s). One idle for longer than :data:`PING_AFTER_IDLE_SECONDS` is also pinged, for
    a server that went away without closing the socket. If the database goes away while a
    connection is in use, its query fails, and the pool replaces every connection."""
    @sqlalchemy.event.listens_for(pool, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned"] = time.monotonic()

    @sqlalchemy.event.listens_for(pool, "checkout")
    def handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("returned", 0.0)
        try:
            if _closed_by_server(dbapi_connection):
                raise ConnectionError("the database closed this connection")
            if idle > PING_AFTER_IDLE_SECONDS:
                dbapi_connection.ping(reconnect=False)
        except Exception as exc:
            # The pool discards this connection and hands out a new one.
            raise sqlalchemy.exc.DisconnectionError(str(exc)) from exc


def _closed_by_server(dbapi_connection: Any) -> bool:
    """Whether the server has closed (or written to) this idle pymysql connection: a poll of
    its socket with no wait."""
    sock = getattr(dbapi_connection, "_sock", None)  # pymysql's socket; None once closed
    if sock is None:
        return True
    poller = select.poll()  # poll, not select: a busy process's descriptors pass 1024
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _write(conn: records.Connection, sql: str, params: dict[str, Any]) -> Any:
    # The statement's own reply carries its row count and insert id: no second round trip.
    return conn._conn.execute(sqlalchemy.text(sql).bindparams(**params))


def execute(conn: records.Connection, sql: str, **params: Any) -> int:
    """Run a writing statement on ``conn``; returns the rows it matched (what MySQL's
    ``ROW_COUNT()`` gives; SQLAlchemy's pymysql dialect sets CLIENT.FOUND_ROWS, so matched
    rather than changed)."""
    return int(_write(conn, sql, params).rowcount)


def insert(conn: records.Connection, sql: str, **params: Any) -> tuple[int, int]:
    """Run an INSERT on ``conn``; returns the rows it wrote and the AUTO_INCREMENT id of the
    first (0 when it wrote none)."""
    result = _write(conn, sql, params)
    return int(result.rowcount), int(result.lastrowid or 0)


def last_insert_id(conn: records.Connection) -> int:
    """The AUTO_INCREMENT id of the first row the last INSERT on ``conn`` wrote."""
    return int(conn.query("SELECT LAST_INSERT_ID() AS id").scalar())


@contextmanager
def named_lock(conn: records.Connection, name: str, timeout: float) -> Iterator[bool]:
    """MySQL's ``GET_LOCK(name)`` around the block: yields whether it was had within
    ``timeout`` seconds. The lock belongs to the session, not the transaction, so it is released
    explicitly on exit (only when it was had)."""
    got = conn.query("SELECT GET_LOCK(:n, :t) AS ok", n=name, t=timeout).scalar() == 1
    try:
        yield got
    finally:
        if got:
            conn.query("SELECT RELEASE_LOCK(:n)", n=name)
