"""The skip log: every gate decision of a DAG, read back from MLMD (read-only).

The gate writes each decision as custom properties of its own execution (``graphlets_decision``,
``graphlets_probability``, ``graphlets_reason``, ``graphlets_features``, ``graphlets_policy_version``,
``graphlets_override``) next to the recorder's ``run_id``, ``task_id`` and start time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.graphlets.bulk_queries import ints
from airflow_graphlets.store import schema
from airflow_graphlets.store.identity import node_context_name
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig

DECISION = "graphlets_decision"
_PROPERTIES = ("SELECT p.execution_id, p.name, p.string_value, p.double_value, p.int_value FROM ExecutionProperty p "
               "JOIN ({decided}) decided ON decided.execution_id = p.execution_id")
# Every gate of a DAG: executions of its pipeline that carry a decision.
_OF_DAG = ("SELECT d.execution_id FROM ExecutionProperty d "
           "JOIN Association a ON a.execution_id = d.execution_id JOIN Context c ON c.id = a.context_id "
           "JOIN Type t ON t.id = c.type_id WHERE d.name = :decision AND c.name = :context AND t.name = :context_type")
# One gate task: the newest executions of its node context that carry a decision (a derived
# table, since MySQL refuses LIMIT inside IN).
_OF_GATE = ("SELECT a.execution_id FROM Association a JOIN Context c ON c.id = a.context_id "
            "JOIN Type t ON t.id = c.type_id JOIN ExecutionProperty d ON d.execution_id = a.execution_id "
            "AND d.name = :decision WHERE c.name = :context AND t.name = :context_type "
            "ORDER BY a.execution_id DESC LIMIT :latest")
# The newest executions of one context, by the (context_id, execution_id) index read backwards.
_GATE_CONTEXT = ("SELECT c.id FROM Context c JOIN Type t ON t.id = c.type_id "
                 "WHERE c.name = :context AND t.name = :context_type")
_NEWEST_OF_CONTEXT = ("SELECT execution_id FROM Association WHERE context_id = :context_id "
                      "ORDER BY execution_id DESC LIMIT :newest")
_PROPERTIES_OF = ("SELECT execution_id, name, string_value, double_value, int_value FROM ExecutionProperty "
                  "WHERE execution_id IN ({ids})")
# Every decision of the store, with the pipeline (DAG) it belongs to.
_ALL = ("SELECT c.name, p.execution_id, p.name, p.string_value, p.double_value, p.int_value FROM ExecutionProperty d "
        "JOIN Association a ON a.execution_id = d.execution_id JOIN Context c ON c.id = a.context_id "
        "JOIN Type t ON t.id = c.type_id AND t.name = :context_type "
        "JOIN ExecutionProperty p ON p.execution_id = d.execution_id WHERE d.name = :decision")


@dataclass(frozen=True)
class LoggedDecision:
    """One gate decision as the skip log keeps it."""

    execution_id: int
    run_id: str
    task_id: str
    decided_at: float  # epoch seconds, when the gate's try started
    decision: str  # run or skip
    probability: float | None
    reason: str
    override: str
    policy_version: str
    features: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def read_decisions(config: StoreConfig, dag_id: str, since: float | None = None, *, gate_task_id: str | None = None,
                   latest: int | None = None, engine: Engine | None = None) -> list[LoggedDecision]:
    """The DAG's gate decisions, oldest first.

    Args:
      config: the store (read-only).
      dag_id: the DAG.
      since: only decisions at or after this time (epoch seconds).
      gate_task_id: only this gate task's decisions (read through its node context, fast).
      latest: with ``gate_task_id``, only its newest ``latest`` decisions.
      engine: an open read-only engine to use (a new one when None).
    """
    if gate_task_id is not None and latest is not None:
        found = _newest_of_gate(config, node_context_name(dag_id, gate_task_id), latest, engine)
        return [d for d in found if since is None or d.decided_at >= since]
    if gate_task_id is None:
        sql = _PROPERTIES.format(decided=_OF_DAG)
        params = {"context": dag_id, "context_type": schema.PIPELINE_CONTEXT}
    else:
        sql = _PROPERTIES.format(decided=_OF_GATE)
        params = {"context": node_context_name(dag_id, gate_task_id), "context_type": schema.NODE_CONTEXT,
                  "latest": latest if latest is not None else 2**31 - 1}
    with reading(config, engine) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"decision": DECISION, **params}).all()
    found = _parse(rows)
    found.sort(key=lambda d: (d.decided_at, d.execution_id))
    return [d for d in found if since is None or d.decided_at >= since]


def _newest_of_gate(config: StoreConfig, context: str, latest: int, engine: Engine | None) -> list[LoggedDecision]:
    """The newest ``latest`` decisions of a gate's node context, oldest first.

    Read as the gate's newest executions (an index walked backwards), then their properties: a
    join that started from the decision property would visit every decision ever logged. Tries
    that logged no decision are passed over by asking for more executions until enough are found."""
    with reading(config, engine) as engine, engine.connect() as conn:
        context_id = conn.execute(sa.text(_GATE_CONTEXT), {"context": context,
                                                           "context_type": schema.NODE_CONTEXT}).scalar()
        if context_id is None or latest <= 0:
            return []
        newest = latest + 8  # a few tries without a decision (failed before deciding) cost no second read
        while True:
            ids = [int(i) for i, in conn.execute(sa.text(_NEWEST_OF_CONTEXT),
                                                 {"context_id": context_id, "newest": newest})]
            rows = conn.execute(sa.text(_PROPERTIES_OF.format(ids=ints(ids)))).all() if ids else []
            decided = {int(r[0]) for r in rows if r[1] == DECISION}
            if len(decided) >= latest or len(ids) < newest:
                break
            newest *= 4
    kept = set(sorted(decided)[-latest:])  # the newest by execution id, as the skip log counts them
    found = _parse([r for r in rows if int(r[0]) in kept])
    found.sort(key=lambda d: (d.decided_at, d.execution_id))
    return found


def read_all_decisions(config: StoreConfig, engine: Engine | None = None,
                       pipelines: list[str] | None = None) -> dict[str, list[LoggedDecision]]:
    """Every gate decision of the store (of ``pipelines`` only, when given), by DAG id, each list
    oldest first."""
    params = {"decision": DECISION, "context_type": schema.PIPELINE_CONTEXT}
    with reading(config, engine) as engine, engine.connect() as conn:
        if pipelines is None:
            rows = conn.execute(sa.text(_ALL), params).all()
        else:
            of_pipelines = sa.text(_ALL + " AND c.name IN :names").bindparams(sa.bindparam("names", expanding=True))
            rows = [row for start in range(0, len(pipelines), 500)
                    for row in conn.execute(of_pipelines, {**params, "names": pipelines[start:start + 500]}).all()]
    return _by_dag(rows)


def _by_dag(rows) -> dict[str, list[LoggedDecision]]:
    """Decisions from (DAG id, execution id, property name, string, double, int) rows."""
    dag_of = {int(row[1]): str(row[0]) for row in rows}
    by_dag: dict[str, list[LoggedDecision]] = {}
    for found in _parse([row[1:] for row in rows]):
        by_dag.setdefault(dag_of[found.execution_id], []).append(found)
    for decisions in by_dag.values():
        decisions.sort(key=lambda d: (d.decided_at, d.execution_id))
    return by_dag


def read_decisions_of(config: StoreConfig, execution_ids: list[int], engine: Engine | None = None
                      ) -> dict[str, list[LoggedDecision]]:
    """The gate decisions among these executions, by DAG id, each list oldest first (a summary
    refresh reads again only the decisions logged since the last)."""
    params = {"decision": DECISION, "context_type": schema.PIPELINE_CONTEXT}
    with reading(config, engine) as engine, engine.connect() as conn:
        # The decisions among them first, by key: joined from the start, the look-up walked the
        # association table once per batch (MLMD has no index on its execution id).
        decided = [int(i) for start in range(0, len(execution_ids), 5000) for i, in conn.exec_driver_sql(
            f"SELECT execution_id FROM ExecutionProperty WHERE execution_id IN "
            f"({ints(execution_ids[start:start + 5000])}) AND name = '{DECISION}'")]
        statement = sa.text(_ALL + " AND d.execution_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
        rows = [row for start in range(0, len(decided), 500)
                for row in conn.execute(statement, {**params, "ids": decided[start:start + 500]}).all()]
    return _by_dag(rows)


def _parse(rows) -> list[LoggedDecision]:
    """Decisions from (execution id, property name, string, double, int) rows."""
    props: dict[int, dict[str, object]] = {}
    for execution_id, name, text, double, integer in rows:
        props.setdefault(int(execution_id), {})[name] = text if text is not None else (double if double is not None else integer)
    found = []
    for execution_id, p in props.items():
        probability = p.get("graphlets_probability")
        found.append(LoggedDecision(
            execution_id=execution_id, run_id=str(p.get("run_id", "")), task_id=str(p.get("task_id", "")),
            decided_at=float(p.get("start_epoch_seconds") or 0.0), decision=str(p.get(DECISION)),
            probability=None if probability is None or float(probability) < 0 else float(probability),
            reason=str(p.get("graphlets_reason", "")), override=str(p.get("graphlets_override") or ""),
            policy_version=str(p.get("graphlets_policy_version", "")),
            features=json.loads(str(p.get("graphlets_features") or "{}")),
        ))
    return found
