"""The skip log: every gate decision of a DAG, read back from MLMD (read-only).

The gate writes each decision as custom properties of its own execution (``graphlets_decision``,
``graphlets_probability``, ``graphlets_reason``, ``graphlets_features``, ``graphlets_policy_version``,
``graphlets_override``) next to the recorder's ``run_id``, ``task_id`` and start time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import read_only_engine
from airflow_graphlets.store.uri import StoreConfig

DECISION = "graphlets_decision"
_SQL = sa.text(
    "SELECT p.execution_id, p.name, p.string_value, p.double_value, p.int_value FROM ExecutionProperty p "
    "WHERE p.execution_id IN (SELECT d.execution_id FROM ExecutionProperty d "
    "  JOIN Association a ON a.execution_id = d.execution_id JOIN Context c ON c.id = a.context_id "
    "  JOIN Type t ON t.id = c.type_id WHERE d.name = :decision AND c.name = :dag AND t.name = :pipeline)"
)


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


def read_decisions(config: StoreConfig, dag_id: str, since: float | None = None) -> list[LoggedDecision]:
    """The DAG's gate decisions, oldest first, at or after ``since`` (epoch seconds) when given."""
    engine = read_only_engine(config)
    try:
        with engine.connect() as conn:
            rows = conn.execute(_SQL, {"decision": DECISION, "dag": dag_id, "pipeline": schema.PIPELINE_CONTEXT}).all()
    finally:
        engine.dispose()
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
    found.sort(key=lambda d: (d.decided_at, d.execution_id))
    return [d for d in found if since is None or d.decided_at >= since]
