"""The MLMD rows of one task try: its execution (type, state, properties) and its events.

Pure functions from a :class:`~airflow_graphlets.recorder.records.TaskRunRecord` to MLMD's
protos, as TFX's portable orchestrator shapes them; the writer decides what to write and when.
"""

from __future__ import annotations

from typing import Any

from airflow_graphlets.recorder.records import RunState, TaskRunRecord
from airflow_graphlets.store import mlmd_proto as mlmd_pb
from airflow_graphlets.store import schema
from airflow_graphlets.store.properties import set_value
from airflow_graphlets.store.types import TypeRegistry

MLMD_STATE = {
    RunState.RUNNING: mlmd_pb.Execution.RUNNING,
    RunState.SUCCESS: mlmd_pb.Execution.COMPLETE,
    RunState.FAILED: mlmd_pb.Execution.FAILED,
    RunState.UP_FOR_RETRY: mlmd_pb.Execution.FAILED,
    # MLMD has no SKIPPED state; the Airflow state is kept in the ``airflow_state`` property.
    RunState.SKIPPED: mlmd_pb.Execution.CANCELED,
    RunState.UPSTREAM_FAILED: mlmd_pb.Execution.CANCELED,
}
TERMINAL_STATES = (
    mlmd_pb.Execution.COMPLETE,
    mlmd_pb.Execution.FAILED,
    mlmd_pb.Execution.CANCELED,
    mlmd_pb.Execution.CACHED,
)


def execution_proto(
    types: TypeRegistry, record: TaskRunRecord, external_id: str, existing: mlmd_pb.Execution | None
) -> mlmd_pb.Execution:
    """The execution row of ``record``: a new one, or ``existing`` (its start) with the end added."""
    execution = mlmd_pb.Execution()
    if existing is not None:
        # Keep what the start record wrote (and the type it was created with); add the end.
        execution.CopyFrom(existing)
        execution.ClearField("create_time_since_epoch")
        execution.ClearField("last_update_time_since_epoch")
    else:
        execution.type_id = _execution_type_id(types, record)
        execution.name = external_id
        execution.external_id = external_id
    execution.last_known_state = MLMD_STATE[record.state]
    props = schema.ExecutionProps
    values = {
        props.DAG_ID: record.dag_id,
        props.TASK_ID: record.task_id,
        props.RUN_ID: record.run_id,
        props.TRY_NUMBER: record.try_number,
        props.MAP_INDEX: record.map_index,
        props.AIRFLOW_STATE: record.state.value,
        props.OPERATOR_CLASS: record.operator_class or None,
        props.COMPONENT_KIND: record.component_kind,
        props.START_EPOCH_SECONDS: epoch_seconds(record.start_time_ms),
        props.END_EPOCH_SECONDS: epoch_seconds(record.end_time_ms),
        props.DURATION_SECONDS: record.duration_seconds,
        props.RESOURCES: _resources(record),
        props.CODE_HASH: record.code_hash or None,
        props.PARAMETERS_HASH: record.parameters_hash or None,
        props.DAG_STRUCTURE_HASH: record.dag_structure_hash or None,
        props.DAG_VERSION: record.dag_version or None,
        props.ERROR: record.error or None,
        **record.properties,
    }
    for name, value in values.items():
        if value is not None:
            set_value(execution.custom_properties[name], name, value)
    return execution


def _resources(record: TaskRunRecord) -> dict[str, Any] | None:
    resources = {
        "pool": record.pool,
        "pool_slots": record.pool_slots,
        "queue": record.queue,
        "executor": record.executor,
        "hostname": record.hostname,
    }
    return {k: v for k, v in resources.items() if v} if record.source == "worker" else None


def epoch_seconds(milliseconds: int | None) -> float | None:
    """Epoch milliseconds as the seconds MLMD's properties hold (None stays None)."""
    return None if milliseconds is None else milliseconds / 1000.0


def _execution_type_id(types: TypeRegistry, record: TaskRunRecord) -> int:
    kind = schema.COMPONENT_KINDS.get(record.component_kind or "")
    if kind is not None:
        return types.execution_type(schema.component_type_name(kind.name), kind.base_type)
    if record.component_kind:
        return types.execution_type(schema.component_type_name(record.component_kind))
    return types.execution_type(record.operator_class or "airflow.BaseOperator")


def event(event_type: int, key: str, index: int) -> mlmd_pb.Event:
    """An event of ``event_type`` whose path is ``[key, index]``, as TFX writes it."""
    event = mlmd_pb.Event(type=event_type)
    event.path.steps.add().key = key
    event.path.steps.add().index = index
    return event
