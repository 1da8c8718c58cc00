"""Sustained recording throughput from 8 concurrent writers on PostgreSQL, and nothing lost.

Eight processes stand for eight worker machines: each has its own spool and records task tries
the way tasks do (``Recorder.record``: spool the record, wake the machine's flusher, move on),
start and end records of a TFX-shaped pipeline of its own (ingest, statistics, train on a
7-span window, evaluate, push). The clock runs from the first record spooled until every spool
is empty; then the store is checked: exactly one execution per task try, each COMPLETE, with
its events. Target: >= 200 executions/s, zero lost or duplicated.

Run: ``make bench-writers`` or ``.venv/bin/python benchmarks/concurrent_writers.py [--writers 8]
[--executions 400] [--backend postgresql]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

import sqlalchemy as sa  # noqa: E402
from airflow_graphlets.recorder.recorder import Recorder  # noqa: E402
from airflow_graphlets.recorder.spool import Spool  # noqa: E402
from airflow_graphlets.store.connect import open_store  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from recorder_overhead import records  # noqa: E402
from support.databases import create_store_uri, drop_store  # noqa: E402


def _drainer(uri: str, spool_dir: str, go) -> None:
    from airflow_graphlets.recorder.replay import replay_spool

    go.wait()
    replay_spool(Spool(spool_dir), parse_store_uri(uri))


def _writer(uri: str, spool_dir: str, dag_id: str, executions: int, go) -> None:
    recorder = Recorder(parse_store_uri(uri), Spool(spool_dir), flusher_idle_seconds=30)
    go.wait()
    for start, end in records(executions, dag_id):
        recorder.record(start, wait=False)
        recorder.record(end, wait=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--executions", type=int, default=400, help="task tries per writer")
    parser.add_argument("--backend", default="postgresql", choices=("postgresql", "mysql", "sqlite"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        uri = create_store_uri(args.backend, work)
        try:
            open_store(parse_store_uri(uri))  # the schema exists, as it does once anything was recorded
            spools = [os.path.join(work, f"machine-{i}") for i in range(args.writers)]
            context = multiprocessing.get_context("spawn")
            go = context.Event()
            writers = [context.Process(target=_writer, args=(uri, spools[i], f"bench_writer_{i}", args.executions, go))
                       for i in range(args.writers)]
            for w in writers:
                w.start()
            time.sleep(3)  # every writer imported and waiting
            began = time.perf_counter()
            go.set()
            for w in writers:
                w.join()
            spooled = time.perf_counter() - began
            while any(Spool(s).pending() for s in spools):
                time.sleep(0.05)
            elapsed = time.perf_counter() - began
            total = args.writers * args.executions
            print(f"{args.writers} writers x {args.executions} task tries on {args.backend}: all spooled in "
                  f"{spooled:.1f} s, all in MLMD after {elapsed:.1f} s")
            print(f"sustained throughput: {total / elapsed:,.0f} executions/s (target >= 200)")
            _check(uri, args.writers, args.executions, "bench_writer_")
        finally:
            drop_store(uri)
        # The MLMD side alone: eight machines' spools already full (an outage just ended), their
        # eight flushers writing into the store at once.
        uri = create_store_uri(args.backend, work)
        try:
            open_store(parse_store_uri(uri))
            spools = [os.path.join(work, f"backlog-{i}") for i in range(args.writers)]
            for i, spool_dir in enumerate(spools):
                spool = Spool(spool_dir)
                for start, end in records(args.executions, f"bench_backlog_{i}"):
                    spool.append(start)
                    spool.append(end)
            context = multiprocessing.get_context("spawn")
            go = context.Event()
            drainers = [context.Process(target=_drainer, args=(uri, s, go)) for s in spools]
            for d in drainers:
                d.start()
            time.sleep(3)
            began = time.perf_counter()
            go.set()
            for d in drainers:
                d.join()
            elapsed = time.perf_counter() - began
            total = args.writers * args.executions
            print(f"\nbacklog of {total:,} task tries in {args.writers} spools, {args.writers} flushers writing at once: "
                  f"{elapsed:.1f} s, {total / elapsed:,.0f} executions/s into MLMD")
            _check(uri, args.writers, args.executions, "bench_backlog_")
        finally:
            drop_store(uri)
    return 0


def _check(uri: str, writers: int, executions: int, prefix: str) -> None:
    engine = sa.create_engine(parse_store_uri(uri).sqlalchemy_url())
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT external_id, last_known_state FROM Execution WHERE external_id LIKE :prefix"),
            {"prefix": f"airflow:{prefix}%"}).all()
        events = conn.execute(sa.text("SELECT COUNT(*) FROM Event")).scalar_one()
    engine.dispose()
    ids = [r[0] for r in rows]
    complete = sum(1 for r in rows if r[1] == 3)
    expected = writers * executions
    print(f"executions in the store: {len(ids):,} of {expected:,} task tries; distinct {len(set(ids)):,}; "
          f"COMPLETE {complete:,}; events {events:,}")
    lost, duplicated = expected - len(set(ids)), len(ids) - len(set(ids))
    print(f"lost {lost}, duplicated {duplicated}" + ("" if lost == duplicated == 0 else "  <-- FAILED"))


if __name__ == "__main__":
    sys.exit(main())
