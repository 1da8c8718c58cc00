"""Open an MLMD store from a :class:`~airflow_graphlets.store.uri.StoreConfig`."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3

import sqlalchemy
from sqlalchemy.exc import SQLAlchemyError

from airflow_graphlets.errors import StoreUnavailableError, first_line
from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store.bootstrap import create_schema_once
from airflow_graphlets.store.mlmd_ddl import SCHEMA_VERSION
from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store.uri import StoreConfig


def open_store(config: StoreConfig) -> NativeStore:
    """Connect to the MLMD store ``config`` names, creating its schema if it is new.

    The store is spoken to natively (:class:`NativeStore`, MLMD's API over SQL); ml-metadata's
    client is not needed. ``open_mlmd_client`` gives ml-metadata's own ``MetadataStore`` instead.

    Args:
      config: where the store lives.

    Returns:
      The store's handle, with ml-metadata's ``MetadataStore`` methods.

    Raises:
      StoreUnavailableError: the database is down, refuses the credentials, or holds an MLMD
        schema of another version than 10. The message names the store (password masked) and
        the cause.
    """
    if config.backend == "sqlite":
        _prepare_sqlite_file(config.path)
    try:
        store = create_schema_once(config, lambda: NativeStore(config))
        _check_version(store)
        return store
    except (mlmd_errors.StatusError, SQLAlchemyError, OSError) as err:
        raise _unavailable(config, err) from err


def open_mlmd_client(config: StoreConfig):
    """ml-metadata's own ``MetadataStore`` on the store (the ``[mlmd]`` extra), schema created
    natively first as :func:`open_store` does.

    Raises:
      StoreUnavailableError: ml-metadata is not installed, or the store cannot be opened.
    """
    try:
        from ml_metadata import errors as client_errors
        from ml_metadata.metadata_store import metadata_store
    except ImportError as err:
        raise StoreUnavailableError(
            "ml-metadata's client is not installed: pip install 'airflow-graphlets[mlmd]' (Python 3.10 or 3.11), "
            "or use the native store (open_store), which needs no client.") from err
    open_store(config).close()
    try:
        return metadata_store.MetadataStore(config.mlmd_connection_config())
    except (client_errors.StatusError, RuntimeError) as err:
        raise _unavailable(config, err) from err


def _check_version(store: NativeStore) -> None:
    """Refuse a store of another MLMD schema version, saying which way it differs."""
    with store.engine.connect() as conn:
        versions = [v for (v,) in conn.execute(sqlalchemy.text("SELECT schema_version FROM MLMDEnv"))]
    if versions == [SCHEMA_VERSION]:
        return
    store.close()
    if len(versions) != 1:
        raise StoreUnavailableError(f"The MLMD store {store.config}'s MLMDEnv table holds {len(versions)} schema "
                                    "versions; a store holds exactly one. Point the connection at an MLMD store.")
    found = versions[0]
    if found > SCHEMA_VERSION:
        raise StoreUnavailableError(
            f"The MLMD store {store.config} has schema version {found}, written by a newer ml-metadata; "
            f"airflow-graphlets reads and writes version {SCHEMA_VERSION} (ml-metadata 1.11 to 1.17). Point the "
            "connection at another store, or upgrade airflow-graphlets when it supports that version.")
    raise StoreUnavailableError(
        f"The MLMD store {store.config} has schema version {found}, older than the version {SCHEMA_VERSION} "
        "airflow-graphlets reads and writes. Upgrade its schema with ml-metadata's MetadataStore(config, "
        "enable_upgrade_migration=True), or point the connection at a new database.")


def _prepare_sqlite_file(path: str) -> None:
    """Create the store's directory, and put a new store file in WAL mode.

    WAL lets readers (the analyses, the UI) work while the recorder writes, and makes each MLMD
    transaction about three times cheaper. The mode is a property of the file, so it is set once,
    by whichever process creates the file; if another process opened it first, the store simply
    keeps SQLite's default journal.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return
    except OSError as err:
        raise StoreUnavailableError(f"Cannot create the SQLite MLMD store {path!r}: {err.strerror}.") from err
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass  # a racing process holds it already; WAL is an optimisation, not a requirement


_VERSION_MISMATCH = re.compile(r"MLMD database version (-?\d+) is (greater|older) than library version (\d+)")


def _unavailable(config: StoreConfig, err: Exception) -> StoreUnavailableError:
    mismatch = _VERSION_MISMATCH.search(str(err))
    if mismatch:
        found, relation, supported = mismatch.groups()
        if relation == "greater":
            return StoreUnavailableError(
                f"The MLMD store {config} has schema version {found}, written by a newer ml-metadata; this "
                f"ml-metadata reads version {supported}. Upgrade ml-metadata where Airflow runs, or point the "
                "connection at another store."
            )
        return StoreUnavailableError(
            f"The MLMD store {config} has schema version {found}, older than the version {supported} this "
            "ml-metadata reads, and MLMD does not migrate a store on connect. Upgrade its schema with "
            "ml-metadata's enable_upgrade_migration, or point the connection at a new database."
        )
    if type(err).__name__ == "FailedPreconditionError":
        return StoreUnavailableError(
            f"The MLMD store {config} has a schema this ml-metadata cannot use ({first_line(err)}). "
            "Point the connection at a store written by ml-metadata 1.11 to 1.17, or at a new database."
        )
    return StoreUnavailableError(f"Cannot open the MLMD store {config}: {first_line(err)}")

