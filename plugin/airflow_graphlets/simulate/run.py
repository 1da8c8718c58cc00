"""``graphlets simulate``: write a whole simulated history into an MLMD store, in bulk."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_graphlets.errors import StoreConfigError
from airflow_graphlets.simulate.history import KIND_OF_TASK, TASKS
from airflow_graphlets.simulate.mlmd_rows import RowBuilder, TypeIds
from airflow_graphlets.simulate.producers import Plan, Producers
from airflow_graphlets.simulate.profile import Profile
from airflow_graphlets.store import schema
from airflow_graphlets.store.bulk_write import ID_TABLES, BulkWriter
from airflow_graphlets.store.uri import StoreConfig


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
    producers: int | None = None,
) -> SimulationReport:
    """Write ``pipelines`` simulated pipelines over ``days`` days into a new or empty store.

    Args:
      config: the store; created (with MLMD's schema) when it does not exist.
      pipelines, days, seed: the size of the history, and the seed that fixes it.
      profile: the distributions (:class:`Profile` defaults when ``None``).
      progress: called with (pipelines written, pipelines in all) after each batch.
      producers: SQLite only: processes building batches side by side (default: one per core
        this process may use, up to four). The store is the same for any number.

    Raises:
      StoreConfigError: bad sizes, or the store already holds executions.
    """
    if pipelines < 1 or days < 1:
        raise StoreConfigError(f"--pipelines and --days must be at least 1 (got {pipelines} and {days}).")
    if producers is not None and producers < 1:
        raise StoreConfigError(f"producers must be at least 1 (got {producers}).")
    profile = profile or Profile.paper()
    began = time.perf_counter()
    # BulkWriter refuses a store that holds executions before it touches anything in it.
    with BulkWriter(config, defer_indexes=True, single_transaction=True) as writer:
        ids = writer.next_ids()
        postgresql = writer.dialect == "postgresql"
        staged = writer.dialect == "sqlite"
        builder = RowBuilder(register_types(writer), ids, copy_text=postgresql, group_by_name=postgresql,
                             wide_properties=staged)
        taken = dict.fromkeys(ID_TABLES, 0)
        done = runs = 0
        # Producer processes draw the histories and build rows while this one inserts them; on
        # SQLite several, side by side (the copy of a staged batch is a small part of its cost).
        with _staging_directory(config) if staged else contextlib.nullcontext() as staging, \
                Producers(builder, Plan(profile, pipelines, days, seed, writer.dialect, staging),
                          (producers or _producer_count()) if staged else 1) as batches:
            for batch in batches:
                if isinstance(batch.rows, str):
                    writer.copy_staged(batch.rows)
                    os.remove(batch.rows)
                else:
                    for table, table_rows in batch.rows.items():
                        writer.add(table, table_rows)
                    writer.flush(wait=False)  # PostgreSQL copies this batch while we take the next
                done += batch.pipelines
                runs += batch.runs
                taken = {table: taken[table] + batch.ids[table] for table in ID_TABLES}
                if progress:
                    progress(done, pipelines)
    return SimulationReport(
        store=str(config),
        pipelines=pipelines,
        runs=runs,
        executions=taken["Execution"],
        artifacts=taken["Artifact"],
        events=taken["Event"],
        seconds=time.perf_counter() - began,
    )


def _producer_count() -> int:
    """Producers for a SQLite store: one per core this process may use, up to four (beyond that
    the copying process would be the bottleneck: it does about a third of a batch's work)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def _staging_directory(config: StoreConfig) -> tempfile.TemporaryDirectory:
    """Where the producers stage batches for a SQLite store: beside the store, on its disk."""
    return tempfile.TemporaryDirectory(prefix=".graphlets-simulate-", dir=os.path.dirname(os.path.abspath(config.path)))


def register_types(writer: BulkWriter) -> TypeIds:
    """Register the simulated pipelines' types in the writer's store (MLMD's API; existing types
    are reused); returns their ids."""
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
