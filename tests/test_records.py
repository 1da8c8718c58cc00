"""Task-run records: what they accept, what they refuse, and that the spool reads them back equal."""

from __future__ import annotations

import pytest

from airflow_graphlets.errors import RecordError
from airflow_graphlets.recorder.records import (
    MAX_PROPERTY_BYTES,
    ArtifactRecord,
    InputRef,
    RunState,
    TaskRunRecord,
)


def make_record(**changes) -> TaskRunRecord:
    fields = dict(dag_id="churn", task_id="trainer", run_id="scheduled__2026-01-05", try_number=1,
                  map_index=-1, state=RunState.SUCCESS)
    fields.update(changes)
    return TaskRunRecord(**fields)


def test_a_record_round_trips_through_json():
    record = make_record(
        start_time_ms=1_000,
        end_time_ms=3_500,
        inputs=(InputRef(key="examples", by="spans", dag_id="churn", type_name="Examples", span_min=3, span_max=7),),
        outputs=(ArtifactRecord(key="model", type_name="Model", uri="/m/7", properties={"auc": 0.91, "tags": ["a"]}),),
        properties={"rows": 1200},
    )
    assert TaskRunRecord.from_json(record.to_json()) == record
    assert record.duration_seconds == 2.5


def test_unicode_and_markup_in_ids_survive_the_round_trip():
    record = make_record(task_id="tr<script>ain'; DROP TABLE x;--", run_id="manual__é✓")
    assert TaskRunRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dag_id": ""}, "dag_id must be a non-empty string"),
        ({"task_id": "t" * 300}, "at most 250"),
        ({"try_number": -1}, "try_number"),
        ({"map_index": -2}, "map_index"),
        ({"state": "exploded"}, "exploded"),
        ({"properties": {"rows": object()}}, "has type object"),
        ({"properties": {"loss": float("nan")}}, "finite"),
        ({"properties": {"blob": "x" * (MAX_PROPERTY_BYTES + 1)}}, "limit"),
        ({"properties": {"big": 2**64}}, "64-bit"),
        ({"properties": {"": 1}}, "property name"),
        ({"source": "elsewhere"}, "source"),
        # A file name read as bytes and decoded with surrogateescape: MLMD stores UTF-8 only.
        ({"run_id": "manual__\udcff"}, "run_id 'manual__\\\\udcff' is not valid UTF-8 text \\(character 8"),
        ({"properties": {"file": "data-\udce9.csv"}}, "property 'file' of the execution .* not valid UTF-8"),
        ({"properties": {"note": "a\x00b"}}, "holds a NUL character"),
    ],
)
def test_invalid_records_are_refused_with_the_reason(changes, message):
    with pytest.raises((RecordError, ValueError), match=message):
        make_record(**changes)


@pytest.mark.parametrize(
    "type_name, properties, message",
    [
        ("Examples", {"span": "seven"}, "'span' of the Examples artifact 'out' is 'seven' \\(str\\); TFX declares it INT"),
        ("Examples", {"span": 2**40}, "whole number between"),
        ("Examples", {"span": True}, "declares it INT"),
        ("Examples", {"split_names": 3}, "declares it STRING on Examples: give a string"),
        ("ExampleStatistics", {"span": 1.5}, "declares it INT on ExampleStatistics"),
        ("Examples", {"version": "x" * 500}, "'xxxxxxxx.*\\.\\.\\. \\(str\\)"),
    ],
)
def test_a_property_tfx_declares_must_have_its_type(type_name, properties, message):
    with pytest.raises(RecordError, match=message):
        ArtifactRecord(key="out", type_name=type_name, uri="/x", properties=properties)


def test_declared_properties_of_the_right_type_and_custom_ones_of_any_type_are_kept():
    ArtifactRecord(key="out", type_name="Examples", uri="/x", properties={"span": 7, "split_names": ["train"]})
    ArtifactRecord(key="b", type_name="ModelBlessing", uri="/x", properties={"blessed": True})
    ArtifactRecord(key="c", type_name="MyReport", uri="/x", properties={"span": "seven"})  # not a TFX type


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"by": "magic"}, "must be one of"),
        ({"by": "artifact_id"}, "positive MLMD artifact ids"),
        ({"by": "artifact_id", "artifact_ids": (0,)}, "positive"),
        ({"by": "task_output", "task_id": "t"}, "needs dag_id, run_id, task_id and output_key"),
        ({"by": "uri"}, "give the uri"),
        ({"by": "uri", "uri": "/in/\udcff"}, "uri of input 'examples' .* not valid UTF-8"),
        ({"by": "spans", "dag_id": "d", "type_name": "Examples", "span_min": 5, "span_max": 2}, "span_min ≤ span_max"),
    ],
)
def test_invalid_inputs_are_refused_with_the_reason(fields, message):
    with pytest.raises(RecordError, match=message):
        InputRef(key="examples", **fields)


@pytest.mark.parametrize(
    "text, message",
    [("{not json", "bad JSON"), ('{"format": 99}', "format 1"), ('{"format": 1, "colour": "red"}', "unexpected")],
)
def test_files_that_are_not_records_are_refused(text, message):
    with pytest.raises(RecordError, match=message):
        TaskRunRecord.from_json(text)


def test_an_error_message_that_is_not_utf8_is_kept_readable():
    record = make_record(state=RunState.FAILED, error="FileNotFoundError: /data/caf\udce9.csv\x00",
                         hostname="h\udcff")
    assert record.error == "FileNotFoundError: /data/caf\\udce9.csv\\x00"
    assert record.hostname == "h\\udcff"
    assert TaskRunRecord.from_json(record.to_json()) == record


def test_terminal_states():
    assert not RunState.RUNNING.is_terminal
    assert all(state.is_terminal for state in RunState if state is not RunState.RUNNING)
