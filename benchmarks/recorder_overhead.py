"""Recorder overhead: added time per task, and the recorder's own time per execution.

1. Whole-DAG slowdown: a DAG of 50 trivial tasks run by real Airflow (``dag.test``, in one
   process, tasks one after another) with the plugin recording and with it disabled
   (``[graphlets] enabled = False``), alternating, in the same run of this script. The figure is
   the ratio of median DAG-run times (the run alone, without start-up and DAG parsing).
2. The recorder's own time per execution on SQLite and PostgreSQL: the start and end records of
   one task try written into an open MLMD store (``Writer.write``), p50 and p99 over 500
   executions of a TFX-shaped pipeline (ingest, statistics, train on a 7-span window, evaluate,
   push); and per record as a finishing task sees it (spool write, wake the flusher, wait until
   written), p50 and p99.

3. The writer through the native store against ml-metadata's client (issue 21's before and after):
   the same 500 executions into a fresh store each round, rounds alternating, ratio of medians.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/recorder_overhead.py``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from support.airflow_env import AirflowEnv  # noqa: E402
from support.databases import create_store_uri, drop_store  # noqa: E402

from airflow_graphlets.recorder.records import ArtifactRecord, InputRef, RunState, TaskRunRecord  # noqa: E402
from airflow_graphlets.recorder.recorder import Recorder  # noqa: E402
from airflow_graphlets.recorder.spool import Spool  # noqa: E402
from airflow_graphlets.recorder.writer import Writer  # noqa: E402
from airflow_graphlets.store.connect import open_store  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", "500"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def dag_slowdown(work: str) -> None:
    env = AirflowEnv(home=os.path.join(work, "airflow"), dags_folder=os.path.join(HERE, "dags"))
    env.migrate()
    store_uri = create_store_uri("sqlite", work)
    times: dict[str, list[float]] = {"with plugin": [], "without plugin": []}

    def run(label: str, day: int) -> float:
        result = env.run_dag(
            "bench_fifty_tasks",
            f"2026-01-{day:02d}T00:00:00+00:00",
            store_uri=store_uri,
            spool_dir=os.path.join(work, "spool"),
            # The production default: the flusher a worker starts stays for the tasks that follow.
            env={"AIRFLOW__GRAPHLETS__ENABLED": str(label == "with plugin"),
                 "AIRFLOW__GRAPHLETS__FLUSHER_IDLE_SECONDS": "300"},
        )
        assert result.state == "success", result.output[-2000:]
        return result.elapsed_seconds

    cold = run("with plugin", 28)  # starts the spool's flusher, once per worker and idle period
    for repeat in range(REPEATS):
        for label in ("without plugin", "with plugin"):
            times[label].append(run(label, repeat + 1))
    recorded = len(open_store(parse_store_uri(store_uri)).get_executions())
    base, rec = statistics.median(times["without plugin"]), statistics.median(times["with plugin"])
    print("== Whole-DAG slowdown: 50 trivial tasks, dag.test, SQLite MLMD store ==")
    for label, values in times.items():
        print(f"  {label:15s} runs: {', '.join(f'{v:.2f}s' for v in values)}  median {statistics.median(values):.2f}s")
    print(f"  per task: {base / 50 * 1000:.1f} ms without, {rec / 50 * 1000:.1f} ms with "
          f"(+{(rec - base) / 50 * 1000:.1f} ms)")
    print(f"  ratio with/without: {rec / base:.3f}  (slowdown {100 * (rec / base - 1):+.1f}%, target <= +5%)")
    fastest = min(times["with plugin"]) / min(times["without plugin"])
    print(f"  ratio of the fastest runs (least disturbed by other load): {fastest:.3f}"
          f"  (slowdown {100 * (fastest - 1):+.1f}%)")
    print(f"  first run with the plugin, which starts the flusher: {cold:.2f}s")
    print(f"  executions recorded: {recorded} (expected {50 * (REPEATS + 1)})")


PIPELINE = (
    # (task id, component kind, inputs as (key, how), outputs as (key, type, properties))
    ("example_gen", "ExampleGen", (), (("examples", "Examples", "span"),)),
    ("statistics_gen", "StatisticsGen", (("examples", "example_gen"),), (("statistics", "ExampleStatistics", "span"),)),
    ("trainer", "Trainer", (("examples", "window"),), (("model", "Model", None),)),
    ("evaluator", "Evaluator", (("model", "trainer"),), (("blessing", "ModelBlessing", "blessed"),)),
    ("pusher", "Pusher", (("model", "trainer"), ("model_blessing", "evaluator")), (("pushed_model", "PushedModel", "pushed"),)),
)


def records(count: int, dag_id: str):
    """Start and end records of ``count`` task tries of a TFX-shaped pipeline, five tasks a run:
    ingest a span, analyse it, train on a rolling window of seven spans, evaluate, push."""
    made = 0
    run = 0
    while made < count:
        run_id = f"scheduled__{run:05d}"
        for task_id, kind, inputs, outputs in PIPELINE:
            refs = []
            for key, how in inputs:
                if how == "window":
                    refs.append(InputRef(key=key, by="spans", dag_id=dag_id, type_name="Examples",
                                         span_min=max(0, run - 6), span_max=run))
                else:
                    source_key = {"example_gen": "examples", "trainer": "model", "evaluator": "blessing"}[how]
                    refs.append(InputRef(key=key, by="task_output", dag_id=dag_id, run_id=run_id, task_id=how,
                                         output_key=source_key))
            arts = []
            for key, type_name, prop in outputs:
                props = {"span": {"span": run, "version": 0, "split_names": ["train", "eval"]},
                         "blessed": {"blessed": run % 3 != 0}, "pushed": {"pushed": run % 3 != 0}}.get(prop, {})
                if type_name == "ExampleStatistics":
                    props = {"span": run}
                arts.append(ArtifactRecord(key, type_name, f"/{dag_id}/{run_id}/{key}", props))
            start = TaskRunRecord(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=1, map_index=-1,
                                  state=RunState.RUNNING, component_kind=kind, operator_class="bench.Op",
                                  start_time_ms=1_700_000_000_000 + run * 1000, code_hash="c0de",
                                  parameters_hash="p4r4", dag_structure_hash="s7ruc", pool="default_pool",
                                  queue="default", hostname="bench")
            yield start, start.with_state(RunState.SUCCESS, end_time_ms=1_700_000_000_500 + run * 1000,
                                          inputs=tuple(refs), outputs=tuple(arts))
            made += 1
            if made == count:
                return
        run += 1


def write_cost(uri: str, client: str) -> list[float]:
    """Milliseconds per execution (its start and end records) written by ``Writer.write``
    through the native store or ml-metadata's client, each into its own fresh store."""
    config = parse_store_uri(uri)
    if client == "native":
        store = open_store(config)
    else:
        from airflow_graphlets.store.mlmd_client import ClientStore

        store = ClientStore(config)
    writer = Writer(store)
    per_execution = []
    for start, end in records(EXECUTIONS, "bench"):
        began = time.perf_counter()
        writer.write(start)
        writer.write(end)
        per_execution.append((time.perf_counter() - began) * 1000)
    return per_execution


