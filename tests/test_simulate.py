"""``graphlets simulate``: the store holds what was generated, the same seed gives the same store."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_graphlets.cli import main
from airflow_graphlets.errors import SimulationError, StoreConfigError
from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.simulate.history import generate
from airflow_graphlets.simulate.profile import Profile
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.connect import open_mlmd_client, open_store
from airflow_graphlets.store.uri import parse_store_uri


def test_graphlets_read_through_mlmd_api_are_what_was_generated(store_uri):
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=3, days=12, seed=11)
    graphlets = read_graphlets_with_mlmd_api(config).graphlets.records()
    by_pipeline: dict[str, list] = {}
    for g in graphlets:
        by_pipeline.setdefault(g.pipeline, []).append(g)
    for history in generate(Profile.paper(), pipelines=3, days=12, seed=11):
        mine = sorted(by_pipeline[history.name], key=lambda g: g.run)  # run ids sort in time order
        assert len(mine) == len(history.run_times)  # one trained model per run
        for r, g in enumerate(mine):
            assert g.trainer_start > history.run_times[r]
            assert g.spans == tuple(range(max(0, r - history.window + 1), r + 1))
            if history.trainer_failed[r]:
                assert g.status == "failed"
            elif not history.evaluator:
                assert (g.blessed, g.pushed) == (None, False)
            else:
                assert g.blessed == bool(history.blessed[r]) and g.pushed == bool(history.blessed[r])


def test_the_store_passes_mlmds_own_checks_and_accepts_mlmd_writes_after(store_uri):
    config = parse_store_uri(store_uri)
    report = simulate(config, pipelines=2, days=5, seed=1)
    store = open_mlmd_client(config)  # ml-metadata's own client checks the schema version when it connects
    assert len(store.get_executions()) == report.executions
    from ml_metadata.proto import metadata_store_pb2 as pb

    [new_id] = store.put_executions([pb.Execution(type_id=store.get_execution_types()[0].id)])
    assert new_id == report.executions + 1  # MLMD's own ids continue after the bulk-written ones


def test_a_postgresql_store_has_planner_statistics_after_the_load(tmp_path):
    """Without statistics PostgreSQL plans a read of a few executions as scans of whole tables."""
    import psycopg2
    from support.databases import PG, create_store_uri, drop_store

    uri = create_store_uri("postgresql", str(tmp_path))
    try:
        simulate(parse_store_uri(uri), pipelines=2, days=5, seed=1)
        with psycopg2.connect(dbname=uri.rsplit("/", 1)[1], **PG) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public'")
            analysed = {name for name, in cursor.fetchall()}
        assert {"execution", "executionproperty", "event", "association", "artifact"} <= analysed
    finally:
        drop_store(uri)


def test_a_postgresql_store_keeps_mlmds_keys_and_indexes_after_a_load_that_dropped_them(tmp_path):
    """The load drops MLMD's primary keys, unique constraints and indexes and builds them again
    after: the store ends with exactly the ones MLMD made, under the same names, and they hold."""
    import psycopg2
    from support.databases import PG, create_store_uri, drop_store

    def schema_of(uri: str) -> set:
        with psycopg2.connect(dbname=uri.rsplit("/", 1)[1], **PG) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = "
                           "'public'::regnamespace")
            constraints = set(cursor.fetchall())
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            return constraints | set(cursor.fetchall())

    fresh, loaded = create_store_uri("postgresql", str(tmp_path)), create_store_uri("postgresql", str(tmp_path))
    try:
        open_store(parse_store_uri(fresh))
        simulate(parse_store_uri(loaded), pipelines=2, days=5, seed=1)
        expected = schema_of(fresh)
        assert schema_of(loaded) == expected and len(expected) > 20
        store = open_store(parse_store_uri(loaded))
        from airflow_graphlets.store import mlmd_errors
        from airflow_graphlets.store import mlmd_proto as pb

        taken = store.get_executions()[0]
        with pytest.raises(mlmd_errors.AlreadyExistsError):  # the unique external id holds again
            store.put_executions([pb.Execution(type_id=taken.type_id, external_id=taken.external_id)])
    finally:
        drop_store(fresh)
        drop_store(loaded)


def test_the_same_seed_gives_the_same_graphlets_and_another_seed_does_not(tmp_path):
    def graphlets(name: str, seed: int):
        config = parse_store_uri(f"sqlite:///{tmp_path / name}")
        simulate(config, pipelines=4, days=10, seed=seed)
        return read_graphlets(config).graphlets.records()

    first, again, other = graphlets("a.sqlite", 5), graphlets("b.sqlite", 5), graphlets("c.sqlite", 6)
    assert first == again
    assert first != other


def test_a_profile_file_overrides_the_defaults_and_names_unknown_keys(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text("window_mean = 2.0\n[durations]\nTrainer = 7200.0\n")
    profile = Profile.from_toml(str(path))
    assert profile.window_mean == 2.0 and profile.durations["Trainer"] == 7200.0
    assert profile.durations["Pusher"] == Profile.paper().durations["Pusher"]
    path.write_text("window_mean = 2.0\nwindow_size = 3\n")
    with pytest.raises(StoreConfigError, match="window_size"):
        Profile.from_toml(str(path))
    assert {f.name for f in dataclasses.fields(Profile)} >= {"window_mean", "durations", "staleness_bonus"}


def test_simulate_refuses_a_store_that_holds_executions(sqlite_store_uri, capsys):
    assert main(["simulate", "--store", sqlite_store_uri, "--pipelines", "1", "--days", "2", "--quiet"]) == 0
    assert main(["simulate", "--store", sqlite_store_uri, "--pipelines", "1", "--days", "2", "--quiet"]) == 2
    assert "already holds executions" in capsys.readouterr().err
    assert main(["simulate", "--store", sqlite_store_uri, "--pipelines", "0"]) == 2


def _schema_of(config) -> list:
    """What changes when an index or key is dropped, even if it is made again: SQLite's schema
    cookie, PostgreSQL's index objects (a re-made index is a new one), MySQL's index columns."""
    import sqlalchemy as sa

    queries = {
        "sqlite": "PRAGMA schema_version",
        "postgresql": "SELECT c.relname, c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE c.relkind = 'i' AND n.nspname = 'public' ORDER BY c.relname",
        "mysql": "SELECT table_name, index_name, seq_in_index, column_name FROM information_schema.statistics "
                 "WHERE table_schema = DATABASE() ORDER BY table_name, index_name, seq_in_index",
    }
    engine = sa.create_engine(config.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(queries[config.backend]))]
    finally:
        engine.dispose()


def test_a_refused_store_keeps_every_index_and_key_on_every_backend(store_uri):
    config = parse_store_uri(store_uri)
    simulate(config, pipelines=1, days=3, seed=2)
    before = _schema_of(config)
    with pytest.raises(StoreConfigError, match="already holds executions; simulate into a new or empty store"):
        simulate(config, pipelines=1, days=3, seed=3)
    assert _schema_of(config) == before  # nothing dropped (and made again) before the refusal


def test_the_shipped_paper_profile_sets_every_field_and_bad_toml_is_named(tmp_path):
    profile = Profile.paper()  # a field missing from profiles/paper.toml would fail here
    assert profile.runs_per_day_median > 0 and set(profile.durations) >= {"Trainer", "ExampleGen", "Pusher"}
    broken = tmp_path / "broken.toml"
    broken.write_text("window_mean = = 3\n")
    with pytest.raises(StoreConfigError, match="not valid TOML"):
        Profile.from_toml(str(broken))
    with pytest.raises(StoreConfigError, match="Cannot read"):
        Profile.from_toml(str(tmp_path / "missing.toml"))


def _builders(copy_text: bool, group_by_name: bool = True, pipelines: int = 3):
    from airflow_graphlets.simulate.history import TASKS
    from airflow_graphlets.simulate.mlmd_rows import RowBuilder, TypeIds
    from airflow_graphlets.store import schema

    types = TypeIds(contexts={name: 1 for name in (schema.PIPELINE_CONTEXT, schema.PIPELINE_RUN_CONTEXT,
                                                     schema.NODE_CONTEXT)},
                    executions={task: 2 for task in TASKS}, artifacts={name: 3 for name in schema.ARTIFACT_TYPES})
    builder = RowBuilder(types, dict.fromkeys(("Context", "Execution", "Artifact", "Event", "Association",
                                              "Attribution"), 1), copy_text=copy_text,
                         group_by_name=group_by_name)
    for history in generate(Profile.paper(), pipelines=pipelines, days=20, seed=2):
        builder.pipeline(history)
    return builder.take()


def test_copy_text_rows_are_exactly_the_csv_the_tuple_rows_encode_to():
    from airflow_graphlets.simulate.mlmd_rows import TEXT_TABLES
    from airflow_graphlets.store.bulk_write import encode_copy_text

    tuples, text = _builders(copy_text=False), _builders(copy_text=True)
    assert tuples.keys() == text.keys()
    for table in tuples:
        if table in TEXT_TABLES:
            assert isinstance(text[table], str) and text[table] == encode_copy_text(tuples[table]), table
        else:
            assert text[table] == tuples[table], table


def test_property_rows_of_a_batch_come_grouped_by_name_each_group_in_id_order_when_asked():
    grouped, as_added = _builders(copy_text=False), _builders(copy_text=False, group_by_name=False)
    for table in ("ContextProperty", "ExecutionProperty", "ArtifactProperty"):
        keys = [(name, owner) for owner, name, *_ in grouped[table]]
        assert keys == sorted(keys), table
        assert len({name for name, _ in keys}) > 1, table
        owners = [owner for owner, *_ in as_added[table]]
        assert owners == sorted(owners) and sorted(as_added[table]) == sorted(grouped[table]), table


def test_postgresql_and_sqlite_stores_of_one_seed_hold_the_same_executions_and_artifacts(tmp_path):
    """PostgreSQL's load takes COPY text built apart from the tuples SQLite takes: MLMD reads
    both back the same."""
    from support.databases import create_store_uri, drop_store

    def contents(uri: str):
        config = parse_store_uri(uri)
        simulate(config, pipelines=2, days=8, seed=3)
        store = open_store(config)
        types = {t.id: t.name for t in store.get_execution_types() + store.get_artifact_types()}
        executions = sorted((e.id, types[e.type_id], e.last_known_state, e.external_id, e.create_time_since_epoch,
                             _values(e.custom_properties)) for e in store.get_executions())
        artifacts = sorted((a.id, types[a.type_id], a.uri, a.external_id, _values(a.properties),
                            _values(a.custom_properties)) for a in store.get_artifacts())
        events = sorted(str(e) for e in store.get_events_by_execution_ids([e[0] for e in executions]))
        return executions, artifacts, events

    def _values(properties) -> list[tuple[str, str]]:  # a map's order is the order rows came back in
        return sorted((name, str(value)) for name, value in properties.items())

    postgresql = create_store_uri("postgresql", str(tmp_path))
    try:
        assert contents(postgresql) == contents(create_store_uri("sqlite", str(tmp_path)))
    finally:
        drop_store(postgresql)


def _sqlite_tables(path) -> dict[str, list[tuple]]:
    """Every row of MLMD's tables that simulate fills (and SQLite's id counters), in stored order."""
    import sqlite3

    from airflow_graphlets.store.bulk_write import COLUMNS

    with sqlite3.connect(path) as conn:
        tables = {table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in COLUMNS}
        tables["sqlite_sequence"] = conn.execute("SELECT * FROM sqlite_sequence ORDER BY name").fetchall()
    return tables


def test_a_sqlite_store_staged_by_several_producers_holds_exactly_the_rows_inserted_one_by_one(tmp_path):
    """On SQLite, producers stage batches with ids numbered from 1 and execution properties one
    execution per row; the copy shifts the ids and spreads the properties out again. The store
    must not tell: row for row it is what inserting the builder's plain rows makes."""
    from airflow_graphlets.simulate.mlmd_rows import RowBuilder
    from airflow_graphlets.simulate.run import register_types
    from airflow_graphlets.store.bulk_write import BulkWriter

    pipelines, days, seed = 90, 3, 4  # three batches of up to 40 pipelines
    staged = tmp_path / "staged.sqlite"
    report = simulate(parse_store_uri(f"sqlite:///{staged}"), pipelines=pipelines, days=days, seed=seed, producers=2)
    plain = tmp_path / "plain.sqlite"
    with BulkWriter(parse_store_uri(f"sqlite:///{plain}")) as writer:
        builder = RowBuilder(register_types(writer), writer.next_ids())
        for history in generate(Profile.paper(), pipelines=pipelines, days=days, seed=seed):
            builder.pipeline(history)
        for table, rows in builder.take().items():
            writer.add(table, rows)
    expected, written = _sqlite_tables(plain), _sqlite_tables(staged)
    assert len(expected["Execution"]) == report.executions > 0
    assert {table for table, rows in expected.items() if not rows} == set()  # every table has rows to compare
    for table in expected:
        assert written[table] == expected[table], table
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".graphlets-simulate-")]  # staging removed


