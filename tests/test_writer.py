"""Writing task-run records into real MLMD stores (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest
from airflow_graphlets.recorder.records import ArtifactRecord, InputRef, RunState
from airflow_graphlets.recorder.writer import UNRESOLVED_INPUTS, Writer
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.identity import execution_external_id
from airflow_graphlets.store.mlmd_client import ClientStore
from airflow_graphlets.store.snapshot import store_snapshot
from airflow_graphlets.store.uri import parse_store_uri
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from test_records import make_record


@pytest.fixture(params=["native", "mlmd-client"])
def store(request, store_uri):
    """The store through the native API, and through ml-metadata's client (the [mlmd] extra):
    the writer behaves the same on both."""
    config = parse_store_uri(store_uri)
    return open_store(config) if request.param == "native" else ClientStore(config)


def write(store, record):
    return Writer(store).write(record)


def examples(span: int, version: int = 0) -> ArtifactRecord:
    return ArtifactRecord(
        key="examples", type_name="Examples", uri=f"/data/span-{span}/v{version}",
        properties={"span": span, "version": version, "split_names": ["train", "eval"]},
    )


def ingest(span: int, version: int = 0, run: str | None = None):
    return make_record(task_id="example_gen", run_id=run or f"run-{span}", component_kind="ExampleGen",
                       outputs=(examples(span, version),))


def test_a_start_and_an_end_make_one_execution_with_both_records_properties(store):
    start = make_record(state=RunState.RUNNING, operator_class="my.Operator", start_time_ms=1_000, code_hash="c0de")
    write(store, start)
    write(store, start.with_state(RunState.SUCCESS, end_time_ms=4_000, operator_class=""))
    [execution] = store.get_executions()
    props = execution.custom_properties
    assert execution.last_known_state == mlmd_pb.Execution.COMPLETE
    assert props["operator_class"].string_value == "my.Operator"
    assert props["code_hash"].string_value == "c0de"
    assert props["end_epoch_seconds"].double_value == 4.0
    assert props["duration_seconds"].double_value == 3.0
    assert execution.external_id == execution_external_id("churn", "scheduled__2026-01-05", "trainer", -1, 1)


def test_writing_a_record_twice_changes_nothing(store):
    record = ingest(3)
    write(store, record)
    before = store_snapshot(store)
    write(store, record)
    assert store_snapshot(store) == before
    assert len(store.get_executions()) == 1 and len(store.get_artifacts()) == 1


def test_a_late_start_record_never_moves_an_ended_execution_back(store):
    record = make_record()
    write(store, record)
    result = write(store, record.with_state(RunState.RUNNING))
    assert not result.changed
    assert store.get_executions()[0].last_known_state == mlmd_pb.Execution.COMPLETE


def test_outputs_are_published_only_when_the_task_succeeds(store):
    write(store, make_record(state=RunState.FAILED, error="boom", outputs=(examples(1),)))
    assert store.get_artifacts() == []
    assert store.get_executions()[0].custom_properties["error"].string_value == "boom"


def test_the_scheduler_only_fills_gaps(store):
    worker = make_record(state=RunState.SKIPPED, operator_class="my.Operator")
    write(store, worker)
    assert not write(store, worker.with_state(RunState.SKIPPED, source="scheduler", operator_class="")).changed
    gap = make_record(task_id="after_failure", state=RunState.UPSTREAM_FAILED, try_number=0, source="scheduler")
    assert write(store, gap).changed
    states = sorted(e.custom_properties["airflow_state"].string_value for e in store.get_executions())
    assert states == ["skipped", "upstream_failed"]


def test_the_scheduler_closes_a_try_whose_worker_died_before_recording_its_end(store):
    start = make_record(state=RunState.RUNNING, start_time_ms=10_000, operator_class="my.Operator")
    write(store, start)
    # Airflow has the try as a success; its end record never came. The DAG run's end closes it.
    closing = make_record(state=RunState.SUCCESS, end_time_ms=25_000, source="scheduler", operator_class="")
    assert write(store, closing).changed
    [execution] = store.get_executions()
    props = execution.custom_properties
    assert execution.last_known_state == mlmd_pb.Execution.COMPLETE
    assert props["airflow_state"].string_value == "success"
    assert props["ended_by_scheduler"].bool_value
    assert props["duration_seconds"].double_value == 15.0
    assert props["operator_class"].string_value == "my.Operator", "what the start recorded stays"

    # The worker's end record, late after an outage, still writes what only it knows.
    write(store, start.with_state(RunState.SUCCESS, end_time_ms=24_000, outputs=(examples(4),)))
    [execution] = store.get_executions()
    assert execution.custom_properties["end_epoch_seconds"].double_value == 24.0
    assert len(store.get_artifacts()) == 1


def test_the_scheduler_never_creates_or_changes_an_ended_try_from_a_final_state(store):
    assert not write(store, make_record(task_id="never_recorded", source="scheduler")).changed
    assert store.get_executions() == []
    write(store, make_record(state=RunState.FAILED, error="boom"))
    assert not write(store, make_record(state=RunState.SUCCESS, source="scheduler")).changed
    [execution] = store.get_executions()
    assert execution.last_known_state == mlmd_pb.Execution.FAILED
    assert "ended_by_scheduler" not in execution.custom_properties


def test_types_follow_tfx(store):
    write(store, ingest(1))
    write(store, make_record(component_kind="Trainer", outputs=(ArtifactRecord("model", "Model", "/m"),)))
    examples_type = store.get_artifact_type("Examples")
    assert dict(examples_type.properties) == {"span": mlmd_pb.INT, "version": mlmd_pb.INT, "split_names": mlmd_pb.STRING}
    assert examples_type.base_type == mlmd_pb.ArtifactType.DATASET
    assert store.get_artifact_type("Model").base_type == mlmd_pb.ArtifactType.MODEL
    trainer = store.get_execution_type("airflow_graphlets.components.Trainer")
    assert trainer.base_type == mlmd_pb.ExecutionType.TRAIN and not trainer.properties
    for name in ("pipeline", "pipeline_run", "node"):
        assert not store.get_context_type(name).properties
    [artifact] = store.get_artifacts_by_uri("/data/span-1/v0")
    assert json.loads(artifact.properties["split_names"].string_value) == ["train", "eval"]


def test_a_rolling_window_reads_the_newest_version_of_each_span(store):
    for span in range(1, 6):
        write(store, ingest(span))
    write(store, ingest(4, version=1, run="reingest-4"))
    window = InputRef(key="examples", by="spans", dag_id="churn", type_name="Examples", span_min=2, span_max=4)
    write(store, make_record(inputs=(window,)))
    trainer = _execution(store, "trainer")
    read = _inputs(store, trainer)
    assert sorted((a.properties["span"].int_value, a.properties["version"].int_value) for a in read) == [
        (2, 0), (3, 0), (4, 1)
    ]


def test_a_span_recorded_without_a_version_is_read_as_version_zero(store):
    # Found by tests/test_property_based.py: reading a missing version must not add an empty one.
    write(store, make_record(task_id="example_gen", run_id="run-1", component_kind="ExampleGen", outputs=(
        ArtifactRecord(key="examples", type_name="Examples", uri="/data/span-1", properties={"span": 1}),)))
    window = InputRef(key="examples", by="spans", dag_id="churn", type_name="Examples", span_min=0, span_max=1)
    result = write(store, make_record(inputs=(window,)))
    assert result.unresolved_inputs == ()
    [read] = _inputs(store, _execution(store, "trainer"))
    assert read.properties["span"].int_value == 1


def test_a_task_output_input_reads_the_last_successful_try(store):
    model = lambda uri: (ArtifactRecord("model", "Model", uri),)  # noqa: E731
    write(store, make_record(task_id="trainer", try_number=1, outputs=model("/m/try1")))
    write(store, make_record(task_id="trainer", try_number=2, outputs=model("/m/try2")))
    write(store, make_record(task_id="trainer", try_number=3, state=RunState.FAILED, outputs=model("/m/try3")))
    ref = InputRef(key="model", by="task_output", dag_id="churn", run_id="scheduled__2026-01-05",
                   task_id="trainer", output_key="model")
    write(store, make_record(task_id="pusher", inputs=(ref,)))
    assert [a.uri for a in _inputs(store, _execution(store, "pusher"))] == ["/m/try2"]


def test_inputs_by_uri_and_by_id(store):
    write(store, ingest(7))
    [artifact] = store.get_artifacts()
    write(store, make_record(task_id="by_uri", inputs=(InputRef(key="examples", by="uri", uri=artifact.uri),)))
    write(store, make_record(task_id="by_id", inputs=(InputRef(key="examples", by="artifact_id", artifact_ids=(artifact.id,)),)))
    assert [a.id for a in _inputs(store, _execution(store, "by_uri"))] == [artifact.id]
    assert [a.id for a in _inputs(store, _execution(store, "by_id"))] == [artifact.id]


def test_an_input_that_is_not_in_the_store_is_noted_not_fatal(store):
    missing = InputRef(key="examples", by="uri", uri="/nowhere")
    result = write(store, make_record(inputs=(missing,)))
    assert result.unresolved_inputs == ("examples: uri /nowhere",)
    unresolved = store.get_executions()[0].custom_properties[UNRESOLVED_INPUTS].string_value
    assert json.loads(unresolved) == ["examples: uri /nowhere"]


def test_inputs_recorded_before_their_producers_are_linked_when_the_producers_arrive(store):
    # Two machines' flushers: a trainer's record beats one of its spans to the store, and an
    # evaluator's beats its trainer's (after an outage each machine's spool drains on its own).
    early, late = Writer(store), Writer(store)
    window = InputRef(key="examples", by="spans", dag_id="churn", type_name="Examples", span_min=1, span_max=2)
    model = ArtifactRecord("model", "Model", "/m/1")
    early.write(make_record(task_id="trainer", inputs=(window,), outputs=(model,)))
    reads_model = InputRef(key="model", by="task_output", dag_id="churn", run_id="run-2", task_id="trainer",
                           output_key="model")
    assert early.write(make_record(task_id="evaluator", run_id="run-2", inputs=(reads_model,))).unresolved_inputs
    assert early.link_late_inputs() == 0  # nothing has arrived yet
    assert _inputs(store, _execution(store, "trainer")) == []

    late.write(ingest(1))
    late.write(ingest(2))
    late.write(make_record(task_id="trainer", run_id="run-2", outputs=(ArtifactRecord("model", "Model", "/m/2"),)))
    assert late.link_late_inputs() == 2

    assert sorted(a.properties["span"].int_value for a in _inputs(store, _execution(store, "trainer"))) == [1, 2]
    assert [a.uri for a in _inputs(store, _execution(store, "evaluator", "run-2"))] == ["/m/2"]
    for task, run in (("trainer", "scheduled__2026-01-05"), ("evaluator", "run-2")):
        waiting = _execution(store, task, run).custom_properties
        assert "pending_inputs" not in waiting and UNRESOLVED_INPUTS not in waiting
    assert late.link_late_inputs() == 0 and early.link_late_inputs() == 0  # each linked once


def test_linking_late_inputs_never_undoes_an_end_written_meanwhile(store):
    writer, linker = Writer(store), Writer(store)
    window = InputRef(key="examples", by="spans", dag_id="churn", type_name="Examples", span_min=1, span_max=2)
    writer.write(make_record(task_id="trainer", state=RunState.RUNNING, inputs=(window,)))
    seen_by_linker = _execution(store, "trainer")  # read while the try still runs
    writer.write(make_record(task_id="trainer", inputs=(window,), outputs=(ArtifactRecord("model", "Model", "/m"),)))
    linker.write(ingest(1))
    linker.write(ingest(2))
    linker._link_inputs_of(seen_by_linker)
    trainer = _execution(store, "trainer")
    assert trainer.last_known_state == mlmd_pb.Execution.COMPLETE
    assert trainer.custom_properties["airflow_state"].string_value == "success"
    assert sorted(a.properties["span"].int_value for a in _inputs(store, trainer)) == [1, 2]
    assert "pending_inputs" not in trainer.custom_properties


def test_inputs_still_missing_after_an_hour_are_left_as_unresolved(store):
    writer = Writer(store)
    writer.write(make_record(inputs=(InputRef(key="examples", by="uri", uri="/nowhere"),)))
    writer.write(make_record(task_id="example_gen", run_id="r", outputs=(
        ArtifactRecord("examples", "Examples", "/nowhere", properties={"span": 1}),)))
    an_hour_later = int(time.time() * 1000) + 3601 * 1000
    assert writer.link_late_inputs(now_ms=an_hour_later) == 0
    assert _inputs(store, _execution(store, "trainer")) == []


def test_very_long_ids_and_large_numbers_are_stored(store):
    long_run = "backfill__" + "x" * 240
    record = make_record(run_id=long_run, properties={"bytes_read": 3 * 2**40, "huge": 2**62})
    write(store, record)
    write(store, record)
    [execution] = store.get_executions()
    assert execution.external_id.startswith("airflow-sha256:")
    assert execution.custom_properties["bytes_read"].double_value == 3 * 2**40
    assert execution.custom_properties["huge"].string_value == str(2**62)


def test_concurrent_writers_leave_exactly_one_copy(store_uri):
    records = []
    for span in range(12):
        start = ingest(span).with_state(RunState.RUNNING)
        records += [start, ingest(span)]
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        failures = pool.starmap(_write_all, [(store_uri, records)] * 3)
    assert failures == [0, 0, 0]
    store = open_store(parse_store_uri(store_uri))
    assert len(store.get_executions()) == 12
    assert len(store.get_artifacts()) == 12
    assert len(store.get_contexts_by_type("pipeline_run")) == 12
    events = store.get_events_by_execution_ids([e.id for e in store.get_executions()])
    assert len(events) == 12


def _write_all(uri: str, records) -> int:
    """Write every record, retrying one the store turns away (as a spool replay would)."""
    writer = Writer(open_store(parse_store_uri(uri)))
    failures = 0
    for record in records:
        for _ in range(50):
            try:
                writer.write(record)
                break
            except Exception:  # noqa: BLE001 - e.g. SQLite's "database is locked"; try again
                continue
        else:
            failures += 1
    return failures


def _execution(store, task_id, run_id="scheduled__2026-01-05"):
    [found] = [e for e in store.get_executions() if e.custom_properties["task_id"].string_value == task_id
               and e.custom_properties["run_id"].string_value == run_id]
    return found


def _inputs(store, execution):
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == mlmd_pb.Event.INPUT]
    return store.get_artifacts_by_id([e.artifact_id for e in events])


@pytest.fixture(autouse=True)
def _quiet_glog(monkeypatch):
    monkeypatch.setenv("GLOG_minloglevel", "1")
