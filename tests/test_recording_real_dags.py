"""Real Airflow 3 runs real DAGs; what the plugin recorded is read back through MLMD's own API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from airflow_graphlets.recorder.records import RunState
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.snapshot import store_snapshot
from airflow_graphlets.store.uri import parse_store_uri

pytestmark = pytest.mark.airflow

PIPELINE = "graphlets_test_pipeline"
OUTCOMES = "graphlets_test_outcomes"
DAY5 = "2026-01-05T00:00:00+00:00"  # span 4
DAY6 = "2026-01-06T00:00:00+00:00"  # span 5
TASKFLOW_OPERATOR = "airflow.providers.standard.decorators.python._PythonDecoratedOperator"
STATE = mlmd_pb.Execution.State.Name


def _executions_by_task(store, dag_id, run_id):
    run = store.get_context_by_type_and_name("pipeline_run", f"{dag_id}.{run_id}")
    assert run is not None, f"no pipeline_run context for {run_id}"
    found = {}
    for execution in store.get_executions_by_context(run.id):
        props = execution.custom_properties
        key = (props["task_id"].string_value, props["map_index"].int_value, props["try_number"].int_value)
        assert key not in found, f"duplicate execution for {key}"
        found[key] = execution
    return found


def _io(store, execution):
    """{(event type, key): [artifact, ...]} of one execution, through MLMD's API."""
    events = store.get_events_by_execution_ids([execution.id])
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    io = {}
    for event in events:
        steps = list(event.path.steps)
        assert len(steps) == 2 and steps[0].HasField("key") and steps[1].HasField("index"), "TFX path [key, index]"
        io.setdefault((mlmd_pb.Event.Type.Name(event.type), steps[0].key), []).append(artifacts[event.artifact_id])
    return io


def _type_name(store, artifact):
    return store.get_artifact_types_by_id([artifact.type_id])[0].name


