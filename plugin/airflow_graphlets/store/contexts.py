"""Contexts: TFX's ``pipeline``, ``pipeline_run`` and ``node``, with their parent links."""

from __future__ import annotations

from typing import Any

from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store import mlmd_proto as mlmd_pb

from airflow_graphlets.store import schema
from airflow_graphlets.store.identity import node_context_name, pipeline_run_context_name
from airflow_graphlets.store.properties import set_value
from airflow_graphlets.store.types import TypeRegistry

_TASK_CONTEXT_TYPES = (schema.PIPELINE_CONTEXT, schema.PIPELINE_RUN_CONTEXT, schema.NODE_CONTEXT)


class ContextCache:
    """The contexts one writer has seen, so each is looked up once per process.

    Contexts not yet in the store are returned without an id; ``put_execution`` creates them in
    the same transaction as the execution (reusing one a concurrent writer made first).
    """

    def __init__(self, store: NativeStore, types: TypeRegistry) -> None:
        self._store = store
        self._types = types
        self._known: dict[tuple[str, str], mlmd_pb.Context] = {}
        self._linked_runs: set[int] = set()

    def task_contexts(
        self, dag_id: str, run_id: str, task_id: str, run_properties: dict[str, Any] | None = None
    ) -> list[mlmd_pb.Context]:
        """The ``pipeline``, ``pipeline_run`` and ``node`` contexts of one task, in TFX's order."""
        return [
            self._context(schema.PIPELINE_CONTEXT, dag_id),
            self._context(schema.PIPELINE_RUN_CONTEXT, pipeline_run_context_name(dag_id, run_id), run_properties),
            self._context(schema.NODE_CONTEXT, node_context_name(dag_id, task_id)),
        ]

    def ensure_ids(self, contexts: list[mlmd_pb.Context]) -> list[int]:
        """Ids of a task's ``task_contexts``, creating through MLMD's API those not yet stored."""
        ids = []
        for type_name, context in zip(_TASK_CONTEXT_TYPES, contexts):
            if context.HasField("id"):
                ids.append(context.id)
                continue
            try:
                [context_id] = self._store.put_contexts([context])
            except mlmd_errors.AlreadyExistsError:
                context_id = self._store.get_context_by_type_and_name(type_name, context.name).id  # a writer raced us
            ids.append(context_id)
        self.remember(contexts, ids)
        return ids

    def remember(self, contexts: list[mlmd_pb.Context], context_ids: list[int]) -> None:
        """Record the ids ``put_execution`` gave the contexts, and link each run to its pipeline."""
        for type_name, context, context_id in zip(_TASK_CONTEXT_TYPES, contexts, context_ids):
            if not context.HasField("id"):
                stored = mlmd_pb.Context()
                stored.CopyFrom(context)
                stored.id = context_id
                self._known[(type_name, context.name)] = stored
        pipeline_id, run_id = context_ids[0], context_ids[1]
        if run_id not in self._linked_runs:
            # A run context that came without an id may be brand new: it cannot have a parent yet.
            maybe_linked = contexts[1].HasField("id")
            link_parent(self._store, run_id, pipeline_id, check_first=maybe_linked)
            self._linked_runs.add(run_id)

    def _context(self, type_name: str, name: str, properties: dict[str, Any] | None = None) -> mlmd_pb.Context:
        key = (type_name, name)
        if key not in self._known:
            stored = self._store.get_context_by_type_and_name(type_name, name)
            if stored is not None:
                self._known[key] = stored
            else:
                context = mlmd_pb.Context(type_id=self._types.context_type(type_name), name=name)
                for prop, value in (properties or {}).items():
                    if value is not None:
                        set_value(context.custom_properties[prop], prop, value)
                return context
        return self._known[key]


def link_parent(
    store: NativeStore, child_id: int, parent_id: int, *, check_first: bool = True
) -> None:
    """Record that context ``child_id`` (a pipeline run) belongs to ``parent_id`` (its pipeline), once."""
    if check_first and any(p.id == parent_id for p in store.get_parent_contexts_by_context(child_id)):
        return
    try:
        store.put_parent_contexts([mlmd_pb.ParentContext(child_id=child_id, parent_id=parent_id)])
    except mlmd_errors.AlreadyExistsError:
        pass
