"""The graphlet gate in a real Airflow DAG run: a skip shows the training branch as skipped and
is logged in MLMD with its reason; a gate that errors lets training run; guardrails end a run
of skips; operators' overrides apply to the next run; the TaskFlow form decides alike."""

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
    path = str(tmp / "predictor.npz")
    PushPredictor.fit(feature_matrix(runs), runs.pushed).save(path)
    return path


def tasks_of(store_uri: str, run_id: str, dag: str = DAG) -> dict:
    store = open_store(parse_store_uri(store_uri))
    run = store.get_context_by_type_and_name("pipeline_run", f"{dag}.{run_id}")
    return {e.custom_properties["task_id"].string_value: e for e in store.get_executions_by_context(run.id)}


def run_gate(airflow_env, store_uri, spool, day: int, predictor: str, threshold: str, dag: str = DAG, **env: str):
    open_store(parse_store_uri(store_uri))  # the store exists, as it does once anything was recorded
    return airflow_env.run_dag(dag, f"2026-02-{day:02d}T00:00:00+00:00", store_uri=store_uri, spool_dir=spool,
                               env={"GRAPHLETS_TEST_PREDICTOR": predictor, "GRAPHLETS_TEST_THRESHOLD": threshold, **env})


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", *args], capture_output=True, text=True,
                          check=True, timeout=120).stdout


def test_a_gate_that_errors_lets_training_run(airflow_env, sqlite_store_uri, tmp_path):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle")
    result = run_gate(airflow_env, sqlite_store_uri, str(tmp_path / "spool"), 2, str(junk), "1e6")
    assert result.state == "success"
    tasks = tasks_of(sqlite_store_uri, result.run_id)
    gate = tasks["graphlet_gate"].custom_properties
    assert gate["graphlets_decision"].string_value == "run"
    assert gate["graphlets_reason"].string_value.startswith("fail open: ")
    assert json.loads(gate["graphlets_signals"].string_value) == {"deployed_score": 0.8}  # kept to learn from
    assert all(STATE(tasks[t].last_known_state) == "COMPLETE" for t in ("graphlet_gate", "trainer", "pusher"))


def test_a_skip_shows_the_training_branch_as_skipped_and_guardrails_end_a_run_of_skips(
        airflow_env, sqlite_store_uri, tmp_path, predictor_path):
    spool = str(tmp_path / "spool")
    decisions = []
    for day in range(3, 7):
        result = run_gate(airflow_env, sqlite_store_uri, spool, day, predictor_path, "1e6")
        assert result.state == "success"
        tasks = tasks_of(sqlite_store_uri, result.run_id)
        gate = tasks["graphlet_gate"].custom_properties
        decisions.append((gate["graphlets_decision"].string_value, gate["graphlets_reason"].string_value))
        if day == 3:  # a skip: logged in MLMD with its reason, the training branch skipped
            assert "airflow-graphlets gate: skipping the training branch: predicted push probability" in result.output
            assert STATE(tasks["graphlet_gate"].last_known_state) == "CANCELED"
            assert gate["graphlets_reason"].string_value.endswith("< 1e+06")
            assert 0 <= gate["graphlets_probability"].double_value <= 1
            logged_features = json.loads(gate["graphlets_features"].string_value)
            assert logged_features["new_spans"] == 3.0 and logged_features["deployed_score"] == 0.8
            assert gate["graphlets_policy_version"].string_value == PushPredictor.load(predictor_path).version
            for task in ("trainer", "pusher"):
                assert STATE(tasks[task].last_known_state) == "CANCELED"
                assert tasks[task].custom_properties["airflow_state"].string_value == "skipped"
    assert [d for d, _ in decisions] == ["skip", "skip", "skip", "run"]
    assert decisions[-1][1].startswith("guardrail: 3 runs skipped in a row (limit 3)")

    logged = json.loads(cli("decisions", "--store", sqlite_store_uri, "--dag", DAG, "--json"))
    assert [(d["run_id"], d["decision"]) for d in logged] == [
        (f"manual__2026-02-0{day}T00:00:00+00:00", decision)
        for day, decision in zip(range(3, 7), ["skip", "skip", "skip", "run"])]
    assert logged[0]["features"]["new_spans"] == 3.0 and 0 <= logged[0]["probability"] <= 1
    table = cli("decisions", "--store", sqlite_store_uri, "--dag", DAG, "--since", "2099-01-01")
    assert table.startswith(f"0 gate decisions of {DAG}")


