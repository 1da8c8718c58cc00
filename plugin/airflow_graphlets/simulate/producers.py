"""The producer processes of ``graphlets simulate``: they draw histories and turn them into rows
ready for the store, batch by batch, while the process writing the store inserts the batches."""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass

from airflow_graphlets.errors import SimulationError
from airflow_graphlets.simulate.history import generate
from airflow_graphlets.simulate.mlmd_rows import RowBuilder
from airflow_graphlets.simulate.profile import Profile
from airflow_graphlets.store.bulk_write import ID_TABLES, encode_rows, stage_rows

_BATCH_PIPELINES = 40
_QUEUED_BATCHES = 2  # per producer: enough to keep the writer busy, little memory and disk


@dataclass(frozen=True)
class Plan:
    """What to produce: the history, and how its batches are handed over."""

    profile: Profile
    pipelines: int
    days: int
    seed: int
    dialect: str
    # SQLite: a folder for staged batch files (BulkWriter.copy_staged), each numbering its ids
    # from 1. Otherwise None: rows come as the store takes them, ids allocated in order.
    staging: str | None = None


@dataclass(frozen=True)
class Batch:
    """One batch of whole pipelines, as a producer hands it over."""

    rows: dict[str, list[tuple] | str] | str  # by table (tuples or COPY text), or a staged file
    pipelines: int
    runs: int
    ids: dict[str, int]  # how many ids it takes in each table of ID_TABLES


class Producers:
    """``count`` producer processes building batches side by side, each every ``count``-th.

    Use as a context manager and iterate: batches come in pipeline order. Several producers need
    ``plan.staging`` (a batch's ids then depend on no other batch); without it, one producer
    allocates ids from ``builder``'s on. A producer's error is raised here; a producer that dies
    without one (killed, out of memory) is reported rather than waited for."""

    def __init__(self, builder: RowBuilder, plan: Plan, count: int = 1) -> None:
        if count > 1 and plan.staging is None:
            raise ValueError("several producers need a staging folder: their batches' ids are shifted when copied")
        self.builder, self.plan, self.count = builder, plan, count
        self._context = multiprocessing.get_context("fork")  # the builder and plan pass by fork
        self._processes: list = []
        self._queues: list = []

    def __enter__(self) -> Producers:
        for mine in range(self.count):
            batches = self._context.Queue(maxsize=_QUEUED_BATCHES)
            process = self._context.Process(target=_produce, args=(self.builder, self.plan, mine, self.count, batches),
                                            daemon=True)
            process.start()
            self._queues.append(batches)
            self._processes.append(process)
        return self

    def __exit__(self, *exc) -> None:
        for process in self._processes:
            process.kill()
            process.join()

    @property
    def pids(self) -> list[int]:
        """The producer processes' ids, in producer order (for monitoring)."""
        return [process.pid for process in self._processes]

    def __iter__(self) -> Iterator[Batch]:
        for number in range(_batch_count(self.plan.pipelines)):
            yield self._next(number % self.count)

    def _next(self, producer: int) -> Batch:
        batches, process = self._queues[producer], self._processes[producer]
        while True:
            try:
                batch = batches.get(timeout=1)
            except queue.Empty:
                if process.is_alive():
                    continue
                try:  # what it put just before it ended may still be on its way
                    batch = batches.get(timeout=1)
                except queue.Empty:
                    raise SimulationError(f"a graphlets simulate producer process ended without its batches (exit "
                                          f"code {process.exitcode}); if it was killed for memory, free some or ask for "
                                          "fewer producers (--producers), and simulate again into a new store") from None
            if isinstance(batch, BaseException):
                raise batch
            return batch


def _batch_count(pipelines: int) -> int:
    return -(-pipelines // _BATCH_PIPELINES)


def _produce(builder: RowBuilder, plan: Plan, mine: int, count: int, batches) -> None:
    """A producer process: batches number ``mine``, ``mine + count``, ... made ready for the
    store, so that the writing process is left little but the database's own work: on
    PostgreSQL COPY text (cheaper to pass between processes than millions of tuples), on SQLite
    a staged database file to copy from."""
    try:
        for number in range(mine, _batch_count(plan.pipelines), count):
            if plan.staging is not None:
                builder.ids = dict.fromkeys(builder.ids, 1)  # a staged batch numbers its own ids from 1
            before = dict(builder.ids)
            pipelines = range(number * _BATCH_PIPELINES, min((number + 1) * _BATCH_PIPELINES, plan.pipelines))
            runs = 0
            for history in generate(plan.profile, plan.pipelines, plan.days, plan.seed, only=pipelines):
                builder.pipeline(history)
                runs += len(history.run_times)
            taken = {table: builder.ids[table] - before[table] for table in ID_TABLES}
            if plan.staging is not None:
                rows = os.path.join(plan.staging, f"batch-{number}.sqlite")
                stage_rows(builder.take(), rows)
            else:
                rows = {table: table_rows if isinstance(table_rows, str) else encode_rows(plan.dialect, table_rows)
                        for table, table_rows in builder.take().items()}
            batches.put(Batch(rows, len(pipelines), runs, taken))
    except BaseException as err:  # noqa: BLE001 - handed to the writing process, which raises it
        batches.put(err)