def native_against_client(backend: str, work: str) -> None:
    """Issue 21's figure: the native writer against ml-metadata's client (before), one run,
    alternating rounds so both see the same machine load."""
    try:
        import ml_metadata  # noqa: F401
    except ImportError:
        print(f"== Native store vs ml-metadata's client, {backend}: skipped (ml-metadata not installed) ==")
        return
    costs: dict[str, list[float]] = {"mlmd-client": [], "native": []}
    for _ in range(REPEATS):
        for client in costs:
            uri = create_store_uri(backend, work)
            try:
                costs[client].append(statistics.median(write_cost(uri, client)))
            finally:
                drop_store(uri)
    before, after = statistics.median(costs["mlmd-client"]), statistics.median(costs["native"])
    print(f"== Writer time per execution, {backend}: native store vs ml-metadata's client "
          f"({EXECUTIONS} executions x {REPEATS} rounds, median of round medians) ==")
    print(f"  ml-metadata client {before:6.2f} ms   native {after:6.2f} ms   ratio native/client {after / before:.3f}"
          "   (target <= 1.10)")


def recorder_latency(backend: str, work: str) -> None:
    uri = create_store_uri(backend, work)
    try:
        per_execution = write_cost(uri, "native")

        recorder = Recorder(parse_store_uri(uri), Spool(os.path.join(work, f"spool-{backend}")), record_timeout=10)
        flush = []
        for start, end in records(100, "bench_flush"):
            for record in (start, end):
                began = time.perf_counter()
                recorder.record(record, wait=True)
                flush.append((time.perf_counter() - began) * 1000)
        target = {"sqlite": 5, "postgresql": 15}[backend]
        print(f"== Recorder time per execution, {backend} ({EXECUTIONS} executions, start + end records) ==")
        print(f"  store writes   p50 {percentile(per_execution, 50):6.2f} ms   p99 {percentile(per_execution, 99):6.2f} ms"
              f"   (target p50 <= {target} ms)")
        print(f"  whole flush    p50 {percentile(flush, 50):6.2f} ms   p99 {percentile(flush, 99):6.2f} ms"
              "   per record, as a finishing task waits for it (spool, wake flusher, written)")
    finally:
        drop_store(uri)


def main() -> None:
    parts = sys.argv[1:] or ["latency", "dag"]
    with tempfile.TemporaryDirectory() as work:
        if "latency" in parts:
            recorder_latency("sqlite", work)
            recorder_latency("postgresql", work)
        if "latency" in parts or "native" in parts:
            native_against_client("sqlite", work)
            native_against_client("postgresql", work)
        if "dag" in parts:
            dag_slowdown(work)


if __name__ == "__main__":
    main()
