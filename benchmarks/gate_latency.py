"""The gate's decision time with a long history: issue 23 asks <= 50 ms p99 on PostgreSQL with 10,000 graphlets (issue 7: 100 ms).

For each backend: simulates one pipeline that trained 10,000 models (80 runs a day for 125
days; every graphlet is the deciding pipeline's own history, the worst case), adds a skip log of
2,000 earlier gate decisions and two operator overrides, trains the gate's predictor with
``graphlets train-predictor``, then times :func:`airflow_graphlets.prune.gate.decide` for the
pipeline's next run: warm (the same process deciding again and again, as a long-lived worker or
repeated tasks with the page cache warm) as p50/p99 over ``--decisions`` decisions, and cold (a new
Python process importing what the gate imports, as a task does) as the median of five. Also
prints the whole-history read the gate used before it read a window of recent runs, for the ratio.

Run: ``make bench-gate`` or ``.venv/bin/python benchmarks/gate_latency.py [--backend
sqlite|postgresql|both] [--graphlets N] [--decisions N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from airflow_graphlets.graphlets.bulk_reader import read_graphlets  # noqa: E402
from airflow_graphlets.prune.features import Candidate  # noqa: E402
from airflow_graphlets.prune.gate import GateSettings, decide  # noqa: E402
from airflow_graphlets.prune.overrides import ALLOW_SKIP, NEVER_SKIP, record_override  # noqa: E402
from airflow_graphlets.prune.policy import Guardrails  # noqa: E402
from airflow_graphlets.simulate.profile import Profile  # noqa: E402
from airflow_graphlets.simulate.run import simulate  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from support.databases import create_store_uri, drop_store  # noqa: E402

PIPELINE = "ct_pipeline_0"
GATE = "graphlet_gate"
DAYS = 125
TARGET_P99_MS = 50.0  # issue 23 (issue 7 asked 100 ms)

_COLD = """
import sys, time
began = time.perf_counter()
from airflow_graphlets.prune.features import Candidate
from airflow_graphlets.prune.gate import GateSettings, decide
from airflow_graphlets.prune.policy import Guardrails
from airflow_graphlets.store.uri import parse_store_uri
outcome = decide(parse_store_uri(sys.argv[1]), sys.argv[2], Candidate(float(sys.argv[3]), frozenset(range(
    int(sys.argv[4]) - 5, int(sys.argv[4]) + 1)), None, None, 0.4), GateSettings(sys.argv[5],
    guardrails=Guardrails(exploration=0.0)), gate_task_id=sys.argv[6])
print(outcome.seconds, time.perf_counter() - began, outcome.decision.reason)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--graphlets", type=int, default=10_000, help="models the pipeline trained")
    parser.add_argument("--decisions", type=int, default=300, help="warm decisions timed")
    parser.add_argument("--store", help="time an existing store this benchmark wrote (kept with --keep), not a new one")
    parser.add_argument("--keep", action="store_true", help="keep the stores written (their URIs are printed)")
    parser.add_argument("--profile", action="store_true", help="print where the warm decisions' time goes (cProfile)")
    args = parser.parse_args()
    if args.store:
        with tempfile.TemporaryDirectory() as tmp:
            _run(parse_store_uri(args.store).backend, args.store, tmp, args)
        return 0
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=results) as tmp:
        for backend in backends:
            uri = create_store_uri(backend, tmp)
            try:
                _run(backend, uri, tmp, args)
            finally:
                if args.keep:
                    print(f"kept: {uri}")
                else:
                    drop_store(uri)
    return 0


