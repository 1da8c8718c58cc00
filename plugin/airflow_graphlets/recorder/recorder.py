"""The recorder as a task sees it: spool the record, wake the flusher, move on.

The task's process never talks to MLMD (see :mod:`airflow_graphlets.recorder.flusher` for
why): it spools the record (one fsynced file) and wakes the flusher, which writes records in
the order they were spooled. With ``[graphlets] record_wait`` a finishing task also waits, at
most ``record_timeout`` seconds, until its record is in the store; while the store is known to
be failing it never waits, so an outage never slows tasks down.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field

from airflow_graphlets.errors import SpoolError
from airflow_graphlets.recorder import flusher
from airflow_graphlets.recorder.records import TaskRunRecord
from airflow_graphlets.recorder.spool import Spool, SpoolEntry
from airflow_graphlets.store.uri import StoreConfig

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.0002
_STATE_CHECK_SECONDS = 0.05
_HEALTH_CHECK_SECONDS = 1.0


@dataclass
class Recorder:
    """Records task runs for one process (a task, or the scheduler).

    Args:
      store_config: the MLMD store; ``None`` while it is unknown (its connection could not be
        looked up): records are spooled and wait, no flusher is started.
      spool: where records wait.
      record_timeout: seconds a finishing task waits at most for its record to be written.
      flusher_idle_seconds: how long a flusher this recorder starts stays alive without work.
    """

    store_config: StoreConfig | None
    spool: Spool
    record_timeout: float = 5.0
    flusher_idle_seconds: float = 300.0
    unresolved: str = ""  # why store_config is None
    _warned: set[str] = field(default_factory=set)
    _next_health_check: float = 0.0

    def record(self, record: TaskRunRecord, *, wait: bool) -> bool:
        """Spool ``record`` and have the flusher write it; never raises.

        Args:
          record: the task try to record.
          wait: wait (at most ``record_timeout``) until the record is in the store.

        Returns:
          Whether the record is known to be in the store.
        """
        try:
            entry = self.spool.append(record)
        except SpoolError as err:
            if self.store_config is None:
                self._warn_once("spool", f"airflow-graphlets: {err} The store is unknown ({self.unresolved}): "
                                         "this record is lost.")
                return False
            self._warn_once("spool", f"airflow-graphlets: {err} This record is written directly, unspooled.")
            if not wait:
                self._write_in_background(record)  # a task that does not wait never pays for the store
                return False
            return self._write_directly(record)
        if self.store_config is None:
            self._warn_once("unresolved", f"airflow-graphlets: records wait in the spool {self.spool.directory}: "
                                          f"{self.unresolved}")
            return False
        self._notify()
        if wait:
            return self._wait_written(entry)
        if time.monotonic() >= self._next_health_check:  # a file read, so not on every record
            self._next_health_check = time.monotonic() + _HEALTH_CHECK_SECONDS
            state = flusher.read_state(self.spool.directory)
            if state.store_failing and not self._hand_over():
                self._warn_unavailable(state.last_error)
        return False

    def _hand_over(self) -> bool:
        """A failing flusher writing to another address than this task's (settings changed since
        it started: a rotated password, a moved database) is replaced by one with this task's."""
        return flusher.hand_over(self.spool.directory, self.store_config, self.flusher_idle_seconds)

    def record_many(self, records: list[TaskRunRecord]) -> None:
        """Spool several records with one flush to disk and wake the flusher once; never raises,
        never waits (the scheduler's DAG-run listener: every task instance of a run at once)."""
        if not records:
            return
        if self.store_config is None:
            for record in records:
                self.record(record, wait=False)
            return
        try:
            self.spool.append_many(records)
        except SpoolError as err:
            self._warn_once("spool", f"airflow-graphlets: {err} These records are written directly, unspooled.")
            for record in records:
                self._write_in_background(record)
            return
        self._notify()

    def _wait_written(self, entry: SpoolEntry) -> bool:
        deadline = time.monotonic() + self.record_timeout
        next_state_check = 0.0
        while os.path.exists(entry.path):
            now = time.monotonic()
            if now >= next_state_check:
                state = flusher.read_state(self.spool.directory)
                if state.store_failing:
                    if not self._hand_over():
                        self._warn_unavailable(state.last_error)
                    return False
                next_state_check = now + _STATE_CHECK_SECONDS
            if now >= deadline:
                if flusher.stop_stalled_flusher(self.spool.directory):
                    self._notify()
                self._warn_once(
                    "timeout",
                    f"airflow-graphlets: the MLMD store {self.store_config} did not take the record within "
                    f"[graphlets] record_timeout={self.record_timeout}s; it stays in the spool "
                    f"{self.spool.directory} and is written when the store answers (or: graphlets spool replay).",
                )
                return False
            time.sleep(_POLL_SECONDS)
        return True

    def _notify(self) -> None:
        flusher.notify(self.spool.directory, self.store_config, self.flusher_idle_seconds)

    def _write_directly(self, record: TaskRunRecord) -> bool:
        """Last resort when the spool cannot be written: write from a forked child, bounded."""
        pid = os.fork()
        if pid == 0:  # the child: MLMD may hang, and must not hold the task's GIL while it does
            code = 1
            try:
                from airflow_graphlets.recorder.writer import Writer
                from airflow_graphlets.store.connect import open_store

                Writer(open_store(self.store_config)).write(record)
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + self.record_timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.waitstatus_to_exitcode(status) == 0:
                    return True
                break
            time.sleep(_POLL_SECONDS)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        log.error(
            "airflow-graphlets: the record of %s.%s try %s is lost: neither the spool nor the store took it.",
            record.dag_id, record.task_id, record.try_number,
        )
        return False

    def _write_in_background(self, record: TaskRunRecord) -> None:
        """The direct write of :meth:`_write_directly`, in a detached grandchild this process does
        not wait for (the child exits at once and is reaped; the grandchild ends within the
        record timeout, or 30 s, even if the store hangs)."""
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:  # the child: start the writer and leave
            code = 0
            try:
                if os.fork() == 0:
                    signal.alarm(int(max(self.record_timeout, 30)))  # a hung store does not keep it for ever
                    try:
                        from airflow_graphlets.recorder.writer import Writer
                        from airflow_graphlets.store.connect import open_store

                        Writer(open_store(self.store_config)).write(record)
                    finally:
                        os._exit(0)
            except BaseException:  # noqa: BLE001 - the child must end here whatever happens
                code = 1
            finally:
                os._exit(code)
        os.waitpid(pid, 0)  # the child only forks: this returns at once

    def _warn_unavailable(self, reason: str) -> None:
        self._warn_once(
            "unavailable",
            f"airflow-graphlets: the MLMD store {self.store_config} is unavailable ({reason}); records are kept "
            f"in the spool {self.spool.directory} and written when it is back (or: graphlets spool replay).",
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)
