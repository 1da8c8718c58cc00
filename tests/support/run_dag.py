"""Run one DAG run in-process with real Airflow, like ``airflow dags test``, but with a fixed run id.

``airflow dags test`` names the run after the wall clock; tests that re-run "the same run" need
the name fixed, so this passes ``run_after`` = the logical date (the run id is then
``manual__<logical date>``). Usage: ``python run_dag.py DAG_ID 2026-01-05T00:00:00+00:00``.
Prints ``ELAPSED <seconds>`` (the DAG run alone, without start-up and parsing) and then
``RESULT <run_id> <state>`` on the last line.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

from airflow.utils.cli import get_bagged_dag


def main() -> None:
    dag_id, when = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    dag = get_bagged_dag(bundle_names=None, dag_id=dag_id, dagfile_path=None)
    started = time.perf_counter()
    run = dag.test(logical_date=when, run_after=when)
    elapsed = time.perf_counter() - started
    print(f"ELAPSED {elapsed:.6f}", flush=True)
    print(f"RESULT {run.run_id} {run.state}", flush=True)


if __name__ == "__main__":
    main()