def _run(backend: str, uri: str, tmp: str, args: argparse.Namespace) -> None:
    config = parse_store_uri(uri)
    print(f"\n== {backend}: one pipeline, {args.graphlets:,} graphlets of history ==", flush=True)
    profile = dataclasses.replace(Profile.paper(), runs_per_day_median=args.graphlets / DAYS, runs_per_day_sigma=0.0,
                                  whole_period_share=1.0)
    began = time.perf_counter()
    if not args.store:
        simulate(config, pipelines=1, days=DAYS, seed=3, profile=profile)
        _write_skip_log(config, 2_000)
        record_override(config, PIPELINE, NEVER_SKIP, by="bench", reason="launch")
        record_override(config, PIPELINE, ALLOW_SKIP, by="bench")
        _settle(uri)
    predictor = os.path.join(tmp, f"{backend}-predictor.npz")
    subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", "train-predictor", "--store", uri, "--out",
                    predictor], check=True, capture_output=True, text=True)
    extraction = read_graphlets(config)
    graphlets = len(extraction.graphlets)
    print(f"store: {graphlets:,} graphlets, {len(extraction.executions.ids):,} executions, 2,000 logged "
          f"decisions, written in {time.perf_counter() - began:.0f} s")

    # The run about to train: after the last one, on the next span.
    now = float(np.nanmax(extraction.graphlets.end)) + 3600.0
    newest_span = int(extraction.graphlets.lists["spans"].values.max()) + 1
    # The whole store's graphlets were read only to set the scene: a gate's process holds no such
    # thing, and its objects would make every full garbage collection of the timed loop slower.
    del extraction
    gc.collect()
    candidate = Candidate(now, frozenset(range(newest_span - 5, newest_span + 1)), None, None, 0.4)
    settings = GateSettings(predictor, guardrails=Guardrails(exploration=0.0))
    first = decide(config, PIPELINE, candidate, settings, gate_task_id=GATE)
    assert not first.decision.reason.startswith("fail open"), first.decision.reason
    times = []
    for _ in range(args.decisions):
        start = time.perf_counter()
        decide(config, PIPELINE, candidate, settings, gate_task_id=GATE)
        times.append((time.perf_counter() - start) * 1000)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        from airflow_graphlets.prune.gate import _decide_or_fail_open  # decide()'s body, in this thread

        for _ in range(50):
            _decide_or_fail_open(config, PIPELINE, candidate, settings, None, GATE, None)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(f"decision: {first.decision.reason}")
    print(f"warm decide(), {args.decisions} decisions: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(times):.1f} ms "
          f"({verdict} the target p99 <= {TARGET_P99_MS:.0f} ms)")

    cold = []
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", _COLD, uri, PIPELINE, str(now), str(newest_span), predictor, GATE],
                              check=True, capture_output=True, text=True, env={**os.environ, "GLOG_minloglevel": "2"})
        decision_s, process_s, _ = done.stdout.strip().split(" ", 2)
        cold.append((float(decision_s) * 1000, float(process_s) * 1000))
    print(f"cold, a new process (median of 5): decide() {statistics.median(c[0] for c in cold):.0f} ms, "
          f"with the gate's imports {statistics.median(c[1] for c in cold):.0f} ms")

    whole = []
    for _ in range(3):  # the read the gate made before it used a window: the whole pipeline
        start = time.perf_counter()
        read_graphlets(config, [PIPELINE], workers=1)
        whole.append((time.perf_counter() - start) * 1000)
    print(f"whole-history read of the pipeline (best of 3): {min(whole):.0f} ms = {min(whole) / p50:.0f}x "
          "the warm decision's p50")


def _settle(uri: str) -> None:
    """A PostgreSQL store just bulk-written, vacuumed and analysed now: as a store that has run
    for months would be, and so that autovacuum does not take one of the machine's two cores
    while the decisions are timed (it did, right after the write: p99 67 ms against 50)."""
    if not uri.startswith("postgresql"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(parse_store_uri(uri).sqlalchemy_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def _write_skip_log(config, count: int) -> None:
    """``count`` earlier decisions of the pipeline's gate, as the recorder writes them: executions
    in the gate's node and pipeline contexts with the decision as custom properties. Each says
    "run", as every simulated run trained (the gate sizes the window it reads by the share of its
    latest decisions that ran; until 2026-12-07 this log said "skip" for two in three)."""
    from airflow_graphlets.store.connect import open_store
    from airflow_graphlets.store.identity import node_context_name
    from airflow_graphlets.store.types import TypeRegistry
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = open_store(config)
    types = TypeRegistry(store)
    node = pb.Context(type_id=types.context_type("node"), name=node_context_name(PIPELINE, GATE))
    [node_id] = store.put_contexts([node])
    [pipeline] = [c for c in store.get_contexts_by_type("pipeline") if c.name == PIPELINE]
    gate_type = types.execution_type("airflow_graphlets.components.GraphletGate")
    for start in range(0, count, 500):
        executions = []
        for i in range(start, min(start + 500, count)):
            execution = pb.Execution(type_id=gate_type, last_known_state=pb.Execution.COMPLETE)
            p = execution.custom_properties
            p["task_id"].string_value = GATE
            p["start_epoch_seconds"].double_value = 1.7e9 + i * 60
            p["graphlets_decision"].string_value = "run"
            p["graphlets_probability"].double_value = 0.8
            p["graphlets_reason"].string_value = "predicted push probability 0.80 >= 0.35"
            p["graphlets_policy_version"].string_value = "predictor-v1"
            executions.append(execution)
        ids = store.put_executions(executions)
        store.put_attributions_and_associations(
            [], [pb.Association(context_id=c, execution_id=e) for e in ids for c in (node_id, pipeline.id)])


if __name__ == "__main__":
    sys.exit(main())
