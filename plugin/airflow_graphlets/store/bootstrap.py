"""Create MLMD's tables once, even when many workers meet a new database at the same moment.

MLMD creates its schema on first connect, but two processes doing so at once on PostgreSQL or
MySQL collide (duplicate ``pg_type`` rows, or "a subset of tables" left behind), and a half-made
schema never heals; SQLite gives up with "concurrent writes aborted". So when MLMD's ``MLMDEnv``
table is missing or empty, the first connect happens under a lock (a database-wide advisory lock,
or a file lock next to an SQLite store), and everyone else waits for it. Under that lock the schema
is created natively (``store/mlmd_ddl.py``: the same tables, keys and indexes ml-metadata makes),
so a new store does not depend on the ml-metadata client to come into being.
"""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy
from sqlalchemy.pool import NullPool

from airflow_graphlets.store.mlmd_ddl import create_schema
from airflow_graphlets.store.native_store import install_simple_types
from airflow_graphlets.store.uri import StoreConfig

T = TypeVar("T")

_LOCK_NAME = "airflow_graphlets_mlmd_schema"
_PG_LOCK_KEY = 0x6D6C6D64  # "mlmd"
_LOCK_TIMEOUT_SECONDS = 120
_CONNECT_TIMEOUT_SECONDS = 10


def create_schema_once(config: StoreConfig, connect: Callable[[], T]) -> T:
    """Call ``connect`` (which makes MLMD create its tables if needed) safely.

    For SQLite, or when the schema already exists, ``connect`` runs as it is. Otherwise it runs
    holding an advisory lock (``pg_advisory_lock`` / MySQL ``GET_LOCK``).
    """
    if config.backend == "sqlite":
        return _sqlite_schema_once(config.path, connect)
    engine = sqlalchemy.create_engine(
        config.sqlalchemy_url(), poolclass=NullPool,
        connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS, **config.connect_args()}
    )
    try:
        with engine.connect() as conn:
            if _has_schema(conn):
                return connect()
            _lock(conn, config.backend)
            try:
                with engine.connect() as ddl:
                    _create(ddl)
                return connect()
            finally:
                _unlock(conn, config.backend)
    finally:
        engine.dispose()


def _sqlite_schema_once(path: str, connect: Callable[[], T]) -> T:
    """SQLite's variant: the lock is a file lock next to the store."""
    if _sqlite_has_schema(path):
        return connect()
    with open(path + ".init-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            engine = sqlalchemy.create_engine(sqlalchemy.engine.URL.create("sqlite", database=path), poolclass=NullPool)
            try:
                with engine.connect() as ddl:
                    _create(ddl)
            finally:
                engine.dispose()
            return connect()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create(conn: sqlalchemy.Connection) -> None:
    """MLMD's tables, then MLMD's simple types, as ml-metadata's first connect leaves a store."""
    if create_schema(conn):
        with conn.begin():
            install_simple_types(conn)


def _sqlite_has_schema(path: str) -> bool:
    try:
        read_only = pathlib.Path(path).as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(read_only, uri=True, timeout=30)) as conn:
            return bool(conn.execute("SELECT COUNT(*) FROM MLMDEnv").fetchone()[0])
    except sqlite3.Error:
        return False


def _has_schema(conn: sqlalchemy.Connection) -> bool:
    """Whether MLMD finished creating its schema: ``MLMDEnv`` exists and holds the version row.

    The table alone is not enough: a process creating the schema makes it before the row.
    """
    table = next((n for n in sqlalchemy.inspect(conn).get_table_names() if n.lower() == "mlmdenv"), None)
    if table is None:
        return False
    count = conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(sqlalchemy.table(table)))
    has_row = bool(count.scalar())
    conn.rollback()  # end the read transaction before any lock is taken
    return has_row


def _lock(conn: sqlalchemy.Connection, backend: str) -> None:
    if backend == "postgresql":
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        conn.execute(sqlalchemy.text("SELECT GET_LOCK(:name, :timeout)"),
                     {"name": _LOCK_NAME, "timeout": _LOCK_TIMEOUT_SECONDS})


def _unlock(conn: sqlalchemy.Connection, backend: str) -> None:
    if backend == "postgresql":
        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK_NAME})