def test_a_pipeline_run_is_recorded_in_tfx_shape_on_every_backend(airflow_env, store_uri, tmp_path):
    first = airflow_env.run_dag(PIPELINE, DAY5, store_uri=store_uri, spool_dir=str(tmp_path / "spool"))
    second = airflow_env.run_dag(PIPELINE, DAY6, store_uri=store_uri, spool_dir=str(tmp_path / "spool"))
    assert (first.state, second.state) == ("success", "success"), first.output[-3000:]
    store = open_store(parse_store_uri(store_uri))

    # Contexts: one pipeline, one run per DAG run (child of the pipeline), one node per task.
    pipeline = store.get_context_by_type_and_name("pipeline", PIPELINE)
    runs = store.get_contexts_by_type("pipeline_run")
    assert sorted(r.name for r in runs) == sorted(f"{PIPELINE}.{r.run_id}" for r in (first, second))
    for run in runs:
        assert [p.id for p in store.get_parent_contexts_by_context(run.id)] == [pipeline.id]
    assert sorted(c.name for c in store.get_contexts_by_type("node")) == sorted(
        f"{PIPELINE}.{t}"
        for t in ("example_gen", "statistics_gen", "schema_gen", "trainer", "evaluate_slice", "evaluator", "pusher")
    )

    executions = _executions_by_task(store, PIPELINE, first.run_id)
    assert sorted(executions) == sorted(
        [(t, -1, 1) for t in ("example_gen", "statistics_gen", "schema_gen", "trainer", "evaluator", "pusher")]
        + [("evaluate_slice", i, 1) for i in range(3)]
    )
    type_names = {
        key[0]: store.get_execution_types_by_id([e.type_id])[0].name for key, e in executions.items()
    }
    assert type_names == {
        "example_gen": "airflow_graphlets.components.ExampleGen",
        "statistics_gen": "airflow_graphlets.components.StatisticsGen",
        "schema_gen": "airflow_graphlets.components.SchemaGen",
        "trainer": "airflow_graphlets.components.Trainer",
        "evaluate_slice": TASKFLOW_OPERATOR,
        "evaluator": "airflow_graphlets.components.Evaluator",
        "pusher": "airflow_graphlets.components.Pusher",
    }
    structure_hashes = set()
    for key, execution in executions.items():
        props = execution.custom_properties
        assert STATE(execution.last_known_state) == "COMPLETE", key
        assert props["airflow_state"].string_value == "success"
        assert props["operator_class"].string_value == TASKFLOW_OPERATOR
        assert props["end_epoch_seconds"].double_value >= props["start_epoch_seconds"].double_value > 0
        assert props["duration_seconds"].double_value >= 0
        assert len(props["code_hash"].string_value) == 16 and props["dag_version"].string_value
        resources = json.loads(props["resources"].string_value)
        assert resources["pool"] == "default_pool" and resources["pool_slots"] == 1 and resources["hostname"]
        structure_hashes.add(props["dag_structure_hash"].string_value)
        contexts = {c.name for c in store.get_contexts_by_execution(execution.id)}
        assert contexts == {PIPELINE, f"{PIPELINE}.{first.run_id}", f"{PIPELINE}.{key[0]}"}
    assert len(structure_hashes) == 1, "one DAG, one structure hash"
    assert executions[("trainer", -1, 1)].custom_properties["train_rows"].int_value == 1004

    # Artifacts and events, with TFX's types, properties and event paths.
    gen = _io(store, executions[("example_gen", -1, 1)])
    [examples] = gen[("OUTPUT", "examples")]
    assert _type_name(store, examples) == "Examples"
    assert examples.properties["span"].int_value == 4
    assert examples.properties["version"].int_value == 0
    assert json.loads(examples.properties["split_names"].string_value) == ["train", "eval"]
    assert examples.uri == "file:///graphlets-test/examples/4"
    assert examples.state == mlmd_pb.Artifact.LIVE

    stats = _io(store, executions[("statistics_gen", -1, 1)])
    assert [a.id for a in stats[("INPUT", "examples")]] == [examples.id]
    [statistics] = stats[("OUTPUT", "statistics")]
    assert _type_name(store, statistics) == "ExampleStatistics" and statistics.properties["span"].int_value == 4

    schema_io = _io(store, executions[("schema_gen", -1, 1)])
    assert [a.id for a in schema_io[("INPUT", "statistics")]] == [statistics.id]
    [schema] = schema_io[("OUTPUT", "schema")]

    train = _io(store, executions[("trainer", -1, 1)])
    assert [a.id for a in train[("INPUT", "examples")]] == [examples.id]
    assert [a.id for a in train[("INPUT", "schema")]] == [schema.id]
    [model] = train[("OUTPUT", "model")]
    assert _type_name(store, model) == "Model"

    for index in range(3):
        sliced = _io(store, executions[("evaluate_slice", index, 1)])
        assert [a.id for a in sliced[("INPUT", "model")]] == [model.id]

    evaluation = _io(store, executions[("evaluator", -1, 1)])
    [blessing] = evaluation[("OUTPUT", "blessing")]
    assert _type_name(store, blessing) == "ModelBlessing"
    assert blessing.custom_properties["blessed"].int_value == 1  # span 4 is even
    assert evaluation[("OUTPUT", "evaluation")][0].custom_properties["slices"].int_value == 3

    push = _io(store, executions[("pusher", -1, 1)])
    assert [a.id for a in push[("INPUT", "model")]] == [model.id]
    assert [a.id for a in push[("INPUT", "model_blessing")]] == [blessing.id]
    [pushed] = push[("OUTPUT", "pushed_model")]
    assert _type_name(store, pushed) == "PushedModel" and pushed.custom_properties["pushed"].int_value == 1

    # The second run's trainer reads a rolling window: spans 3..5 of which 4 and 5 exist.
    second_train = _io(store, _executions_by_task(store, PIPELINE, second.run_id)[("trainer", -1, 1)])
    assert sorted(a.properties["span"].int_value for a in second_train[("INPUT", "examples")]) == [4, 5]
    second_push = _io(store, _executions_by_task(store, PIPELINE, second.run_id)[("pusher", -1, 1)])
    assert second_push[("OUTPUT", "pushed_model")][0].custom_properties["pushed"].int_value == 0  # span 5 is odd


