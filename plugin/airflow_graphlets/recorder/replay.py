"""Drain the spool into MLMD, oldest record first, each exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from airflow_graphlets.errors import RecordError, StoreUnavailableError, first_line
from airflow_graphlets.recorder.records import TaskRunRecord
from airflow_graphlets.recorder.spool import Spool, SpoolEntry
from airflow_graphlets.recorder.writer import REFUSALS, Writer, refusal_reason
from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store.uri import StoreConfig

log = logging.getLogger(__name__)

LINK_INTERVAL_SECONDS = 5.0
_BATCH = 1000  # records read ahead per pass: enough to pair starts with ends, bounded in memory
# A batch of rows commits at most this long after its first record was written, or at _BATCH
# records, or when the spool is empty; so a busy spool never delays a record by much.
_BATCH_MAX_SECONDS = 0.5
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

    Records are written in batches where the store allows (:meth:`Writer.open`); an entry leaves
    the spool only once its record is committed.

    Args:
      spool: the spool to drain.
      store_config: the MLMD store to write to.
      batch_rows: let the writer batch rows (PostgreSQL); off, every record is its own MLMD call.
    """

    def __init__(self, spool: Spool, store_config: StoreConfig, *, batch_rows: bool = True,
                 on_progress: Callable[[], None] | None = None) -> None:
        self.spool = spool
        self.on_progress = on_progress  # called as records are written: the flusher's heartbeat
        self.store_config = store_config
        self.batch_rows = batch_rows
        self._writer: Writer | None = None
        self._uncommitted: list[tuple[SpoolEntry, TaskRunRecord]] = []  # written, removed once committed
        self._batch_opened = 0.0
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
            while entries := self._waiting():
                batch = entries[:_BATCH]
                records = [self._read(entry, report) for entry in batch]
                ends, superseded = _pair_starts_with_ends(records)
                for index, (entry, record) in enumerate(zip(batch, records)):
                    if record is None or index in superseded:
                        continue  # gone, quarantined, or carried by its end later in this batch
                    if deadline is not None and time.monotonic() > deadline:
                        self._commit(report, flush=True)
                        report.remaining = len(self.spool.pending())
                        report.error = report.error or "timed out"
                        return report
                    write, start_index = ends.get(index, (record, None))
                    start = batch[start_index] if start_index is not None else None
                    # (A merged end MLMD refuses is set aside; its start stays, written alone next pass.)
                    if self._write_entry(entry, write, report, start) == _FAILED or not self._commit(report):
                        report.remaining = len(self.spool.pending())
                        return report
                # Records that came in meanwhile join the open batch, up to a size and an age.
                if not self._commit(report, flush=self._batch_full()):
                    report.remaining = len(self.spool.pending())
                    return report
            if not self._commit(report, flush=True):
                report.remaining = len(self.spool.pending())
                return report
            if report.written:
                self._link_owed = True
            if self.seconds_until_link() == 0:
                report.linked = self.link_late_inputs()
        return report

    def _waiting(self) -> list[SpoolEntry]:
        """Entries not yet written (those written in the open batch stay in the spool until it commits)."""
        entries = self.spool.pending()
        if not self._uncommitted:
            return entries
        written = {entry.path for entry, _ in self._uncommitted}
        return [entry for entry in entries if entry.path not in written]

    def _batch_full(self) -> bool:
        return (len(self._uncommitted) >= _BATCH
                or time.monotonic() - self._batch_opened > _BATCH_MAX_SECONDS)

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
            return self._open_writer().link_late_inputs()
        except (StoreUnavailableError, mlmd_errors.StatusError, RuntimeError):
            self._drop_writer()  # reconnect next time
            self._link_owed = True
            return 0

    def close(self) -> None:
        """Close the store connections (what is not committed stays in the spool)."""
        self._drop_writer()

    def _open_writer(self) -> Writer:
        if self._writer is None:
            self._writer = Writer.open(self.store_config, batch_rows=self.batch_rows)
        return self._writer

    def _drop_writer(self) -> None:
        """Forget the writer and what it had not committed: those entries stay for the next drain."""
        self._uncommitted = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None

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
        except Exception as err:  # noqa: BLE001 - no record may stop the drain (it would never get past it)
            self.spool.quarantine(entry, f"Could not be read: {type(err).__name__}: {err}")
            report.quarantined += 1
            return None

    def _write_entry(self, entry: SpoolEntry, record: TaskRunRecord, report: ReplayReport,
                     start: SpoolEntry | None = None) -> str:
        """Write one entry's record (and ``start``, the entry of the start it carries): written
        (it leaves the spool once committed), quarantined (MLMD refused it for good, set aside),
        or failed (the store is down: draining must stop)."""
        started = time.perf_counter()
        try:
            self._open_writer().write(record)
        except REFUSALS as err:
            # The store will never take this record; keep it aside instead of blocking the rest.
            self.spool.quarantine(entry, refusal_reason(err))
            report.quarantined += 1
            return _QUARANTINED
        except (StoreUnavailableError, mlmd_errors.StatusError) as err:
            self._fail(entry, report, err)
            return _FAILED
        report.write_seconds.append(time.perf_counter() - started)
        if self.on_progress is not None:
            self.on_progress()
        if not self._uncommitted:
            self._batch_opened = time.monotonic()
        if start is not None:  # leaves the spool before its end: a task waiting on the end then finds both gone
            self._uncommitted.append((start, record))
        self._uncommitted.append((entry, record))
        return _WRITTEN

    def _commit(self, report: ReplayReport, *, flush: bool = False) -> bool:
        """Remove from the spool the entries whose records are committed; with ``flush``, commit
        what the writer still holds first. ``False`` if the store failed (they stay)."""
        writer = self._writer
        if writer is None or not self._uncommitted:
            return True
        if flush:
            try:
                writer.flush()
            except (StoreUnavailableError, mlmd_errors.StatusError) as err:
                self._fail(self._uncommitted[0][0], report, err)
                return False
        if writer.queued:
            return True  # the batch is still open; its entries leave with it
        rejected = {id(record): reason for record, reason in writer.take_rejected()}
        for entry, record in self._uncommitted:
            if id(record) in rejected:
                self.spool.quarantine(entry, rejected[id(record)])
                report.quarantined += 1
            else:
                self.spool.remove(entry)
                report.written += 1
        self._uncommitted = []
        return True

    def _fail(self, entry: SpoolEntry, report: ReplayReport, err: Exception) -> None:
        self._drop_writer()  # reconnect next time: the connection may be the broken part
        report.error = first_line(err)
        log.warning("airflow-graphlets: %s stays in the spool: %s", entry.name, report.error)


def replay_spool(spool: Spool, store_config: StoreConfig, *, timeout: float | None = None) -> ReplayReport:
    """Drain ``spool`` into the store once (what ``graphlets spool replay`` runs)."""
    drainer = SpoolDrainer(spool, store_config)
    try:
        return drainer.drain(timeout=timeout)
    finally:
        drainer.close()


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
