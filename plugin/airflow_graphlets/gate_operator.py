"""Airflow edge: ``GraphletGateOperator``, placed before a DAG's training branch.

It asks :func:`airflow_graphlets.prune.gate.decide` whether this run's model is likely to be
pushed. On *skip* it raises Airflow's skip, so the training branch downstream shows as skipped
with the reason in this task's log; on *run* it succeeds. Either way the decision, probability,
features, policy version, reason and override are set as properties of the gate's own execution,
which the recorder writes into MLMD: the skip log. Anything going wrong runs the training.

    gate = GraphletGateOperator(task_id="graphlet_gate", spans=window, drift=drift,
                                predictor_path="/models/push-predictor.pkl")
    validator >> gate >> transform >> trainer
"""

from __future__ import annotations

import json
import time
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from airflow_graphlets import lineage
from airflow_graphlets.prune.features import Candidate
from airflow_graphlets.prune.gate import GateSettings, decide
from airflow_graphlets.prune.policy import Guardrails

DECISION = "graphlets_decision"


class GraphletGateOperator(BaseOperator):
    """Skip the training branch when its model is predicted not to be pushed (docs/prune.md)."""

    template_fields = ("spans", "drift", "predictor_path")
    graphlets_component = None

    def __init__(self, *, spans: Any, drift: Any = None, trainer_task_id: str = "trainer",
                 predictor_path: str | None = None, threshold: float = 0.35, never_skip: bool = False,
                 guardrails: Guardrails | None = None, budget_seconds: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spans = spans
        self.drift = drift
        self.trainer_task_id = trainer_task_id
        self.predictor_path = predictor_path
        self.threshold = threshold
        self.never_skip = never_skip
        self.guardrails = guardrails or Guardrails()
        self.budget_seconds = budget_seconds

    def execute(self, context: Any) -> dict:
        outcome = self._decide(context)
        decision = outcome.decision
        lineage.of(context).set_properties(**{
            DECISION: "run" if decision.run else "skip",
            "graphlets_probability": -1.0 if decision.probability is None else decision.probability,
            "graphlets_reason": decision.reason,
            "graphlets_features": json.dumps(outcome.features, sort_keys=True),
            "graphlets_policy_version": outcome.policy_version,
            "graphlets_override": outcome.override or "",
        })
        if not decision.run:
            self.log.info("airflow-graphlets gate: skipping the training branch: %s", decision.reason)
            raise AirflowSkipException(f"airflow-graphlets gate: {decision.reason}")
        self.log.info("airflow-graphlets gate: training runs: %s", decision.reason)
        return {"run": True, "probability": decision.probability, "reason": decision.reason}

    def _decide(self, context: Any):
        settings = GateSettings(self.predictor_path, self.threshold, self.guardrails, self.budget_seconds,
                                self.never_skip)
        config = None
        candidate = Candidate(time.time(), frozenset(), None, None, None)
        skips = 0
        try:
            from airflow_graphlets.airflow_config import load_settings, resolve_store
            from airflow_graphlets.recorder.capture import code_hash, dag_structure_hash

            config = resolve_store(load_settings())
            dag = context["dag"]
            trainer = dag.task_dict.get(self.trainer_task_id)
            candidate = Candidate(
                start=_logical_now(context),
                spans=frozenset(int(s) for s in (self.spans or [])),
                structure_hash=dag_structure_hash(dag),
                code_hash=code_hash(trainer) if trainer is not None else None,
                drift=None if self.drift is None else float(self.drift),
            )
            skips = _skips_in_a_row(config, dag.dag_id, self.task_id)
        except Exception as err:  # noqa: BLE001 - decide() fails open on a missing store
            self.log.warning("airflow-graphlets gate: could not read the run's context: %s", err)
        return decide(config, context["dag"].dag_id, candidate, settings, skips_in_a_row=skips)


def _logical_now(context: Any) -> float:
    """Now on the logical clock the graphlet history uses: the run's logical date plus the time
    since the run started."""
    logical = context.get("logical_date")
    run = context.get("dag_run")
    started = getattr(run, "start_date", None)
    if logical is None:
        return time.time()
    offset = time.time() - started.timestamp() if started is not None else 0.0
    return logical.timestamp() + max(offset, 0.0)


def _skips_in_a_row(config, dag_id: str, task_id: str) -> int:
    """How many of this gate's latest decisions were skips, counting back from the newest."""
    from airflow_graphlets.store import schema
    from airflow_graphlets.store.connect import open_store

    store = open_store(config)
    node = store.get_context_by_type_and_name(schema.NODE_CONTEXT, f"{dag_id}.{task_id}")
    if node is None:
        return 0
    skips = 0
    for execution in sorted(store.get_executions_by_context(node.id), key=lambda e: e.id, reverse=True):
        value = execution.custom_properties.get(DECISION)
        if value is None:
            continue
        if value.string_value != "skip":
            break
        skips += 1
    return skips
