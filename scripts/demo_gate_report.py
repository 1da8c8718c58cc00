"""What the graphlet gates did in the demo's gated days: runs skipped, training compute saved,
pushes kept.

Whether a skipped run would have pushed is measured, not guessed: its candidate is trained again,
offline, with the same code on the same spans (``ct_pipelines.trainers.fit_candidate``), and
evaluated against the model that was deployed when the run was skipped, with the pipeline's own
evaluator. A skipped run's training compute is the median of what the pipeline's trained runs
spent on the training branch (Transform, trainer, evaluator, pusher).

Usage: ``python scripts/demo_gate_report.py --store sqlite:///…/mlmd.sqlite --since 2026-01-11`` with ``AIRFLOW_HOME``
(where the pipelines keep their spans and models) set as for the backfill.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "dags"))

from ct_pipelines import components  # noqa: E402
from ct_pipelines.pipelines import data_dir, pipeline_named, span_of  # noqa: E402
from ct_pipelines.trainers import fit_candidate  # noqa: E402

BRANCH = ("Transform", "Trainer", "Evaluator", "Pusher")


@dataclass
class Tally:
    """One DAG's gated runs."""

    decided: int = 0
    skipped: int = 0
    forced: int = 0  # runs the guardrails made train although the predictor said skip
    pushes: int = 0  # pushes the runs that trained made
    skipped_pushes: int = 0  # skipped runs that would have pushed
    spent_unpushed: float = 0.0  # training-branch seconds of trained runs that did not push
    saved: float = 0.0  # estimated training-branch seconds of skipped runs that would not have pushed

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def main() -> int:
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.graphlets.clock import on_clock
    from airflow_graphlets.prune.decisions import read_all_decisions
    from airflow_graphlets.store.uri import parse_store_uri

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="the demo's MLMD store URI")
    parser.add_argument("--since", required=True, type=dt.date.fromisoformat,
                        help="the first logical date of the gated days (YYYY-MM-DD)")
    args = parser.parse_args()
    config = parse_store_uri(args.store)
    extraction = on_clock(read_graphlets(config), "logical")
    decisions = read_all_decisions(config)
    total = Tally()
    print(f"{'pipeline':<22} {'gated':>5} {'skipped':>7} {'forced':>6} {'pushes':>6} {'kept':>9} {'training compute saved':>24}")
    for dag_id in sorted(decisions):
        gated = [d for d in decisions[dag_id] if _logical_day(d.run_id) >= args.since]
        if not gated:
            continue
        tally = _tally(dag_id, gated, extraction)
        total.add(tally)
        print(_line(dag_id, tally))
    if total.decided == 0:
        print(f"no gate decided a run from {args.since} on")
        return 0
    print(_line("all", total))
    print(f"\nThe gates skipped {total.skipped} of {total.decided} runs and kept {_kept(total)} of the pushes; "
          f"they avoided {_share(total):.0%} of the training compute that would have gone to models never pushed "
          f"({_duration(total.saved)} of {_duration(total.saved + total.spent_unpushed)}).")
    return 0


def _tally(dag_id: str, gated, extraction) -> Tally:
    g = extraction.graphlets
    pipeline = pipeline_named(dag_id)
    p = g.pipelines.index(dag_id)
    rows = np.flatnonzero(g.pipeline == p)
    branch = [g.kinds.index(k) for k in BRANCH if k in g.kinds]
    cost = g.cost_by_kind_micros[:, branch].sum(axis=1) / 1e6
    by_run = {str(g.run[r]).split(".", 1)[1]: r for r in rows if g.run[r]}
    typical = float(np.median(cost[rows])) if len(rows) else 0.0
    pushes = sorted((_logical_day(run), run) for run, r in by_run.items() if np.isfinite(g.pushed_at[r]))
    tally = Tally()
    for decision in gated:
        tally.decided += 1
        if decision.decision == "run":
            tally.forced += decision.reason.startswith("guardrail:")
            row = by_run.get(decision.run_id)
            if row is None:
                continue
            if np.isfinite(g.pushed_at[row]):
                tally.pushes += 1
            else:
                tally.spent_unpushed += float(cost[row])
            continue
        tally.skipped += 1
        if _would_push(pipeline, decision, pushes):
            tally.skipped_pushes += 1
        else:
            tally.saved += typical
    return tally


def _would_push(pipeline, decision, pushes) -> bool:
    """Train the skipped run's candidate again and evaluate it against the model deployed then."""
    day = _logical_day(decision.run_id)
    span = span_of(day)
    root = data_dir(pipeline.dag_id)
    release = pipeline.release_on(day)
    transform = None
    if release.transform:
        _, paths = components.window(os.path.join(root, "examples"), span, pipeline.window)
        transform = components.fitted_transform(paths)
    candidate = fit_candidate(pipeline.dag_id, span, release.trainer, transform)
    before = [run for pushed_day, run in pushes if pushed_day < day]  # the deployed model: the last push before
    baseline = None
    if before:
        served = os.path.join(root, "serving", components.safe_name(before[-1]), "model.pkl")
        baseline = components.load_model(served)
    verdict = components.evaluate(candidate, baseline, os.path.join(root, "examples", f"span-{span}.npz"),
                                  threshold=pipeline.threshold, margin=pipeline.margin)
    return verdict.blessed


def _logical_day(run_id: str) -> dt.date:
    """The logical date of a backfill run id (``backfill__2026-01-14T00:00:00+00:00``)."""
    return dt.datetime.fromisoformat(run_id.split("__", 1)[1]).date()


def _kept(t: Tally) -> str:
    would = t.pushes + t.skipped_pushes
    return f"{t.pushes}/{would} ({t.pushes / would:.0%})" if would else "0/0"


def _share(t: Tally) -> float:
    wasted = t.saved + t.spent_unpushed
    return t.saved / wasted if wasted else 0.0


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _line(name: str, t: Tally) -> str:
    saved = f"{_duration(t.saved)} ({_share(t):.0%})"
    return f"{name:<22} {t.decided:>5} {t.skipped:>7} {t.forced:>6} {t.pushes:>6} {_kept(t):>9} {saved:>24}"


if __name__ == "__main__":
    sys.exit(main())
