"""Write one task try into MLMD: its execution, contexts, input and output artifacts and events.

The write follows TFX's portable orchestrator (``execution_publish_utils.py``): one execution
per try, associated with its ``pipeline``, ``pipeline_run`` and ``node`` contexts; INPUT events
for what it read and, when it succeeded, LIVE output artifacts with OUTPUT events, each event path
``[key, index]``. Every row carries a deterministic external id, so writing the same record twice,
or two writers racing on it, leaves exactly one copy.

Given a :class:`~airflow_graphlets.store.row_batch.RowBatch` (PostgreSQL), the writer queues each
try's rows there instead of calling ``put_execution``, and writes the queue in one transaction
when :meth:`Writer.flush` is called or before it next reads the store, so it always reads what
it wrote.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Generic, TypeVar

from airflow_graphlets.errors import RecordError
from airflow_graphlets.recorder.inputs import describe_input, input_pairs, is_resolved, resolve_input
from airflow_graphlets.recorder.records import InputRef, RunState, TaskRunRecord
from airflow_graphlets.recorder.rows import MLMD_STATE, TERMINAL_STATES, epoch_seconds, event, execution_proto
from airflow_graphlets.store import artifacts, mlmd_errors, schema
from airflow_graphlets.store import mlmd_proto as mlmd_pb
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.contexts import ContextCache
from airflow_graphlets.store.identity import artifact_external_id, execution_external_id
from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store.properties import set_value
from airflow_graphlets.store.row_batch import BatchRefused, RowBatch, RowCollision
from airflow_graphlets.store.types import TypeRegistry
from airflow_graphlets.store.uri import StoreConfig

log = logging.getLogger(__name__)

# Errors that say a record can never be written (MLMD refused it, or it cannot be turned into
# MLMD's protos): retrying would fail the same way, so such a record is set aside with the reason.
REFUSALS = (mlmd_errors.InvalidArgumentError, ValueError, TypeError)


def refusal_reason(err: BaseException) -> str:
    """Why a record was set aside, for the ``.reason`` file next to it."""
    if isinstance(err, mlmd_errors.InvalidArgumentError):
        return f"MLMD rejected the record: {err}"
    return f"Could not be written: {type(err).__name__}: {err}"


# What a worker reports at a try's end: from the scheduler, these only close a RUNNING try.
_WORKER_OUTCOMES = (RunState.SUCCESS, RunState.FAILED, RunState.UP_FOR_RETRY)
_RACE_RETRIES = 3
_RECENT_LIMIT = 4096
UNRESOLVED_INPUTS = "unresolved_inputs"
# Declared inputs not (all) in the store when the execution was written, as InputRef JSON: their
# producers' records may still be on their way from another machine's spool. Flushers link them
# when they appear (:meth:`Writer.link_late_inputs`) for LATE_INPUT_SECONDS, then give up.
PENDING_INPUTS = "pending_inputs"
LATE_INPUT_SECONDS = 3600
_LATE_BATCH = 200


@dataclass(frozen=True)
class WriteResult:
    """What one write did: the execution's id, and whether the store changed."""

    execution_id: int
    changed: bool
    unresolved_inputs: tuple[str, ...] = ()


