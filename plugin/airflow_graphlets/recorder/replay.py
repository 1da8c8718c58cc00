"""Drain the spool into MLMD, oldest record first, each exactly once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields, replace

from ml_metadata import errors as mlmd_errors

from airflow_graphlets.errors import RecordError, StoreUnavailableError, first_line
from airflow_graphlets.recorder.records import TaskRunRecord
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.recorder.writer import Writer
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import StoreConfig

log = logging.getLogger(__name__)

LINK_INTERVAL_SECONDS = 5.0
_BATCH = 1000  # records read ahead per pass: enough to pair starts with ends, bounded in memory
_WRITTEN, _QUARANTINED, _FAILED = "written", "quarantined", "failed"


@dataclass
class ReplayReport:
    """What one drain did.

    ``write_seconds`` holds the time each record took to write, for the benchmarks.
    """

    written: int = 0
    quarantined: int = 0
    linked: int = 0  # executions written earlier that gained input events this time
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
        self._link_owed = False  # something was written since the last late-input pass
        self._next_link = 0.0

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
                batch = entries[:_BATCH]
                records = [self._read(entry, report) for entry in batch]
                ends, superseded = _pair_starts_with_ends(records)
                for index, (entry, record) in enumerate(zip(batch, records)):
                    if record is None or index in superseded:
                        continue  # gone, quarantined, or carried by its end later in this batch
                    if deadline is not None and time.monotonic() > deadline:
                        report.remaining = len(self.spool.pending())
                        report.error = "timed out"
                        return report
                    write, start_index = ends.get(index, (record, None))
                    outcome = self._write_entry(entry, write, report)
                    if outcome == _FAILED:
                        report.remaining = len(self.spool.pending())
                        return report
                    if start_index is not None and outcome == _WRITTEN:
                        self.spool.remove(batch[start_index])
                        report.written += 1
                    # (A merged end MLMD refused is set aside; its start stays, written alone next pass.)
            if report.written:
                self._link_owed = True
            if self.seconds_until_link() == 0:
                report.linked = self.link_late_inputs()
        return report

    def seconds_until_link(self) -> float:
        """How long until :meth:`link_late_inputs` is due: never while nothing was written since
        the last pass; at most every ``LINK_INTERVAL_SECONDS`` otherwise (each pass re-reads the
        executions still waiting, so not after every record)."""
        if not self._link_owed:
            return float("inf")
        return max(0.0, self._next_link - time.monotonic())

    def link_late_inputs(self) -> int:
        """Give executions written before their inputs (spooled on other machines) their events."""
        self._link_owed = False
        self._next_link = time.monotonic() + LINK_INTERVAL_SECONDS
        try:
            if self._writer is None:
                self._writer = Writer(open_store(self.store_config))
            return self._writer.link_late_inputs()
        except (StoreUnavailableError, mlmd_errors.StatusError, RuntimeError):
            self._writer = None  # reconnect next time
            self._link_owed = True
            return 0

    def _read(self, entry, report: ReplayReport):
        """The entry's record; None when it is gone or unreadable (moved aside with the reason)."""
        try:
            return self.spool.read(entry)
        except FileNotFoundError:
            return None
        except RecordError as err:
            self.spool.quarantine(entry, str(err))
            report.quarantined += 1
            return None

    def _write_entry(self, entry, record: TaskRunRecord, report: ReplayReport) -> str:
        """Write one entry's record: written, quarantined (MLMD refused it for good, set aside),
        or failed (the store is down: draining must stop)."""
        started = time.perf_counter()
        try:
            if self._writer is None:
                self._writer = Writer(open_store(self.store_config))
            self._writer.write(record)
        except mlmd_errors.InvalidArgumentError as err:
            # The store will never take this record; keep it aside instead of blocking the rest.
            self.spool.quarantine(entry, f"MLMD rejected the record: {err}")
            report.quarantined += 1
            return _QUARANTINED
        except (StoreUnavailableError, mlmd_errors.StatusError) as err:
            self._writer = None  # reconnect next time: the connection may be the broken part
            report.error = first_line(err)
            log.warning("airflow-graphlets: %s stays in the spool: %s", entry.name, report.error)
            return _FAILED
        report.write_seconds.append(time.perf_counter() - started)
        self.spool.remove(entry)
        report.written += 1
        return _WRITTEN


def replay_spool(spool: Spool, store_config: StoreConfig, *, timeout: float | None = None) -> ReplayReport:
    """Drain ``spool`` into the store once (what ``graphlets spool replay`` runs)."""
    return SpoolDrainer(spool, store_config).drain(timeout=timeout)


def _pair_starts_with_ends(records: list[TaskRunRecord | None]) -> tuple[dict[int, tuple[TaskRunRecord, int]], set[int]]:
    """Pair each task try's start with its end when both wait in the same batch: one MLMD write
    instead of two (a backlog after an outage, or a busy machine, drains nearly twice as fast).
    The end is written where it stands in the order, with what only the start knew filled in; the
    start is removed once the end is written. Nothing reads a try's execution between the two
    (its outputs appear only with its end), so the order of everything else is kept.

    Returns:
      For each paired end's index, the record to write and its start's index; and the indexes of
      the starts so carried.
    """
    ends: dict[int, tuple[TaskRunRecord, int]] = {}
    open_starts: dict[tuple, int] = {}
    for index, record in enumerate(records):
        if record is None or record.source != "worker":
            continue
        key = (record.dag_id, record.run_id, record.task_id, record.map_index, record.try_number)
        if not record.state.is_terminal:
            open_starts[key] = index
        elif (start_index := open_starts.pop(key, None)) is not None:
            ends[index] = (_fill_from(record, records[start_index]), start_index)
    return ends, {start for _, start in ends.values()}


def _fill_from(end: TaskRunRecord, start: TaskRunRecord) -> TaskRunRecord:
    """``end`` with its empty fields taken from ``start`` (what the writer would have kept)."""
    empty = (None, "", (), {})
    changes = {f.name: getattr(start, f.name) for f in fields(TaskRunRecord)
               if getattr(end, f.name) in empty and getattr(start, f.name) not in empty}
    if start.properties and end.properties:
        changes["properties"] = {**start.properties, **end.properties}
    return replace(end, **changes) if changes else end
