"""Batched rows on PostgreSQL: what a flusher writes in one transaction reads back through MLMD's
API exactly as if every record had gone through ``put_execution``, beside other writers."""

from __future__ import annotations

import multiprocessing
import os
import sys

import psycopg2
import pytest
from airflow_graphlets.errors import StoreUnavailableError
from airflow_graphlets.recorder.records import ArtifactRecord, InputRef, RunState
from airflow_graphlets.recorder.replay import replay_spool
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.recorder.writer import PENDING_INPUTS, Writer
from airflow_graphlets.store.artifacts import pipeline_spans
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.row_batch import BatchRefused, RowBatch
from airflow_graphlets.store.snapshot import store_snapshot
from airflow_graphlets.store.uri import parse_store_uri
from airflow_graphlets.store.mlmd_client import ClientStore
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from support.databases import create_store_uri, drop_store
from test_records import make_record

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from recorder_overhead import records as pipeline_records  # noqa: E402

TABLES = ("Context", "ParentContext", "ContextProperty", "Execution", "ExecutionProperty", "Artifact",
          "ArtifactProperty", "Event", "EventPath", "Association", "Attribution")


@pytest.fixture
def pg_uris(tmp_path):
    uris = [create_store_uri("postgresql", str(tmp_path)) for _ in range(2)]
    yield uris
    for uri in uris:
        drop_store(uri)


def history() -> list:
    """Records of the shapes a flusher meets: a TFX pipeline's starts and ends, a failed try and
    its retry, a mapped task, a scheduler's gap record, inputs by uri, id and span window, one
    input never recorded, hostile ids and numbers too large for MLMD's integer column."""
    out = []
    for start, end in pipeline_records(30, "churn"):
        out += [start, end]
    flaky = make_record(dag_id="churn", task_id="flaky", run_id="scheduled__00001", state=RunState.RUNNING)
    out += [flaky, flaky.with_state(RunState.UP_FOR_RETRY, error="boom"),
            flaky.with_state(RunState.RUNNING, try_number=2), flaky.with_state(RunState.SUCCESS, try_number=2)]
    for index in range(3):
        out.append(make_record(dag_id="churn", task_id="shard", run_id="scheduled__00001", map_index=index,
                               outputs=(ArtifactRecord("part", "ShardPart", f"/shards/{index}", {"rows": index}),)))
    out.append(make_record(dag_id="churn", task_id="after_failure", run_id="scheduled__00002", try_number=0,
                           state=RunState.UPSTREAM_FAILED, source="scheduler"))
    out.append(make_record(dag_id="churn", task_id="reads_by_uri", run_id="scheduled__00003", inputs=(
        InputRef(key="examples", by="uri", uri="/churn/scheduled__00003/examples"),
        InputRef(key="ghost", by="uri", uri="/never/recorded"),
        InputRef(key="shards", by="task_output", dag_id="churn", run_id="scheduled__00001", task_id="shard",
                 output_key="part"))))
    out.append(make_record(dag_id="x'; DROP TABLE Execution;--", task_id="<b>t</b>", run_id="manual__" + "é" * 240,
                           properties={"bytes": 3 * 2**40, "huge": 2**62, "ratio": 0.5, "ok": True, "note": ""},
                           outputs=(ArtifactRecord("model", "Model", "/m/ü", {"auc": 0.9, "tags": ["a"]}),)))
    return out


def write_all(writer: Writer, records) -> None:
    for record in records:
        writer.write(record)
    writer.flush()


def attributions(store) -> set:
    return {(context.name, artifact.external_id)
            for context in store.get_contexts() for artifact in store.get_artifacts_by_context(context.id)}


def row_counts(uri: str) -> dict[str, int]:
    config = parse_store_uri(uri)
    with psycopg2.connect(host=config.host, port=config.port, user=config.user, dbname=config.database) as conn:
        with conn.cursor() as cursor:
            counts = {}
            for table in TABLES:
                cursor.execute(f"SELECT COUNT(*) FROM {table}")
                counts[table] = cursor.fetchone()[0]
    conn.close()
    return counts


