"""The errors the native MLMD store raises, named and ranked as ml-metadata's (``ml_metadata.errors``).

Callers catch :class:`StatusError` for "the store failed", :class:`AlreadyExistsError` for a
row another writer made first, :class:`InvalidArgumentError` for a record MLMD's rules refuse.
"""

from __future__ import annotations


class StatusError(Exception):
    """The store refused or failed an operation."""


class NotFoundError(StatusError):
    """Something the operation needs is not in the store."""


class AlreadyExistsError(StatusError):
    """A row with the same unique key (name, external id, event, link) is already stored."""


class InvalidArgumentError(StatusError):
    """The record breaks MLMD's rules (a property its type does not declare, a missing id...)."""


class FailedPreconditionError(StatusError):
    """The store is not in a state the operation can run in (a schema of another version)."""


class UnavailableError(StatusError):
    """The database cannot be reached, or failed mid-operation."""
