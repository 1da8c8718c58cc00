"""Graphlets of a simulated history written in bulk: both readers agree on every backend."""

from __future__ import annotations

from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri


def test_both_readers_agree_on_a_simulated_history(store_uri):
    config = parse_store_uri(store_uri)
    report = simulate(config, pipelines=5, days=15, seed=3)
    bulk, api = read_graphlets(config), read_graphlets_with_mlmd_api(config)
    assert bulk.graphlets.records() == api.graphlets.records()
    assert bulk.executions.equals(api.executions)
    assert len(bulk.executions) == report.executions
    statuses = {g.status for g in bulk.graphlets.records()}
    assert {"pushed", "not_pushed"} <= statuses


def test_the_bulk_reader_gives_the_same_result_in_one_process_or_two(sqlite_store_uri):
    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=4, days=10, seed=5)
    one, two = read_graphlets(config, workers=1), read_graphlets(config, workers=2)
    assert one.graphlets.records() == two.graphlets.records()
    assert one.executions.equals(two.executions)
