"""``graphlets simulate``: write a whole simulated history into an MLMD store, in bulk."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_graphlets.errors import StoreConfigError
from airflow_graphlets.simulate.history import KIND_OF_TASK, TASKS, generate
from airflow_graphlets.simulate.mlmd_rows import RowBuilder, TypeIds
from airflow_graphlets.simulate.profile import Profile
from airflow_graphlets.store import schema
from airflow_graphlets.store.bulk_write import BulkWriter, encode_rows, stage_rows
from airflow_graphlets.store.uri import StoreConfig

_FLUSH_PIPELINES = 40


@dataclass(frozen=True)
class SimulationReport:
    """What was written, and how fast."""

    store: str
    pipelines: int
    runs: int
    executions: int
    artifacts: int
    events: int
    seconds: float

    @property
    def executions_per_second(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def simulate(
    config: StoreConfig,
    pipelines: int,
    days: int,
    seed: int = 0,
    profile: Profile | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Write ``pipelines`` simulated pipelines over ``days`` days into a new or empty store.

    Args:
      config: the store; created (with MLMD's schema) when it does not exist.
      pipelines, days, seed: the size of the history, and the seed that fixes it.
      profile: the distributions (:class:`Profile` defaults when ``None``).
      progress: called with (pipelines written, pipelines in all) after each batch.

    Raises:
      StoreConfigError: bad sizes, or the store already holds executions.
    """
    if pipelines < 1 or days < 1:
        raise StoreConfigError(f"--pipelines and --days must be at least 1 (got {pipelines} and {days}).")
    profile = profile or Profile.paper()
    began = time.perf_counter()
    with BulkWriter(config, defer_indexes=True, single_transaction=True) as writer:
        ids = writer.next_ids()
        if ids["Execution"] > 1:
            raise StoreConfigError(
                f"The store {config} already holds executions; simulate into a new or empty store."
            )
        postgresql = writer.dialect == "postgresql"
        builder = RowBuilder(_register_types(writer), ids, copy_text=postgresql, group_by_name=postgresql)
        # One process draws the histories and builds rows while this one inserts them.
        context = multiprocessing.get_context("fork")
        batches = context.Queue(maxsize=2)
        staging = _staging_directory(config) if writer.dialect == "sqlite" else None
        producer = context.Process(target=_produce, daemon=True,
                                   args=(builder, profile, pipelines, days, seed, writer.dialect,
                                         staging and staging.name, batches))
        producer.start()
        try:
            done = runs = 0
            last_ids = ids
            while done < pipelines:
                batch = batches.get()
                if isinstance(batch, BaseException):
                    raise batch
                rows, done, runs, last_ids = batch
                if isinstance(rows, str):
                    writer.add_staged(rows)
                    writer.flush()
                    os.remove(rows)
                else:
                    for table, table_rows in rows.items():
                        writer.add(table, table_rows)
                    writer.flush(wait=False)  # PostgreSQL copies this batch while we take the next
                if progress:
                    progress(done, pipelines)
        finally:
            producer.kill()
            producer.join()
            if staging is not None:
                staging.cleanup()
        first, last = ids, last_ids
    return SimulationReport(
        store=str(config),
        pipelines=pipelines,
        runs=runs,
        executions=last["Execution"] - first["Execution"],
        artifacts=last["Artifact"] - first["Artifact"],
        events=last["Event"] - first["Event"],
        seconds=time.perf_counter() - began,
    )


def _staging_directory(config: StoreConfig) -> tempfile.TemporaryDirectory:
    """Where the producer stages batches for a SQLite store: beside the store, on its disk."""
    return tempfile.TemporaryDirectory(prefix=".graphlets-simulate-", dir=os.path.dirname(os.path.abspath(config.path)))


def _produce(builder: RowBuilder, profile: Profile, pipelines: int, days: int, seed: int, dialect: str,
             staging: str | None, batches) -> None:
    """The producer process: rows of each batch of pipelines, with progress counts, in order,
    already made ready for the store, so that the inserting process is left little but the
    database's own work: on PostgreSQL, COPY text (cheaper to pass between processes than
    millions of tuples); on SQLite, a staged database file to copy from (``stage_rows``)."""
    try:
        runs = 0
        for done, history in enumerate(generate(profile, pipelines, days, seed), start=1):
            builder.pipeline(history)
            runs += len(history.run_times)
            if done % _FLUSH_PIPELINES == 0 or done == pipelines:
                if staging is not None:
                    rows = os.path.join(staging, f"batch-{done}.sqlite")
                    stage_rows(builder.take(), rows)
                else:
                    rows = {table: table_rows if isinstance(table_rows, str) else encode_rows(dialect, table_rows)
                            for table, table_rows in builder.take().items()}
                batches.put((rows, done, runs, dict(builder.ids)))
    except BaseException as err:  # noqa: BLE001 - handed to the parent, which raises it
        batches.put(err)


def _register_types(writer: BulkWriter) -> TypeIds:
    types = writer.types
    return TypeIds(
        contexts={name: types.context_type(name)
                  for name in (schema.PIPELINE_CONTEXT, schema.PIPELINE_RUN_CONTEXT, schema.NODE_CONTEXT)},
        executions={
            task: types.execution_type(schema.component_type_name(KIND_OF_TASK[task]),
                                       schema.COMPONENT_KINDS[KIND_OF_TASK[task]].base_type)
            for task in TASKS
        },
        artifacts={name: types.artifact_type(name) for name in schema.ARTIFACT_TYPES},
    )
