"""What the gate operator sets as its decision's properties (the skip log) can always be recorded:
a decision whose probability is not a number, or whose reason holds a NUL, still stands and is
logged in a form MLMD's databases hold (issue 22, item 7)."""

from __future__ import annotations

import math

from airflow_graphlets import lineage
from airflow_graphlets.gate_operator import GraphletGateOperator
from airflow_graphlets.prune.gate import GateOutcome
from airflow_graphlets.prune.policy import Decision
from airflow_graphlets.recorder.records import check_properties


def logged(outcome: GateOutcome) -> dict:
    context: dict = {}
    GraphletGateOperator(task_id="graphlet_gate")._log_decision(context, {"deployed_score": 0.9}, outcome)
    return lineage.of(context).properties


def test_a_probability_that_is_not_a_number_is_logged_as_unknown():
    properties = logged(GateOutcome(Decision(True, math.nan, "predicted push probability nan"), {"drift": None},
                                    "push-predictor-0123", None, 0.01))
    assert properties["graphlets_probability"] == -1.0 and properties["graphlets_decision"] == "run"
    assert check_properties(properties, "the gate") == properties


def test_a_nul_in_an_override_reason_is_logged_escaped():
    reason = "operator override: force-run by alice: new labels\x00landed"
    properties = logged(GateOutcome(Decision(True, None, reason), {}, "prior/push-predictor-0123", "force-run", 0.0))
    assert properties["graphlets_reason"] == "operator override: force-run by alice: new labels\\x00landed"
    assert check_properties(properties, "the gate") == properties


def test_a_decision_that_cannot_be_logged_still_stands(capsys):
    context: dict = {}
    gate = GraphletGateOperator(task_id="graphlet_gate")
    gate._log_decision(context, {}, GateOutcome(Decision(False, 0.1, "x" * 10), {"f": object()}, "v", None, 0.0))
    said = capsys.readouterr()  # Airflow's task logger writes to the console here
    assert "the decision (skip) could not be logged" in said.out + said.err  # features that are not JSON: no raise
