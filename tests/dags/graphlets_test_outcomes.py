"""Test DAG: every way a task can end — retried then succeeded, failed, upstream failed,
skipped by itself, and skipped by a short-circuit it never ran past."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

ROOT = os.environ.get("GRAPHLETS_TEST_DATA", "/tmp/graphlets-test-data")


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def graphlets_test_outcomes():
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky(**context):
        if context["ti"].try_number == 1:
            raise RuntimeError("first try fails on purpose")
        return "ok"

    @task(retries=0)
    def always_fails():
        import os

        from airflow.sdk import BaseHook

        # A secret the task read (Airflow's masker now knows it) ends up in the error's text.
        token = BaseHook.get_connection("graphlets_test_secret").password if os.environ.get(
            "AIRFLOW_CONN_GRAPHLETS_TEST_SECRET") else "none"
        raise ValueError(f"this task always fails (token {token})")

    @task
    def after_failure():
        return "never runs"

    @task
    def skips_itself():
        raise AirflowSkipException("nothing to do today")

    @task.short_circuit
    def gate():
        return False

    @task
    def gated():
        return "never runs"

    flaky()
    always_fails() >> after_failure()
    skips_itself()
    gate() >> gated()


graphlets_test_outcomes()
