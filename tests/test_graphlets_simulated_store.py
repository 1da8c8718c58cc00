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


def test_a_reader_process_killed_midway_costs_time_not_graphlets(sqlite_store_uri, tmp_path, monkeypatch, caplog):
    """As the kernel's out-of-memory killer would: the first reader process to take a piece is
    SIGKILLed; the pieces it left are read in this process and the result is the same."""
    import logging
    import os

    from support.faults import KillFirstReaderProcess

    from airflow_graphlets.graphlets import bulk_reader

    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=4, days=10, seed=5)
    expected = read_graphlets(config, workers=1)

    marker = str(tmp_path / "killed-once")
    monkeypatch.setattr(bulk_reader, "_fetch", KillFirstReaderProcess(os.getpid(), marker))
    with caplog.at_level(logging.WARNING):
        survived = read_graphlets(config, workers=2)
    assert os.path.exists(marker), "a reader process was killed"
    assert survived.graphlets.records() == expected.graphlets.records()
    assert survived.executions.equals(expected.executions)
    assert caplog.text.count("a reader process ended abruptly") == 1


def test_reader_processes_never_inherit_the_callers_open_store(sqlite_store_uri, tmp_path, monkeypatch):
    """SQLite forbids carrying an open connection across fork(): a reader that inherited one
    read a -shm file the caller's closing connection truncated, and died of SIGBUS."""
    import os

    from support.faults import RecordInheritedStoreFiles

    from airflow_graphlets.graphlets import bulk_reader
    from airflow_graphlets.store.connect import open_store

    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=4, days=10, seed=5)
    held = open_store(config)  # the caller keeps a store open while it reads graphlets
    held.get_executions()
    try:
        log = str(tmp_path / "inherited.log")
        monkeypatch.setattr(bulk_reader, "_fetch", RecordInheritedStoreFiles(config.path, log))
        read_graphlets(config, workers=2)
    finally:
        held.close()
    lines = open(log).read().splitlines()
    assert lines and all(line.split(" ", 1)[1] == "[]" for line in lines), lines
    assert all(int(line.split()[0]) != os.getpid() for line in lines), "read in reader processes"
