"""The production shape under faults: Airflow with the CeleryExecutor (Redis broker, PostgreSQL for
Airflow), two schedulers, four Celery workers each with the spool of its own "machine", and MLMD
on a PostgreSQL server of its own. Hundreds of task instances of the quickstart example pipeline
run while the MLMD server is restarted, then refuses connections for a minute, during which a
worker is killed with SIGKILL in the middle of a task.

Afterwards every DAG run has succeeded as it would without the plugin, and the MLMD store holds
exactly one execution per task try Airflow made, in the state Airflow gave it, every graphlet is
complete (but at most one whose try the kill ended between Airflow's success and our listener:
a known gap, docs/production.md), and no event points at a missing execution or artifact.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import psutil
import psycopg2
import pytest
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.store.uri import parse_store_uri
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from support.airflow_env import AirflowEnv, wait_until_recorded
from support.airflow_services import AirflowServices
from support.databases import create_store_uri, drop_store
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1500)]

DAG_ID = "graphlets_quickstart"  # dags/: ExampleGen, StatisticsGen, Trainer, Evaluator, Pusher
RUNS = 100  # 500 task instances
WORKERS = 4
OUTAGE_SECONDS = 60
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    home = tmp_path_factory.mktemp("celery_airflow")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(os.path.join(REPO, "dags", "graphlets_quickstart.py"), dags)
    mlmd_server = PostgresServer()
    mlmd_server.start()
    airflow_db = create_store_uri("postgresql", str(home))
    airflow_sqlalchemy = airflow_db.replace("postgresql://", "postgresql+psycopg2://", 1)
    queue = f"graphlets_{uuid.uuid4().hex[:8]}"  # tasks of this test only, whatever else uses Redis
    services = AirflowServices(
        AirflowEnv(home=str(home), dags_folder=str(dags)),
        store_uri=mlmd_server.create_database("mlmd"),
        spool_dir=str(home / "spool-scheduler"),
        schedulers=2,
        connection_in_database=True,  # so the schedulers' own records look it up there, mid-session
        overrides={
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "40",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_sqlalchemy,
            "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_sqlalchemy,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            # A killed worker's task is noticed in seconds, not the default five minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A task the killed worker had taken from the broker but not started is sent again
            # after this long in the queue (default ten minutes).
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "GRAPHLETS_DEMO_DATA": str(home / "data"),
        },
    )
    services.airflow_db = airflow_db
    services.mlmd_server = mlmd_server
    services.queue = queue
    services.start()
    for number in range(1, WORKERS + 1):
        start_worker(services, number)
    yield services
    services.stop()
    if os.environ.get("GRAPHLETS_KEEP_TEST_STORES"):  # to look into a failure afterwards
        print(f"kept: MLMD {services.store_uri} (data {mlmd_server.directory}), Airflow {airflow_db}")
        return
    mlmd_server.remove()
    drop_store(airflow_db)


def start_worker(services: AirflowServices, number: int) -> None:
    """A Celery worker on "machine" ``number``: its own spool, as each machine has."""
    home = services.airflow.home
    services.start_process(
        f"worker-{number}",
        ["celery", "worker", "--concurrency", "2", "--queues", services.queue, "--celery-hostname",
         f"worker{number}@%h", "--skip-serve-logs", "--without-mingle", "--without-gossip",
         "--pid", os.path.join(home, f"worker-{number}.pid")],
        env={"AIRFLOW__GRAPHLETS__SPOOL_DIR": spool_of(services, number)},
    )


def spool_of(services: AirflowServices, number: int) -> str:
    return os.path.join(services.airflow.home, f"spool-worker-{number % 10}")


def query(uri: str, sql: str, *args) -> list[tuple]:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def airflow_query(services: AirflowServices, sql: str, *args) -> list[tuple]:
    return query(services.airflow_db, sql, *args)


def tries_in_airflow(services: AirflowServices) -> dict[tuple, str]:
    """Every task try Airflow made: (run, task, map index, try) -> the state it ended in."""
    rows = airflow_query(
        services,
        "SELECT run_id, task_id, map_index, try_number, state FROM task_instance_history WHERE dag_id = %s "
        "UNION ALL SELECT run_id, task_id, map_index, try_number, state FROM task_instance WHERE dag_id = %s",
        DAG_ID, DAG_ID,
    )
    tries = {}
    for run_id, task_id, map_index, try_number, state in rows:
        tries[(run_id, task_id, map_index, try_number)] = state
    return tries


def tries_in_mlmd(services: AirflowServices) -> dict[tuple, list[tuple[str, int]]]:
    """Every execution in the MLMD store, by the try it records -> (MLMD state, id) of each."""
    rows = query(
        services.store_uri,
        "SELECT e.id, e.last_known_state, p.name, p.string_value, p.int_value FROM Execution e "
        "JOIN ExecutionProperty p ON p.execution_id = e.id WHERE p.is_custom_property "
        "AND p.name IN ('dag_id', 'run_id', 'task_id', 'map_index', 'try_number', 'airflow_state')",
    )
    executions: dict[int, dict] = {}
    for execution_id, state, name, text, number in rows:
        executions.setdefault(execution_id, {"state": state})[name] = text if text is not None else number
    found: dict[tuple, list[str]] = {}
    for execution_id, e in executions.items():
        key = (e["run_id"], e["task_id"], e["map_index"], e["try_number"])
        found.setdefault(key, []).append((mlmd_pb.Execution.State.Name(e["state"]), execution_id))
    return found


def describe_run(services: AirflowServices, run_id: str) -> str:
    """A run's tries in Airflow and its executions in MLMD with their events, for failure messages."""
    airflow = {k: v for k, v in tries_in_airflow(services).items() if k[0] == run_id}
    executions = query(
        services.store_uri,
        "SELECT e.id, e.external_id, e.last_known_state, "
        "(SELECT string_agg(ev.type || ':' || ev.artifact_id, ',') FROM Event ev WHERE ev.execution_id = e.id) "
        "FROM Execution e WHERE e.external_id LIKE %s ORDER BY e.id", f"%/{run_id}/%",
    )
    return f"Airflow tries: {airflow}\nMLMD executions (id, external id, state, events type:artifact): {executions}"


