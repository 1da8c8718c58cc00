"""Read a store back through MLMD's own API as plain data.

``execution_rows`` is what ``graphlets show`` prints. ``store_snapshot`` is a canonical view
with database ids and write timestamps left out, so two stores holding the same records compare
equal whatever order and time they were written in (how the tests prove a replay after an outage
equals a run without one).
"""

from __future__ import annotations

from typing import Any

from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store import mlmd_proto as mlmd_pb

from airflow_graphlets.store import schema
from airflow_graphlets.store.artifacts import event_key
from airflow_graphlets.store.properties import get_value

_STATE_NAMES = {v.number: v.name for v in mlmd_pb.Execution.State.DESCRIPTOR.values}
_EVENT_NAMES = {v.number: v.name for v in mlmd_pb.Event.Type.DESCRIPTOR.values}
# Properties whose values differ between two equal runs (wall-clock times, hosts).
VOLATILE_PROPERTIES = frozenset(
    {
        schema.ExecutionProps.START_EPOCH_SECONDS,
        schema.ExecutionProps.END_EPOCH_SECONDS,
        schema.ExecutionProps.DURATION_SECONDS,
        schema.ExecutionProps.RESOURCES,  # holds the host name
        schema.ExecutionProps.DAG_VERSION,
        schema.ContextProps.LOGICAL_DATE_EPOCH_SECONDS,
    }
)


def execution_rows(store: NativeStore, dag_id: str | None = None) -> list[dict[str, Any]]:
    """One row per execution: id, pipeline, node, type, state, try, inputs and outputs."""
    executions = store.get_executions()
    if dag_id is not None:
        executions = [e for e in executions if _prop(e, schema.ExecutionProps.DAG_ID) == dag_id]
    type_names = {t.id: t.name for t in store.get_execution_types()}
    events = _events_by_execution(store, executions)
    artifact_ids = sorted({e.artifact_id for group in events.values() for e in group})
    artifacts_by_id = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
    artifact_type_names = {t.id: t.name for t in store.get_artifact_types()}
    rows = []
    for execution in sorted(executions, key=lambda e: e.id):
        ins, outs = [], []
        for event in events.get(execution.id, []):
            artifact = artifacts_by_id[event.artifact_id]
            label = f"{event_key(event)}:{artifact_type_names[artifact.type_id]}#{artifact.id}"
            span = artifact.properties.get(schema.SPAN)
            if span is not None and span.HasField("int_value"):
                label += f"(span {span.int_value})"
            (ins if event.type == mlmd_pb.Event.INPUT else outs).append(label)
        rows.append(
            {
                "id": execution.id,
                "pipeline": _prop(execution, schema.ExecutionProps.DAG_ID),
                "node": _prop(execution, schema.ExecutionProps.TASK_ID),
                "type": type_names[execution.type_id],
                "state": _STATE_NAMES[execution.last_known_state],
                "try": _prop(execution, schema.ExecutionProps.TRY_NUMBER),
                "map_index": _prop(execution, schema.ExecutionProps.MAP_INDEX),
                "inputs": ", ".join(ins),
                "outputs": ", ".join(outs),
            }
        )
    return rows


def store_snapshot(store: NativeStore) -> dict[str, Any]:
    """Everything recorded, keyed by names and external ids instead of database ids."""
    context_types = {t.id: t.name for t in store.get_context_types()}
    contexts = store.get_contexts()
    context_names = {c.id: (context_types[c.type_id], c.name) for c in contexts}
    execution_types = {t.id: t.name for t in store.get_execution_types()}
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    executions = store.get_executions()
    artifacts = store.get_artifacts()
    artifact_ext = {a.id: a.external_id or f"id:{a.id}" for a in artifacts}
    execution_ext = {e.id: e.external_id or f"id:{e.id}" for e in executions}

    snapshot: dict[str, Any] = {"contexts": {}, "executions": {}, "artifacts": {}, "events": [], "parents": []}
    for context in contexts:
        snapshot["contexts"]["/".join(context_names[context.id])] = _props(context.custom_properties)
        for parent in store.get_parent_contexts_by_context(context.id):
            snapshot["parents"].append(("/".join(context_names[context.id]), "/".join(context_names[parent.id])))
    for execution in executions:
        snapshot["executions"][execution_ext[execution.id]] = {
            "type": execution_types[execution.type_id],
            "state": _STATE_NAMES[execution.last_known_state],
            "properties": _props(execution.custom_properties),
            "contexts": sorted("/".join(context_names[c.id]) for c in store.get_contexts_by_execution(execution.id)),
        }
    for artifact in artifacts:
        snapshot["artifacts"][artifact_ext[artifact.id]] = {
            "type": artifact_types[artifact.type_id],
            "uri": artifact.uri,
            "state": artifact.state,
            "properties": _props(artifact.properties),
            "custom_properties": _props(artifact.custom_properties),
        }
    for event in store.get_events_by_execution_ids([e.id for e in executions]):
        steps = [s.key if s.HasField("key") else s.index for s in event.path.steps]
        snapshot["events"].append(
            (execution_ext[event.execution_id], artifact_ext[event.artifact_id], _EVENT_NAMES[event.type], steps)
        )
    snapshot["events"].sort(key=repr)
    snapshot["parents"].sort()
    return snapshot


def _events_by_execution(store, executions) -> dict[int, list[mlmd_pb.Event]]:
    grouped: dict[int, list[mlmd_pb.Event]] = {}
    if executions:
        for event in store.get_events_by_execution_ids([e.id for e in executions]):
            grouped.setdefault(event.execution_id, []).append(event)
    for events in grouped.values():
        events.sort(key=lambda e: (e.type, event_key(e) or "", e.artifact_id))
    return grouped


def _prop(node: Any, name: str) -> Any:
    value = node.custom_properties.get(name)
    return get_value(value) if value is not None else None


def _props(values: Any) -> dict[str, Any]:
    return {name: get_value(value) for name, value in sorted(values.items()) if name not in VOLATILE_PROPERTIES}
