"""Run the continuous-training DAGs over many logical dates with real Airflow: a backfill.

Starts Airflow 3 as production runs it (API server, scheduler with the LocalExecutor, DAG
processor; each task in its own process, the airflow-graphlets listener recording every try),
asks for one backfill per DAG through Airflow's REST API (``POST /api/v2/backfills``, what
``airflow backfill create`` does), and shows progress until every run has finished.

Pipelines whose code changes mid-history (``ct_pipelines.pipelines.Release``) are replayed in
phases: for each release date, the scheduler and DAG processor restart with
``GRAPHLETS_CT_TODAY`` set to it, so they parse the DAGs as deployed that day, and the backfill
covers the dates up to the next release. Runs of one DAG go one at a time (each reads the spans
and the deployed model the run before left); the DAGs run side by side.

With ``--pause DATE --then COMMAND`` the backfill stops before DATE, runs the shell command (the
demo trains the gates' predictor there) and goes on with the same Airflow.

Usage: ``python scripts/ct_backfill.py --days 21 [--start 2026-01-01] [--dags a,b] [--parallelism 4]
[--pause 2026-01-07 --then "graphlets train-predictor"]``
with ``AIRFLOW_HOME`` (and optionally ``AIRFLOW_CONN_MLMD_DEFAULT``) set. Exit status 0 when every
run succeeded, 1 when some failed, 2 on bad arguments or when Airflow did not come up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAGS = os.path.join(ROOT, "dags")
sys.path.insert(0, DAGS)

from ct_pipelines.pipelines import PIPELINES, START_DATE

AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
STALL_SECONDS = 600  # give up when no run finishes for this long


class LocalAirflow:
    """API server, scheduler and DAG processor of one AIRFLOW_HOME, as child processes."""

    def __init__(self, home: str, parallelism: int) -> None:
        self.home = home
        self.port = _free_port()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": DAGS,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # Short chains of short tasks: react fast. The task supervisor notices a finished task
            # within [workers] min_heartbeat_interval (default 5 s, often the whole task's length).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # Only the backfill's runs: no run of "today" from the daily schedule. Paused DAGs
            # run no tasks, backfills included, so the DAGs start unpaused.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "GLOG_minloglevel": "1",
            # scripts/preload/airflow_local_settings.py: tasks fork with scikit-learn and river loaded.
            "PYTHONPATH": os.pathsep.join(filter(None, [os.path.join(ROOT, "scripts", "preload"),
                                                         os.environ.get("PYTHONPATH", "")])),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self._token: str | None = None  # the simple auth manager's token, valid for a day

    def start(self, *names: str, today: date | None = None) -> None:
        if today is not None:
            self.env["GRAPHLETS_CT_TODAY"] = today.isoformat()
        commands = {"api-server": ["api-server", "--port", str(self.port)], "scheduler": ["scheduler"],
                    "dag-processor": ["dag-processor"]}
        for name in names:
            log = open(os.path.join(self.home, f"{name}.log"), "a")  # noqa: SIM115 - the child keeps it
            self.processes[name] = subprocess.Popen([AIRFLOW, *commands[name]], env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
        if "api-server" in names:
            self.wait(lambda: self.get("/api/v2/version") is not None, 120, "the API server")

    def stop(self, *names: str) -> None:
        names = names or tuple(self.processes)
        for name in names:
            process = self.processes.pop(name, None)
            if process is None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def check_alive(self, restarts: dict[str, int] | None = None) -> None:
        """Raise if a service exited; with ``restarts`` (allowance left per service), restart it instead.

        Airflow on SQLite (the embedded default) can lose a race between the scheduler and the API
        server and stop the scheduler (``StaleDataError``); production runs on PostgreSQL or MySQL.
        A restarted scheduler picks the backfill up where it was."""
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                continue
            if restarts is not None and restarts.get(name, 0) > 0:
                restarts[name] -= 1
                print(f"   ({name} exited with status {process.returncode}; restarting it, see {self.home}/{name}.log)",
                      flush=True)
                del self.processes[name]
                self.start(name)
                continue
            raise RuntimeError(f"Airflow's {name} exited (status {process.returncode}); see {self.home}/{name}.log")

    def get(self, path: str):
        try:
            return self._request(path)
        except (OSError, urllib.error.HTTPError):
            return None

    def post(self, path: str, body: dict, attempts: int = 10):
        """POST, retried while Airflow answers 503 (SQLite busy under the scheduler's writes)."""
        for attempt in range(attempts):
            try:
                return self._request(path, body)
            except urllib.error.HTTPError as err:
                if err.code != 503 or attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        return None

    def _request(self, path: str, body: dict | None = None):
        if self._token is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/auth/token", timeout=10) as response:
                self._token = json.load(response)["access_token"]
        token = self._token
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            self.check_alive()
            time.sleep(1)
        raise RuntimeError(f"Timed out after {timeout:.0f} s waiting for {what}; logs in {self.home}")


def phases(first: date, last: date, dag_ids: list[str], pause: date | None = None) -> list[tuple[date, date, bool]]:
    """Date ranges that each end before the next release of any chosen pipeline (or the pause),
    and whether the DAGs must be parsed again at its start (a release, or the first range)."""
    releases = {r.since for p in PIPELINES if p.dag_id in dag_ids for r in p.releases if first < r.since <= last}
    cuts = sorted(releases | ({pause} if pause is not None and first < pause <= last else set()))
    starts = [first, *cuts]
    ends = [c - timedelta(days=1) for c in cuts] + [last]
    return [(start, end, start == first or start in releases) for start, end in zip(starts, ends)]


def run(args: argparse.Namespace) -> int:
    dag_ids = args.dags.split(",") if args.dags else [p.dag_id for p in PIPELINES]
    unknown = sorted(set(dag_ids) - {p.dag_id for p in PIPELINES})
    if unknown:
        print(f"Unknown DAG ids: {', '.join(unknown)}; known: {', '.join(p.dag_id for p in PIPELINES)}", file=sys.stderr)
        return 2
    first = date.fromisoformat(args.start)
    last = first + timedelta(days=args.days - 1)
    pause = args.pause
    home = os.environ.get("AIRFLOW_HOME")
    if not home:
        print("Set AIRFLOW_HOME (the demo and the tests use their own).", file=sys.stderr)
        return 2
    airflow = LocalAirflow(home, args.parallelism or len(dag_ids))
    total = len(dag_ids) * args.days
    began = time.monotonic()
    print(f"backfill: {len(dag_ids)} pipelines x {args.days} days ({first} .. {last}) = {total} DAG runs, "
          f"LocalExecutor with {args.parallelism or len(dag_ids)} task slots", flush=True)
    try:
        airflow.start("api-server")
        done: dict[str, str] = {}
        for phase_first, phase_last, reparse in phases(first, last, dag_ids, pause):
            if phase_first == pause and args.then:
                print(f"-- paused before {pause} (--then):", flush=True)
                subprocess.run(args.then, shell=True, check=False, env=airflow.env)  # noqa: S602 - the caller's command
            if reparse:
                airflow.stop("scheduler", "dag-processor")
                airflow.start("dag-processor", today=phase_first)
                expected = {d: f"Release since {_release(d, phase_first)}" for d in dag_ids}
                airflow.wait(lambda expected=expected: all(
                    expected[d] in ((airflow.get(f"/api/v2/dags/{d}/details") or {}).get("doc_md") or "")
                    for d in dag_ids), 180, "the DAGs to be parsed")
            print(f"-- {phase_first} .. {phase_last}: the DAGs as deployed on {_deployed(dag_ids, phase_first)}",
                  flush=True)
            for dag_id in dag_ids:
                try:
                    airflow.post("/api/v2/backfills", {
                        "dag_id": dag_id, "from_date": f"{phase_first}T00:00:00Z",
                        "to_date": f"{phase_last}T00:00:00Z", "max_active_runs": 1, "reprocess_behavior": "none",
                        "run_backwards": False,
                    })
                except urllib.error.HTTPError as err:
                    if err.code != 409:  # 409: a retried request had created it after all
                        raise
            # The scheduler starts once the backfills exist: on SQLite, creating runs while it
            # schedules others can make it stop on a lost race.
            if "scheduler" not in airflow.processes:
                airflow.start("scheduler")
            restarts = {"scheduler": 3, "dag-processor": 3}
            want = len(dag_ids) * ((phase_last - phase_first).days + 1) + len(done)
            last_progress = time.monotonic()
            while len(done) < want:
                airflow.check_alive(restarts)
                for r in finished_runs(airflow):
                    key = f"{r['dag_id']} {r['logical_date'][:10]}"
                    # Only this backfill's dates: an AIRFLOW_HOME may hold runs of an earlier one.
                    if r["dag_id"] in dag_ids and str(first) <= r["logical_date"][:10] <= str(last) and key not in done:
                        done[key] = r["state"]
                        last_progress = time.monotonic()
                        print(f"[{len(done):>4}/{total}] {time.monotonic() - began:5.0f} s  {key}  {r['state']}",
                              flush=True)
                if time.monotonic() - last_progress > STALL_SECONDS:
                    raise RuntimeError(f"no DAG run finished for {STALL_SECONDS} s; see {home}/scheduler.log")
                time.sleep(1)
            # The scheduler marks a backfill complete a moment after its last run; a DAG takes
            # a new backfill only then.
            airflow.wait(lambda: all(b.get("completed_at") for d in dag_ids
                                     for b in (airflow.get(f"/api/v2/backfills?dag_id={d}") or {"backfills": [{}]})["backfills"]),
                         120, "the backfills to be marked complete")
    except (RuntimeError, urllib.error.HTTPError) as err:
        print(f"backfill stopped: {err}", file=sys.stderr)
        return 2
    finally:
        airflow.stop()
    failed = sorted(k for k, state in done.items() if state != "success")
    seconds = time.monotonic() - began
    print(f"backfill: {len(done)} DAG runs in {seconds:.0f} s ({len(done) / seconds * 60:.1f} runs/min), "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}", flush=True)
    return 1 if failed else 0


def finished_runs(airflow: LocalAirflow) -> list[dict]:
    """Every finished backfill run, page by page (the API returns at most 100 at a time)."""
    runs: list[dict] = []
    while True:
        page = airflow.get(f"/api/v2/dags/~/dagRuns?limit=100&offset={len(runs)}&order_by=id"
                           "&state=success&state=failed&run_type=backfill")
        if page is None:
            return runs
        runs.extend(page["dag_runs"])
        if len(page["dag_runs"]) < 100:
            return runs


def _deployed(dag_ids: list[str], day: date) -> date:
    """The newest release date in effect on ``day`` among the chosen pipelines."""
    return max(_release(d, day) for d in dag_ids)


def _release(dag_id: str, day: date) -> date:
    return next(p for p in PIPELINES if p.dag_id == dag_id).release_on(day).since


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=21, help="logical dates per pipeline (default 21)")
    parser.add_argument("--start", default=START_DATE.isoformat(), help=f"first logical date (default {START_DATE})")
    parser.add_argument("--dags", default="", help="comma-separated DAG ids (default: every example pipeline)")
    parser.add_argument("--parallelism", type=int, default=0,
                        help="task slots of the LocalExecutor (default: one per pipeline)")
    parser.add_argument("--pause", type=date.fromisoformat, help="stop before this date (YYYY-MM-DD) to run --then")
    parser.add_argument("--then", help="shell command to run at --pause, with the backfill's environment")
    args = parser.parse_args()
    if args.days < 1:
        parser.error("--days must be at least 1")
    if bool(args.pause) != bool(args.then):
        parser.error("--pause and --then go together")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