def test_every_way_a_task_ends_is_recorded(airflow_env, sqlite_store_uri, tmp_path):
    secret = "s3cr3t-token-9f2"
    result = airflow_env.run_dag(OUTCOMES, DAY5, store_uri=sqlite_store_uri, spool_dir=str(tmp_path / "spool"),
                                 env={"AIRFLOW_CONN_GRAPHLETS_TEST_SECRET": f"http://user:{secret}@api.example"})
    assert result.state == "failed"  # always_fails fails the run; the recorder changes nothing about that
    store = open_store(parse_store_uri(sqlite_store_uri))
    executions = _executions_by_task(store, OUTCOMES, result.run_id)
    outcome = {
        key: (STATE(e.last_known_state), e.custom_properties["airflow_state"].string_value)
        for key, e in executions.items()
    }
    assert outcome[("flaky", -1, 1)] == ("FAILED", "up_for_retry")
    assert outcome[("flaky", -1, 2)] == ("COMPLETE", "success")
    assert outcome[("always_fails", -1, 1)] == ("FAILED", "failed")
    assert outcome[("skips_itself", -1, 1)] == ("CANCELED", "skipped")
    assert outcome[("gate", -1, 1)] == ("COMPLETE", "success")
    assert [v for k, v in outcome.items() if k[0] == "after_failure"] == [("CANCELED", "upstream_failed")]
    assert [v for k, v in outcome.items() if k[0] == "gated"] == [("CANCELED", "skipped")]
    assert len(executions) == 7
    error = executions[("always_fails", -1, 1)].custom_properties["error"].string_value
    # The error is stored as Airflow's task log shows it: the secret masked.
    assert error == "ValueError: this task always fails (token ***)"


def test_running_the_same_dag_run_again_adds_no_duplicates(airflow_env, sqlite_store_uri, tmp_path):
    spool = str(tmp_path / "spool")
    airflow_env.run_dag(PIPELINE, DAY5, store_uri=sqlite_store_uri, spool_dir=spool)
    store = open_store(parse_store_uri(sqlite_store_uri))
    before = store_snapshot(store)
    counts = (len(store.get_executions()), len(store.get_artifacts()), len(store.get_contexts()))

    airflow_env.run_dag(PIPELINE, DAY5, store_uri=sqlite_store_uri, spool_dir=spool)
    store = open_store(parse_store_uri(sqlite_store_uri))
    assert (len(store.get_executions()), len(store.get_artifacts()), len(store.get_contexts())) == counts
    assert store_snapshot(store) == before


def test_an_unreachable_store_never_fails_a_task_and_replay_restores_every_record(airflow_env, tmp_path):
    from support.databases import create_store_uri

    reference_uri = create_store_uri("sqlite", str(tmp_path))
    airflow_env.run_dag(PIPELINE, DAY5, store_uri=reference_uri, spool_dir=str(tmp_path / "ref_spool"))

    # Port 9 on loopback refuses connections: the store is down for the whole run. With record_wait
    # the tasks learn of it from the flusher (and stop waiting), and say so once.
    down = airflow_env.run_dag(
        PIPELINE, DAY5, store_uri="postgresql://postgres@127.0.0.1:9/mlmd", spool_dir=str(tmp_path / "spool"),
        settle=False, env={"AIRFLOW__GRAPHLETS__RECORD_WAIT": "True"},
    )
    assert down.state == "success"
    assert down.output.count("is unavailable") == 1, "one clear warning, not one per task"
    assert "Traceback" not in down.output

    status = _cli("spool", "status", "--json", "--spool-dir", str(tmp_path / "spool"))
    # 9 executions: a start and an end record each, and the final state the DAG run's end saw.
    assert json.loads(status.stdout)["pending"] == 27
    shutil.copytree(tmp_path / "spool", tmp_path / "spool_of_a_lost_machine", ignore=shutil.ignore_patterns(".flusher*"))

    recovered_uri = create_store_uri("sqlite", str(tmp_path))
    replay = _cli("spool", "replay", "--json", "--spool-dir", str(tmp_path / "spool"), "--store", recovered_uri)
    assert json.loads(replay.stdout) | {"store": None} == {
        "store": None, "written": 27, "quarantined": 0, "remaining": 0, "error": ""
    }
    recovered = store_snapshot(open_store(parse_store_uri(recovered_uri)))
    assert recovered == store_snapshot(open_store(parse_store_uri(reference_uri)))

    # A worker that died after reporting the trainer's success to Airflow, before recording it:
    # its end record is gone. The scheduler's record of the run's end closes the try.
    lost = Spool(str(tmp_path / "spool_of_a_lost_machine"))
    [trainer_end] = [e for e in lost.pending() if (r := lost.read(e)).task_id == "trainer"
                     and r.state is RunState.SUCCESS and r.source == "worker"]
    lost.remove(trainer_end)
    partial_uri = create_store_uri("sqlite", str(tmp_path))
    _cli("spool", "replay", "--json", "--spool-dir", lost.directory, "--store", partial_uri)
    executions = open_store(parse_store_uri(partial_uri)).get_executions()
    assert {e.last_known_state for e in executions} == {mlmd_pb.Execution.COMPLETE}
    [closed] = [e for e in executions if "ended_by_scheduler" in e.custom_properties]
    assert closed.custom_properties["task_id"].string_value == "trainer"


