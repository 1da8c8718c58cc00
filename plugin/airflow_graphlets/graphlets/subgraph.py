"""One graphlet as a drawable graph: its executions and artifacts, and the events between them.

The graphlet's members come from the bulk reader (the same rules as every analysis); their
details (types, states, the Airflow task each execution ran as, spans) from a few SQL reads of
MLMD's tables on a read-only connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig

# MLMD's Event.Type numbers (metadata_store.proto).
_INPUTS = (2, 3, 5)  # DECLARED_INPUT, INPUT, INTERNAL_INPUT
_OUTPUTS = (1, 4, 6)  # DECLARED_OUTPUT, OUTPUT, INTERNAL_OUTPUT
_TASK_PROPERTIES = (schema.ExecutionProps.DAG_ID, schema.ExecutionProps.RUN_ID, schema.ExecutionProps.TASK_ID,
                    schema.ExecutionProps.TRY_NUMBER, schema.ExecutionProps.MAP_INDEX,
                    schema.ExecutionProps.DURATION_SECONDS)
_STATES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED", 6: "CANCELED"}


class GraphletNotFoundError(GraphletsError, LookupError):
    """No graphlet of that pipeline has that trainer execution id."""


@dataclass(frozen=True)
class ExecutionNode:
    id: int
    type_name: str
    state: str
    role: str  # upstream, trainer or downstream
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    map_index: int | None = None
    duration_seconds: float | None = None


@dataclass(frozen=True)
class ArtifactNode:
    id: int
    type_name: str
    uri: str
    span: int | None = None


@dataclass
class Subgraph:
    """A graphlet's provenance: nodes and (source, target) edges, with ``("e", id)`` and
    ``("a", id)`` keys for executions and artifacts."""

    pipeline: str
    trainer_id: int
    status: str
    executions: dict[int, ExecutionNode] = field(default_factory=dict)
    artifacts: dict[int, ArtifactNode] = field(default_factory=dict)
    edges: list[tuple[tuple[str, int], tuple[str, int]]] = field(default_factory=list)


def read_subgraph(config: StoreConfig, pipeline: str, trainer_id: int, engine: Engine | None = None) -> Subgraph:
    """The provenance subgraph of the graphlet whose trainer execution is ``trainer_id``.

    Raises:
      GraphletNotFoundError: the pipeline has no such graphlet.
      StoreNotFoundError, StoreUnavailableError: the store cannot be read.
    """
    from airflow_graphlets.errors import NoGraphletsError
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.graphlets.model import STATUSES

    try:
        table = read_graphlets(config, pipelines=[pipeline], workers=1, engine=engine).graphlets
    except NoGraphletsError:
        table = None
    rows = [] if table is None else [int(i) for i in (table.trainer_id == trainer_id).nonzero()[0]]
    if not rows:
        raise GraphletNotFoundError(
            f"Pipeline {pipeline!r} has no graphlet whose trainer is execution {trainer_id}: "
            "pick one from the pipeline's page."
        )
    g = rows[0]
    roles = {**{i: "upstream" for i in table.lists["upstream_ids"].row(g)}, trainer_id: "trainer",
             **{i: "downstream" for i in table.lists["downstream_ids"].row(g)}}
    spans = set(table.lists["span_artifact_ids"].row(g))
    graph = Subgraph(pipeline, trainer_id, STATUSES[table.status[g]])
    with reading(config, engine) as engine, engine.connect() as conn:
        ids = sorted(roles)
        executions = conn.execute(sa.text(
            "SELECT e.id, t.name, e.last_known_state FROM Execution e JOIN Type t ON t.id = e.type_id "
            "WHERE e.id IN :ids").bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids}).all()
        props: dict[int, dict[str, object]] = {}
        for execution_id, name, text, integer, double in conn.execute(sa.text(
                "SELECT execution_id, name, string_value, int_value, double_value FROM ExecutionProperty "
                "WHERE execution_id IN :ids AND name IN :names").bindparams(
                sa.bindparam("ids", expanding=True), sa.bindparam("names", expanding=True)),
                {"ids": ids, "names": list(_TASK_PROPERTIES)}):
            props.setdefault(int(execution_id), {})[name] = text if text is not None else (integer if integer is not None else double)
        events = conn.execute(sa.text(
            "SELECT artifact_id, execution_id, type FROM Event WHERE execution_id IN :ids ORDER BY id").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": ids}).all()
        kept = sorted({int(a) for a, _, kind in events if kind in _OUTPUTS or int(a) in spans})
        artifacts = conn.execute(sa.text(
            "SELECT a.id, t.name, a.uri, p.int_value FROM Artifact a JOIN Type t ON t.id = a.type_id "
            "LEFT JOIN ArtifactProperty p ON p.artifact_id = a.id AND p.name = :span WHERE a.id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": kept or [-1], "span": schema.SPAN}).all()
    for execution_id, type_name, state in executions:
        p = props.get(int(execution_id), {})
        graph.executions[int(execution_id)] = ExecutionNode(
            id=int(execution_id), type_name=str(type_name), state=_STATES.get(state, str(state)),
            role=roles[int(execution_id)], dag_id=_text(p.get("dag_id")), run_id=_text(p.get("run_id")),
            task_id=_text(p.get("task_id")), try_number=_int(p.get("try_number")), map_index=_int(p.get("map_index")),
            duration_seconds=float(p["duration_seconds"]) if p.get("duration_seconds") is not None else None)
    for artifact_id, type_name, uri, span in artifacts:
        graph.artifacts[int(artifact_id)] = ArtifactNode(int(artifact_id), str(type_name), str(uri or ""),
                                                         None if span is None else int(span))
    seen = set()
    for artifact_id, execution_id, kind in events:
        a, e = int(artifact_id), int(execution_id)
        if a not in graph.artifacts:
            continue
        edge = (("e", e), ("a", a)) if kind in _OUTPUTS else (("a", a), ("e", e))
        if edge not in seen:
            seen.add(edge)
            graph.edges.append(edge)
    return graph


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    return None if value is None else int(float(value))
