"""The production shape: a real scheduler, API server and DAG processor, tasks in their own
processes. Clearing tasks re-runs them as new tries; nothing is ever recorded twice, and the
listener never disturbs the scheduler. An operator's Overrule in the skip log has Airflow clear
the skipped run's training branch, and the model trains at once."""

from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from support.airflow_env import AirflowEnv
from support.airflow_services import AirflowServices

from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    home = tmp_path_factory.mktemp("scheduled_airflow")
    running = AirflowServices(
        AirflowEnv(home=str(home)), store_uri=f"sqlite:///{home}/mlmd.sqlite", spool_dir=str(home / "spool"),
        # The gated DAG's gate skips every run (no predictor yet: the prior never reaches 1e6).
        overrides={"GRAPHLETS_TEST_THRESHOLD": "1e6", "AIRFLOW__API__SECRET_KEY": "graphlets-scheduler-test",
                   "AIRFLOW__GRAPHLETS__SUMMARY_URI": f"sqlite:///{home}/summary.sqlite"},
    )
    running.start()
    yield running
    running.stop()


def tries(store, dag_id):
    found = {}
    for execution in store.get_executions():
        props = execution.custom_properties
        if props["dag_id"].string_value != dag_id:
            continue
        key = (props["task_id"].string_value, props["map_index"].int_value, props["try_number"].int_value)
        assert key not in found, f"{key} recorded twice"
        found[key] = (mlmd_pb.Execution.State.Name(execution.last_known_state), props["airflow_state"].string_value)
    return found


def test_scheduled_runs_and_cleared_tasks_are_recorded_once_per_try(services):
    services.trigger("graphlets_test_pipeline", "run1", "2026-01-05T00:00:00+00:00")
    services.trigger("graphlets_test_outcomes", "run1", "2026-01-05T00:00:00+00:00")
    assert services.wait_for_run("graphlets_test_pipeline", "run1") == "success"
    assert services.wait_for_run("graphlets_test_outcomes", "run1") == "failed"

    store = open_store(parse_store_uri(services.store_uri))
    first = tries(store, "graphlets_test_pipeline")
    assert len(first) == 9 and {state for state in first.values()} == {("COMPLETE", "success")}
    outcomes = tries(store, "graphlets_test_outcomes")
    assert outcomes[("flaky", -1, 1)] == ("FAILED", "up_for_retry")
    assert outcomes[("flaky", -1, 2)] == ("COMPLETE", "success")
    assert [v for k, v in outcomes.items() if k[0] == "gated"] == [("CANCELED", "skipped")]
    assert [v for k, v in outcomes.items() if k[0] == "after_failure"] == [("CANCELED", "upstream_failed")]

    cleared = services.clear("graphlets_test_pipeline", "run1", ["trainer"])
    assert cleared == ["evaluate_slice"] * 3 + ["evaluator", "pusher", "trainer"]
    assert services.wait_for_run("graphlets_test_pipeline", "run1") == "success"

    after = tries(open_store(parse_store_uri(services.store_uri)), "graphlets_test_pipeline")
    rerun = {key for key in after if key not in first}
    assert rerun == {("trainer", -1, 2), ("evaluator", -1, 2), ("pusher", -1, 2)} | {
        ("evaluate_slice", i, 2) for i in range(3)
    }
    assert all(after[key] == ("COMPLETE", "success") for key in rerun)
    assert {key: after[key] for key in first} == first, "earlier tries stay as they were"

    assert services.alive("scheduler") and services.alive("api-server")
    assert "airflow-graphlets: could not record" not in services.log("scheduler")


def test_overruling_a_skip_in_the_skip_log_trains_the_run_now(services):
    import re

    import httpx

    from airflow_graphlets.prune.decisions import read_decisions
    from airflow_graphlets.prune.overrides import read_overrides

    dag, run = "graphlets_test_gate", "overruled_run"
    store = parse_store_uri(services.store_uri)
    open_store(store).close()  # a gate with no store yet fails open (runs the training)
    services.trigger(dag, run, "2026-01-06T00:00:00+00:00")
    assert services.wait_for_run(dag, run) == "success"
    assert [(d.run_id, d.decision) for d in read_decisions(store, dag)] == [(run, "skip")]
    assert not _ran(services, dag, run, "trainer")

    base = f"http://127.0.0.1:{services.port}/graphlets"
    user = {"Authorization": f"Bearer {services._token()}"}
    with httpx.Client(headers=user, timeout=60) as client:
        page = client.get(f"{base}/skips", params={"dag": dag})
        assert page.status_code == 200, page.text[-2000:]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = client.post(f"{base}/skips/override", data={"dag": dag, "action": "force-run", "run_id": run,
                                                             "csrf": csrf})
        assert answer.status_code == 303, answer.text[-2000:]
        done = client.get(f"{base}/skips", params={"dag": dag, "done": "force-run"}).text

    [overrule] = read_overrides(store, dag)
    assert (overrule.action, overrule.run_id) == ("force-run", run) and overrule.by
    assert overrule.airflow_clear == "Airflow cleared graphlet_gate, pusher, trainer"
    assert f"force-run recorded by {overrule.by}; Airflow cleared graphlet_gate, pusher, trainer." in done

    # The scheduler runs the cleared branch: the gate honours the run's force-run, the model trains.
    assert services.wait_for_run(dag, run) == "success"
    assert _ran(services, dag, run, "trainer") and _ran(services, dag, run, "pusher")
    decided = [(d.run_id, d.decision, d.override) for d in read_decisions(store, dag)]
    assert decided == [(run, "skip", ""), (run, "run", f"force-run by {overrule.by}")]


def _ran(services, dag: str, run: str, task: str) -> bool:
    """Whether Airflow says ``task`` of ``run`` succeeded."""
    found = services._get(f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}")
    return found is not None and found["state"] == "success"
