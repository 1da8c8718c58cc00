"""The skip audit (``graphlets decisions --audit``): the pushes a gate's skips lost, estimated from
the would-be skips that trained anyway (exploration), and the share of pushes kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from airflow_graphlets.prune.audit import audit
from airflow_graphlets.prune.decisions import DECISION, LoggedDecision
from airflow_graphlets.prune.features import NAMES
from airflow_graphlets.prune.policy import Guardrails
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.identity import pipeline_run_context_name
from airflow_graphlets.store.uri import parse_store_uri
from ml_metadata.proto import metadata_store_pb2 as pb
from support.tfx_store import RunPlan, TfxPipeline

DAG = "ct_audited"
# The reason the gate gives a would-be skip its exploration guardrail let train (prune/gate.py).
EXPLORED = (f"guardrail: {Guardrails(exploration=1.0).check(np.full(len(NAMES), 20.0), 0, 0.0, 0.0)} "
            "(the predictor said: predicted push probability 0.05 < 0.1)")


def decision(run: int, verdict: str, reason: str = "predicted push probability 0.40 >= 0.1") -> LoggedDecision:
    return LoggedDecision(run, f"scheduled__{run}", "graphlet_gate", float(run), verdict, 0.4, reason, "", "v", {})


def outcomes(pushes: dict[int, bool]) -> dict[str, bool]:
    return {pipeline_run_context_name(DAG, f"scheduled__{run}"): pushed for run, pushed in pushes.items()}


def test_the_explored_runs_push_rate_times_the_skips_estimates_the_pushes_lost():
    skips = [decision(r, "skip", "predicted push probability 0.05 < 0.1") for r in range(40)]
    explored = [decision(r, "run", EXPLORED) for r in range(40, 50)]
    ran = [decision(r, "run") for r in range(50, 100)]
    pushed = {r: r in (40, 41) for r in range(40, 50)} | {r: r < 70 for r in range(50, 100)}
    found = audit(DAG, skips + explored + ran, outcomes(pushed))
    assert (found.skipped, found.explored, found.explored_pushed, found.pushed) == (40, 10, 2, 22)
    assert found.lost == pytest.approx(40 * 2 / 10)
    assert found.kept_share == pytest.approx(22 / (22 + 8))
    low, high = found.lost_range
    assert low < found.lost < high and found.kept_range[0] < found.kept_share < found.kept_range[1]


def test_a_run_decided_again_counts_once_with_its_newest_decision_and_runs_without_outcome_are_named():
    decisions = [decision(1, "skip"), decision(1, "run", EXPLORED), decision(2, "run"), decision(3, "skip")]
    found = audit(DAG, decisions, outcomes({1: True}))
    assert (found.decisions, found.skipped, found.explored, found.explored_pushed, found.unknown) == (3, 1, 1, 1, 1)
    assert found.lost == pytest.approx(1.0)


def test_without_an_explored_outcome_nothing_is_estimated():
    found = audit(DAG, [decision(1, "skip"), decision(2, "run")], outcomes({2: True}))
    assert found.lost is None and found.kept_share is None and found.pushed == 1


@pytest.fixture
def audited_store(tmp_path):
    """A TFX pipeline whose gate skipped 6 runs, let 4 train by exploration (one pushed) and 5
    more by its predictor (all pushed), as the gate operator logs its decisions."""
    config = parse_store_uri(f"sqlite:///{tmp_path}/mlmd.sqlite")
    store = open_store(config)
    pipeline = TfxPipeline(store, DAG)
    gate_type = store.put_execution_type(pb.ExecutionType(name="airflow_graphlets.GraphletGateOperator"))
    plan = [("skip", None)] * 6 + [("explored", r == 0) for r in range(4)] + [("run", True)] * 5
    for k, (kind, pushed) in enumerate(plan):
        run_id = f"scheduled__2026-01-{k + 1:02d}"
        reason = {"skip": "predicted push probability 0.05 < 0.1", "explored": EXPLORED,
                  "run": "predicted push probability 0.60 >= 0.1"}[kind]
        gate = pb.Execution(type_id=gate_type, last_known_state=pb.Execution.COMPLETE)
        for key, value in ((DECISION, "skip" if kind == "skip" else "run"), ("run_id", run_id),
                           ("task_id", "graphlet_gate"), ("graphlets_reason", reason), ("graphlets_features", "{}")):
            gate.custom_properties[key].string_value = value
        gate.custom_properties["start_epoch_seconds"].double_value = 1_767_225_600.0 + 86_400 * k
        store.put_execution(gate, [], [pipeline.pipeline_context])
        if kind != "skip":
            pipeline.run(pipeline_run_context_name(DAG, run_id), RunPlan(span=k, blessed=pushed))
    return f"sqlite:///{tmp_path}/mlmd.sqlite"


def graphlets(*args):
    done = subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "GLOG_minloglevel": "2"}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_graphlets_decisions_audit_reads_the_skip_log_and_the_runs_outcomes(audited_store):
    found = json.loads(graphlets("decisions", "--store", audited_store, "--dag", DAG, "--audit", "--json"))
    assert (found["skipped"], found["explored"], found["explored_pushed"], found["pushed"]) == (6, 4, 1, 6)
    assert found["lost"] == pytest.approx(6 * 1 / 4)
    assert found["kept_share"] == pytest.approx(6 / 7.5)
    said = graphlets("decisions", "--store", audited_store, "--dag", DAG, "--audit")
    assert "4 would-be skips trained anyway, 1 pushed" in said and "share of pushes kept: 80.0%" in said
