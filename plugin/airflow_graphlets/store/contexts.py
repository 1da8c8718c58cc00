"""Contexts: TFX's ``pipeline``, ``pipeline_run`` and ``node``, with their parent links."""

from __future__ import annotations

from typing import Any

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from airflow_graphlets.store import schema
from airflow_graphlets.store.identity import bounded_name
from airflow_graphlets.store.properties import set_value
from airflow_graphlets.store.types import TypeRegistry


def pipeline_run_context_name(dag_id: str, run_id: str) -> str:
    """Name of a run's context.

    TFX's portable orchestrator names it by the run id alone, which it makes unique with a
    timestamp; Airflow run ids are unique only within a DAG, so we qualify them by the DAG id as
    TFX's legacy orchestrator did (``<pipeline_name>.<run_id>``). Names longer than MLMD's 255
    characters are shortened with a hash (:func:`bounded_name`).
    """
    return bounded_name(f"{dag_id}.{run_id}")


def node_context_name(dag_id: str, task_id: str) -> str:
    """Name of a task's node context, as TFX's ``compiler_utils.node_context_name``."""
    return bounded_name(f"{dag_id}.{task_id}")


def ensure_context(
    store: metadata_store.MetadataStore,
    types: TypeRegistry,
    type_name: str,
    name: str,
    custom_properties: dict[str, Any] | None = None,
) -> mlmd_pb.Context:
    """The context ``type_name``/``name``, created if it does not exist yet.

    Safe against a concurrent writer creating it at the same moment.
    """
    existing = store.get_context_by_type_and_name(type_name, name)
    if existing is not None:
        return existing
    context = mlmd_pb.Context(type_id=types.context_type(type_name), name=name)
    for key, value in (custom_properties or {}).items():
        if value is not None:
            set_value(context.custom_properties[key], key, value)
    try:
        [context.id] = store.put_contexts([context])
    except mlmd_errors.AlreadyExistsError:
        return store.get_context_by_type_and_name(type_name, name)
    return context


def link_parent(store: metadata_store.MetadataStore, child: mlmd_pb.Context, parent: mlmd_pb.Context) -> None:
    """Record that ``child`` (a pipeline run) belongs to ``parent`` (its pipeline), once."""
    if any(p.id == parent.id for p in store.get_parent_contexts_by_context(child.id)):
        return
    link = mlmd_pb.ParentContext(child_id=child.id, parent_id=parent.id)
    try:
        store.put_parent_contexts([link])
    except mlmd_errors.AlreadyExistsError:
        pass


def task_contexts(
    store: metadata_store.MetadataStore,
    types: TypeRegistry,
    dag_id: str,
    run_id: str,
    task_id: str,
    run_properties: dict[str, Any] | None = None,
) -> list[mlmd_pb.Context]:
    """The ``pipeline``, ``pipeline_run`` and ``node`` contexts of one task, in TFX's order."""
    pipeline = ensure_context(store, types, schema.PIPELINE_CONTEXT, dag_id)
    run = ensure_context(
        store, types, schema.PIPELINE_RUN_CONTEXT, pipeline_run_context_name(dag_id, run_id), run_properties
    )
    link_parent(store, run, pipeline)
    node = ensure_context(store, types, schema.NODE_CONTEXT, node_context_name(dag_id, task_id))
    return [pipeline, run, node]
