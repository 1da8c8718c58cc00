"""The inputs a task declared, found in the store: which artifacts each names, and its events.

An input names artifacts by id, by the output of another task, by uri or by a pipeline's span
range (:class:`~airflow_graphlets.recorder.records.InputRef`); the writer links what it finds
and keeps the rest pending.
"""

from __future__ import annotations

from airflow_graphlets.recorder.records import InputRef
from airflow_graphlets.recorder.rows import event
from airflow_graphlets.store import artifacts
from airflow_graphlets.store import mlmd_proto as mlmd_pb
from airflow_graphlets.store.native_store import NativeStore


def is_resolved(ref: InputRef, found: list[mlmd_pb.Artifact]) -> bool:
    """Whether ``ref`` is resolved: anything found. A window with some of its spans found is
    taken as it is: a pipeline's first windows reach before its first span, and re-reading
    every such window for an hour costs every flusher more than the rare late span is worth."""
    return bool(found)


def input_pairs(ref: InputRef, found: list[mlmd_pb.Artifact],
                known_events: set[tuple[int, int]]) -> list[tuple[mlmd_pb.Artifact, mlmd_pb.Event]]:
    """An INPUT event for each artifact found that is not linked to the execution yet."""
    return [(artifact, event(mlmd_pb.Event.INPUT, ref.key, index)) for index, artifact in enumerate(found)
            if (artifact.id, mlmd_pb.Event.INPUT) not in known_events]


def resolve_input(store: NativeStore, ref: InputRef) -> list[mlmd_pb.Artifact]:
    """The artifacts ``ref`` names, as the store holds them now (none yet: an empty list)."""
    if ref.by == "artifact_id":
        return artifacts.by_ids(store, list(ref.artifact_ids))
    if ref.by == "task_output":
        return artifacts.task_outputs(store, ref.dag_id, ref.run_id, ref.task_id, ref.output_key, ref.map_index)
    if ref.by == "uri":
        return artifacts.latest_by_uri(store, ref.uri, ref.type_name)
    return artifacts.pipeline_spans(store, ref.dag_id, ref.type_name, ref.span_min, ref.span_max)


def describe_input(ref: InputRef) -> str:
    """``ref`` in words, for a record's list of inputs it could not resolve."""
    if ref.by == "artifact_id":
        return f"{ref.key}: artifact ids {list(ref.artifact_ids)}"
    if ref.by == "task_output":
        return f"{ref.key}: output {ref.output_key!r} of {ref.dag_id}.{ref.task_id} in run {ref.run_id}"
    if ref.by == "uri":
        return f"{ref.key}: uri {ref.uri}"
    return f"{ref.key}: {ref.type_name} spans {ref.span_min}..{ref.span_max} of {ref.dag_id}"
