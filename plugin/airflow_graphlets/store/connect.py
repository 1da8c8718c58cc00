"""Open an MLMD store from a :class:`~airflow_graphlets.store.uri.StoreConfig`."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from sqlalchemy.exc import SQLAlchemyError

from airflow_graphlets.errors import StoreUnavailableError, first_line
from airflow_graphlets.store.bootstrap import create_schema_once
from airflow_graphlets.store.uri import StoreConfig


def open_store(config: StoreConfig) -> metadata_store.MetadataStore:
    """Connect to the MLMD store ``config`` names, creating its schema if it is new.

    Args:
      config: where the store lives.

    Returns:
      MLMD's ``MetadataStore`` handle.

    Raises:
      StoreUnavailableError: the database is down, refuses the credentials, or holds an MLMD
        schema this version of ml-metadata cannot use. The message names the store (password
        masked) and the cause.
    """
    if config.backend == "sqlite":
        _prepare_sqlite_file(config.path)
    try:
        return create_schema_once(config, lambda: metadata_store.MetadataStore(config.mlmd_connection_config()))
    except (mlmd_errors.StatusError, SQLAlchemyError) as err:
        raise _unavailable(config, err) from err
    except RuntimeError as err:
        # MLMD raises a bare RuntimeError when a PostgreSQL connection cannot be made at all.
        raise _unavailable(config, err) from err


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
    if isinstance(err, mlmd_errors.FailedPreconditionError):
        return StoreUnavailableError(
            f"The MLMD store {config} has a schema this ml-metadata cannot use ({first_line(err)}). "
            "Point the connection at a store written by ml-metadata 1.11 to 1.17, or at a new database."
        )
    return StoreUnavailableError(f"Cannot open the MLMD store {config}: {first_line(err)}")

