"""The graphlet gate in a real Airflow DAG run: a skip shows the training branch as skipped and
is logged in MLMD with its reason; a gate that errors lets training run; guardrails end a run
of skips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.prune.dataset import feature_matrix, training_runs
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.signals import span_drift
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

pytestmark = pytest.mark.airflow
DAG = "graphlets_test_gate"
STATE = mlmd_pb.Execution.State.Name


@pytest.fixture(scope="module")
def predictor_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate_predictor")
    config = parse_store_uri(f"sqlite:///{tmp}/sim.sqlite")
    simulate(config, pipelines=8, days=60, seed=11)
    runs = training_runs(on_clock(read_graphlets(config), "logical"), span_drift(config))
    path = str(tmp / "predictor.pkl")
    PushPredictor.fit(feature_matrix(runs), runs.pushed).save(path)
    return path


def tasks_of(store_uri: str, run_id: str) -> dict:
    store = open_store(parse_store_uri(store_uri))
    run = store.get_context_by_type_and_name("pipeline_run", f"{DAG}.{run_id}")
    return {e.custom_properties["task_id"].string_value: e for e in store.get_executions_by_context(run.id)}


def run_gate(airflow_env, store_uri, spool, day: int, predictor: str, threshold: str):
    return airflow_env.run_dag(DAG, f"2026-02-{day:02d}T00:00:00+00:00", store_uri=store_uri, spool_dir=spool,
                               env={"GRAPHLETS_TEST_PREDICTOR": predictor, "GRAPHLETS_TEST_THRESHOLD": threshold})


def test_a_skip_shows_the_training_branch_as_skipped_and_is_logged(airflow_env, sqlite_store_uri, tmp_path,
                                                                   predictor_path):
    result = run_gate(airflow_env, sqlite_store_uri, str(tmp_path / "spool"), 1, predictor_path, "1.01")
    assert result.state == "success"
    assert "airflow-graphlets gate: skipping the training branch: predicted push probability" in result.output
    tasks = tasks_of(sqlite_store_uri, result.run_id)
    gate = tasks["graphlet_gate"].custom_properties
    assert STATE(tasks["graphlet_gate"].last_known_state) == "CANCELED"
    assert gate["graphlets_decision"].string_value == "skip"
    assert "< 1.01" in gate["graphlets_reason"].string_value
    assert 0 <= gate["graphlets_probability"].double_value <= 1
    assert '"new_spans": 3.0' in gate["graphlets_features"].string_value
    for task in ("trainer", "pusher"):
        assert STATE(tasks[task].last_known_state) == "CANCELED"
        assert tasks[task].custom_properties["airflow_state"].string_value == "skipped"


def test_a_gate_that_errors_lets_training_run(airflow_env, sqlite_store_uri, tmp_path):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle")
    result = run_gate(airflow_env, sqlite_store_uri, str(tmp_path / "spool"), 2, str(junk), "1.01")
    assert result.state == "success"
    tasks = tasks_of(sqlite_store_uri, result.run_id)
    gate = tasks["graphlet_gate"].custom_properties
    assert gate["graphlets_decision"].string_value == "run"
    assert gate["graphlets_reason"].string_value.startswith("fail open: ")
    assert all(STATE(tasks[t].last_known_state) == "COMPLETE" for t in ("graphlet_gate", "trainer", "pusher"))


def test_guardrails_end_a_run_of_skips(airflow_env, sqlite_store_uri, tmp_path, predictor_path):
    spool = str(tmp_path / "spool")
    decisions = []
    for day in range(3, 7):
        result = run_gate(airflow_env, sqlite_store_uri, spool, day, predictor_path, "1.01")
        gate = tasks_of(sqlite_store_uri, result.run_id)["graphlet_gate"].custom_properties
        decisions.append((gate["graphlets_decision"].string_value, gate["graphlets_reason"].string_value))
    assert [d for d, _ in decisions] == ["skip", "skip", "skip", "run"]
    assert decisions[-1][1].startswith("guardrail: 3 runs skipped in a row (limit 3)")

    logged = json.loads(subprocess.run(
        [sys.executable, "-m", "airflow_graphlets.cli", "decisions", "--store", sqlite_store_uri, "--dag", DAG,
         "--json"], capture_output=True, text=True, check=True, timeout=120).stdout)
    assert [(d["run_id"], d["decision"]) for d in logged] == [
        (f"manual__2026-02-0{day}T00:00:00+00:00", decision)
        for day, decision in zip(range(3, 7), ["skip", "skip", "skip", "run"])]
    assert logged[0]["features"]["new_spans"] == 3.0 and 0 <= logged[0]["probability"] <= 1
    table = subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", "decisions", "--store", sqlite_store_uri,
                            "--dag", DAG, "--since", "2099-01-01"], capture_output=True, text=True, check=True,
                           timeout=120).stdout
    assert table.startswith(f"0 gate decisions of {DAG}")
