"""Open an MLMD store from a :class:`~airflow_graphlets.store.uri.StoreConfig`."""

from __future__ import annotations

import contextlib
import os
import sqlite3

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store

from sqlalchemy.exc import SQLAlchemyError

from airflow_graphlets.errors import StoreUnavailableError
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
    transaction about three times cheaper. The mode is a property of the file, so it is set once.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.path.exists(path):
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
    except (OSError, sqlite3.Error) as err:
        raise StoreUnavailableError(f"Cannot create the SQLite MLMD store {path!r}: {err}.") from err


def _unavailable(config: StoreConfig, err: Exception) -> StoreUnavailableError:
    if isinstance(err, mlmd_errors.FailedPreconditionError):
        return StoreUnavailableError(
            f"The MLMD store {config} has a schema this ml-metadata cannot use ({_first_line(err)}). "
            "Point the connection at a store written by ml-metadata 1.11 to 1.17, or at a new database."
        )
    return StoreUnavailableError(f"Cannot open the MLMD store {config}: {_first_line(err)}")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