def succeeded_without_lineage(services: AirflowServices) -> set[int]:
    """Succeeded tries the scheduler closed with no output recorded: the known gap's losses."""
    complete = mlmd_pb.Execution.State.Value("COMPLETE")
    output = mlmd_pb.Event.Type.Value("OUTPUT")
    return {row[0] for row in query(
        services.store_uri, "SELECT e.id FROM Execution e WHERE e.last_known_state = %s AND e.id IN "
        "(SELECT execution_id FROM ExecutionProperty WHERE name = 'ended_by_scheduler' AND is_custom_property "
        "AND bool_value) AND NOT EXISTS (SELECT 1 FROM Event ev WHERE ev.execution_id = e.id AND ev.type = %s)",
        complete, output)}


def orphan_events(services: AirflowServices) -> int:
    return query(
        services.store_uri,
        "SELECT count(*) FROM Event ev LEFT JOIN Execution x ON x.id = ev.execution_id "
        "LEFT JOIN Artifact a ON a.id = ev.artifact_id WHERE x.id IS NULL OR a.id IS NULL",
    )[0][0]


def succeeded_tasks(services: AirflowServices) -> int:
    return airflow_query(services, "SELECT count(*) FROM task_instance WHERE state = 'success'")[0][0]


def wait_for(condition, timeout: float, what: str, services: AirflowServices) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; {succeeded_tasks(services)} tasks succeeded")
        time.sleep(0.5)


