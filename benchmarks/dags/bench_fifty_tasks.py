"""Benchmark DAG: 50 trivial tasks in a chain of 10 layers of 5."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def bench_fifty_tasks():
    @task
    def noop(i: int) -> int:
        return i

    previous = []
    for layer in range(10):
        current = [noop.override(task_id=f"t{layer}_{i}")(i) for i in range(5)]
        for upstream in previous:
            upstream >> current
        previous = current


bench_fifty_tasks()