def orphans(uri: str) -> int:
    """Rows pointing at an execution or artifact that does not exist."""
    config = parse_store_uri(uri)
    checks = [("ExecutionProperty", "execution_id", "Execution"), ("Event", "execution_id", "Execution"),
              ("Event", "artifact_id", "Artifact"), ("Association", "execution_id", "Execution"),
              ("ArtifactProperty", "artifact_id", "Artifact"), ("Attribution", "artifact_id", "Artifact")]
    with psycopg2.connect(host=config.host, port=config.port, user=config.user, dbname=config.database) as conn:
        with conn.cursor() as cursor:
            total = 0
            for table, column, parent in checks:
                cursor.execute(f"SELECT COUNT(*) FROM {table} t LEFT JOIN {parent} p ON p.id = t.{column} "
                               "WHERE p.id IS NULL")
                total += cursor.fetchone()[0]
            cursor.execute("SELECT COUNT(*) FROM EventPath p LEFT JOIN Event e ON e.id = p.event_id WHERE e.id IS NULL")
            total += cursor.fetchone()[0]
    conn.close()
    return total


def test_batched_rows_read_back_through_mlmd_exactly_as_mlmds_own_writes(pg_uris):
    through_api, batched = pg_uris
    write_all(Writer(open_store(parse_store_uri(through_api))), history())
    writer = Writer.open(parse_store_uri(batched))
    assert writer.rows is not None
    write_all(writer, history())
    writer.close()

    api_store, batched_store = (open_store(parse_store_uri(uri)) for uri in pg_uris)
    assert store_snapshot(batched_store) == store_snapshot(api_store)
    assert attributions(batched_store) == attributions(api_store)
    assert row_counts(batched) == row_counts(through_api)
    assert orphans(batched) == 0
    for execution in batched_store.get_executions():
        assert 0 < execution.create_time_since_epoch <= execution.last_update_time_since_epoch
    events = batched_store.get_events_by_execution_ids([e.id for e in batched_store.get_executions()])
    assert all(event.milliseconds_since_epoch > 0 for event in events)
    [pending] = [e for e in batched_store.get_executions() if PENDING_INPUTS in e.custom_properties]
    assert pending.custom_properties["task_id"].string_value == "reads_by_uri"


def test_rows_wait_in_the_batch_until_flushed_and_a_read_of_the_store_flushes_them(pg_uris):
    uri = pg_uris[0]
    writer = Writer.open(parse_store_uri(uri))
    [(start, end)] = list(pipeline_records(1, "churn"))
    writer.write(start)
    writer.write(end)
    assert writer.queued == 2
    assert row_counts(uri)["Execution"] == 0  # nothing is visible before the batch commits

    # Training on a span window reads the store: the batch is written first, so the span is found.
    trainer = make_record(dag_id="churn", task_id="late_trainer", inputs=(
        InputRef(key="examples", by="spans", dag_id="churn", type_name="Examples", span_min=0, span_max=0),))
    writer.write(trainer)
    assert writer.queued == 1
    writer.flush()
    assert writer.queued == 0
    store = open_store(parse_store_uri(uri))
    [late] = [e for e in store.get_executions() if e.custom_properties["task_id"].string_value == "late_trainer"]
    [event] = store.get_events_by_execution_ids([late.id])
    assert store.get_artifacts_by_id([event.artifact_id])[0].uri == "/churn/scheduled__00000/examples"
    writer.close()


def test_ids_follow_the_order_of_writes_as_with_mlmds_api(pg_uris):
    uri = pg_uris[0]
    writer = Writer.open(parse_store_uri(uri))
    write_all(writer, history())
    writer.close()
    store = open_store(parse_store_uri(uri))
    by_id = sorted(store.get_executions(), key=lambda e: e.id)
    first_seen = []
    for record in history():
        key = (record.dag_id, record.run_id, record.task_id, record.map_index, record.try_number)
        if key not in first_seen:
            first_seen.append(key)
    assert [(e.custom_properties["dag_id"].string_value, e.custom_properties["run_id"].string_value,
             e.custom_properties["task_id"].string_value, e.custom_properties["map_index"].int_value,
             e.custom_properties["try_number"].int_value) for e in by_id] == first_seen


