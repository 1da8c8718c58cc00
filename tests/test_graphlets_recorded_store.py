"""Graphlets of what the recorder wrote while real Airflow ran a real DAG."""

from __future__ import annotations

import pytest
from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.store.uri import parse_store_uri

pytestmark = pytest.mark.airflow

PIPELINE = "graphlets_test_pipeline"  # tests/dags: trains on spans span-2..span, blesses even spans
DAYS = ("2026-01-05T00:00:00+00:00", "2026-01-06T00:00:00+00:00", "2026-01-07T00:00:00+00:00")  # spans 4, 5, 6


def test_recorded_runs_make_one_graphlet_each_and_both_readers_agree(airflow_env, store_uri, tmp_path):
    for day in DAYS:
        result = airflow_env.run_dag(PIPELINE, day, store_uri=store_uri, spool_dir=str(tmp_path / "spool"))
        assert result.state == "success", result.output[-3000:]
    config = parse_store_uri(store_uri)
    bulk, api = read_graphlets(config), read_graphlets_with_mlmd_api(config)
    assert bulk.graphlets.records() == api.graphlets.records()
    assert bulk.executions.equals(api.executions)

    graphlets = bulk.graphlets.records()
    assert [(g.spans, g.blessed, g.pushed, g.status) for g in graphlets] == [
        ((4,), True, True, "pushed"),  # the window 2..4 holds only the spans recorded so far
        ((4, 5), False, False, "not_pushed"),
        ((4, 5, 6), True, True, "pushed"),
    ]
    first, second, third = graphlets
    assert first.pipeline == PIPELINE and first.run == f"{PIPELINE}.manual__{DAYS[0]}"
    # Downstream: three mapped slice evaluations, the evaluator and the pusher.
    assert len(first.downstream_ids) == 5
    # The recorder's own timing and fingerprints are used.
    assert first.cost_seconds > 0 and first.trainer_end > first.trainer_start
    assert first.code_hash and first.structure_hash == second.structure_hash
    assert (second.previous_pushed_trainer_id, third.previous_pushed_trainer_id) == (first.trainer_id, first.trainer_id)
