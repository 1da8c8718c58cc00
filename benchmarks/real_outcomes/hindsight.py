"""The ceiling a gate could reach on a benchmark: a policy that knows each run's outcome.

Hindsight skips exactly the runs that would not push at that moment (against the model the
replay has deployed, in closed loop) and runs every other, inside the same guardrails as every
policy: the first runs of a pipeline, the fourth skip in a row, two weeks without a trained model
and the 5 % exploration still run. What it saves is the most any predictor could save at 100 %
of pushes kept; a gate's figure reads against it, not against 100 %.
"""

from __future__ import annotations

import numpy as np
from airflow_graphlets.prune.dataset import TrainingRuns
from airflow_graphlets.prune.features import Candidate, Outcome
from airflow_graphlets.prune.policy import Guardrails
from airflow_graphlets.prune.replay import OutcomeSource, RecordedOutcomes, ReplayResult, replay


class Remembering:
    """An outcome source that remembers the outcome the replay asked for last: the replay asks for
    a run's outcome just before its policy decides (``prune/replay.py``'s ``play``)."""

    def __init__(self, source: OutcomeSource) -> None:
        self.source = source
        self.last: Outcome | None = None

    def candidate(self, i: int, deployed: int | None, latest: int | None) -> Candidate:
        return self.source.candidate(i, deployed, latest)

    def outcome(self, i: int, deployed: int | None) -> Outcome:
        self.last = self.source.outcome(i, deployed)
        return self.last


class Hindsight:
    """Skip a run exactly when it would not push."""

    name = "hindsight (skips exactly the runs that would not push, within the guardrails)"

    def __init__(self, source: Remembering) -> None:
        self.source = source

    def propose(self, features: np.ndarray, probability: float | None) -> tuple[bool, str]:
        if self.source.last is None:
            raise RuntimeError("hindsight decides only inside a replay (no outcome asked for yet)")
        return (True, "would push") if self.source.last.pushed else (False, "would not push")


def hindsight(runs: TrainingRuns, evaluate_from: float, source: OutcomeSource | None = None,
              guardrails: Guardrails | None = None, seed: int = 0) -> ReplayResult:
    """Replay the hindsight policy from ``evaluate_from`` on (recorded outcomes when ``source`` is None)."""
    remembering = Remembering(source or RecordedOutcomes(runs))
    return replay(runs, Hindsight(remembering), evaluate_from=evaluate_from, guardrails=guardrails, seed=seed,
                  source=remembering)


def main() -> int:
    """``python benchmarks/real_outcomes/hindsight.py STORE_URI``: the ceiling on any store's
    recorded outcomes, replayed from the middle of its period as ``graphlets replay`` does."""
    import sys

    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, store_runs
    from airflow_graphlets.store.uri import parse_store_uri

    if len(sys.argv) != 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    config = parse_store_uri(sys.argv[1])
    runs, _ = store_runs(read_graphlets(config), Inputs.read(config))
    settings = PolicySettings()
    result = hindsight(runs, settings.evaluation_start(runs), guardrails=settings.guardrails)
    print(f"{result.policy}: skips {result.skipped}/{result.decided}, saves {result.compute_saved_share:.1%} of the "
          f"wasted compute ({result.avoidable_saved_share:.1%} of the avoidable), keeps "
          f"{result.pushes_kept_share:.1%} of pushes, age {result.age_increase:+.1%}; "
          f"{result.forced_by_guardrails} runs forced by the guardrails")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