def test_a_batch_replayed_over_stored_rows_is_merged_through_mlmds_api_without_a_copy(pg_uris):
    uri = pg_uris[0]
    write_all(Writer(open_store(parse_store_uri(uri))), history())
    before = store_snapshot(open_store(parse_store_uri(uri)))
    counts = row_counts(uri)

    # The same records again, batched (a spool replayed after a crash between commit and removal).
    writer = Writer.open(parse_store_uri(uri))
    write_all(writer, history())
    assert writer.take_rejected() == []
    writer.close()
    assert store_snapshot(open_store(parse_store_uri(uri))) == before
    assert row_counts(uri) == counts
    assert orphans(uri) == 0


def test_concurrent_batching_writers_leave_exactly_one_copy(pg_uris):
    uri = pg_uris[0]
    records = history()
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        pool.starmap(_write_batched, [(uri, records)] * 3)
    reference = pg_uris[1]
    write_all(Writer(open_store(parse_store_uri(reference))), records)
    assert store_snapshot(open_store(parse_store_uri(uri))) == store_snapshot(open_store(parse_store_uri(reference)))
    assert row_counts(uri) == row_counts(reference)
    assert orphans(uri) == 0


def _write_batched(uri: str, records) -> None:
    writer = Writer.open(parse_store_uri(uri))
    for chunk in range(0, len(records), 7):  # flushes at different points in each process
        for record in records[chunk:chunk + 7]:
            writer.write(record)
        writer.flush()
    writer.close()


def test_a_connection_lost_before_the_commit_writes_nothing_and_the_records_can_be_written_again(pg_uris):
    uri = pg_uris[0]
    records = [r for start, end in pipeline_records(3, "churn") for r in (start, end)]
    writer = Writer.open(parse_store_uri(uri))
    for record in records:
        writer.write(record)
    assert writer.queued == 1  # the trainer's end: its span window read flushed everything before it
    _terminate_batch_connections(uri)
    with pytest.raises(StoreUnavailableError, match="Writing to the MLMD store failed"):
        writer.flush()
    assert writer.queued == 0
    store = open_store(parse_store_uri(uri))
    [trainer] = [e for e in store.get_executions() if e.custom_properties["task_id"].string_value == "trainer"]
    assert trainer.last_known_state == mlmd_pb.Execution.RUNNING
    writer.close()

    again = Writer.open(parse_store_uri(uri))
    write_all(again, records)
    again.close()
    assert {e.last_known_state for e in open_store(parse_store_uri(uri)).get_executions()} == {mlmd_pb.Execution.COMPLETE}
    assert row_counts(uri)["Execution"] == 3
    assert orphans(uri) == 0


def test_a_drain_removes_entries_only_once_their_batch_is_committed(pg_uris, tmp_path):
    uri = pg_uris[0]
    spool = Spool(str(tmp_path / "spool"))
    for record in history():
        spool.append(record)
    report = replay_spool(spool, parse_store_uri(uri))
    assert report.complete and report.quarantined == 0
    assert report.written == len(history())
    assert spool.pending() == []
    reference = pg_uris[1]
    write_all(Writer(open_store(parse_store_uri(reference))), history())
    assert store_snapshot(open_store(parse_store_uri(uri))) == store_snapshot(open_store(parse_store_uri(reference)))


def test_values_mlmd_would_refuse_are_not_batched(pg_uris):
    writer = Writer.open(parse_store_uri(pg_uris[0]))
    examples_type = writer.types.artifact_type("Examples")
    wrong = mlmd_pb.Artifact(type_id=examples_type, uri="/x")
    wrong.properties["span"].string_value = "seven"  # TFX declares span an INT
    execution = mlmd_pb.Execution(type_id=writer.types.execution_type("t"), name="e", external_id="e")
    event = mlmd_pb.Event(type=mlmd_pb.Event.OUTPUT)
    assert writer.rows.add(execution, [(wrong, event)], []) is None
    undeclared = mlmd_pb.Artifact(type_id=examples_type, uri="/y")
    undeclared.properties["colour"].string_value = "red"
    assert writer.rows.add(execution, [(undeclared, event)], []) is None
    assert len(writer.rows) == 0
    writer.close()