def test_a_bad_setting_gives_one_clear_error_and_tasks_still_succeed(airflow_env, sqlite_store_uri, tmp_path):
    result = airflow_env.run_dag(
        PIPELINE, DAY5, store_uri=sqlite_store_uri, env={"AIRFLOW__GRAPHLETS__RECORD_TIMEOUT": "soon"}
    )
    assert result.state == "success"
    assert result.output.count("recording is off") == 1
    assert "[graphlets] record_timeout = 'soon' is not valid" in result.output
    assert "AIRFLOW__GRAPHLETS__RECORD_TIMEOUT" in result.output


def test_a_malformed_connection_gives_one_clear_error(airflow_env, tmp_path):
    result = airflow_env.run_dag(PIPELINE, DAY5, store_uri="postgresql://127.0.0.1:5432/", spool_dir=str(tmp_path))
    assert result.state == "success"
    assert result.output.count("recording is off") == 1
    assert "mlmd_default" in result.output and "is missing" in result.output


def test_the_package_is_an_airflow_plugin_and_provider(airflow_env):
    plugins = airflow_env.airflow("plugins", "--output", "json")
    [plugin] = [p for p in json.loads(plugins.stdout) if p["name"] == "airflow_graphlets"]
    assert "GraphletsListener" in json.dumps(plugin["listeners"])
    # Loaded once, with no import error for Airflow's UI to show beside the Plugins menu.
    errors = subprocess.run([sys.executable, "-c", "import json; from airflow import plugins_manager as m; "
                             "print(json.dumps(m.get_import_errors()))"], env=airflow_env.env, capture_output=True,
                            text=True, check=True)
    assert json.loads(errors.stdout.strip().splitlines()[-1]) == {}
    providers = airflow_env.airflow("providers", "list", "--output", "json")
    assert "airflow-graphlets" in [p["package_name"] for p in json.loads(providers.stdout)]
    hooks = airflow_env.airflow("providers", "hooks", "--output", "json")
    assert any(h.get("connection_type") == "mlmd" for h in json.loads(hooks.stdout))
    timeout = airflow_env.airflow("config", "get-value", "graphlets", "record_timeout")
    assert timeout.stdout.strip() == "5.0"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow_graphlets.cli", *args], capture_output=True, text=True, check=True, timeout=300
    )


def test_the_mlmd_hook_opens_the_store_a_connection_names(airflow_env, store_uri):
    probe = (
        "from airflow_graphlets.hook import MlmdHook\n"
        "hook = MlmdHook()\n"
        "print(hook.store_config().backend, type(hook.get_conn()).__name__, type(hook.get_mlmd_client()).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**airflow_env.env, "AIRFLOW_CONN_MLMD_DEFAULT": store_uri, "GLOG_minloglevel": "2"},
        capture_output=True, text=True, check=True, timeout=120,
    )
    # The native store by default; ml-metadata's own client where the [mlmd] extra is installed.
    assert out.stdout.split()[-3:] == [store_uri.split(":")[0], "NativeStore", "MetadataStore"]


