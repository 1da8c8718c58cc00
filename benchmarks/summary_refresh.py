"""Incremental summary refresh (issue 23): a refresh after 20 and after 1,000 new runs against a
full summary, on a 1,000-pipeline store and on the paper-scale store, SQLite and PostgreSQL.

Each store is a copy (the paper-scale one of `make bench-graphlets`' store, which stays as it
is). New runs are TFX-shaped runs written through the native store into existing pipelines, one
pipeline each. Printed per store: the full summary's time, each incremental refresh's time and
its ratio to the full one (goal: <= 5 % at paper scale, <= 2 s for 20 runs), the pipelines read
again, and on PostgreSQL the rows the refresh read from the store (pg_stat_database).

Run: ``make bench-summary`` (about 15 minutes with the paper-scale copies; about 35 GB of free
disk: the paper-scale stores, 19 GB on PostgreSQL and 13 GB on SQLite, and a copy of each in turn).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import psycopg2  # noqa: E402
from support.databases import PG, create_store_uri, drop_store, recreate_postgres_database  # noqa: E402
from support.tfx_store import RunPlan, TfxPipeline  # noqa: E402

from airflow_graphlets.simulate.run import simulate  # noqa: E402
from airflow_graphlets.store.connect import open_store  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from airflow_graphlets.summary.database import summary_engine  # noqa: E402
from airflow_graphlets.summary.incremental import read_state  # noqa: E402
from airflow_graphlets.summary.refresh import refresh_summary  # noqa: E402

PAPER_SQLITE = os.path.join(HERE, "results", "graphlets_bench_3000p_120d_s0.sqlite")
PAPER_PG = "graphlets_bench_3000p_120d_s0"


def rows_read(uri: str) -> int | None:
    """Rows PostgreSQL has returned and fetched for the store's database so far (None elsewhere)."""
    if not uri.startswith("postgresql"):
        return None
    conn = psycopg2.connect(dbname="postgres", **PG)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT tup_returned + tup_fetched FROM pg_stat_database WHERE datname = %s",
                           (uri.rsplit("/", 1)[1],))
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


def add_runs(uri: str, count: int, offset: int) -> float:
    """Write ``count`` new TFX runs, one into each of ``count`` existing pipelines; seconds taken."""
    store = open_store(parse_store_uri(uri))
    names = sorted(c.name for c in store.get_contexts_by_type("pipeline"))
    began = time.perf_counter()
    for n in range(count):
        name = names[(offset + n) % len(names)]
        TfxPipeline(store, name).run(f"bench-{offset + n}", RunPlan(span=10_000 + offset + n, window=1))
    store.close()
    return time.perf_counter() - began


def measure(label: str, uri: str, work: str) -> None:
    config = parse_store_uri(uri)
    engine = summary_engine(f"sqlite:///{work}/summary-{label}.sqlite")
    full = refresh_summary(config, engine, full=True)
    print(f"\n== {label} ==\nfull summary: {full.graphlets:,} graphlets of {full.pipelines:,} pipelines in "
          f"{full.seconds:.1f} s", flush=True)
    offset = 0
    for count in (20, 1000):
        written = add_runs(uri, count, offset)
        offset += count
        before = rows_read(uri)
        time.sleep(1)  # let PostgreSQL's statistics collector catch up with the writes
        began = rows_read(uri)
        result = refresh_summary(config, engine)
        time.sleep(1)
        after = rows_read(uri)
        load = f", {after - began:,} rows read from the store" if before is not None else ""
        kind = "refresh, read whole (most pipelines changed)" if result.full else "incremental refresh"
        how = read_state(engine).get("last_refresh", "")
        print(f"after {count:>5} new runs (written in {written:.1f} s): {kind} {result.seconds:.2f} s "
              f"= {100 * result.seconds / full.seconds:.1f} % of the full one, {result.pipelines:,} pipelines read "
              f"again ({how}){load}", flush=True)
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1000,paper", help="comma-separated: 1000 and/or paper")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.join(HERE, "results")) as work:
        for scale in args.scales.split(","):
            for backend in args.backends.split(","):
                uri = _store(scale, backend, work)
                try:
                    measure(f"{backend}, {scale} pipelines" if scale != "paper" else f"{backend}, paper scale", uri,
                            work)
                finally:
                    if backend == "postgresql":
                        drop_store(uri)
                    else:
                        os.remove(parse_store_uri(uri).path)
    return 0


def _store(scale: str, backend: str, work: str) -> str:
    if scale != "paper":
        uri = create_store_uri(backend, work)
        simulate(parse_store_uri(uri), pipelines=int(scale), days=120, seed=0)
        return uri
    if backend == "sqlite":
        copy = os.path.join(work, "paper-copy.sqlite")
        shutil.copyfile(PAPER_SQLITE, copy)
        return f"sqlite:///{copy}"
    return recreate_postgres_database("graphlets_bench_summary_copy", template=PAPER_PG)


if __name__ == "__main__":
    sys.exit(main())
