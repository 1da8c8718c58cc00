"""Graphlet extraction time as the store grows: it stays linear.

Writes simulated stores of growing size (the paper-calibrated profile, 120 days, seed 0) and
times the bulk reader's extraction of every graphlet of each, best of two. Linear means the
time per thousand graphlets stays flat as the store grows: the figure printed is that time at
each size and its ratio to the smallest store's.

Run: ``make bench-linearity`` or ``.venv/bin/python benchmarks/extraction_linearity.py
[--backend sqlite|postgresql] [--sizes 100,200,400,800]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from airflow_graphlets.graphlets.bulk_reader import read_graphlets  # noqa: E402
from airflow_graphlets.simulate.run import simulate  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from support.databases import create_store_uri, drop_store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--sizes", default="100,200,400,800", help="pipelines per store")
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=results) as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            uri = create_store_uri(args.backend, tmp)
            try:
                report = simulate(parse_store_uri(uri), size, args.days, 0)
                best = float("inf")
                for _ in range(2):
                    began = time.perf_counter()
                    graphlets = len(read_graphlets(parse_store_uri(uri)).graphlets)
                    best = min(best, time.perf_counter() - began)
                rows.append((size, report.executions, graphlets, best))
                print(f"  {size} pipelines: {graphlets:,} graphlets, {report.executions:,} executions, "
                      f"extraction {best:.2f} s", flush=True)
            finally:
                drop_store(uri)
    base = rows[0][3] / rows[0][2] * 1000
    print(f"\n{'pipelines':>10}{'graphlets':>12}{'executions':>13}{'seconds':>10}{'ms / 1k graphlets':>20}{'vs smallest':>13}")
    for size, executions, graphlets, seconds in rows:
        per = seconds / graphlets * 1e6
        print(f"{size:>10}{graphlets:>12,}{executions:>13,}{seconds:>10.2f}{per:>20.1f}{per / base / 1000:>12.2f}x")
    print("linear: the time per thousand graphlets stays flat (a ratio near 1.0x at every size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