class Writer:
    """Writes task-run records into one MLMD store, remembering its types and contexts.

    Args:
      store: the MLMD store.
      rows: where to queue rows instead of writing each record through MLMD's API (see the
        module's docstring); the writer closes it.
    """

    def __init__(self, store: NativeStore, rows: RowBatch | None = None) -> None:
        self.store = store
        self.types = TypeRegistry(store)
        self.contexts = ContextCache(store, self.types)
        self.rows = rows
        self._queued: list[TaskRunRecord] = []  # written into ``rows``, not yet flushed
        self._rejected: list[tuple[TaskRunRecord, str]] = []
        # What this writer wrote lately, so a task's end record and its downstream tasks' inputs
        # need no look-ups (a flusher writes a task's start, end and successors in a row).
        self._written: _Recent[str, _Written] = _Recent(_RECENT_LIMIT)
        self._outputs: _Recent[tuple[str, str, str, str], list[mlmd_pb.Artifact]] = _Recent(_RECENT_LIMIT)

    def write(self, record: TaskRunRecord) -> WriteResult:
        """Write ``record``; idempotent and safe against concurrent writers.

        A RUNNING record never moves an execution back from a terminal state, and a scheduler's
        record never overwrites a worker's, so records may be written late or twice (a spool
        replay racing a live write) without harm.

        Returns:
          The execution id, whether anything was written, and inputs not found in the store.

        Raises:
          mlmd_errors.StatusError: the store failed; the caller keeps the record to retry.
        """
        external_id = execution_external_id(
            record.dag_id, record.run_id, record.task_id, record.map_index, record.try_number
        )
        for attempt in range(_RACE_RETRIES):
            try:
                return self._write_once(record, external_id, trust_memory=attempt == 0)
            except (mlmd_errors.AlreadyExistsError, _BatchRolledBack):
                # A concurrent writer inserted the same execution or artifact first (or a row
                # batch flushed meanwhile collided): re-read and merge.
                self._written.pop(external_id)
                if attempt == _RACE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _write_once(self, record: TaskRunRecord, external_id: str, *, trust_memory: bool) -> WriteResult:
        store = self.store
        remembered = self._written.get(external_id) if trust_memory else None
        if remembered is not None:
            existing, known_events = remembered.execution, remembered.events
        elif trust_memory and record.source == "worker" and (not record.state.is_terminal or self.rows is not None):
            # A task's start is nearly always new: insert, and look up only if the insert collides.
            # So is an end whose start this writer does not remember, when batching (a drain that
            # found both in the spool merged them): a look-up would cost a flush per record, a
            # collision costs one batch written again through MLMD's API.
            existing, known_events = None, set()
        else:
            self._flush_within_write()
            existing = _execution_by_external_id(store, external_id)
            known_events = (
                {(e.artifact_id, e.type) for e in store.get_events_by_execution_ids([existing.id])}
                if existing is not None
                else set()
            )
        if record.source == "scheduler" and record.state in _WORKER_OUTCOMES:
            return self._close(existing, record)
        if existing is not None and (
            record.source == "scheduler"
            or (existing.last_known_state in TERMINAL_STATES and not record.state.is_terminal)
            or (remembered is not None and not record.state.is_terminal)
        ):
            return WriteResult(existing.id, changed=False)

        contexts = self.contexts.task_contexts(
            record.dag_id,
            record.run_id,
            record.task_id,
            run_properties={
                schema.ContextProps.DAG_ID: record.dag_id,
                schema.ContextProps.RUN_ID: record.run_id,
                schema.ContextProps.LOGICAL_DATE_EPOCH_SECONDS: epoch_seconds(record.logical_date_ms),
                schema.ContextProps.RUN_TYPE: record.run_type or None,
            },
        )
        execution = execution_proto(self.types, record, external_id, existing)
        pairs, unresolved, pending = self._artifacts_and_events(record, external_id, known_events)
        if record.state.is_terminal or pending:
            _set_pending(execution, pending)
        if unresolved:
            log.warning(
                "airflow-graphlets: %s.%s (run %s) read inputs that are not in the MLMD store: %s",
                record.dag_id,
                record.task_id,
                record.run_id,
                "; ".join(unresolved),
            )
            execution.custom_properties[UNRESOLVED_INPUTS].string_value = json.dumps(unresolved)

        queued = self._queue(record, execution, pairs, contexts) if trust_memory else None
        if queued is not None:
            execution_id, artifact_ids = queued
        else:
            self._flush_within_write()  # MLMD's API must find what the queue holds (inputs, this try's start)
            execution_id, artifact_ids, context_ids = store.put_execution(
                execution,
                pairs,
                contexts,
                reuse_context_if_already_exist=True,
                # New outputs are new unless a first attempt collided: then merge with the stored rows.
                reuse_artifact_if_already_exist_by_external_id=not trust_memory,
                force_reuse_context=True,  # contexts we hold an id for are left as they are
            )
            self.contexts.remember(contexts, list(context_ids))
        self._remember(record, execution, execution_id, pairs, list(artifact_ids), known_events)
        return WriteResult(execution_id, changed=True, unresolved_inputs=tuple(unresolved))

    @classmethod
    def open(cls, config: StoreConfig, *, batch_rows: bool = True) -> Writer:
        """A writer for the store ``config`` names; with ``batch_rows``, one that queues rows in a
        :class:`RowBatch` where the store's database allows it (PostgreSQL).

        Raises:
          StoreUnavailableError: the store cannot be opened.
        """
        writer = cls(open_store(config))
        if batch_rows and RowBatch.supports(config):
            writer.rows = RowBatch(config, writer.types.declared_artifact_properties)
        return writer

    def _close(self, existing: mlmd_pb.Execution | None, record: TaskRunRecord) -> WriteResult:
        """Close a try the scheduler saw end while MLMD still has it RUNNING: its worker died
        between reporting the outcome to Airflow and recording it (the end record never came).
        Only the state, Airflow's state and the end time change (a field-masked update); no
        execution is created and none that ended is touched, so a worker's end record that
        arrives later still writes everything it knows."""
        if existing is None or existing.last_known_state in TERMINAL_STATES:
            return WriteResult(existing.id if existing is not None else 0, changed=False)
        props = schema.ExecutionProps
        notes = mlmd_pb.Execution(id=existing.id, type_id=existing.type_id,
                                  last_known_state=MLMD_STATE[record.state])
        started = existing.custom_properties.get(props.START_EPOCH_SECONDS)
        ended = epoch_seconds(record.end_time_ms)
        values = {props.AIRFLOW_STATE: record.state.value, props.END_EPOCH_SECONDS: ended,
                  props.ENDED_BY_SCHEDULER: True,
                  props.DURATION_SECONDS: ended - started.double_value if started is not None and ended else None}
        values = {name: value for name, value in values.items() if value is not None}
        for name, value in values.items():
            set_value(notes.custom_properties[name], name, value)
        self.store.put_executions([notes], field_mask_paths=[
            "last_known_state", *(f"custom_properties.{name}" for name in values)])
        self._written.pop(existing.external_id)
        return WriteResult(existing.id, changed=True)

    @property
    def queued(self) -> int:
        """Records written into the row batch and not yet flushed (0 without a row batch)."""
        return len(self._queued)

    def flush(self) -> None:
        """Write the row batch's queue into the store, in one transaction.

        When another writer stored some of its rows first (a spool replayed twice, a race), the
        batch is rolled back and its records are written again through MLMD's API, which
        merges with what is stored. A record MLMD then refuses as invalid is kept for
        :meth:`take_rejected` instead of stopping the rest.

        Raises:
          StoreUnavailableError, mlmd_errors.StatusError: the store failed; none of the
            queued records is written (the caller keeps them to write again).
        """
        self._flush_batch()

    def _flush_batch(self) -> bool:
        """:meth:`flush`; ``True`` if the batch collided and was written through MLMD's API."""
        if not self._queued:
            return False
        records, self._queued = self._queued, []
        try:
            self.rows.flush()
        except (RowCollision, BatchRefused) as err:
            log.info("airflow-graphlets: the store refused a batch of %d records (%s); writing them through "
                     "MLMD's API one by one", len(records), err)
            self._forget()
            self._write_through_api(records)
            return True
        except BaseException:
            self._forget()  # what memory holds of the batch was never stored
            raise
        return False

    def _flush_within_write(self) -> None:
        """Flush before a read or an API write in the middle of writing a record; if the batch
        was rolled back, the ids this write took from memory may be gone: start it again."""
        if self._flush_batch():
            raise _BatchRolledBack

    def take_rejected(self) -> list[tuple[TaskRunRecord, str]]:
        """Records of a rolled-back batch that MLMD's API then refused as invalid, with the reason."""
        rejected, self._rejected = self._rejected, []
        return rejected

    def close(self) -> None:
        """Drop what is queued and close the row batch's connection."""
        self._queued = []
        if self.rows is not None:
            self.rows.close()

    def _queue(self, record, execution, pairs, contexts) -> tuple[int, list[int]] | None:
        """Put one write into the row batch; ``None`` when it must go through MLMD's API."""
        if self.rows is None:
            return None
        context_ids = self.contexts.ensure_ids(contexts)
        queued = self.rows.add(execution, pairs, context_ids)
        if queued is not None:
            self._queued.append(record)
        return queued

    def _write_through_api(self, records: list[TaskRunRecord]) -> None:
        rows, self.rows = self.rows, None
        try:
            for record in records:
                try:
                    self.write(record)
                except REFUSALS as err:
                    self._rejected.append((record, refusal_reason(err)))
        finally:
            self.rows = rows

    def _forget(self) -> None:
        """Forget the ids memory holds: some may belong to rows that were never stored."""
        self._written = _Recent(_RECENT_LIMIT)
        self._outputs = _Recent(_RECENT_LIMIT)

    def link_late_inputs(self, now_ms: int | None = None) -> int:
        """Add the INPUT events of executions written before their inputs were in the store.

        Tasks on different machines spool to different flushers, so after an outage a consumer's
        record may reach MLMD before its producer's. Each flusher calls this after writing; it
        looks at executions of the last ``LATE_INPUT_SECONDS`` that still wait for inputs.

        Returns:
          How many executions gained input events.

        Raises:
          mlmd_errors.StatusError: the store failed (the caller tries again later).
        """
        self.flush()
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        waiting = self.store.executions_with_property_since(
            PENDING_INPUTS, now_ms - LATE_INPUT_SECONDS * 1000, _LATE_BATCH)
        linked = 0
        for execution in waiting:
            try:
                linked += self._link_inputs_of(execution)
            except mlmd_errors.AlreadyExistsError:
                continue  # another flusher linked them at the same moment
        return linked

    def _link_inputs_of(self, execution: mlmd_pb.Execution) -> int:
        """Add the events of ``execution``'s late inputs, then update only its two input notes: a
        flusher writing the same execution's end meanwhile must not have its write undone."""
        try:
            refs = [InputRef(**ref) for ref in json.loads(execution.custom_properties[PENDING_INPUTS].string_value)]
        except (ValueError, TypeError, RecordError):
            refs = []  # not ours to read; stop looking at it
        known = {(e.artifact_id, e.type) for e in self.store.get_events_by_execution_ids([execution.id])}
        pairs: list[tuple[mlmd_pb.Artifact, mlmd_pb.Event]] = []
        still_pending = []
        for ref in refs:
            found = self._resolve_input(ref)
            pairs.extend(input_pairs(ref, found, known))
            if not is_resolved(ref, found):
                still_pending.append(ref)
        if pairs:
            for artifact, input_event in pairs:
                input_event.artifact_id, input_event.execution_id = artifact.id, execution.id
            self.store.put_events([input_event for _, input_event in pairs])
            contexts = self.store.get_contexts_by_execution(execution.id)
            self.store.put_attributions_and_associations(
                [mlmd_pb.Attribution(artifact_id=artifact.id, context_id=context.id)
                 for artifact, _ in pairs for context in contexts], [])
        notes = mlmd_pb.Execution(id=execution.id, type_id=execution.type_id)
        _set_pending(notes, still_pending)
        if still_pending and UNRESOLVED_INPUTS in execution.custom_properties:
            notes.custom_properties[UNRESOLVED_INPUTS].CopyFrom(execution.custom_properties[UNRESOLVED_INPUTS])
        self.store.put_executions([notes], field_mask_paths=[
            f"custom_properties.{PENDING_INPUTS}", f"custom_properties.{UNRESOLVED_INPUTS}"])
        self._written.pop(execution.external_id)
        return 1 if pairs else 0

    def _remember(self, record, execution, execution_id, pairs, artifact_ids, known_events) -> None:
        execution.id = execution_id
        events = set(known_events)
        outputs: dict[str, list[mlmd_pb.Artifact]] = {}
        for (artifact, linked), artifact_id in zip(pairs, artifact_ids):
            events.add((artifact_id, linked.type))
            if linked.type == mlmd_pb.Event.OUTPUT:
                artifact.id = artifact_id
                outputs.setdefault(linked.path.steps[0].key, []).append(artifact)
        self._written.put(execution.external_id, _Written(execution, events))
        if record.state is RunState.SUCCESS and record.map_index == -1:
            for key, produced in outputs.items():
                self._outputs.put((record.dag_id, record.run_id, record.task_id, key), produced)

    def _artifacts_and_events(
        self, record: TaskRunRecord, external_id: str, known_events: set[tuple[int, int]]
    ) -> tuple[list[tuple[mlmd_pb.Artifact, mlmd_pb.Event]], list[str], list[InputRef]]:
        outputs = record.outputs if record.state is RunState.SUCCESS else ()
        if not record.inputs and not outputs:
            return [], [], []
        pairs: list[tuple[mlmd_pb.Artifact, mlmd_pb.Event]] = []
        unresolved: list[str] = []
        pending: list[InputRef] = []
        for ref in record.inputs:
            found = self._resolve_input(ref)
            if not found:
                unresolved.append(describe_input(ref))
            if not is_resolved(ref, found):
                pending.append(ref)
            pairs.extend(input_pairs(ref, found, known_events))
        for output in outputs:
            artifact = artifacts.build_artifact(
                self.types.artifact_type(output.type_name),
                self.types.artifact_property_names(output.type_name),
                output.uri,
                output.properties,
                artifact_external_id(external_id, output.key, output.index),
                output.asset_uri,
            )
            if known_events:
                self._flush_within_write()
                stored = artifacts.by_external_id(self.store, artifact.external_id)
                if stored is not None and (stored.id, mlmd_pb.Event.OUTPUT) in known_events:
                    continue
            pairs.append((artifact, event(mlmd_pb.Event.OUTPUT, output.key, output.index)))
        return pairs, unresolved, pending

    def _resolve_input(self, ref: InputRef) -> list[mlmd_pb.Artifact]:
        if ref.by == "task_output" and ref.map_index is None:
            # Outputs of an unmapped task this writer wrote itself; its latest successful try wins.
            cached = self._outputs.get((ref.dag_id, ref.run_id, ref.task_id, ref.output_key))
            if cached is not None:
                return list(cached)
        self._flush_within_write()
        if ref.by == "spans" and self.rows is not None:
            ids = self.rows.span_artifact_ids(ref.dag_id, ref.type_name, ref.span_min, ref.span_max)
            return artifacts.pipeline_spans(self.store, ref.dag_id, ref.type_name, ref.span_min, ref.span_max, ids)
        return resolve_input(self.store, ref)


def _set_pending(execution: mlmd_pb.Execution, pending: list[InputRef]) -> None:
    if pending:
        execution.custom_properties[PENDING_INPUTS].string_value = json.dumps(
            [asdict(ref) for ref in pending], sort_keys=True)
    elif PENDING_INPUTS in execution.custom_properties:
        del execution.custom_properties[PENDING_INPUTS]


def _execution_by_external_id(store: NativeStore, external_id: str) -> mlmd_pb.Execution | None:
    try:
        found = store.get_executions_by_external_ids([external_id])
    except mlmd_errors.NotFoundError:
        return None
    return found[0] if found else None


class _BatchRolledBack(Exception):
    """Raised inside a write when a flush it caused found the batch colliding (see ``_flush_within_write``)."""


@dataclass(frozen=True)
class _Written:
    execution: mlmd_pb.Execution
    events: set[tuple[int, int]]


K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """A small least-recently-used map."""

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)
