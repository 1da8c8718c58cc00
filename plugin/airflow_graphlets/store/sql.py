"""Statements on one database connection, written once for SQLite, PostgreSQL and MySQL.

The native store runs a few dozen small statements per recorded task try; through SQLAlchemy's
statement layer each costs about 0.1 ms of Python, five times what the database needs. So it
speaks the driver's DB-API directly: statements are written with ``:name`` parameters, turned
into the driver's parameter style once and remembered, and a list-valued parameter of an ``IN``
expands to one placeholder per value. SQLAlchemy still provides the connection pool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from airflow_graphlets.errors import first_line
from airflow_graphlets.store.mlmd_errors import AlreadyExistsError, InvalidArgumentError, UnavailableError

_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")
IN_LIST_LIMIT = 500  # values per IN (...) list


class Sql:
    """A DB-API connection in one transaction, with ``:name``-parameter statements."""

    def __init__(self, dbapi_connection: Any, backend: str) -> None:
        self._conn = dbapi_connection
        self._cursor = dbapi_connection.cursor()
        self.backend = backend
        self._named = backend == "sqlite"  # sqlite3 takes :name itself; psycopg2 and pymysql %(name)s

    def rows(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple]:
        """Every row ``statement`` returns."""
        self._run(statement, params)
        return self._cursor.fetchall()

    def first(self, statement: str, params: dict[str, Any] | None = None) -> tuple | None:
        """The first row, or ``None``."""
        self._run(statement, params)
        return self._cursor.fetchone()

    def scalar(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or ``None``."""
        row = self.first(statement, params)
        return row[0] if row is not None else None

    def run(self, statement: str, params: dict[str, Any] | None = None) -> int:
        """Run a statement; the rows it changed."""
        self._run(statement, params)
        return self._cursor.rowcount

    def many(self, statement: str, rows: Sequence[dict[str, Any]]) -> None:
        """Run ``statement`` once per parameter set (one round trip where the driver allows)."""
        if rows:
            self._cursor.executemany(_translate(statement, self._named, ()), rows)

    def insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """``head`` (``INSERT INTO T (a, b) VALUES``) with every row: many to a statement (one
        round trip each) on a server, one prepared statement run per row on SQLite."""
        if not rows:
            return
        width = len(rows[0])
        if self.backend == "sqlite":  # in-process: sqlite3 loops over the rows in C, no round trips
            self._cursor.executemany(f"{head} ({', '.join('?' * width)}){tail}", rows)
            return
        for start in range(0, len(rows), IN_LIST_LIMIT):
            part = rows[start:start + IN_LIST_LIMIT]
            self._cursor.execute(_rows_statement(head, tail, len(part), width, self._named),
                                 {f"r{r}_{c}": value for r, row in enumerate(part) for c, value in enumerate(row)})

    def insert(self, statement: str, params: dict[str, Any]) -> int:
        """Insert one row into a table with an auto id; the new id."""
        if self.backend == "mysql":
            self._run(statement, params)
            return self._cursor.lastrowid
        return self.scalar(statement + " RETURNING id", params)

    def _run(self, statement: str, params: dict[str, Any] | None) -> None:
        params = params or {}
        lists = tuple(sorted((k, len(v)) for k, v in params.items() if isinstance(v, (list, tuple))))
        if lists:
            flat = {k: v for k, v in params.items() if not isinstance(v, (list, tuple))}
            for name, _ in lists:
                flat.update({f"{name}_{i}": value for i, value in enumerate(params[name])})
            params = flat
        self._cursor.execute(_translate(statement, self._named, lists), params)


@lru_cache(maxsize=512)
def _translate(statement: str, named: bool, lists: tuple[tuple[str, int], ...]) -> str:
    for name, length in lists:
        # An empty IN list matches nothing: (NULL) is valid SQL everywhere and equals no value.
        expanded = ", ".join(f":{name}_{i}" for i in range(length)) or "NULL"
        statement = re.sub(rf"(?<![:\w]):{name}\b", f"({expanded})", statement)
    return statement if named else _PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


@lru_cache(maxsize=512)
def _rows_statement(head: str, tail: str, count: int, width: int, named: bool) -> str:
    values = ", ".join("(" + ", ".join(f":r{r}_{c}" for c in range(width)) + ")" for r in range(count))
    return _translate(f"{head} {values}{tail}", named, ())


def id_chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    """``ids`` in slices short enough for one ``IN (...)`` list."""
    return chunks(ids, IN_LIST_LIMIT)


def chunks(values: Iterable[Any], size: int = IN_LIST_LIMIT) -> Iterator[list]:
    """``values`` in lists of at most ``size``, in order (one statement's worth each)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


@contextmanager
def transaction(engine: sa.Engine, backend: str, *, write: bool, describe: str) -> Iterator[Sql]:
    """A pooled connection in one transaction: committed after a write, rolled back after a read.

    SQLite writes start with ``BEGIN IMMEDIATE`` so writers queue on the file lock instead of
    one failing to upgrade a read lock. Driver errors come out as MLMD's: a unique key refused
    the row (``AlreadyExistsError``), a value the column cannot hold (``InvalidArgumentError``),
    anything else (``UnavailableError``), each naming ``describe`` (the store).
    """
    dbapi = engine.dialect.dbapi
    try:
        connection = engine.raw_connection()
    except sa.exc.DBAPIError as err:
        raise UnavailableError(f"The MLMD store {describe} failed: {first_line(err.orig or err)}") from err
    except dbapi.Error as err:  # the pool hands a failed connect's driver error through unwrapped
        raise UnavailableError(f"Cannot connect to the MLMD store {describe}: {first_line(err)}") from err
    except OSError as err:  # a TLS file that cannot be read, before the driver connects
        raise UnavailableError(f"Cannot connect to the MLMD store {describe}: {err}") from err
    try:
        sql = Sql(connection, backend)
        if backend == "sqlite":
            sql.run("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield sql
        except BaseException:
            _quietly(connection.rollback)
            raise
        if write:
            connection.commit()
        else:
            connection.rollback()
    except dbapi.IntegrityError as err:
        raise AlreadyExistsError(f"Given node already exists: {first_line(err)}") from err
    except dbapi.DataError as err:
        raise InvalidArgumentError(f"The store refused a value: {first_line(err)}") from err
    except dbapi.Error as err:
        raise UnavailableError(f"The MLMD store {describe} failed: {first_line(err)}") from err
    finally:
        _quietly(connection.close)


@contextmanager
def savepoint(sql: Sql, name: str = "graphlets") -> Iterator[None]:
    """A nested transaction: on error, undo only what ran inside it, and re-raise."""
    sql.run(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        sql.run(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    sql.run(f"RELEASE SAVEPOINT {name}")


def _quietly(action) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - the connection is already broken; the pool replaces it
        pass
