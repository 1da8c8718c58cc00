"""``graphlets simulate`` at paper scale: write throughput, and the generated store beside the paper.

For each backend: writes 3,000 pipelines over 120 days (seed 0) into a new store with
``graphlets simulate`` (the whole command, timed), prints executions written per second, then
analyses the store (``graphlets analyze``'s bulk reader) and prints its headline figures next to
the paper's (Xin et al., SIGMOD 2021; ``../shared/paper.md``), so anyone can see how close the
default profile's calibration is.

Run: ``make bench-simulate`` or ``.venv/bin/python benchmarks/simulate_throughput.py [--backend
sqlite|postgresql|postgresql-scratch|both] [--pipelines N] [--days D]``. Needs about 15 GB per
backend at full size. ``postgresql-scratch`` writes into a PostgreSQL server the benchmark starts
itself with the settings docs/simulate.md suggests for a server that holds simulated histories
(WAL kept to what a crash needs, no forced checkpoints; fsync stays on); ``postgresql`` uses the
machine's server as it is configured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from airflow_graphlets.graphlets.analyses import analyze  # noqa: E402
from airflow_graphlets.graphlets.bulk_reader import read_graphlets  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from support.databases import create_store_uri, drop_store  # noqa: E402

# What the paper reports (../shared/paper.md); None where it gives no single figure.
PAPER = {
    "pipelines": 3000,
    "trained models (graphlets)": 450_000,
    "period (days)": 120,
    "graphlets that do not push": "over 30%",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "postgresql-scratch", "both"), default="both")
    parser.add_argument("--pipelines", type=int, default=3000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the stores (default: drop them)")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = os.path.join(HERE, "results")  # on the project's disk, not a small /tmp
    os.makedirs(results, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=results) as tmp:
        for backend in backends:
            if backend == "postgresql-scratch":
                _run_on_scratch_server(args)
                continue
            uri = create_store_uri(backend, tmp)
            try:
                _run(backend, uri, args)
            finally:
                if not args.keep:
                    drop_store(uri)
    return 0


# A server that holds only simulated histories (docs/simulate.md): what a crash needs of the WAL
# and no more (a new table's COPY in the transaction that created or truncated it writes none),
# checkpoints by time rather than forced every gigabyte of WAL. Durable: fsync stays on.
SCRATCH_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "32GB",
                    "checkpoint_timeout": "30min", "shared_buffers": "1GB"}


def _run_on_scratch_server(args: argparse.Namespace) -> None:
    from support.postgres_server import PostgresServer

    server = PostgresServer(settings=SCRATCH_SETTINGS)  # in the system's temporary folder, as postgres
    try:
        server.start()
        _run("postgresql (scratch server: " + ", ".join(f"{k}={v}" for k, v in SCRATCH_SETTINGS.items()) + ")",
             server.create_database("graphlets_simulated"), args)
    finally:
        server.remove()


def _run(backend: str, uri: str, args: argparse.Namespace) -> None:
    print(f"\n== {backend}: {args.pipelines} pipelines x {args.days} days (seed {args.seed}) ==", flush=True)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "airflow_graphlets.cli", "simulate", "--store", uri, "--pipelines", str(args.pipelines),
         "--days", str(args.days), "--seed", str(args.seed), "--quiet"],
        capture_output=True, text=True, check=True,
    )
    seconds = time.perf_counter() - began
    print(done.stdout.strip().splitlines()[-1])
    print(f"whole command {seconds:.0f} s (target at paper scale: <= 600 s)")
    extraction = read_graphlets(parse_store_uri(uri))
    analysis = analyze(extraction)
    totals, dist = analysis.totals, analysis.distributions
    finished = totals["pushed"] + totals["not_pushed"] + totals["failed"]
    simulated = {
        "pipelines": totals["pipelines"],
        "trained models (graphlets)": totals["graphlets"],
        "period (days)": round((analysis.last_time - analysis.first_time) / 86400, 1),
        "graphlets that do not push": f"{(finished - totals['pushed']) / finished:.1%}",
    }
    print(f"{'figure':<34}{'paper':>14}{'simulated':>14}")
    for name, value in simulated.items():
        paper = PAPER.get(name)
        print(f"{name:<34}{_fmt(paper):>14}{_fmt(value):>14}")
    for name, label in (("lifespan_days", "pipeline lifespan (days)"), ("models_per_day", "models per day"),
                        ("spans_per_graphlet", "spans per graphlet"), ("span_overlap", "overlap of consecutive graphlets"),
                        ("hours_between_pushes", "hours between pushes")):
        d = dist[name]
        print(f"{label:<34}{'-':>14}{'median ' + _fmt(d.median):>14}")
    print(f"{'waste share of graphlet compute':<34}{'-':>14}{totals['waste_share']:>14.1%}")
    _print_causes(extraction.graphlets)


def _print_causes(g) -> None:
    """The paper: no-push follows data and structure changes far more than code changes. Push
    rates of graphlets whose structure or trainer code changed since the pipeline's previous
    graphlet, against those where it did not (read from the store, not from the generator)."""
    import numpy as np

    from airflow_graphlets.graphlets.model import STATUSES

    finished = np.isin(g.status, [STATUSES.index("pushed"), STATUSES.index("not_pushed")])
    order = np.lexsort((g.trainer_id, g.pipeline))
    same = np.zeros(len(order), dtype=bool)
    same[1:] = g.pipeline[order][1:] == g.pipeline[order][:-1]
    pushed = (g.status == STATUSES.index("pushed"))[order]
    print("push rate of finished graphlets, by what changed since the previous graphlet:")
    for name, column in (("structure", g.structure_hash), ("trainer code", g.code_hash)):
        values = column[order]
        changed = np.zeros(len(order), dtype=bool)
        changed[1:] = same[1:] & (values[1:] != values[:-1])
        done = finished[order]
        for label, mask in ((f"{name} changed", changed & done), (f"{name} unchanged", ~changed & done)):
            rate = pushed[mask].mean() if mask.any() else float("nan")
            print(f"  {label:<32}{int(mask.sum()):>12,} graphlets  push rate {rate:6.1%}")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
