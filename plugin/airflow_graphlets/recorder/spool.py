"""The durable local spool: every record lands here first, and leaves only once it is in MLMD.

One file per record, written to a temporary name, fsynced and renamed into place, so a crash
leaves either the whole record or nothing. Files are named by a nanosecond timestamp and the
writer's pid, so listing the directory gives the order records were made in. A replay takes an
exclusive lock, so at most one process per spool drains it at a time.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from airflow_graphlets.errors import RecordError, SpoolError
from airflow_graphlets.recorder.records import TaskRunRecord

_SUFFIX = ".json"
_QUARANTINE = "corrupt"
_LOCK = ".replay.lock"


@dataclass(frozen=True)
class SpoolEntry:
    """One record waiting in the spool."""

    path: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def created_ns(self) -> int:
        return int(self.name.split("-", 1)[0])


@dataclass(frozen=True)
class SpoolStatus:
    """How much is waiting, for ``graphlets spool status``."""

    directory: str
    pending: int
    pending_bytes: int
    oldest_age_seconds: float | None
    quarantined: int


class Spool:
    """A directory of records waiting to be written to MLMD.

    Args:
      directory: where records are kept; created on first write.
    """

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self._sequence = itertools.count()

    def append(self, record: TaskRunRecord) -> SpoolEntry:
        """Store ``record`` durably and return its entry.

        Raises:
          SpoolError: the spool directory cannot be created or written (read-only, disk full).
        """
        data = record.to_json().encode("utf-8")
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._sequence):06d}{_SUFFIX}"
        final = os.path.join(self.directory, name)
        temporary = os.path.join(self.directory, f".{name}.tmp")
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, final)
            self._sync_directory()
        except OSError as err:
            _remove_quietly(temporary)
            raise SpoolError(
                f"Cannot write to the graphlets spool {self.directory!r}: {err.strerror}. Make it writable "
                "or point [graphlets] spool_dir at a writable directory with free space."
            ) from err
        return SpoolEntry(final)

    def pending(self) -> list[SpoolEntry]:
        """Entries waiting, oldest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise SpoolError(f"Cannot read the graphlets spool {self.directory!r}: {err.strerror}.") from err
        return [
            SpoolEntry(os.path.join(self.directory, n))
            for n in sorted(names)
            if n.endswith(_SUFFIX) and n[0].isdigit()
        ]

    def read(self, entry: SpoolEntry) -> TaskRunRecord:
        """The record an entry holds.

        Raises:
          RecordError: the file is not a readable record (see :meth:`quarantine`).
          FileNotFoundError: another replay already wrote and removed it.
        """
        with open(entry.path, "rb") as handle:
            data = handle.read()
        try:
            return TaskRunRecord.from_json(data.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise RecordError(f"Not a task-run record (not UTF-8: {err.reason}).") from None

    def remove(self, entry: SpoolEntry) -> None:
        """Forget an entry once its record is in MLMD."""
        _remove_quietly(entry.path)

    def quarantine(self, entry: SpoolEntry, reason: str) -> str:
        """Move an unreadable entry aside (with the reason next to it) so replay can go on."""
        target_dir = os.path.join(self.directory, _QUARANTINE)
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, entry.name)
        os.replace(entry.path, target)
        with open(target + ".reason", "w", encoding="utf-8") as handle:
            handle.write(reason + "\n")
        return target

    def status(self) -> SpoolStatus:
        """Counts and age of what is waiting."""
        entries = self.pending()
        size = 0
        for entry in entries:
            try:
                size += os.path.getsize(entry.path)
            except OSError:
                pass
        oldest = (time.time_ns() - entries[0].created_ns) / 1e9 if entries else None
        quarantine_dir = os.path.join(self.directory, _QUARANTINE)
        quarantined = (
            sum(1 for n in os.listdir(quarantine_dir) if n.endswith(_SUFFIX))
            if os.path.isdir(quarantine_dir)
            else 0
        )
        return SpoolStatus(self.directory, len(entries), size, oldest, quarantined)

    @contextmanager
    def replay_lock(self, timeout: float | None) -> Iterator[bool]:
        """Hold the spool's replay lock; yields whether it was taken within ``timeout`` seconds.

        ``timeout=None`` waits as long as it takes.
        """
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(os.path.join(self.directory, _LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            yield acquire_flock(fd, timeout)
        finally:
            os.close(fd)  # closing releases the lock

    def append_many(self, records: list[TaskRunRecord]) -> list[SpoolEntry]:
        """Store several records durably with one flush to disk instead of one per record (the
        scheduler records every task instance of a finished DAG run at once, on its own loop).

        Raises:
          SpoolError: as :meth:`append`; records stored before the failure stay stored.
        """
        if len(records) <= 1:
            return [self.append(record) for record in records]
        entries, written = [], []
        try:
            os.makedirs(self.directory, exist_ok=True)
            for record in records:
                name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._sequence):06d}{_SUFFIX}"
                final, temporary = os.path.join(self.directory, name), os.path.join(self.directory, f".{name}.tmp")
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    _write_all(fd, record.to_json().encode("utf-8"))
                finally:
                    os.close(fd)
                os.rename(temporary, final)
                written.append(final)
                entries.append(SpoolEntry(final))
            self._sync_files(written)
        except OSError as err:
            raise SpoolError(
                f"Cannot write to the graphlets spool {self.directory!r}: {err.strerror}. Make it writable "
                "or point [graphlets] spool_dir at a writable directory with free space."
            ) from err
        return entries

    def _sync_files(self, paths: list[str]) -> None:
        """Make ``paths`` and their names durable: one ``syncfs`` of the spool's file system where
        Linux offers it, else an ``fsync`` of each file and of the directory."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            if _syncfs(fd):
                return
        finally:
            os.close(fd)
        for path in paths:
            file_fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(file_fd)
            finally:
                os.close(file_fd)
        self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _syncfs(fd: int) -> bool:
    """``syncfs(2)`` on the file system holding ``fd``; ``False`` where it is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs(fd) == 0
    except (OSError, AttributeError):
        return False


def acquire_flock(fd: int, timeout: float | None) -> bool:
    """Take an exclusive ``flock`` on ``fd`` within ``timeout`` seconds (``None``: wait as long as it takes)."""
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: a nearly full disk takes part of a write without an error, and a
    truncated record renamed into place would be a record lost."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:  # already gone, or its directory never existed
        pass
