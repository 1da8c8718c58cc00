"""A real Airflow 3 installation for tests: its own AIRFLOW_HOME, metadata DB and DAGs folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


@dataclass
class AirflowEnv:
    """An initialised AIRFLOW_HOME and the environment to run Airflow commands in it."""

    home: str
    dags_folder: str = os.path.join(TESTS, "dags")
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": self.home,
            "AIRFLOW__CORE__DAGS_FOLDER": self.dags_folder,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "GLOG_minloglevel": "1",
            # Flushers started by a test end soon after it, instead of idling for five minutes.
            "AIRFLOW__GRAPHLETS__FLUSHER_IDLE_SECONDS": "5",
        }

    def migrate(self) -> None:
        done = self.airflow("db", "migrate", check=False)
        if done.returncode != 0:
            raise AssertionError(f"airflow db migrate failed (exit {done.returncode}):\n{done.stderr[-4000:]}")

    def airflow(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [os.path.join(VENV_BIN, "airflow"), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=check,
            timeout=600,
        )

    def run_dag(self, dag_id: str, logical_date: str, *, store_uri: str | None, env: dict[str, str] | None = None,
                spool_dir: str | None = None, settle: bool = True) -> DagRunResult:
        """Run one DAG run in-process (``dag.test``) with the given MLMD store connection.

        With ``settle`` (and a ``spool_dir``), return once the flusher has written every record.
        """
        extra = dict(env or {})
        if store_uri is not None:
            extra["AIRFLOW_CONN_MLMD_DEFAULT"] = store_uri
        if spool_dir is not None:
            extra["AIRFLOW__GRAPHLETS__SPOOL_DIR"] = spool_dir
        proc = subprocess.run(
            [sys.executable, os.path.join(TESTS, "support", "run_dag.py"), dag_id, logical_date],
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = proc.stdout + proc.stderr
        result_lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if not result_lines:
            raise AssertionError(f"DAG {dag_id} did not run (exit {proc.returncode}):\n{output[-6000:]}")
        if settle and spool_dir is not None:
            wait_until_recorded(spool_dir)
        _, run_id, state = result_lines[-1].split(" ", 2)
        elapsed = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("ELAPSED ")]
        return DagRunResult(run_id=run_id, state=state.replace("DagRunState.", "").lower(), output=output,
                            elapsed_seconds=elapsed[-1] if elapsed else 0.0)


def wait_until_recorded(spool_dir: str, timeout: float = 60.0) -> None:
    """Wait until the spool's flusher has written every waiting record into the store."""
    from airflow_graphlets.recorder.spool import Spool

    spool = Spool(spool_dir)
    deadline = time.monotonic() + timeout
    while spool.pending():
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(spool.pending())} records still wait in {spool_dir}")
        time.sleep(0.05)


@dataclass
class DagRunResult:
    run_id: str
    state: str
    output: str
    elapsed_seconds: float = 0.0