def test_the_number_of_producers_does_not_change_the_store(tmp_path):
    def tables(producers: int):
        path = tmp_path / f"{producers}.sqlite"
        simulate(parse_store_uri(f"sqlite:///{path}"), pipelines=85, days=2, seed=9, producers=producers)
        return _sqlite_tables(path)

    assert tables(1) == tables(3)


def test_a_producer_that_dies_is_reported_instead_of_waited_for(tmp_path):
    import os
    import signal

    from airflow_graphlets.simulate.mlmd_rows import RowBuilder
    from airflow_graphlets.simulate.producers import Plan, Producers
    from airflow_graphlets.simulate.run import register_types
    from airflow_graphlets.store.bulk_write import BulkWriter

    with BulkWriter(parse_store_uri(f"sqlite:///{tmp_path / 'store.sqlite'}")) as writer:
        builder = RowBuilder(register_types(writer), writer.next_ids(), wide_properties=True)
    plan = Plan(Profile.paper(), pipelines=800, days=30, seed=1, dialect="sqlite", staging=str(tmp_path))
    with pytest.raises(SimulationError, match="producer process ended without its batches"):
        with Producers(builder, plan, count=2) as producers:
            os.kill(producers.pids[1], signal.SIGKILL)  # as the kernel's out-of-memory killer would
            for _ in producers:
                pass


def test_staged_files_are_for_sqlite_stores_only(tmp_path):
    from support.databases import create_store_uri, drop_store

    from airflow_graphlets.store.bulk_write import BulkWriter

    uri = create_store_uri("postgresql", str(tmp_path))
    try:
        with BulkWriter(parse_store_uri(uri)) as writer, pytest.raises(TypeError, match="SQLite store"):
            writer.copy_staged(str(tmp_path / "batch.sqlite"))
    finally:
        drop_store(uri)


def test_the_cli_takes_a_number_of_producers_and_refuses_zero(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    assert main(["simulate", "--store", store, "--pipelines", "3", "--days", "2", "--producers", "0", "--quiet"]) == 2
    assert "producers must be at least 1" in capsys.readouterr().err
    assert main(["simulate", "--store", store, "--pipelines", "3", "--days", "2", "--producers", "2", "--quiet"]) == 0
    assert "wrote 3 pipelines" in capsys.readouterr().out
