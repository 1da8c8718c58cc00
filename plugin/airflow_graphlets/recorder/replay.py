"""Drain the spool into MLMD, oldest record first, each exactly once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ml_metadata import errors as mlmd_errors

from airflow_graphlets.errors import RecordError, StoreUnavailableError
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.recorder.writer import write_task_run
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.types import TypeRegistry
from airflow_graphlets.store.uri import StoreConfig


@dataclass
class ReplayReport:
    """What one replay did.

    ``write_seconds`` holds the time each record took to write, for the benchmarks.
    """

    written: int = 0
    quarantined: int = 0
    remaining: int = 0
    lock_taken: bool = True
    error: str = ""
    write_seconds: list[float] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.lock_taken and not self.error and self.remaining == 0


def replay_spool(spool: Spool, store_config: StoreConfig, *, timeout: float | None = None) -> ReplayReport:
    """Write every record waiting in ``spool`` to the store, in order, and remove it.

    Stops at the first record the store cannot take (it stays, with everything after it, for
    the next replay) or when ``timeout`` seconds have passed. Unreadable records are moved to
    the spool's ``corrupt/`` folder with the reason, so one bad file never blocks the rest.

    Args:
      spool: the spool to drain.
      store_config: the MLMD store to write to.
      timeout: seconds to spend at most, lock wait included; ``None`` for no limit.

    Returns:
      Counts of records written, quarantined and left, and the error that stopped it, if any.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    report = ReplayReport()
    with spool.replay_lock(timeout) as taken:
        if not taken:
            report.lock_taken = False
            report.remaining = len(spool.pending())
            return report
        store = types = None
        while True:
            entries = spool.pending()
            if not entries:
                break
            for entry in entries:
                if deadline is not None and time.monotonic() > deadline:
                    report.remaining = len(spool.pending())
                    report.error = "timed out"
                    return report
                try:
                    record = spool.read(entry)
                except FileNotFoundError:
                    continue
                except RecordError as err:
                    spool.quarantine(entry, str(err))
                    report.quarantined += 1
                    continue
                started = time.perf_counter()
                try:
                    if store is None:
                        store = open_store(store_config)
                        types = TypeRegistry(store)
                    write_task_run(store, types, record)
                except mlmd_errors.InvalidArgumentError as err:
                    # The store will never take this record; keep it aside instead of blocking the rest.
                    spool.quarantine(entry, f"MLMD rejected the record: {err}")
                    report.quarantined += 1
                    continue
                except (StoreUnavailableError, mlmd_errors.StatusError) as err:
                    report.error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    report.remaining = len(spool.pending())
                    return report
                report.write_seconds.append(time.perf_counter() - started)
                spool.remove(entry)
                report.written += 1
    return report