def test_the_span_look_ups_in_sql_find_what_mlmds_filter_query_finds(pg_uris):
    uri = pg_uris[0]
    writer = Writer(open_store(parse_store_uri(uri)))
    for span, version, dag_id in [(1, 0, "churn"), (2, 0, "churn"), (2, 1, "churn"), (3, 0, "churn"),
                                  (2, 0, "other"), (9, 0, "churn")]:
        writer.write(make_record(dag_id=dag_id, task_id="example_gen", run_id=f"run-{span}-{version}",
                                 outputs=(ArtifactRecord("examples", "Examples", f"/{dag_id}/{span}/{version}",
                                                         {"span": span, "version": version}),)))
    writer.write(make_record(dag_id="churn", task_id="stats", run_id="run-2-0", outputs=(
        ArtifactRecord("statistics", "ExampleStatistics", "/stats/2", {"span": 2}),)))
    writer.write(make_record(dag_id="churn", task_id="custom", run_id="run-2-0", outputs=(
        ArtifactRecord("examples", "MyExamples", "/custom/2", {"span": 2}),)))  # span as a custom property
    store = open_store(parse_store_uri(uri))
    [dead] = [a for a in store.get_artifacts() if a.uri == "/churn/3/0"]
    dead.state = mlmd_pb.Artifact.DELETED
    store.put_artifacts([dead])

    rows = RowBatch(parse_store_uri(uri), lambda type_id: None)
    client = ClientStore(parse_store_uri(uri))
    for dag_id, type_name, low, high in [("churn", "Examples", 0, 10), ("churn", "Examples", 2, 2),
                                         ("other", "Examples", 0, 5), ("churn", "ExampleStatistics", 0, 5),
                                         ("churn", "MyExamples", 0, 5), ("nobody", "Examples", 0, 5)]:
        through_sql = rows.span_artifact_ids(dag_id, type_name, low, high)
        through_native = store.span_artifact_ids(dag_id, type_name, low, high)
        through_filter = client.span_artifact_ids(dag_id, type_name, low, high)  # MLMD's filter query
        assert sorted(through_sql) == through_native == through_filter, (dag_id, type_name)
    assert [a.uri for a in pipeline_spans(store, "churn", "Examples", 0, 10,
                                          rows.span_artifact_ids("churn", "Examples", 0, 10))] == \
        ["/churn/1/0", "/churn/2/1", "/churn/9/0"]
    rows.close()


@pytest.mark.parametrize("value, refused", [
    ("a\x00b", "NUL"),  # the driver cannot send it
    (2**40, "out of range"),  # MLMD's int_value column is 32-bit on PostgreSQL
])
def test_a_batch_the_database_refuses_for_a_value_writes_nothing_and_the_next_one_goes_through(pg_uris, value, refused):
    uri = pg_uris[0]
    writer = Writer(open_store(parse_store_uri(uri)))
    rows = RowBatch(parse_store_uri(uri), writer.types.declared_artifact_properties)
    execution_type = writer.types.execution_type("t")
    bad = mlmd_pb.Execution(type_id=execution_type, name="bad", external_id="bad")
    if isinstance(value, str):
        bad.custom_properties["note"].string_value = value
    else:
        bad.custom_properties["note"].int_value = value
    rows.add(bad, [], [])
    with pytest.raises(BatchRefused, match=refused):
        rows.flush()
    assert len(rows) == 0 and row_counts(uri)["Execution"] == 0
    rows.add(mlmd_pb.Execution(type_id=execution_type, name="good", external_id="good"), [], [])
    rows.flush()
    assert [e.name for e in open_store(parse_store_uri(uri)).get_executions()] == ["good"]
    rows.close()


def test_other_databases_are_written_through_mlmds_api(sqlite_store_uri):
    assert not RowBatch.supports(parse_store_uri(sqlite_store_uri))
    assert Writer.open(parse_store_uri(sqlite_store_uri)).rows is None
    with pytest.raises(ValueError, match="PostgreSQL"):
        RowBatch(parse_store_uri(sqlite_store_uri), lambda type_id: None)


def _terminate_batch_connections(uri: str) -> None:
    config = parse_store_uri(uri)
    conn = psycopg2.connect(host=config.host, port=config.port, user=config.user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                       "AND application_name = 'airflow-graphlets flusher'", (config.database,))
    conn.close()


@pytest.fixture(autouse=True)
def _quiet_glog(monkeypatch):
    monkeypatch.setenv("GLOG_minloglevel", "1")
