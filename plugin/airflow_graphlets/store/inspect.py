"""Open an MLMD store's database read-only and check it is one we can read.

Analyses never write to the store they read: SQLite files are opened with ``mode=ro``,
PostgreSQL sessions default to read-only transactions, MySQL sessions are set read-only.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_graphlets.errors import (
    NotAnMlmdStoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    UnsupportedSchemaError,
    first_line,
)
from airflow_graphlets.store.uri import StoreConfig

# ml-metadata 1.11 to 1.17 write schema version 10 (ml_metadata/RELEASE.md).
SUPPORTED_SCHEMA_VERSIONS = frozenset({10})
_POINT_READS = " -c random_page_cost=1.1 -c max_parallel_workers_per_gather=0"
MLMD_TABLES = ("MLMDEnv", "Type", "ParentType", "Artifact", "ArtifactProperty", "Execution", "ExecutionProperty",
               "Context", "Event", "EventPath", "Association")


def read_only_engine(config: StoreConfig, point_reads: bool = False) -> Engine:
    """A SQLAlchemy engine on the store's database that cannot write.

    Args:
      config: the store.
      point_reads: the session reads a few rows by id (the gate's window of runs): on PostgreSQL,
        index look-ups are priced as cheap as they are on a cached store, no parallel workers
        are started (a read of a hundred executions does not scan whole tables), and statements
        run outside transactions.

    Raises:
      StoreNotFoundError: the SQLite file or the database does not exist.
      StoreUnavailableError: the server is down or refuses the credentials.
    """
    if config.backend == "sqlite":
        if not os.path.isfile(config.path):
            raise StoreNotFoundError(
                f"No SQLite MLMD store at {config.path}: the file does not exist. Check the path "
                "(sqlite:////absolute/path needs four slashes)."
            )
        uri = pathlib.Path(config.path).as_uri() + "?mode=ro"  # '#', '%' and '?' in the path percent-encoded
        # A pool per engine, not SQLAlchemy's default for "sqlite://" (a connection per thread, of
        # which it closes the oldest beyond five, even while another thread reads on it).
        engine = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
                                  poolclass=sa.pool.QueuePool)
    elif config.backend == "postgresql":
        options = "-c default_transaction_read_only=on" + (_POINT_READS if point_reads else "")
        # Point reads run each statement on its own (still read-only): no BEGIN and ROLLBACK
        # round trips around the dozen small queries of a gate decision. MLMD has no hstore
        # column: without the flag every new connection asks the catalog for hstore's type ids
        # (0.9 ms of each gate decision).
        engine = sa.create_engine(config.sqlalchemy_url(), connect_args={"options": options, **config.connect_args()},
                                  use_native_hstore=False, **({"isolation_level": "AUTOCOMMIT"} if point_reads else {}))
    else:
        engine = sa.create_engine(config.sqlalchemy_url(), connect_args={
            "init_command": "SET SESSION TRANSACTION READ ONLY", **config.connect_args()})
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as err:
        engine.dispose()
        message = first_line(err.orig if getattr(err, "orig", None) else err)
        if "does not exist" in message or "Unknown database" in message:
            raise StoreNotFoundError(
                f"The database of the MLMD store {config} does not exist ({message}). Check the database name."
            ) from None
        raise StoreUnavailableError(f"Cannot open the MLMD store {config}: {message}") from None
    except OSError as err:  # a TLS file that cannot be read, before the driver connects
        engine.dispose()
        raise StoreUnavailableError(f"Cannot open the MLMD store {config}: {err}") from None
    return engine


@contextmanager
def reading(config: StoreConfig, engine: Engine | None = None, point_reads: bool = False) -> Iterator[Engine]:
    """``engine`` when the caller passes one it owns (several reads on one connection pool), else
    a new read-only engine, disposed on exit. Raises as :func:`read_only_engine`."""
    if engine is not None:
        yield engine
        return
    own = read_only_engine(config, point_reads)
    try:
        yield own
    finally:
        own.dispose()


# A read of a few pipelines' rows is priced by PostgreSQL's defaults as if its index look-ups
# went to disk: it scans whole tables (Event: millions of rows) and hashes them instead. On a
# read of 21 of 1,000 pipelines these settings took the bulk reader from about 2.9 to 1.9 s.
_INDEX_PLANS = (("enable_seqscan", "off"), ("enable_hashjoin", "off"), ("enable_mergejoin", "off"),
                ("max_parallel_workers_per_gather", "0"), ("jit", "off"))


@contextmanager
def index_plans(conn: sa.Connection, wanted: bool = True) -> Iterator[None]:
    """On PostgreSQL, while inside: plan statements as index look-ups and nested loops, for
    reads of a small part of a large store (elsewhere, or when not ``wanted``, nothing changes)."""
    with _planner(conn, _INDEX_PLANS if wanted else ()):
        yield


@contextmanager
def key_lookups(conn: sa.Connection, wanted: bool = True) -> Iterator[None]:
    """On PostgreSQL, while inside: no bitmap scans, for a statement that lists the ids it wants
    of a table keyed by them. Given 25,000 artifact ids and ``name IN ('span', ...)``, PostgreSQL
    chose a bitmap of the name index (2.1 million property rows, 16,000 pages) over the primary
    key: 0.3 s instead of 0.04 s. Not for a whole session: a statement of index ranges (OR of
    ``context_id = ... AND execution_id >= ...``) without bitmaps took a minute, not 0.01 s."""
    with _planner(conn, (("enable_bitmapscan", "off"),) if wanted else ()):
        yield


@contextmanager
def _planner(conn: sa.Connection, settings: tuple[tuple[str, str], ...]) -> Iterator[None]:
    """PostgreSQL planner ``settings`` for the session while inside, reset on exit, so a pooled
    connection is returned as it was lent (``SET LOCAL`` would not last on an autocommit
    connection). Nothing elsewhere."""
    if not settings or conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("; ".join(f"SET {name} = {value}" for name, value in settings))
    try:
        yield
    finally:
        if not conn.in_transaction() or conn.get_transaction().is_active:
            conn.exec_driver_sql("; ".join(f"RESET {name}" for name, _ in settings))


def mlmd_schema_version(engine: Engine, config: StoreConfig) -> int:
    """The store's MLMD schema version, after checking MLMD's tables are all there.

    Raises:
      NotAnMlmdStoreError: the database lacks MLMD's tables.
      UnsupportedSchemaError: the schema version is not one this release reads.
    """
    try:  # the common case in one statement; the table listing only to say what is wrong
        with engine.connect() as conn:
            versions = [row[0] for row in conn.execute(sa.text("SELECT schema_version FROM MLMDEnv"))]
        if len(versions) == 1 and versions[0] in SUPPORTED_SCHEMA_VERSIONS:
            return int(versions[0])
    except sa.exc.DBAPIError:
        pass
    present = {name.lower() for name in sa.inspect(engine).get_table_names()}
    missing = [t for t in MLMD_TABLES if t.lower() not in present]
    if missing:
        what = "is empty" if not present else f"has tables {', '.join(sorted(present)[:8])}"
        raise NotAnMlmdStoreError(
            f"{config} is not an ML Metadata store: it {what} but lacks {', '.join(missing)}. "
            "Point --store at a database written by ml-metadata (TFX or airflow-graphlets)."
        )
    with engine.connect() as conn:
        versions = [row[0] for row in conn.execute(sa.text("SELECT schema_version FROM MLMDEnv"))]
    if len(versions) != 1 or versions[0] not in SUPPORTED_SCHEMA_VERSIONS:
        found = versions[0] if len(versions) == 1 else f"{len(versions)} rows"
        raise UnsupportedSchemaError(
            f"The MLMD store {config} has schema version {found}; this release reads version "
            f"{', '.join(map(str, sorted(SUPPORTED_SCHEMA_VERSIONS)))} (ml-metadata 1.11 to 1.17). "
            "Upgrade the store with ml-metadata's migration (enable_upgrade_migration) first."
        )
    return int(versions[0])
