"""Drain the spool into MLMD, oldest record first, each exactly once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ml_metadata import errors as mlmd_errors

from airflow_graphlets.errors import RecordError, StoreUnavailableError, first_line
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.recorder.writer import Writer
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import StoreConfig


@dataclass
class ReplayReport:
    """What one drain did.

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


class SpoolDrainer:
    """Writes a spool's records into one store, keeping the connection between drains.

    Args:
      spool: the spool to drain.
      store_config: the MLMD store to write to.
    """

    def __init__(self, spool: Spool, store_config: StoreConfig) -> None:
        self.spool = spool
        self.store_config = store_config
        self._writer: Writer | None = None

    def drain(self, *, timeout: float | None = None) -> ReplayReport:
        """Write every waiting record, in order, and remove it from the spool.

        Stops at the first record the store cannot take (it stays, with everything after it,
        for the next drain) or when ``timeout`` seconds have passed. Unreadable records, and
        records MLMD rejects as invalid, are moved to the spool's ``corrupt/`` folder with the
        reason, so one bad file never blocks the rest.

        Args:
          timeout: seconds to spend at most, lock wait included; ``None`` for no limit.

        Returns:
          Counts of records written, quarantined and left, and the error that stopped it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        report = ReplayReport()
        with self.spool.replay_lock(timeout) as taken:
            if not taken:
                report.lock_taken = False
                report.remaining = len(self.spool.pending())
                return report
            while entries := self.spool.pending():
                for entry in entries:
                    if deadline is not None and time.monotonic() > deadline:
                        report.remaining = len(self.spool.pending())
                        report.error = "timed out"
                        return report
                    if not self._write_entry(entry, report):
                        report.remaining = len(self.spool.pending())
                        return report
        return report

    def _write_entry(self, entry, report: ReplayReport) -> bool:
        """Write one entry; ``False`` when the store failed and draining must stop."""
        try:
            record = self.spool.read(entry)
        except FileNotFoundError:
            return True
        except RecordError as err:
            self.spool.quarantine(entry, str(err))
            report.quarantined += 1
            return True
        started = time.perf_counter()
        try:
            if self._writer is None:
                self._writer = Writer(open_store(self.store_config))
            self._writer.write(record)
        except mlmd_errors.InvalidArgumentError as err:
            # The store will never take this record; keep it aside instead of blocking the rest.
            self.spool.quarantine(entry, f"MLMD rejected the record: {err}")
            report.quarantined += 1
            return True
        except (StoreUnavailableError, mlmd_errors.StatusError) as err:
            self._writer = None  # reconnect next time: the connection may be the broken part
            report.error = first_line(err)
            return False
        report.write_seconds.append(time.perf_counter() - started)
        self.spool.remove(entry)
        report.written += 1
        return True


def replay_spool(spool: Spool, store_config: StoreConfig, *, timeout: float | None = None) -> ReplayReport:
    """Drain ``spool`` into the store once (what ``graphlets spool replay`` runs)."""
    return SpoolDrainer(spool, store_config).drain(timeout=timeout)

