"""Create MLMD's tables once, even when many workers meet a new database at the same moment.

MLMD creates its schema on first connect, but two processes doing so at once on PostgreSQL or
MySQL collide (duplicate ``pg_type`` rows, or "a subset of tables" left behind), and a half-made
schema never heals. So when MLMD's ``MLMDEnv`` table is missing, the first connect happens under
a database-wide advisory lock, and everyone else waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy
from sqlalchemy.pool import NullPool

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
        return connect()
    engine = sqlalchemy.create_engine(
        config.sqlalchemy_url(), poolclass=NullPool, connect_args={"connect_timeout": _CONNECT_TIMEOUT_SECONDS}
    )
    try:
        with engine.connect() as conn:
            if _has_schema(conn):
                return connect()
            _lock(conn, config.backend)
            try:
                return connect()
            finally:
                _unlock(conn, config.backend)
    finally:
        engine.dispose()


def _has_schema(conn: sqlalchemy.Connection) -> bool:
    names = {name.lower() for name in sqlalchemy.inspect(conn).get_table_names()}
    return "mlmdenv" in names


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
