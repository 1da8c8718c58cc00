"""dags/graphlets_maintenance.py in a real Airflow run: it retrains the gates' predictor on the
store's history and puts it in place; with too little history it skips, saying why, and leaves
the predictor there is."""

from __future__ import annotations

import os

import pytest
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri
from support.airflow_env import AirflowEnv

pytestmark = pytest.mark.airflow
DAGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dags")


def test_the_maintenance_dag_retrains_the_predictor_and_skips_while_history_is_short(tmp_path):
    env = AirflowEnv(home=str(tmp_path / "home"), dags_folder=DAGS)
    env.migrate()
    predictor = str(tmp_path / "models" / "push.npz")
    settings = {"AIRFLOW__GRAPHLETS__PREDICTOR_PATH": predictor}
    history = f"sqlite:///{tmp_path}/history.sqlite"
    simulate(parse_store_uri(history), pipelines=8, days=90, seed=12)

    done = env.run_dag("graphlets_maintenance", "2026-04-01T00:00:00+00:00", store_uri=history, env=settings,
                       spool_dir=str(tmp_path / "spool"))
    assert done.state == "success", done.output[-3000:]
    trained = PushPredictor.load(predictor)
    assert f"{trained.version} in {predictor} (replaces nothing)" in done.output

    short = f"sqlite:///{tmp_path}/short.sqlite"
    simulate(parse_store_uri(short), pipelines=1, days=4, seed=12)
    skipped = env.run_dag("graphlets_maintenance", "2026-04-02T00:00:00+00:00", store_uri=short, env=settings,
                          spool_dir=str(tmp_path / "spool"))
    assert skipped.state == "success"  # a skipped task is not a failed run
    assert "not retrained: " in skipped.output and "needs at least 20 finished runs" in skipped.output
    assert PushPredictor.load(predictor).version == trained.version  # the old predictor stays in place