def kill_a_worker_mid_task(services: AirflowServices, workers: list[int]) -> int:
    """SIGKILL the worker (its whole process group: worker, pool, task) whose task has just
    started running, so the try cannot finish; return the worker's number."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        started = airflow_query(
            services, "SELECT pid FROM task_instance WHERE state = 'running' AND pid IS NOT NULL "
            "AND start_date > now() - interval '300 milliseconds'")
        for (pid,) in started:
            try:
                ancestors = {parent.pid for parent in psutil.Process(pid).parents()}
            except psutil.Error:
                continue
            for number in workers:
                if services.processes[f"worker-{number}"].pid in ancestors:
                    os.killpg(services.processes[f"worker-{number}"].pid, signal.SIGKILL)
                    return number
        time.sleep(0.05)
    raise AssertionError("no task started running on a worker within 5 minutes")


def not_succeeded_tries(services: AirflowServices) -> int:
    return airflow_query(services, "SELECT count(*) FROM task_instance_history WHERE dag_id = %s AND state != "
                         "'success'", DAG_ID)[0][0]


def test_celery_workers_under_faults_record_every_try_exactly_once(deployment):
    services = deployment
    first_day = datetime(2026, 1, 1, tzinfo=timezone.utc)  # span 0 of the quickstart pipeline
    services.trigger(DAG_ID, "day-000", first_day.isoformat())  # once the DAG is parsed
    for day in range(1, RUNS):
        logical = first_day + timedelta(days=day)
        services._post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                       {"dag_run_id": f"day-{day:03d}", "logical_date": logical.isoformat()})
    total = RUNS * 5

    # The MLMD server restarts: every open connection is cut.
    wait_for(lambda: succeeded_tasks(services) >= total * 0.15, 600, "the first tasks", services)
    services.mlmd_server.restart()

    # The MLMD server refuses connections for a minute; tasks go on meanwhile.
    wait_for(lambda: succeeded_tasks(services) >= total * 0.3, 600, "tasks after the restart", services)
    services.mlmd_server.stop()
    during_outage, outage_began = succeeded_tasks(services), time.monotonic()
    # Meanwhile a worker is killed with SIGKILL in the middle of a task; a new one takes its place.
    # (Killed here, while a third of the tasks are still to run: once every run had finished there
    # was no task left to kill, as when this test ran alone on an idle machine.)
    victim = kill_a_worker_mid_task(services, list(range(1, WORKERS + 1)))
    start_worker(services, victim + 10)  # same machine, same spool
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_began)))
    assert succeeded_tasks(services) > during_outage, "tasks must not wait for the MLMD store"
    services.mlmd_server.start()

    # The scheduler fails the try when its heartbeat stops, and Airflow retries it.
    wait_for(lambda: not_succeeded_tries(services) >= 1, 120, "the killed try to be failed", services)

    def all_runs_done():
        states = airflow_query(services, "SELECT state, count(*) FROM dag_run WHERE dag_id = %s GROUP BY state", DAG_ID)
        finished = sum(n for state, n in states if state in ("success", "failed"))
        return finished >= RUNS and finished == sum(n for _, n in states)

    wait_for(all_runs_done, 900, "every DAG run to finish", services)
    for spool in [services.spool_dir, *(spool_of(services, n) for n in range(1, WORKERS + 1))]:
        wait_until_recorded(spool, timeout=180)

    # Tasks behaved as without the plugin: every run succeeded, the killed try was retried.
    run_states = airflow_query(services, "SELECT run_id, state FROM dag_run WHERE dag_id = %s", DAG_ID)
    assert len(run_states) >= RUNS
    assert {state for _, state in run_states} == {"success"}, run_states
    airflow_tries = tries_in_airflow(services)
    assert len(airflow_tries) >= total
    failed = {key for key, state in airflow_tries.items() if state != "success"}
    assert len(failed) >= 1, "the killed task's try ends failed and is retried"

    # Exactly one execution per try, in the state Airflow gave it.
    mlmd_tries = tries_in_mlmd(services)
    assert set(mlmd_tries) == set(airflow_tries)
    assert [key for key, states in mlmd_tries.items() if len(states) != 1] == []
    # Airflow's history keeps a retried try as "failed" or "up_for_retry"; MLMD's state is FAILED.
    mlmd_state = {"success": "COMPLETE", "failed": "FAILED", "up_for_retry": "FAILED"}
    assert {key: states[0][0] for key, states in mlmd_tries.items()} == {
        key: mlmd_state[state] for key, state in airflow_tries.items()
    }

    # Every graphlet complete: one per run, plus a failed one wherever a trainer's try was killed;
    # a killed evaluator or pusher try is one more execution downstream of its run's model.
    graphlets = read_graphlets(parse_store_uri(services.store_uri)).graphlets.records()
    failed_tries = Counter((run_id, task_id) for (run_id, task_id, _, _) in failed)
    # (A trainer try killed before its start record was spooled is recorded by the scheduler,
    # which does not know the task's component kind, so it may not count as a failed graphlet.)
    assert len([g for g in graphlets if g.status == "failed"]) <= sum(
        n for (_, task_id), n in failed_tries.items() if task_id == "trainer")
    trained = [g for g in graphlets if g.status != "failed"]
    assert sorted(g.run for g in trained) == sorted(f"{DAG_ID}.{run_id}" for run_id, _ in run_states)
    # Known gap (docs/production.md): Airflow reports a task's success before it calls listeners,
    # so killing the victim's process group can take out a second task of that worker (concurrency
    # 2) between the two; the scheduler then closes its try, without the lineage only the task knew
    # (seen for a trainer on 2026-12-06 and an evaluator on 2026-12-07).
    lineage_lost = succeeded_without_lineage(services)
    assert len(lineage_lost) <= 1, lineage_lost
    for graphlet in trained:
        run_id = graphlet.run.split(".", 1)[1]
        if lineage_lost & {states[0][1] for (run, _, _, _), states in mlmd_tries.items() if run == run_id}:
            continue
        # Its evaluator and pusher (a try killed before it declared its inputs links to nothing).
        succeeded_downstream = {states[0][1] for (run, task, _, _), states in mlmd_tries.items()
                                if run == run_id and task in ("evaluator", "pusher") and states[0][0] == "COMPLETE"}
        complete = (
            graphlet.status in ("pushed", "not_pushed") and graphlet.spans and graphlet.model_ids
            and graphlet.blessed is not None and graphlet.pushed == graphlet.blessed
            and len(succeeded_downstream) == 2 and succeeded_downstream <= set(graphlet.downstream_ids)
            and len(graphlet.upstream_ids) >= 2  # its ExampleGen and StatisticsGen at least
        )
        assert complete, f"{graphlet}\n{describe_run(services, run_id)}"
    assert orphan_events(services) == 0
    for number in range(1, WORKERS + 1):
        assert Spool(spool_of(services, number)).status().quarantined == 0
