"""Where the push predictor's ordering comes from: between pipelines, or within one.

A gate can save compute two ways: by skipping more in pipelines that rarely push (telling
pipelines apart), and by picking, inside a pipeline, the runs that will not push (telling runs
apart). This measures both on the real-outcome benchmark's store with the gate, over the replayed
half of its period, recorded outcomes (never skipping), the predictor trained on the first half
as ``graphlets replay`` trains it:

- the predictor's AUC over all replayed runs (pooled), and within each pipeline (mean over the
  pipelines with both outcomes, and weighted by their compute);
- the same for the latest-minus-deployed gap the DAG hands the gate (evaluation rows);
- a **rate oracle**: a policy told each pipeline's future push rate exactly, and nothing about
  which of its runs push. Skipping a pipeline's runs at random at a share ``f`` saves ``f`` of its
  unpushed runs' compute and loses ``f`` of its pushes, so the best shares fill a knapsack:
  pipelines in order of unpushed compute per push, each up to the share the guardrails allow
  (``max_consecutive_skips`` in a row, then one runs: ``k / (k + 1)``), until the pushes lost
  reach 10 % (or 7 %). The guardrails' exploration runs and first runs are not modelled (they
  would only lower it), nor is the closed loop. What it saves, as a share of the wasted compute,
  is about what telling pipelines apart perfectly gives; a gate beyond it tells runs apart too.

Run: ``.venv/bin/python benchmarks/real_outcomes/within_pipeline.py --seeds 1,2`` (the stores of
``benchmarks/prune_real_outcomes.py`` are reused, or made).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prune_real_outcomes import RESULTS, _store_path, benchmark  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

KEPT = (0.90, 0.93)


@dataclass
class Ordering:
    """How well one seed's predictor and gap signal order pushes, pooled and within pipelines."""

    seed: int
    runs: int
    pipelines_with_both_outcomes: int
    predictor_auc_pooled: float
    predictor_auc_within_mean: float
    predictor_auc_within_by_compute: float
    gap_auc_pooled: float
    gap_auc_within_mean: float
    rate_oracle_saved: dict[str, float]  # "<kept> kept, <cap>" -> share of wasted compute


def auc(pushed: np.ndarray, score: np.ndarray) -> float | None:
    """The ROC AUC of ``score`` for ``pushed`` over the rows where it is known; None without both outcomes."""
    known = np.isfinite(score)
    if known.sum() < 2 or len(set(pushed[known].tolist())) < 2:
        return None
    return float(roc_auc_score(pushed[known], score[known]))


def rate_oracle(unpushed_cost: np.ndarray, pushes: np.ndarray, kept: float, most: float) -> float:
    """The most compute random skips at per-pipeline shares (each at most ``most``) can save while
    keeping ``kept`` of the pushes: the fractional knapsack (module docstring)."""
    budget, used, saved = (1.0 - kept) * pushes.sum(), 0.0, 0.0
    for i in np.argsort(-(unpushed_cost / np.maximum(pushes, 1e-12))):
        share = most if pushes[i] == 0 else min(most, max(budget - used, 0.0) / pushes[i])
        saved += share * unpushed_cost[i]
        used += share * pushes[i]
    return saved


def measure(seed: int, pipelines: int) -> Ordering:
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, store_runs
    from airflow_graphlets.prune.features import NAMES
    from airflow_graphlets.prune.predictor import PushPredictor
    from airflow_graphlets.store.uri import parse_store_uri

    benchmark(seed, pipelines, fresh=False)  # makes the stores when they are not there yet
    config = parse_store_uri(f"sqlite:///{_store_path(os.path.join(RESULTS, f'seed-{seed}'), 'tfx+gate')}")
    extraction, inputs = read_graphlets(config, workers=1), Inputs.read(config)
    settings = PolicySettings()
    runs, matrix = store_runs(extraction, inputs)
    split = settings.evaluation_start(runs)
    past, replayed = runs.start < split, runs.start >= split
    probability = PushPredictor.fit(matrix[past], runs.pushed[past]).push_probability(matrix)
    gap = matrix[:, NAMES.index("latest_score_gap")]
    pushed = runs.pushed.astype(bool)

    within_p, within_gap, weights, unpushed_cost, pushes = [], [], [], [], []
    for pipeline in np.unique(runs.pipeline[replayed]):
        rows = replayed & (runs.pipeline == pipeline)
        unpushed_cost.append(float(runs.cost[rows & ~pushed].sum()))
        pushes.append(float((rows & pushed).sum()))
        by_p, by_gap = auc(pushed[rows], probability[rows]), auc(pushed[rows], gap[rows])
        if by_p is not None:
            within_p.append(by_p)
            weights.append(float(runs.cost[rows].sum()))
        if by_gap is not None:
            within_gap.append(by_gap)
    wasted = float(runs.waste_seconds[runs.waste_start >= split].sum())
    cap = settings.guardrails.max_consecutive_skips
    oracle = {}
    for kept in KEPT:
        for label, most in ((f"guardrails ({cap} skips in a row)", cap / (cap + 1)), ("no guardrail", 1.0)):
            oracle[f"{kept:.0%} kept, {label}"] = rate_oracle(np.asarray(unpushed_cost), np.asarray(pushes),
                                                              kept, most) / wasted
    return Ordering(seed, int(replayed.sum()), len(within_p), auc(pushed[replayed], probability[replayed]),
                    float(np.mean(within_p)), float(np.average(within_p, weights=weights)),
                    auc(pushed[replayed], gap[replayed]), float(np.mean(within_gap)), oracle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2", help="comma-separated benchmark seeds (default: the development seeds)")
    parser.add_argument("--pipelines", type=int, default=48)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers such as 1,2; got {args.seeds!r}")
    found = []
    for seed in seeds:
        o = measure(seed, args.pipelines)
        found.append(o)
        print(f"seed {seed}: {o.runs} replayed runs, {o.pipelines_with_both_outcomes} pipelines with both outcomes")
        print(f"   predictor AUC pooled {o.predictor_auc_pooled:.3f}, within a pipeline {o.predictor_auc_within_mean:.3f}"
              f" (by compute {o.predictor_auc_within_by_compute:.3f})")
        print(f"   latest - deployed gap AUC pooled {o.gap_auc_pooled:.3f}, within a pipeline {o.gap_auc_within_mean:.3f}")
        for label, saved in o.rate_oracle_saved.items():
            print(f"   rate oracle at {label}: saves {saved:.1%} of the wasted compute")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([asdict(o) for o in found], handle, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
