"""The continuous-training DAGs of dags/, run by real Airflow: they import cleanly, and a short
backfill through a real scheduler leaves one complete graphlet per run whose blessing and push
are exactly what the evaluator decided on real model quality."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from airflow_graphlets.graphlets.analyses import analyze
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.prune.decisions import read_decisions
from airflow_graphlets.store.uri import parse_store_uri
from support.airflow_env import VENV_BIN, AirflowEnv

pytestmark = pytest.mark.airflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAGS = os.path.join(ROOT, "dags")
PIPELINES = ["ct_agrawal_forest", "ct_agrawal_linear", "ct_hyperplane_sgd", "ct_rbf_boosting", "ct_sea_logistic"]
CHAIN = ["example_gen", "statistics_gen", "schema_gen", "example_validator", "graphlet_gate", "trainer", "evaluator",
         "pusher"]

DAGBAG_REPORT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {d: {"tasks": sorted(t.task_id for t in dag.tasks),
                 "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}}
             for d, dag in bag.dags.items()},
}))
"""


def dagbag(env: AirflowEnv, today: str | None) -> dict:
    # Airflow's DAG processor and task runner put the DAGs folder on sys.path; a bare DagBag does not.
    extra = {"PYTHONPATH": DAGS, **({"GRAPHLETS_CT_TODAY": today} if today else {})}
    done = subprocess.run([sys.executable, "-c", DAGBAG_REPORT, DAGS], env={**env.env, **extra},
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dags_import_cleanly_and_each_release_has_its_shape(tmp_path):
    env = AirflowEnv(home=str(tmp_path), dags_folder=DAGS)
    before = dagbag(env, "2026-01-06")
    assert before["errors"] == {}
    assert set(PIPELINES) <= set(before["dags"])
    for dag_id in PIPELINES:
        dag = before["dags"][dag_id]
        assert set(CHAIN) <= set(dag["tasks"])
        assert dag["upstream"]["evaluator"] == ["example_gen", "trainer"]
        assert dag["upstream"]["pusher"] == ["evaluator", "trainer"]
        assert dag["upstream"]["graphlet_gate"] == ["example_gen", "example_validator"]
        before_training = "transform" if "transform" in dag["tasks"] else "trainer"
        assert "graphlet_gate" in dag["upstream"][before_training]
    assert "transform" not in before["dags"]["ct_agrawal_linear"]["tasks"]
    assert "transform" in before["dags"]["ct_hyperplane_sgd"]["tasks"]  # from its first release

    after = dagbag(env, "2026-01-07")
    assert after["errors"] == {}
    linear = after["dags"]["ct_agrawal_linear"]
    assert "transform" in linear["tasks"] and "transform" in linear["upstream"]["trainer"]


@pytest.fixture(scope="module")
def backfill(tmp_path_factory):
    """Two pipelines, 2026-01-05 .. 2026-01-08, through scripts/ct_backfill.py: both change on
    2026-01-07 (one gains a Transform, the other new trainer code), where the backfill also
    pauses to run a command. The store is named by a connection in Airflow's metadata database,
    not by an environment variable."""
    home = str(tmp_path_factory.mktemp("ct_backfill"))
    env = AirflowEnv(home=home, dags_folder=DAGS)
    env.env.pop("AIRFLOW_CONN_MLMD_DEFAULT", None)
    env.env["AIRFLOW__GRAPHLETS__SPOOL_DIR"] = os.path.join(home, "spool")
    env.migrate()
    store_uri = f"sqlite:///{home}/mlmd.sqlite"
    env.airflow("connections", "add", "mlmd_default", "--conn-uri", store_uri)
    done = subprocess.run(
        [os.path.join(VENV_BIN, "python"), os.path.join(ROOT, "scripts", "ct_backfill.py"), "--start", "2026-01-05",
         "--days", "4", "--dags", "ct_agrawal_linear,ct_sea_logistic", "--pause", "2026-01-07",
         "--then", "echo paused with $AIRFLOW_HOME"],
        env=env.env, capture_output=True, text=True, timeout=900, check=False,
    )
    subprocess.run([os.path.join(VENV_BIN, "graphlets"), "spool", "replay", "--timeout", "60"], env=env.env,
                   capture_output=True, text=True, timeout=120, check=True)
    return home, store_uri, done


def verdict(home: str, dag_id: str, logical_day: str) -> dict:
    run_file = f"backfill__{logical_day}T00_00_00_00_00.json"
    with open(os.path.join(home, "ct-data", dag_id, "evaluations", run_file)) as handle:
        return json.load(handle)


def test_a_backfill_runs_every_date_through_the_scheduler_and_shows_progress(backfill):
    home, _, done = backfill
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backfill: 2 pipelines x 4 days (2026-01-05 .. 2026-01-08) = 8 DAG runs" in done.stdout
    assert "-- 2026-01-05 .. 2026-01-06: the DAGs as deployed on 2026-01-01" in done.stdout
    assert f"-- paused before 2026-01-07 (--then):\npaused with {home}\n" in done.stdout
    assert "-- 2026-01-07 .. 2026-01-08: the DAGs as deployed on 2026-01-07" in done.stdout
    assert "[   8/8]" in done.stdout and "8 DAG runs in" in done.stdout and "0 failed" in done.stdout
    with open(os.path.join(home, "scheduler.log")) as handle:
        assert "Exception when executing SchedulerJob" not in handle.read()


def test_each_run_is_one_graphlet_blessed_and_pushed_as_the_evaluator_decided(backfill):
    home, store_uri, _ = backfill
    extraction = read_graphlets(parse_store_uri(store_uri))
    graphlets = extraction.graphlets.records()
    assert sorted(extraction.pipelines) == ["ct_agrawal_linear", "ct_sea_logistic"]
    assert len(graphlets) == 8 and {g.status for g in graphlets} <= {"pushed", "not_pushed"}
    decided = {True: 0, False: 0}
    for g in graphlets:
        day = g.run.split("__")[1][:10]
        expected = verdict(home, g.pipeline, day)
        assert bool(g.blessed) is expected["blessed"], (g.pipeline, day, expected)
        assert g.pushed is expected["blessed"]
        decided[expected["blessed"]] += 1
        span, window = int(day[-2:]) - 1, (3 if g.pipeline == "ct_sea_logistic" else 4)
        # The rolling window: the last spans ingested, which here begin with the backfill (span 4).
        assert list(g.spans) == [k for k in range(span - window + 1, span + 1) if k >= 4]
    assert decided[True] >= 1 and decided[False] >= 1  # both outcomes arise from real model quality
    for dag_id in ("ct_agrawal_linear", "ct_sea_logistic"):
        pushed = sorted((g for g in graphlets if g.pipeline == dag_id and g.pushed), key=lambda g: g.run)
        current = os.path.join(home, "ct-data", dag_id, "serving", "current.json")
        if not pushed:
            assert not os.path.exists(current)
            continue
        with open(current) as handle:
            assert json.load(handle)["run_id"] == pushed[-1].run.split(".", 1)[1]


def test_every_run_has_a_gate_decision_and_trains_while_its_history_is_short(backfill):
    _, store_uri, _ = backfill
    for dag_id in ("ct_agrawal_linear", "ct_sea_logistic"):
        logged = read_decisions(parse_store_uri(store_uri), dag_id)
        assert [d.run_id[len("backfill__"):][:10] for d in logged] == [f"2026-01-{d:02d}" for d in range(5, 9)]
        assert {d.decision for d in logged} == {"run"}
        # No predictor file: the prior decides (and the guardrails would run any skip of so short a history).
        assert all("prior predictor (no predictor trained on this store yet)" in d.reason for d in logged)
        assert all(d.policy_version.startswith("prior/push-predictor-") for d in logged)
        assert all(set(d.features) >= {"deployed_score", "latest_score_gap", "statistics_drift"} for d in logged)


def test_the_releases_show_as_structure_and_code_changes(backfill):
    _, store_uri, _ = backfill
    graphlets = read_graphlets(parse_store_uri(store_uri)).graphlets.records()

    def by_day(dag_id):
        return {g.run.split("__")[1][:10]: g for g in graphlets if g.pipeline == dag_id}

    linear, sea = by_day("ct_agrawal_linear"), by_day("ct_sea_logistic")
    assert linear["2026-01-05"].structure_hash == linear["2026-01-06"].structure_hash
    assert linear["2026-01-06"].structure_hash != linear["2026-01-07"].structure_hash
    assert dict(linear["2026-01-05"].cost_by_kind).get("Transform", 0) == 0
    assert dict(linear["2026-01-08"].cost_by_kind)["Transform"] > 0
    assert sea["2026-01-05"].code_hash == sea["2026-01-06"].code_hash != sea["2026-01-07"].code_hash
    assert sea["2026-01-06"].structure_hash == sea["2026-01-07"].structure_hash


def test_on_the_logical_clock_the_backfill_spans_its_days(backfill):
    _, store_uri, _ = backfill
    extraction = read_graphlets(parse_store_uri(store_uri))
    logical, wall = analyze(extraction, clock="logical"), analyze(extraction, clock="wall")
    assert all(2.99 < p.lifespan_days < 3.1 for p in logical.pipelines)
    assert all(p.lifespan_days < 1 for p in wall.pipelines)
    assert logical.totals["graphlets"] == wall.totals["graphlets"] == 8
    assert logical.totals["wasted_seconds"] == wall.totals["wasted_seconds"]