def test_operator_overrides_force_one_run_or_hold_until_allowed_again(airflow_env, sqlite_store_uri, tmp_path,
                                                                      predictor_path):
    spool = str(tmp_path / "spool")
    gate_of = lambda result: tasks_of(sqlite_store_uri, result.run_id)["graphlet_gate"].custom_properties  # noqa: E731
    assert gate_of(run_gate(airflow_env, sqlite_store_uri, spool, 8, predictor_path, "1e6"))[
        "graphlets_decision"].string_value == "skip"
    said = cli("override", "force-run", "--dag", DAG, "--by", "alice", "--reason", "new labels landed",
               "--store", sqlite_store_uri)
    assert said.startswith(f"recorded force-run for {DAG} by alice")

    forced = run_gate(airflow_env, sqlite_store_uri, spool, 9, predictor_path, "1e6")
    tasks = tasks_of(sqlite_store_uri, forced.run_id)
    gate = tasks["graphlet_gate"].custom_properties
    assert (gate["graphlets_decision"].string_value, gate["graphlets_override"].string_value) == (
        "run", "force-run by alice")
    assert gate["graphlets_reason"].string_value == "operator override: force-run by alice: new labels landed"
    assert all(STATE(tasks[t].last_known_state) == "COMPLETE" for t in ("trainer", "pusher"))

    after = gate_of(run_gate(airflow_env, sqlite_store_uri, spool, 10, predictor_path, "1e6"))
    assert after["graphlets_decision"].string_value == "skip"  # the force-run was used up

    # never-skip holds for every run until allow-skip.
    cli("override", "never-skip", "--dag", DAG, "--by", "bob", "--store", sqlite_store_uri)
    held = gate_of(run_gate(airflow_env, sqlite_store_uri, spool, 11, predictor_path, "1e6"))
    assert (held["graphlets_decision"].string_value, held["graphlets_override"].string_value) == (
        "run", "never-skip by bob")
    cli("override", "allow-skip", "--dag", DAG, "--by", "bob", "--store", sqlite_store_uri)
    allowed = gate_of(run_gate(airflow_env, sqlite_store_uri, spool, 13, predictor_path, "1e6"))
    assert allowed["graphlets_decision"].string_value == "skip"

    logged = json.loads(cli("decisions", "--store", sqlite_store_uri, "--dag", DAG, "--json"))
    assert [(d["decision"], d["override"]) for d in logged] == [
        ("skip", ""), ("run", "force-run by alice"), ("skip", ""), ("run", "never-skip by bob"), ("skip", "")]
    # A force-run bound to one run (--run) is not the next run's: that run skips as usual.
    bound = cli("override", "force-run", "--dag", DAG, "--by", "carol", "--run", "some_earlier_run",
                "--store", sqlite_store_uri)
    assert bound.startswith(f"recorded force-run of run some_earlier_run for {DAG} by carol")
    assert gate_of(run_gate(airflow_env, sqlite_store_uri, spool, 14, predictor_path, "1e6"))[
        "graphlets_decision"].string_value == "skip"
    listed = json.loads(cli("override", "list", "--dag", DAG, "--store", sqlite_store_uri, "--json"))
    assert [(o["action"], o["by"], o["run_id"]) for o in listed] == [
        ("force-run", "alice", ""), ("never-skip", "bob", ""), ("allow-skip", "bob", ""),
        ("force-run", "carol", "some_earlier_run")]


def test_the_taskflow_gate_reads_its_inputs_from_upstream_and_skips_alike(airflow_env, sqlite_store_uri, tmp_path,
                                                                         predictor_path):
    dag = "graphlets_test_gate_taskflow"
    result = run_gate(airflow_env, sqlite_store_uri, str(tmp_path / "spool"), 14, predictor_path, "1e6", dag=dag,
                      GRAPHLETS_TEST_SPANS="7,8,9,10")
    assert result.state == "success"
    tasks = tasks_of(sqlite_store_uri, result.run_id, dag)
    gate = tasks["graphlet_gate_task"].custom_properties
    assert gate["graphlets_decision"].string_value == "skip"
    assert json.loads(gate["graphlets_features"].string_value)["new_spans"] == 4.0
    assert json.loads(gate["graphlets_signals"].string_value) == {"deployed_score": 0.7}
    assert "signal 'latest_score' = 'high' is not a finite number; ignored" in result.output
    assert all(tasks[t].custom_properties["airflow_state"].string_value == "skipped" for t in ("trainer", "pusher"))


def test_a_failing_taskflow_gate_function_lets_training_run(airflow_env, sqlite_store_uri, tmp_path, predictor_path):
    dag = "graphlets_test_gate_taskflow"
    result = run_gate(airflow_env, sqlite_store_uri, str(tmp_path / "spool"), 15, predictor_path, "1e6", dag=dag,
                      GRAPHLETS_TEST_GATE_FUNCTION_FAILS="1")
    assert result.state == "success"
    tasks = tasks_of(sqlite_store_uri, result.run_id, dag)
    gate = tasks["graphlet_gate_task"].custom_properties
    assert gate["graphlets_reason"].string_value == (
        "fail open: the gate function failed: ValueError: the window service is down")
    assert all(STATE(tasks[t].last_known_state) == "COMPLETE" for t in ("trainer", "pusher"))
