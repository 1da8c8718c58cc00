"""A real Airflow 3 deployment on this machine: API server, scheduler and DAG processor with the
LocalExecutor, each its own process, as production runs them (tasks in separate processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field

from support.airflow_env import VENV_BIN, AirflowEnv, wait_until_recorded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowServices:
    """Start with :meth:`start`, stop with :meth:`stop`; logs are in ``<home>/<service>.log``."""

    airflow: AirflowEnv
    store_uri: str
    spool_dir: str
    port: int = field(default_factory=free_port)
    schedulers: int = 1
    # Keep the MLMD connection in Airflow's database (``airflow connections add``) instead of
    # the environment, as most deployments do.
    connection_in_database: bool = False
    # Settings over the LocalExecutor defaults below (another executor, database, broker...).
    overrides: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.airflow.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW_CONN_MLMD_DEFAULT": self.store_uri,
                "AIRFLOW__GRAPHLETS__SPOOL_DIR": self.spool_dir,
                **self.overrides,
            }
        )

    def start(self) -> None:
        if self.connection_in_database:
            self.airflow.env.pop("AIRFLOW_CONN_MLMD_DEFAULT", None)
        self.airflow.migrate()
        if self.connection_in_database:
            self.airflow.airflow("connections", "add", "mlmd_default", "--conn-uri", self.store_uri)
        self.start_process("api-server", ["api-server", "--port", str(self.port)])
        for number in range(1, self.schedulers + 1):
            self.start_process("scheduler" if number == 1 else f"scheduler-{number}", ["scheduler"])
        self.start_process("dag-processor", ["dag-processor"])
        self._wait(lambda: self._get("/api/v2/version") is not None, 90, "the API server")

    def start_process(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``airflow <args>`` as service ``name``, in its own process group."""
        log = open(os.path.join(self.airflow.home, f"{name}.log"), "a")
        process = subprocess.Popen(
            [os.path.join(VENV_BIN, "airflow"), *args], env={**self.airflow.env, **(env or {})}, stdout=log,
            stderr=log, start_new_session=True,
        )
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def log(self, name: str) -> str:
        with open(os.path.join(self.airflow.home, f"{name}.log"), errors="replace") as handle:
            return handle.read()

    def trigger(self, dag_id: str, run_id: str, logical_date: str) -> None:
        self._wait(lambda: self._get(f"/api/v2/dags/{dag_id}") is not None, 90, f"DAG {dag_id} to be parsed")
        self._post(f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": logical_date})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        def finished():
            run = self._get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return run is not None and run["state"] in ("success", "failed")

        self._wait(finished, timeout, f"run {run_id} of {dag_id}")
        wait_until_recorded(self.spool_dir)
        return self._get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def clear(self, dag_id: str, run_id: str, task_ids: list[str]) -> list[str]:
        body = {"dry_run": False, "task_ids": task_ids, "dag_run_id": run_id, "include_downstream": True,
                "only_failed": False}
        cleared = self._post(f"/api/v2/dags/{dag_id}/clearTaskInstances", body)
        return sorted(ti["task_id"] for ti in cleared["task_instances"])

    def _token(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/auth/token", timeout=10) as response:
            return json.load(response)["access_token"]

    def _get(self, path: str):
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                             headers={"Authorization": f"Bearer {self._token()}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except OSError:
            return None

    def _post(self, path: str, body: dict):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    @staticmethod
    def _wait(condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}")


def airflow_cli(env: dict[str, str], *args: str) -> None:
    """Run ``airflow <args>`` in ``env``; fail the test with its error output if it fails."""
    done = subprocess.run([os.path.join(VENV_BIN, "airflow"), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stderr[-3000:]}"


def summarize(env: dict[str, str]) -> None:
    """Make the Graphlets summary of the store ``env`` names (so pages have it from the start)."""
    import sys

    done = subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", "summarize"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@contextmanager
def api_server(env: dict[str, str], port: int, log_path, health_url: str):
    """A real ``airflow api-server`` on ``port`` with ``env`` while the block runs, once
    ``health_url`` answers 200; stopped (its whole process group) afterwards."""
    def healthy() -> bool:
        try:
            with urllib.request.urlopen(health_url, timeout=10) as response:
                return response.status == 200
        except OSError:
            return False

    with open(log_path, "w") as log:
        server = subprocess.Popen([os.path.join(VENV_BIN, "airflow"), "api-server", "--port", str(port)], env=env,
                                  stdout=log, stderr=log, start_new_session=True)
        try:
            AirflowServices._wait(healthy, 120, "the API server")
            yield
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
