"""Does the predictor's probability count the pushes its skips lose? On the real-outcome benchmark.

The default operating point keeps a share of pushes chosen on the training period (time-ordered
cross-validation, ``prune/operating_point.py``); on the replayed period it keeps more on some
seeds and fewer on others. If the probabilities were calibrated where the gate skips, a gate could
count the pushes it is losing as it goes (the sum of the skipped runs' probabilities) and steer
its threshold to the target. This replays the learned default as ``graphlets replay`` does (store
with the gate, closed loop) and prints, per seed: the target, the cross-validated share, the share
kept, and the probabilities summed against the pushes counted, among runs that ran and among runs
skipped; and what the exploration runs (would-be skips that trained anyway, a random share)
estimate of the pushes lost, as ``graphlets decisions --audit`` does (``prune/audit.py``).

Run: ``.venv/bin/python benchmarks/real_outcomes/calibration.py --seeds 1,2`` (the development
seeds; the stores of ``benchmarks/prune_real_outcomes.py --develop`` are reused, or made).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from airflow_graphlets.prune.policy import EXPLORATION, Guardrails, PredictedPush  # noqa: E402
from prune_real_outcomes import RESULTS, _store_path, benchmark  # noqa: E402
from real_outcomes.closed_loop import ClosedLoop  # noqa: E402


class _Recording(PredictedPush):
    """The learned policy, noting the (calibrated) probability of every run it decides."""

    def __init__(self, threshold, scoring, asked: list[int], seen: dict[int, float]) -> None:
        super().__init__(threshold, scoring)
        self.asked, self.seen = asked, seen

    def propose(self, features, probability):
        self.seen[self.asked[-1]] = probability
        return super().propose(features, probability)


class _NotingExploration(Guardrails):
    """The guardrails, noting which decided run their exploration let train."""

    def __init__(self, rails: Guardrails, asked: list[int], explored: set[int]) -> None:
        super().__init__(rails.min_history, rails.max_consecutive_skips, rails.max_hours_without_training,
                         rails.exploration)
        object.__setattr__(self, "noted", (asked, explored))

    def check(self, features, skips_in_a_row, hours_since_trained, draw):
        forced = super().check(features, skips_in_a_row, hours_since_trained, draw)
        if forced is not None and forced.startswith(EXPLORATION):
            asked, explored = self.noted
            explored.add(asked[-1])
        return forced


def seed_calibration(seed: int, pipelines: int = 48) -> dict:
    """Target, cross-validated and achieved shares kept, and probabilities against pushes, for one seed."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, scoring_for, store_runs
    from airflow_graphlets.prune.operating_point import choose, memoized
    from airflow_graphlets.prune.predictor import PushPredictor
    from airflow_graphlets.prune.replay import play
    from airflow_graphlets.store.uri import parse_store_uri

    records, _ = benchmark(seed, pipelines, False)
    config = parse_store_uri(f"sqlite:///{_store_path(os.path.join(RESULTS, f'seed-{seed}'), 'tfx+gate')}")
    runs, matrix = store_runs(read_graphlets(config, workers=1), Inputs.read(config))
    settings = PolicySettings()
    split = settings.evaluation_start(runs)
    train = runs.start < split
    scoring = scoring_for(settings, matrix[train])
    point = choose(runs, matrix, train, target=settings.target_pushes_kept, scoring=scoring,
                   guardrails=settings.guardrails, folds=settings.cv_folds)
    predicted = memoized(PushPredictor.fit(matrix[train], runs.pushed[train]))
    asked: list[int] = []
    seen: dict[int, float] = {}

    def probability(i: int, x: np.ndarray) -> float:
        asked.append(i)
        return predicted(i, x)

    explored: set[int] = set()
    played = play(runs, _Recording(point.threshold, scoring, asked, seen), evaluate_from=split,
                  probability=probability, guardrails=_NotingExploration(settings.guardrails, asked, explored),
                  source=ClosedLoop(runs, records, True))
    rows = np.fromiter(seen, dtype=np.int64)
    p = np.fromiter(seen.values(), dtype=np.float64)
    ran, would = played.ran[rows], played.would_push[rows]
    window = runs.start >= split
    kept = float((played.would_push & played.ran & window).sum() / (played.would_push & window).sum())
    return {"target": point.target, "cross_validated": point.cross_validated_pushes_kept, "achieved": kept,
            "ran_runs": int(ran.sum()), "ran_probability_sum": float(p[ran].sum()), "ran_pushes": int(would[ran].sum()),
            "skipped_runs": int((~ran).sum()), "skipped_probability_sum": float(p[~ran].sum()),
            "skipped_pushes": int(would[~ran].sum()), "explored_runs": len(explored),
            "explored_pushes": int(played.would_push[list(explored)].sum()) if explored else 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2", help="comma-separated benchmark seeds (default: the development seeds)")
    args = parser.parse_args()
    print(f"{'seed':>5} {'target':>7} {'cv':>7} {'kept':>7} | {'ran: sum p':>11} {'pushes':>7} | "
          f"{'skipped: sum p':>15} {'pushes':>7} {'runs':>6} | {'explored':>8} {'pushed':>6} {'lost, estimated':>15}")
    for seed in (int(s) for s in args.seeds.split(",")):
        c = seed_calibration(seed)
        print(f"{seed:>5} {c['target']:7.1%} {c['cross_validated'] or 0:7.1%} {c['achieved']:7.1%} | "
              f"{c['ran_probability_sum']:11.1f} {c['ran_pushes']:7d} | {c['skipped_probability_sum']:15.1f} "
              f"{c['skipped_pushes']:7d} {c['skipped_runs']:6d} | {c['explored_runs']:8d} {c['explored_pushes']:6d} "
              f"{c['skipped_runs'] * c['explored_pushes'] / max(c['explored_runs'], 1):15.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
