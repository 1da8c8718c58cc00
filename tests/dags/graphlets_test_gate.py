"""Test DAG: a graphlet gate before a training branch; its predictor, threshold and guardrails
come from the environment so each test sets up the decision it needs."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task
from airflow_graphlets import lineage
from airflow_graphlets.gate_operator import GraphletGateOperator, graphlet_gate
from airflow_graphlets.prune.policy import Guardrails


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def graphlets_test_gate():
    gate = GraphletGateOperator(
        task_id="graphlet_gate",
        spans=[1, 2, 3],
        drift=0.5,
        signals={"deployed_score": 0.8},
        predictor_path=os.environ.get("GRAPHLETS_TEST_PREDICTOR"),
        threshold=float(os.environ.get("GRAPHLETS_TEST_THRESHOLD", "0.35")),
        guardrails=Guardrails(min_history=0, exploration=0.0),
    )
    _training_branch(gate)


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def graphlets_test_gate_taskflow():
    """The TaskFlow form: the gate's function gets the window from an upstream task's XCom."""

    @task
    def window() -> dict:
        return {"spans": [int(s) for s in os.environ.get("GRAPHLETS_TEST_SPANS", "4,5").split(",")], "drift": 0.2}

    @graphlet_gate(
        predictor_path=os.environ.get("GRAPHLETS_TEST_PREDICTOR"),
        threshold=float(os.environ.get("GRAPHLETS_TEST_THRESHOLD", "0.35")),
        guardrails=Guardrails(min_history=0, exploration=0.0),
    )
    def graphlet_gate_task(chosen: dict, logical_date=None) -> dict:
        if os.environ.get("GRAPHLETS_TEST_GATE_FUNCTION_FAILS"):
            raise ValueError("the window service is down")
        assert logical_date is not None  # context entries reach the function by name
        return {"spans": chosen["spans"], "drift": chosen["drift"],
                "signals": {"deployed_score": 0.7, "latest_score": "high"}}  # not a number: left out

    _training_branch(graphlet_gate_task(window()))


def _training_branch(gate) -> None:
    @task
    @lineage.component("Trainer")
    def trainer(**context):
        lineage.of(context).output("Model", "/tmp/graphlets-test-gate/model")

    @task
    @lineage.component("Pusher")
    def pusher(**context):
        lineage.of(context).output("PushedModel", "/tmp/graphlets-test-gate/pushed", pushed=True)

    gate >> trainer() >> pusher()


graphlets_test_gate()
graphlets_test_gate_taskflow()