def test_a_failing_secrets_backend_keeps_records_in_the_spool_not_in_the_default_store(airflow_env, tmp_path):
    """Airflow reports a connection as missing when a secrets backend fails; the recorder must not
    take that for "no connection" and drain the records into the default SQLite store (issue 22,
    item 1). They wait in the spool, with the reason logged, until a lookup works."""
    spool = tmp_path / "spool"
    default_store = tmp_path / "default" / "mlmd.sqlite"
    sealed = {"AIRFLOW__SECRETS__BACKEND": "secrets_backends.SealedVault",
              "AIRFLOW__GRAPHLETS__DEFAULT_STORE": str(default_store),
              "PYTHONPATH": os.path.join(os.path.dirname(__file__), "support")}
    result = airflow_env.run_dag(PIPELINE, DAY5, store_uri=None, spool_dir=str(spool), env=sealed, settle=False)
    assert result.state == "success", result.output[-3000:]
    assert "Looking up the connection 'mlmd_default' failed" in result.output
    assert "SealedVault: the vault is sealed" in result.output
    assert not default_store.exists()  # nothing went to the default store
    waiting = len(Spool(str(spool)).pending())
    assert waiting >= 14  # every task's start and end

    # The vault opens: the next run's lookup works and its flusher drains everything, in order.
    store_uri = f"sqlite:///{tmp_path / 'mlmd.sqlite'}"
    second = airflow_env.run_dag(PIPELINE, DAY6, store_uri=store_uri, spool_dir=str(spool))
    assert second.state == "success"
    store = open_store(parse_store_uri(store_uri))
    runs = {e.custom_properties["run_id"].string_value for e in store.get_executions()}
    assert runs == {result.run_id, second.run_id}
    assert not default_store.exists()


def test_an_override_is_refused_not_misfiled_while_the_secrets_backend_fails(airflow_env, tmp_path):
    """The CLI (and the UI, which resolves the store the same way) says why instead of writing
    the override into the default store."""
    default_store = tmp_path / "default" / "mlmd.sqlite"
    env = {**airflow_env.env, "AIRFLOW__SECRETS__BACKEND": "secrets_backends.SealedVault",
           "AIRFLOW__GRAPHLETS__DEFAULT_STORE": str(default_store),
           "PYTHONPATH": os.path.join(os.path.dirname(__file__), "support")}
    env.pop("AIRFLOW_CONN_MLMD_DEFAULT", None)
    done = subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", "override", "force-run", "--dag", "churn",
                           "--by", "alice"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the vault is sealed" in done.stderr and "whether it exists is unknown" in done.stderr
    assert not default_store.exists()


def test_a_hanging_secrets_backend_cannot_hang_the_scheduler_side_lookup(airflow_env):
    """The scheduler's DAG-run listener looks the store up with a bound (issue 22, item 6)."""
    probe = (
        "import time\n"
        "from airflow_graphlets import airflow_config\n"
        "from airflow_graphlets.errors import ConnectionLookupError\n"
        "airflow_config.LOOKUP_TIMEOUT_SECONDS = 1.0\n"
        "settings = airflow_config.load_settings()  # Airflow's configuration first: only the lookup is timed\n"
        "began = time.monotonic()\n"
        "try:\n"
        "    airflow_config.resolve_store(settings, own_session=True)\n"
        "except ConnectionLookupError as err:\n"
        "    print('REFUSED', round(time.monotonic() - began, 1), err)\n"
    )
    env = {**airflow_env.env, "AIRFLOW__SECRETS__BACKEND": "secrets_backends.HangingVault",
           "PYTHONPATH": os.path.join(os.path.dirname(__file__), "support")}
    env.pop("AIRFLOW_CONN_MLMD_DEFAULT", None)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    line = next(line for line in done.stdout.splitlines() if line.startswith("REFUSED"))
    assert float(line.split()[1]) < 3 and "did not finish within 1 s" in line
