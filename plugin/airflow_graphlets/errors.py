"""The errors airflow-graphlets raises. Each message names what is wrong and how to fix it."""

from __future__ import annotations

import re


class GraphletsError(Exception):
    """Base class of every error raised by airflow-graphlets."""


class StoreConfigError(GraphletsError, ValueError):
    """A store URI, connection or setting is malformed."""


class StoreUnavailableError(GraphletsError):
    """The MLMD store could not be opened or written (down, refusing, or too slow)."""


class RecordError(GraphletsError, ValueError):
    """A task-run record or an artifact declaration is invalid."""


class SpoolError(GraphletsError):
    """The local spool cannot be written or read."""


_CREDENTIALS = re.compile(r"(?P<user>[^\s:/@'\"?#]*):(?P<secret>[^\s@'\"/]+)@")
_SECRET_PARAMETERS = re.compile(r"(?P<key>\b(?:password|passwd|sslpassword)=)(?P<secret>[^\s&'\"]+)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every ``user:password@host`` in it, with or without a
    scheme, and every ``password=...`` parameter, replaced by ``***``: for any message that may
    quote an address someone typed."""
    text = _CREDENTIALS.sub(lambda m: f"{m['user']}:***@", text)
    return _SECRET_PARAMETERS.sub(lambda m: f"{m['key']}***", text)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (MLMD's can run to many lines), or its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class StoreNotFoundError(GraphletsError):
    """The store to analyse does not exist (no such SQLite file or database)."""


class NotAnMlmdStoreError(GraphletsError):
    """The database exists but holds no ML Metadata schema."""


class UnsupportedSchemaError(GraphletsError):
    """The store's MLMD schema version is one this release cannot read."""


class SimulationError(GraphletsError):
    """``graphlets simulate`` could not finish (a producer process died, for instance)."""


class NoGraphletsError(GraphletsError):
    """The store holds no trainer execution, so it has no model graphlet to analyse."""


class NotEnoughHistoryError(GraphletsError):
    """Too little finished history to learn the push predictor from (the message says how much)."""


class ConnectionLookupError(StoreUnavailableError):
    """The store's Airflow connection could not be looked up (a secrets backend failed): whether
    it exists is unknown, so neither it nor the default store can be used yet."""
