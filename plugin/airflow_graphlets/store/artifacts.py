"""Artifacts: build the ones a task wrote, and find the ones a task read."""

from __future__ import annotations

import json
from typing import Any

from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store import mlmd_proto as mlmd_pb

from airflow_graphlets.store import schema
from airflow_graphlets.store.identity import pipeline_run_context_name
from airflow_graphlets.store.properties import set_value

_SUCCESSFUL = (mlmd_pb.Execution.COMPLETE, mlmd_pb.Execution.CACHED)


def build_artifact(
    type_id: int,
    typed_property_names: frozenset[str],
    uri: str,
    properties: dict[str, Any],
    external_id: str,
    asset_uri: str | None = None,
) -> mlmd_pb.Artifact:
    """A LIVE artifact proto: the type's declared properties typed, every other one custom."""
    artifact = mlmd_pb.Artifact(type_id=type_id, uri=uri, state=mlmd_pb.Artifact.LIVE, external_id=external_id)
    for name, value in properties.items():
        if name in typed_property_names:
            if name == schema.SPLIT_NAMES and isinstance(value, (list, tuple)):
                value = json.dumps(list(value))  # TFX's encode_split_names
            set_value(artifact.properties[name], name, value)
        else:
            set_value(artifact.custom_properties[name], name, value)
    if asset_uri:
        artifact.custom_properties[schema.ASSET_URI].string_value = asset_uri
    return artifact


def event_key(event: mlmd_pb.Event) -> str | None:
    """The channel key of an event's path (TFX writes ``steps[0].key``, then ``steps[1].index``)."""
    for step in event.path.steps:
        if step.HasField("key"):
            return step.key
    return None


def by_external_id(store: NativeStore, external_id: str) -> mlmd_pb.Artifact | None:
    """The artifact with this external id, or ``None``."""
    try:
        found = store.get_artifacts_by_external_ids([external_id])
    except mlmd_errors.NotFoundError:
        return None
    return found[0] if found else None


def by_ids(store: NativeStore, artifact_ids: list[int]) -> list[mlmd_pb.Artifact]:
    """The artifacts with these MLMD ids that exist, in the given order."""
    found = {a.id: a for a in store.get_artifacts_by_id(list(artifact_ids))}
    return [found[i] for i in artifact_ids if i in found]


def task_outputs(
    store: NativeStore,
    dag_id: str,
    run_id: str,
    task_id: str,
    output_key: str,
    map_index: int | None = None,
) -> list[mlmd_pb.Artifact]:
    """What the last successful try of a task wrote under ``output_key`` in one DAG run.

    Mapped tasks contribute the outputs of every map index (in map-index order) unless
    ``map_index`` picks one.
    """
    run = store.get_context_by_type_and_name(schema.PIPELINE_RUN_CONTEXT, pipeline_run_context_name(dag_id, run_id))
    if run is None:
        return []
    props = schema.ExecutionProps
    latest: dict[int, mlmd_pb.Execution] = {}
    for execution in store.get_executions_by_context(run.id):
        custom = execution.custom_properties
        if custom[props.TASK_ID].string_value != task_id or execution.last_known_state not in _SUCCESSFUL:
            continue
        index = custom[props.MAP_INDEX].int_value
        if map_index is not None and index != map_index:
            continue
        best = latest.get(index)
        if best is None or custom[props.TRY_NUMBER].int_value > best.custom_properties[props.TRY_NUMBER].int_value:
            latest[index] = execution
    if not latest:
        return []
    ordered = [latest[i].id for i in sorted(latest)]
    rank = {execution_id: n for n, execution_id in enumerate(ordered)}
    events = [
        e
        for e in store.get_events_by_execution_ids(ordered)
        if e.type == mlmd_pb.Event.OUTPUT and event_key(e) == output_key
    ]
    events.sort(key=lambda e: (rank[e.execution_id], _event_index(e)))
    return by_ids(store, [e.artifact_id for e in events])


def latest_by_uri(store: NativeStore, uri: str, type_name: str = "") -> list[mlmd_pb.Artifact]:
    """The newest LIVE artifact with this uri (of this type, if given), as a list of zero or one."""
    candidates = [a for a in store.get_artifacts_by_uri(uri) if a.state == mlmd_pb.Artifact.LIVE]
    if type_name and candidates:
        type_ids = {t.id for t in store.get_artifact_types() if t.name == type_name}
        candidates = [a for a in candidates if a.type_id in type_ids]
    return [max(candidates, key=lambda a: a.id)] if candidates else []


def pipeline_spans(
    store: NativeStore, dag_id: str, type_name: str, span_min: int, span_max: int,
    candidate_ids: list[int] | None = None,
) -> list[mlmd_pb.Artifact]:
    """The newest LIVE ``type_name`` artifact of each span in ``[span_min, span_max]`` of a pipeline.

    Newest means highest ``version``, then highest id: a re-ingested span supersedes the old one.

    Args:
      candidate_ids: the ids of exactly the artifacts :meth:`NativeStore.span_artifact_ids` finds,
        when the caller found them already (:meth:`RowBatch.span_artifact_ids`).
    """
    if candidate_ids is None:
        candidate_ids = store.span_artifact_ids(dag_id, type_name, span_min, span_max)
    found = store.get_artifacts_by_id(candidate_ids) if candidate_ids else []
    newest: dict[int, mlmd_pb.Artifact] = {}
    for artifact in found:
        span = artifact.properties[schema.SPAN].int_value
        rank = (_version(artifact), artifact.id)
        current = newest.get(span)
        if current is None or rank > (_version(current), current.id):
            newest[span] = artifact
    return [newest[s] for s in sorted(newest)]


def _version(artifact: mlmd_pb.Artifact) -> int:
    """The artifact's version, 0 when it has none. Read without indexing the map: indexing a
    protobuf map inserts an empty value, which MLMD then refuses when the artifact is written
    back as an input ("unmatched property type")."""
    value = artifact.properties.get(schema.VERSION)
    return value.int_value if value is not None else 0


def _event_index(event: mlmd_pb.Event) -> int:
    for step in event.path.steps:
        if step.HasField("index"):
            return step.index
    return 0
