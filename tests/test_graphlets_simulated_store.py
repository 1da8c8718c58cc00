"""Graphlets of a simulated history written in bulk: both readers agree on every backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.inspect import key_lookups, read_only_engine
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


def test_a_window_of_runs_reads_those_runs_models_as_the_whole_store_does(store_uri):
    """A gate reads a window of a pipeline's latest runs: each of their models is the whole
    read's (its run, spans, evaluation and push), and every execution of those runs is there,
    in its run and pipeline. (Upstream compute from runs before the window is not.)"""
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=3, days=12, seed=4)
    whole = read_graphlets(config)
    pipeline = whole.pipelines[1]
    with read_only_engine(config).connect() as conn:
        runs = [int(r) for r, in conn.execute(sa.text(
            "SELECT pc.context_id FROM ParentContext pc JOIN Context p ON p.id = pc.parent_context_id "
            "WHERE p.name = :name ORDER BY pc.context_id DESC"), {"name": pipeline})][:6]
        members = {int(e): int(r) for e, r in conn.execute(sa.text(
            f"SELECT execution_id, context_id FROM Association WHERE context_id IN ({', '.join(map(str, runs))})"))}
    window = read_graphlets(config, [pipeline], workers=1, runs=runs)

    def model(g):
        return g.run, g.spans, g.span_artifact_ids, g.status, g.blessed, g.pushed, g.pushed_at, g.trainer_start

    by_trainer = {g.trainer_id: g for g in whole.graphlets.records()}
    read = window.graphlets.records()
    assert len(read) == 6 and all(g.pipeline == pipeline for g in read)
    assert [model(g) for g in read] == [model(by_trainer[g.trainer_id]) for g in read]
    assert sorted(window.executions.ids.tolist()) == sorted(members)
    assert dict(zip(window.executions.ids.tolist(), window.executions.run.tolist())) == members
    assert {window.pipelines[i] for i in window.executions.pipeline.tolist()} == {pipeline}


def test_the_bulk_reader_gives_the_same_result_in_one_process_or_two(sqlite_store_uri):
    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=4, days=10, seed=5)
    one, two = read_graphlets(config, workers=1), read_graphlets(config, workers=2)
    assert one.graphlets.records() == two.graphlets.records()
    assert one.executions.equals(two.executions)


def test_a_read_of_a_few_pipelines_is_their_share_of_the_whole_store(store_uri):
    # One pipeline of 24 is a narrow read: index plans on PostgreSQL, threads with two workers.
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=24, days=4, seed=11)
    whole = read_graphlets(config, workers=1).graphlets.records()
    wanted = sorted({g.pipeline for g in whole})[5:6]
    share = [g for g in whole if g.pipeline in wanted]
    assert share
    assert read_graphlets(config, wanted, workers=1).graphlets.records() == share
    assert read_graphlets(config, wanted, workers=2).graphlets.records() == share


@pytest.mark.parametrize("point_reads", [False, True], ids=["in-transactions", "autocommit"])
def test_a_narrow_read_returns_its_pooled_connection_with_the_planner_as_it_was(postgres_store_uri, point_reads):
    config = parse_store_uri(postgres_store_uri)
    simulate(config, pipelines=24, days=2, seed=12)
    engine = read_only_engine(config, point_reads=point_reads)
    try:
        with engine.connect() as conn:
            pipeline = sorted(c for (c,) in conn.execute(sa.text(
                "SELECT c.name FROM Context c JOIN Type t ON t.id = c.type_id WHERE t.name = 'pipeline'")))[0]
        def planner_settings() -> dict[str, str]:
            found = {}
            for _ in range(3):  # every connection of the pool the read used
                with engine.connect() as conn:
                    found.update(dict(conn.execute(sa.text(
                        "SELECT name, setting FROM pg_settings WHERE name IN ('enable_seqscan', 'enable_hashjoin', "
                        "'enable_mergejoin', 'max_parallel_workers_per_gather', 'jit', 'enable_bitmapscan')")).all()))
            return found

        before = planner_settings()
        read_graphlets(config, [pipeline], workers=2, engine=engine)
        read_graphlets(config, [pipeline], workers=1, engine=engine)
        # A window of runs: its listed ids are read by key, without bitmap scans, while inside.
        with engine.connect() as conn:
            runs = [i for (i,) in conn.execute(sa.text(
                "SELECT pc.context_id FROM ParentContext pc JOIN Context p ON p.id = pc.parent_context_id "
                "WHERE p.name = :name"), {"name": pipeline})]
            with key_lookups(conn):
                assert conn.execute(sa.text("SHOW enable_bitmapscan")).scalar() == "off"
        for workers in (1, 2):
            assert len(read_graphlets(config, [pipeline], workers=workers, runs=runs, engine=engine).graphlets)
        assert planner_settings() == before
        assert before["enable_seqscan"] == "on" and before["enable_bitmapscan"] == "on"
    finally:
        engine.dispose()


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


def test_a_reader_killed_before_every_piece_is_handed_out_costs_time_not_graphlets(sqlite_store_uri, tmp_path,
                                                                                    monkeypatch, caplog):
    """The pool breaks while pieces are still being handed to it (the killed reader took the
    first piece at once): the pieces it no longer takes are read in this process too."""
    import logging
    import os

    from support.faults import KillFirstReaderProcess

    from airflow_graphlets.graphlets import bulk_reader

    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=4, days=10, seed=5)
    expected = read_graphlets(config, workers=1)

    monkeypatch.setattr(bulk_reader, "_fetch", KillFirstReaderProcess(os.getpid(), str(tmp_path / "killed-once")))
    submit, handed = bulk_reader._submit, []

    def submit_after_the_first_piece_died(*args):
        future = submit(*args)
        if not handed:
            future.exception()  # waits until the first piece's reader died and broke the pool
        handed.append(future)
        return future

    monkeypatch.setattr(bulk_reader, "_submit", submit_after_the_first_piece_died)
    with caplog.at_level(logging.WARNING):
        survived = read_graphlets(config, workers=2)
    assert len(handed) > 1 and all(future is None for future in handed[1:]), "the pool took no piece after it broke"
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


def test_a_sqlite_read_engine_serves_many_threads_without_closing_a_connection_in_use(sqlite_store_uri):
    """Window reads run in threads: an open connection stays usable however many other threads
    read on the same engine (SQLAlchemy's per-thread pool for "sqlite://" closed the oldest beyond
    five, under a thread still reading: a segfault)."""
    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=2, days=3, seed=5)
    engine = read_only_engine(config)
    try:
        with engine.connect() as held:
            def count() -> int:
                with engine.connect() as conn:
                    return int(conn.execute(sa.text("SELECT COUNT(*) FROM Execution")).scalar())

            for _ in range(8):  # a new thread each time, as each window read's pool makes
                with ThreadPoolExecutor(max_workers=1) as pool:
                    counted = pool.submit(count).result()
            assert int(held.execute(sa.text("SELECT COUNT(*) FROM Execution")).scalar()) == counted > 0
    finally:
        engine.dispose()


def test_a_read_without_hashes_differs_only_in_the_hashes(store_uri):
    """The summary reads no trainer hashes (its rows hold none): every other field of every
    graphlet is the full read's."""
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=3, days=10, seed=6)
    hashed, bare = read_graphlets(config), read_graphlets(config, hashes=False)
    assert any(g.code_hash or g.structure_hash for g in hashed.graphlets.records())
    assert all(g.code_hash is None and g.structure_hash is None for g in bare.graphlets.records())
    without = lambda records: [{k: v for k, v in vars(g).items() if k not in ("code_hash", "structure_hash")}
                               for g in records]
    assert without(bare.graphlets.records()) == without(hashed.graphlets.records())
    assert bare.executions.equals(hashed.executions)
