"""Property-based tests (Hypothesis) of the parsers and the graphlet extractor.

Parsers take whatever users, files and connections hand them: any input gives either a value
or the project's own error with its message, never a crash. The extractor, on randomly shaped
recorded histories, agrees with the reference reader built on MLMD's own API and finds exactly
one graphlet per trainer execution."""

from __future__ import annotations

import json
import os
import string
import tempfile

from airflow_graphlets.config import OPTIONS, settings_from_mapping
from airflow_graphlets.errors import RecordError, StoreConfigError
from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.recorder.records import ArtifactRecord, InputRef, RunState, TaskRunRecord
from airflow_graphlets.recorder.spool import Spool, SpoolEntry
from airflow_graphlets.recorder.writer import Writer
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import StoreConfig, parse_store_uri
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

names = st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=30)


@given(st.text(max_size=200))
def test_any_text_as_a_store_uri_parses_or_names_what_is_wrong(text):
    try:
        config = parse_store_uri(text)
    except StoreConfigError as err:
        assert str(err)
    else:
        assert isinstance(config, StoreConfig) and config.backend in ("sqlite", "postgresql", "mysql")


@given(st.sampled_from(["postgresql", "mysql"]), names, st.text(min_size=1, max_size=20),
       st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True), st.integers(1, 65535), names)
def test_a_server_uri_round_trips(backend, user, password, host, port, database):
    config = StoreConfig(backend, host=host, port=port, user=user, password=password, database=database)
    again = parse_store_uri(config.uri(hide_password=False))
    assert again == config


@given(st.dictionaries(st.sampled_from([o.name for o in OPTIONS]), st.text(max_size=40)))
def test_any_settings_give_settings_or_a_message_naming_the_option(values):
    try:
        settings = settings_from_mapping(values, airflow_home="/home/airflow")
    except StoreConfigError as err:
        assert "[graphlets]" in str(err) and "AIRFLOW__GRAPHLETS__" in str(err)
    else:
        assert settings.record_timeout > 0 and settings.summary_max_age_seconds > 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)


@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.dictionaries(st.sampled_from(["format", "dag_id", "task_id", "run_id", "try_number", "map_index", "state",
                                          "inputs", "outputs", "start_time_ms"]), json_values)
       .map(lambda d: json.dumps({"format": 1, **d}).encode()))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_a_corrupt_spool_file_is_a_record_error_never_a_crash(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "0000000000000000001-x.json")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            record = Spool(tmp).read(SpoolEntry(path))
        except RecordError as err:
            assert str(err)
        else:
            assert isinstance(record, TaskRunRecord)


@given(dag_id=names, task_id=names, run_id=names, try_number=st.integers(0, 100), map_index=st.integers(-1, 50),
       state=st.sampled_from(list(RunState)), start=st.none() | st.integers(0, 2**41),
       span=st.integers(0, 10_000), blessed=st.booleans())
def test_a_valid_record_reads_back_equal_from_the_spool(dag_id, task_id, run_id, try_number, map_index, state, start,
                                                        span, blessed):
    record = TaskRunRecord(
        dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=try_number, map_index=map_index, state=state,
        start_time_ms=start, inputs=(InputRef(key="examples", by="spans", dag_id=dag_id, type_name="Examples",
                                              span_min=0, span_max=span),),
        outputs=(ArtifactRecord("blessing", "ModelBlessing", f"/{dag_id}/{run_id}", {"blessed": blessed}),))
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(tmp)
        assert spool.read(spool.append(record)) == record


# A recorded history: per run, ingest a span, train on a window of the last `window` spans
# (the trainer may fail), evaluate (blessed or not), and push when blessed.
runs_strategy = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=6)


def _history(dag_id: str, window: int, runs: list[tuple[bool, bool]]):
    for run, (trainer_fails, blessed) in enumerate(runs):
        run_id = f"scheduled__{run:03d}"
        base = dict(dag_id=dag_id, run_id=run_id, try_number=1, map_index=-1, operator_class="hypothesis.Op",
                    start_time_ms=1_767_225_600_000 + run * 3_600_000, code_hash="c", parameters_hash="p",
                    dag_structure_hash="s")

        def task(task_id, kind, state, inputs=(), outputs=(), offset=0):
            start = TaskRunRecord(task_id=task_id, state=RunState.RUNNING, component_kind=kind,
                                  **{**base, "start_time_ms": base["start_time_ms"] + offset})
            return [start, start.with_state(state, end_time_ms=start.start_time_ms + 60_000, inputs=tuple(inputs),
                                            outputs=tuple(outputs))]

        def output_of(task_id, key):
            return InputRef(key=key, by="task_output", dag_id=dag_id, run_id=run_id, task_id=task_id, output_key=key)

        yield from task("example_gen", "ExampleGen", RunState.SUCCESS, outputs=[
            ArtifactRecord("examples", "Examples", f"/{dag_id}/{run}/examples", {"span": run})])
        spans = InputRef(key="examples", by="spans", dag_id=dag_id, type_name="Examples",
                         span_min=max(0, run - window + 1), span_max=run)
        if trainer_fails:
            yield from task("trainer", "Trainer", RunState.FAILED, [spans], offset=60_000)
            continue
        yield from task("trainer", "Trainer", RunState.SUCCESS, [spans],
                        [ArtifactRecord("model", "Model", f"/{dag_id}/{run}/model")], offset=60_000)
        yield from task("evaluator", "Evaluator", RunState.SUCCESS, [output_of("trainer", "model")],
                        [ArtifactRecord("blessing", "ModelBlessing", f"/{dag_id}/{run}/blessing", {"blessed": blessed})],
                        offset=120_000)
        if blessed:
            yield from task("pusher", "Pusher", RunState.SUCCESS,
                            [output_of("trainer", "model"), InputRef(key="model_blessing", by="task_output",
                                                                     dag_id=dag_id, run_id=run_id, task_id="evaluator",
                                                                     output_key="blessing")],
                            [ArtifactRecord("pushed_model", "PushedModel", f"/{dag_id}/{run}/pushed", {"pushed": True})],
                            offset=180_000)


@given(pipelines=st.lists(st.tuples(st.integers(1, 4), runs_strategy), min_size=1, max_size=3))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_extractor_agrees_with_mlmds_api_on_any_recorded_history(pipelines):
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_store_uri(f"sqlite:///{tmp}/mlmd.sqlite")
        writer = Writer(open_store(config))
        for p, (window, runs) in enumerate(pipelines):
            for record in _history(f"pipeline_{p}", window, runs):
                writer.write(record)
        bulk, api = read_graphlets(config), read_graphlets_with_mlmd_api(config)
        assert bulk.graphlets.records() == api.graphlets.records()
        assert bulk.executions.equals(api.executions)
        graphlets = bulk.graphlets.records()
        assert len(graphlets) == sum(len(runs) for _, runs in pipelines)
        for g in graphlets:
            p = int(g.pipeline.split("_")[1])
            window, runs = pipelines[p]
            run = int(g.run.rsplit("__", 1)[1])
            trainer_fails, blessed = runs[run]
            assert g.spans == tuple(range(max(0, run - window + 1), run + 1))
            assert g.status == ("failed" if trainer_fails else "pushed" if blessed else "not_pushed")
