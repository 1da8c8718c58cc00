"""The reference reader: graphlets one model at a time, through MLMD's Python API.

The API is the native store's (:class:`~airflow_graphlets.store.native_store.NativeStore`) by
default, or ml-metadata's own client (``client="mlmd"``, the ``[mlmd]`` extra): the same calls
read the same graphlets through either, which the tests check.

Slow by design (a few MLMD calls per model) and written to be obviously right: it follows the
rules of :mod:`.rules` with plain sets, using ``get_lineage_subgraph`` for each model's downstream
and ``get_events_by_*`` for the bounded upstream walk. The bulk reader must agree with it on every
graphlet; the tests hold them to that, and the benchmark measures how much faster the bulk one is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from airflow_graphlets.errors import NoGraphletsError
from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.model import (
    FAILED,
    NOT_PUSHED,
    PUSHED,
    RUNNING,
    ExecutionTable,
    Extraction,
    GraphletTable,
    execution_outcomes,
)
from airflow_graphlets.graphlets.provenance import to_millis
from airflow_graphlets.store import mlmd_proto as mlmd_pb
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import mlmd_schema_version, read_only_engine
from airflow_graphlets.store.native_reads import LineageQuery, ListOptions, OrderByField
from airflow_graphlets.store.native_store import NativeStore
from airflow_graphlets.store.uri import StoreConfig

_ARTIFACT_BASES = {
    mlmd_pb.ArtifactType.DATASET: schema.BASE_DATASET,
    mlmd_pb.ArtifactType.MODEL: schema.BASE_MODEL,
    mlmd_pb.ArtifactType.METRICS: "mlmd.Metrics",
    mlmd_pb.ArtifactType.STATISTICS: schema.BASE_STATISTICS,
}
_EXECUTION_BASES = {
    mlmd_pb.ExecutionType.TRAIN: schema.BASE_TRAIN,
    mlmd_pb.ExecutionType.TRANSFORM: schema.BASE_TRANSFORM,
    mlmd_pb.ExecutionType.PROCESS: schema.BASE_PROCESS,
    mlmd_pb.ExecutionType.EVALUATE: schema.BASE_EVALUATE,
    mlmd_pb.ExecutionType.DEPLOY: schema.BASE_DEPLOY,
}
_LIVE = mlmd_pb.Artifact.LIVE
# MLMD pages its list calls by create time by default, which skips rows whose create times are
# not in id order (concurrent runs); paging by id returns every row.


def read_graphlets_with_mlmd_api(config: StoreConfig, pipelines: Sequence[str] | None = None,
                                 client: str = "native") -> Extraction:
    """Every model graphlet of a store, read through MLMD's API (see the module docstring).

    Args:
      config: the store. Its schema is checked read-only first, and the store is opened
        read-only, so a wrong path never creates an empty store.
      pipelines: only these pipelines; all when ``None``.
      client: ``"native"`` (no ml-metadata needed) or ``"mlmd"`` (ml-metadata's client).

    Raises:
      StoreNotFoundError, NotAnMlmdStoreError, UnsupportedSchemaError, NoGraphletsError.
      ValueError: an unknown ``client``.
    """
    engine = read_only_engine(config)
    try:
        version = mlmd_schema_version(engine, config)
        if client == "native":
            graph = _Graph(NativeStore(config, engine))
        elif client == "mlmd":
            graph = _Graph(_mlmd_client(config), client_protos=True)
        else:
            raise ValueError(f"client must be 'native' or 'mlmd', not {client!r}")
        extraction = graph.extract(str(config), version, pipelines)
    finally:
        engine.dispose()
    if not len(extraction.graphlets):
        raise NoGraphletsError(f"The MLMD store {config} holds no model graphlet (no Trainer execution).")
    return extraction


def _mlmd_client(config: StoreConfig):
    """ml-metadata's ``MetadataStore``, read-only on SQLite."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = config.mlmd_connection_config()
    if config.backend == "sqlite":
        connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


class _Graph:
    """Cached look-ups of one store's executions, artifacts and events."""

    def __init__(self, store, client_protos: bool = False) -> None:
        self.store = store
        self.client_protos = client_protos
        if client_protos:
            from ml_metadata.metadata_store.metadata_store import ListOptions as ClientListOptions
            from ml_metadata.metadata_store.metadata_store import OrderByField as ClientOrderByField

            self.by_id = ClientListOptions(order_by=ClientOrderByField.ID, is_asc=True)
        else:
            self.by_id = ListOptions(order_by=OrderByField.ID, is_asc=True)
        self.types = {t.id: (t.name, _ARTIFACT_BASES.get(t.base_type)) for t in store.get_artifact_types()}
        self.types.update({t.id: (t.name, _EXECUTION_BASES.get(t.base_type)) for t in store.get_execution_types()})
        self.executions: dict[int, mlmd_pb.Execution] = {}
        self.artifacts: dict[int, mlmd_pb.Artifact] = {}
        self.events_of_execution: dict[int, list[mlmd_pb.Event]] = {}
        self.events_of_artifact: dict[int, list[mlmd_pb.Event]] = {}

    # -- look-ups ---------------------------------------------------------------------------
    def kind(self, execution: mlmd_pb.Execution) -> str:
        return rules.execution_kind(*self.types[execution.type_id])

    def artifact_type(self, artifact: mlmd_pb.Artifact) -> tuple[str, str | None]:
        return self.types[artifact.type_id]

    def load_executions(self, ids: Iterable[int]) -> None:
        missing = [i for i in set(ids) if i not in self.executions]
        for execution in self.store.get_executions_by_id(missing) if missing else []:
            self.executions[execution.id] = execution

    def load_artifacts(self, ids: Iterable[int]) -> None:
        missing = [i for i in set(ids) if i not in self.artifacts]
        for artifact in self.store.get_artifacts_by_id(missing) if missing else []:
            self.artifacts[artifact.id] = artifact

    def execution_events(self, ids: Iterable[int]) -> list[mlmd_pb.Event]:
        return _cached_events(ids, self.events_of_execution, self.store.get_events_by_execution_ids, "execution_id")

    def artifact_events(self, ids: Iterable[int]) -> list[mlmd_pb.Event]:
        return _cached_events(ids, self.events_of_artifact, self.store.get_events_by_artifact_ids, "artifact_id")

    def consumers(self, artifact_ids: Iterable[int]) -> set[int]:
        """Executions reading these artifacts, other than as a baseline or warm start."""
        found = {e.execution_id for e in self.artifact_events(artifact_ids) if _is_input(e) and not _is_reference(e)}
        self.load_executions(found)
        return found

    def outputs(self, execution_ids: Iterable[int]) -> set[int]:
        found = {e.artifact_id for e in self.execution_events(execution_ids) if e.type in rules.OUTPUT_EVENT_TYPES}
        self.load_artifacts(found)
        return found

    # -- the rules ---------------------------------------------------------------------------
    def extract(self, store: str, version: int, only: Sequence[str] | None) -> Extraction:
        pipelines = sorted(c.name for c in self.store.get_contexts_by_type(schema.PIPELINE_CONTEXT)
                           if only is None or c.name in only)
        pipeline_of: dict[int, int] = {}
        pipeline_contexts = []
        for index, name in enumerate(pipelines):
            context = self.store.get_context_by_type_and_name(schema.PIPELINE_CONTEXT, name)
            pipeline_contexts.append(context)
            for execution in self.store.get_executions_by_context(context.id, list_options=self.by_id):
                self.executions[execution.id] = execution
                pipeline_of[execution.id] = index
        if only is None:
            for execution in self.store.get_executions(list_options=self.by_id):
                if self.types[execution.type_id][0] not in schema.BOOKKEEPING_EXECUTION_TYPES:
                    self.executions[execution.id] = execution
        run_of: dict[int, mlmd_pb.Context] = {}
        for context in self._run_contexts(pipeline_contexts if only is not None else None):
            for execution in self.store.get_executions_by_context(context.id, list_options=self.by_id):
                run_of[execution.id] = context

        in_scope = sorted(self.executions) if only is None else sorted(pipeline_of)
        trainers = [i for i in in_scope if self.kind(self.executions[i]) == "Trainer"
                    and self.executions[i].last_known_state in rules.ANCHOR_STATES]
        rows = [self._graphlet(t, pipeline_of, run_of) for t in trainers]
        graphlets = GraphletTable.from_rows(rows, tuple(pipelines), rules.KINDS)

        ids = np.asarray(in_scope, dtype=np.int64)
        row_of = {i: r for r, i in enumerate(in_scope)}
        members = [(g, row_of[e]) for g, r in enumerate(rows) for e in r["members"]]
        member_g = np.asarray([m[0] for m in members], dtype=np.int64)
        member_e = np.asarray([m[1] for m in members], dtype=np.int64)
        times = [_times(self.executions[i]) for i in in_scope]
        table = ExecutionTable(
            ids=ids,
            kind=np.asarray([rules.KIND_INDEX[self.kind(self.executions[i])] for i in in_scope], dtype=np.int8),
            pipeline=np.asarray([pipeline_of.get(i, -1) for i in in_scope], dtype=np.int32),
            run=np.asarray([run_of[i].id if i in run_of else -1 for i in in_scope], dtype=np.int64),
            start=np.asarray([t[0] for t in times], dtype=np.float64),
            duration=np.asarray([_micros(t[2]) / 1e6 for t in times], dtype=np.float64),
            outcome=execution_outcomes(len(ids), member_g, member_e, graphlets.status),
        )
        logical = schema.ContextProps.LOGICAL_DATE_EPOCH_SECONDS
        run_logical_times = {
            c.id: (c.custom_properties[logical].double_value or float(c.custom_properties[logical].int_value))
            for c in {c.id: c for c in run_of.values()}.values() if logical in c.custom_properties
        }
        return Extraction(store, version, tuple(pipelines), graphlets, table, reader="mlmd-api",
                          run_logical_times=run_logical_times)

    def _run_contexts(self, pipelines: list[mlmd_pb.Context] | None) -> list[mlmd_pb.Context]:
        """Every run context, or only the runs of some pipelines (their child contexts)."""
        if pipelines is None:
            return [c for run_type in rules.RUN_CONTEXT_TYPES for c in self.store.get_contexts_by_type(run_type)]
        run_types = {t.id for t in self.store.get_context_types() if t.name in rules.RUN_CONTEXT_TYPES}
        return [child for pipeline in pipelines for child in self.store.get_children_contexts_by_context(pipeline.id)
                if child.type_id in run_types]

    def _graphlet(self, trainer_id: int, pipeline_of, run_of) -> dict:
        trainer = self.executions[trainer_id]
        # Upstream: inputs to their producers, never across model-side artifacts.
        upstream, artifacts, frontier = {trainer_id}, set(), {trainer_id}
        while frontier:
            inputs = {e.artifact_id for e in self.execution_events(frontier) if _is_input(e)}
            self.load_artifacts(inputs)
            inputs = {a for a in inputs if not rules.is_model_side_type(*self.artifact_type(self.artifacts[a]))} - artifacts
            artifacts |= inputs
            producers = {e.execution_id for e in self.artifact_events(inputs) if e.type in rules.OUTPUT_EVENT_TYPES}
            frontier = producers - upstream
            upstream |= frontier
        self.load_executions(upstream)
        spans = {a for a in artifacts if self._is_span(a)}
        analysed = {x for x in self.consumers(spans) if self.kind(self.executions[x]) in rules.ANALYSIS_KINDS}
        analysed |= {x for x in self.consumers(self.outputs(analysed)) if self.kind(self.executions[x]) in rules.ANALYSIS_KINDS}
        upstream = (upstream | analysed) - {trainer_id}

        models = {a for a in self.outputs([trainer_id]) if rules.is_model_type(*self.artifact_type(self.artifacts[a]))}
        downstream = self._downstream(models) - upstream - {trainer_id}

        blessed = self._verdict(downstream, schema.MODEL_BLESSING)
        infra = self._verdict(downstream, schema.INFRA_BLESSING)
        push_ends = [
            _times(self.executions[x])[1]
            for x in downstream if self.kind(self.executions[x]) == "Pusher"
            for a in self.outputs([x]) if self._is_push(self.artifacts[a])
        ]
        state = trainer.last_known_state
        active = state in rules.ACTIVE_STATES or any(
            self.executions[x].last_known_state in rules.ACTIVE_STATES for x in downstream)
        status = PUSHED if push_ends else FAILED if state == rules.STATE_FAILED else RUNNING if active else NOT_PUSHED
        members = sorted(upstream | downstream | {trainer_id})
        cost_by_kind: dict[str, int] = {}
        for x in members:
            kind = self.kind(self.executions[x])
            cost_by_kind[kind] = cost_by_kind.get(kind, 0) + _micros(_times(self.executions[x])[2])
        start, end, _ = _times(trainer)
        span_numbers = sorted({_int_property(self.artifacts[a], schema.SPAN) for a in spans} - {None})
        run = run_of.get(trainer_id)
        return {
            "pipeline": pipeline_of.get(trainer_id, -1),
            "run": run.name if run is not None else None,
            "trainer_id": trainer_id,
            "trainer_state": rules.STATE_NAMES[state],
            "status": status,
            "model_ids": tuple(sorted(models)),
            "span_artifact_ids": tuple(sorted(spans)),
            "spans": tuple(span_numbers),
            "upstream_ids": tuple(sorted(upstream)),
            "downstream_ids": tuple(sorted(downstream)),
            "members": members,
            "trainer_start": start,
            "trainer_end": end,
            "end": max([end] + [_times(self.executions[x])[1] for x in downstream]),
            "cost_micros": sum(cost_by_kind.values()),
            "cost_by_kind_micros": cost_by_kind,
            "blessed": -1 if blessed is None else int(blessed),
            "infra_blessed": -1 if infra is None else int(infra),
            "pushed_at": min(push_ends) if push_ends else float("nan"),
            "code_hash": next((v for k in rules.CODE_HASH_PROPERTIES if (v := _str_property(trainer, k)) is not None), None),
            "structure_hash": _str_property(trainer, rules.STRUCTURE_HASH_PROPERTY) or self._run_fingerprint(run),
        }

    def _downstream(self, models: set[int]) -> set[int]:
        """Readers of the models (not as a baseline), then Pushers reading what those wrote."""
        if not models:
            return set()
        if self.client_protos:
            from ml_metadata.proto import metadata_store_pb2 as client_pb

            options = client_pb.LineageSubgraphQueryOptions(
                starting_artifacts=client_pb.LineageSubgraphQueryOptions.StartingNodes(
                    filter_query=f"id IN ({', '.join(map(str, sorted(models)))})"),
                max_num_hops=4,
                direction=client_pb.LineageSubgraphQueryOptions.DOWNSTREAM,
            )
        else:
            options = LineageQuery(tuple(sorted(models)), max_num_hops=4, direction="DOWNSTREAM")
        subgraph = self.store.get_lineage_subgraph(options, ["artifacts", "executions", "events"])
        for execution in subgraph.executions:
            self.executions[execution.id] = execution
        for artifact in subgraph.artifacts:
            self.artifacts[artifact.id] = artifact
        readers: dict[int, set[int]] = {}
        writers: dict[int, set[int]] = {}
        for event in subgraph.events:
            if _is_input(event) and not _is_reference(event):
                readers.setdefault(event.artifact_id, set()).add(event.execution_id)
            elif event.type in rules.OUTPUT_EVENT_TYPES:
                writers.setdefault(event.execution_id, set()).add(event.artifact_id)
        first = {x for m in models for x in readers.get(m, ()) if self.kind(self.executions[x]) in rules.DOWNSTREAM_KINDS}
        second = {x for d in first for a in writers.get(d, ()) for x in readers.get(a, ())
                  if self.kind(self.executions[x]) == "Pusher"}
        return first | second

    def _verdict(self, downstream: set[int], type_name: str) -> bool | None:
        values = [
            _int_property(self.artifacts[a], schema.BLESSED)
            for a in self.outputs(downstream) if self.artifact_type(self.artifacts[a])[0] == type_name
        ]
        values = [v for v in values if v is not None]
        return None if not values else max(values) == 1

    def _is_span(self, artifact_id: int) -> bool:
        artifact = self.artifacts[artifact_id]
        if not rules.is_span_type(*self.artifact_type(artifact)):
            return False
        producers = {e.execution_id for e in self.artifact_events([artifact_id]) if e.type in rules.OUTPUT_EVENT_TYPES}
        self.load_executions(producers)
        return not producers or any(self.kind(self.executions[x]) == "ExampleGen" for x in producers)

    def _is_push(self, artifact: mlmd_pb.Artifact) -> bool:
        if self.artifact_type(artifact)[0] != schema.PUSHED_MODEL:
            return False
        value = _int_property(artifact, schema.PUSHED)
        return value == 1 if value is not None else artifact.state == _LIVE

    def _run_fingerprint(self, run: mlmd_pb.Context | None) -> str | None:
        if run is None:
            return None
        names = {self.types[e.type_id][0] for e in self.store.get_executions_by_context(run.id, list_options=self.by_id)}
        return rules.structure_fingerprint(names)


def _cached_events(ids: Iterable[int], cache: dict[int, list[mlmd_pb.Event]], fetch, owner: str) -> list[mlmd_pb.Event]:
    """Events of ``ids`` (executions or artifacts), fetching only those not cached yet."""
    wanted = set(ids)
    missing = [i for i in wanted if i not in cache]
    for i in missing:
        cache[i] = []
    for event in fetch(missing) if missing else []:
        cache[getattr(event, owner)].append(event)
    return [e for i in wanted for e in cache[i]]


def _is_input(event: mlmd_pb.Event) -> bool:
    return event.type in rules.INPUT_EVENT_TYPES


def _is_reference(event: mlmd_pb.Event) -> bool:
    return any(step.HasField("key") and step.key in rules.REFERENCE_INPUT_KEYS for step in event.path.steps)


def _property(message, name: str) -> mlmd_pb.Value | None:
    """A typed property, else a custom one (the rule the bulk reader follows too)."""
    if name in message.properties:
        return message.properties[name]
    return message.custom_properties.get(name)


def _number(value: mlmd_pb.Value | None) -> float | None:
    if value is None:
        return None
    kind = value.WhichOneof("value")
    if kind in ("int_value", "double_value"):
        return float(getattr(value, kind))
    if kind == "bool_value":
        return float(value.bool_value)
    return None


def _int_property(message, name: str) -> int | None:
    number = _number(_property(message, name))
    return None if number is None else int(number)


def _str_property(message, name: str) -> str | None:
    value = _property(message, name)
    return value.string_value if value is not None and value.WhichOneof("value") == "string_value" else None


def _times(execution: mlmd_pb.Execution) -> tuple[float, float, float]:
    """Start, end and duration: the recorder's custom properties, else MLMD's create/update times."""
    custom = execution.custom_properties
    start = _number(custom[rules.START_PROPERTY]) if rules.START_PROPERTY in custom else None
    end = _number(custom[rules.END_PROPERTY]) if rules.END_PROPERTY in custom else None
    start = float(to_millis(execution.create_time_since_epoch / 1000.0 if start is None else start))
    end = float(to_millis(execution.last_update_time_since_epoch / 1000.0 if end is None else end))
    return start, end, max(end - start, 0.0)


def _micros(seconds: float) -> int:
    return int(np.rint(seconds * 1e6))
