"""The recorder: spool a record, then write it to MLMD in a forked process, within a budget.

MLMD's client holds Python's GIL for the length of every call, so a slow or hung database
would freeze the task's own code if MLMD were called from a thread of the task. Each flush
therefore runs in a forked child (as OpenLineage's listener does): the task's process only
writes the record to the spool (a file and an fsync) and forks. At a task's start it does not
wait at all; at its end it waits for the flush at most ``record_timeout`` seconds, then moves
on, leaving the record in the spool for the next flush or ``graphlets spool replay``.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field

from airflow_graphlets.errors import SpoolError
from airflow_graphlets.recorder.records import TaskRunRecord
from airflow_graphlets.recorder.replay import replay_spool
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.store.uri import StoreConfig

log = logging.getLogger(__name__)

# Exit codes of a flush child.
FLUSHED = 0
STORE_UNAVAILABLE = 3
CRASHED = 4


@dataclass
class Recorder:
    """Records task runs for one process (a task, or the scheduler).

    Args:
      store_config: the MLMD store.
      spool: where records wait.
      record_timeout: seconds a finishing task waits at most for its flush.
    """

    store_config: StoreConfig
    spool: Spool
    record_timeout: float = 5.0
    _children: list[int] = field(default_factory=list)
    _warned: set[str] = field(default_factory=set)

    def record(self, record: TaskRunRecord, *, wait: bool) -> None:
        """Spool ``record`` and flush the spool in a child; never raises.

        Args:
          record: the task try to record.
          wait: wait (at most ``record_timeout``) for the flush; used at a task's end so the
            record is in MLMD before the worker moves on, when the store is healthy.
        """
        try:
            self.spool.append(record)
        except SpoolError as err:
            self._warn_once("spool", f"airflow-graphlets: {err} This record is written directly, unspooled.")
            self._flush_direct(record)
            return
        self._reap()
        pid = self._fork_flush()
        if pid and wait:
            self.wait(self.record_timeout)

    def wait(self, timeout: float) -> bool:
        """Wait for running flushes; on timeout stop them (their records stay spooled).

        Returns:
          Whether every flush finished and wrote its records.
        """
        deadline = time.monotonic() + timeout
        ok = True
        while self._children:
            pid = self._children[0]
            status = _wait_pid(pid, deadline)
            if status is None:
                _kill(pid)
                self._warn_once(
                    "timeout",
                    f"airflow-graphlets: the MLMD store {self.store_config} did not take the record within "
                    f"[graphlets] record_timeout={self.record_timeout}s; it stays in the spool "
                    f"{self.spool.directory} and is replayed later (graphlets spool replay).",
                )
                ok = False
            elif status != FLUSHED:
                self._warn_exit(status)
                ok = False
            self._children.pop(0)
        return ok

    def _fork_flush(self) -> int:
        try:
            pid = os.fork()
        except OSError as err:
            self._warn_once("fork", f"airflow-graphlets: cannot fork a flush process ({err}); record stays spooled.")
            return 0
        if pid == 0:  # the child: drain the spool and leave without running any of the parent's exit hooks
            code = CRASHED
            try:
                _silence_output()
                report = replay_spool(self.spool, self.store_config, timeout=max(self.record_timeout, 1.0) * 4)
                code = FLUSHED if not report.error else STORE_UNAVAILABLE
                if report.error:
                    _write_last_error(self.spool, report.error)
            except BaseException as err:  # noqa: BLE001 - the child reports through its exit code
                _write_last_error(self.spool, f"{type(err).__name__}: {err}")
            finally:
                os._exit(code)
        self._children.append(pid)
        return pid

    def _flush_direct(self, record: TaskRunRecord) -> None:
        """Last resort when the spool cannot be written: write in a child, wait, report."""
        pid = os.fork()
        if pid == 0:
            code = CRASHED
            try:
                _silence_output()
                from airflow_graphlets.recorder.writer import write_task_run
                from airflow_graphlets.store.connect import open_store
                from airflow_graphlets.store.types import TypeRegistry

                store = open_store(self.store_config)
                write_task_run(store, TypeRegistry(store), record)
                code = FLUSHED
            except Exception:  # noqa: BLE001 - the child reports through its exit code
                code = STORE_UNAVAILABLE
            finally:
                os._exit(code)
        self._children.append(pid)
        if not self.wait(self.record_timeout):
            log.error("airflow-graphlets: record of %s.%s try %s is lost: neither spool nor store took it.",
                      record.dag_id, record.task_id, record.try_number)

    def _reap(self) -> None:
        """Collect flushes that finished, so a long-lived process leaves no zombies."""
        for pid in list(self._children):
            status = _wait_pid(pid, deadline=None, block=False)
            if status is not None:
                self._children.remove(pid)
                if status != FLUSHED:
                    self._warn_exit(status)

    def _warn_exit(self, status: int) -> None:
        if status == STORE_UNAVAILABLE:
            reason = _read_last_error(self.spool)
            self._warn_once(
                "unavailable",
                f"airflow-graphlets: the MLMD store {self.store_config} is unavailable ({reason}); records are "
                f"kept in the spool {self.spool.directory} and replayed when it is back "
                "(or run: graphlets spool replay).",
            )
        else:
            self._warn_once(
                "crash",
                f"airflow-graphlets: a flush process failed ({_read_last_error(self.spool)}); records stay in "
                f"the spool {self.spool.directory}.",
            )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)


def _silence_output() -> None:
    """Keep MLMD's C++ logging out of the task's log: the child reports through its exit code."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _wait_pid(pid: int, deadline: float | None, block: bool = True) -> int | None:
    """Exit code of child ``pid``, or ``None`` if it is still running at ``deadline``."""
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return CRASHED
        if done:
            return os.waitstatus_to_exitcode(status)
        if not block or (deadline is not None and time.monotonic() >= deadline):
            return None
        time.sleep(0.002)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _last_error_path(spool: Spool) -> str:
    return os.path.join(spool.directory, ".last_error")


def _write_last_error(spool: Spool, message: str) -> None:
    try:
        with open(_last_error_path(spool), "w", encoding="utf-8") as handle:
            handle.write(message[:2000])
    except OSError:
        pass


def _read_last_error(spool: Spool) -> str:
    try:
        with open(_last_error_path(spool), encoding="utf-8") as handle:
            return handle.read().strip() or "unknown error"
    except OSError:
        return "unknown error"

