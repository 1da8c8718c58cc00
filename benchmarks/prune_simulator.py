"""The push predictor on the paper-profile simulator, with recorded and closed-loop outcomes.

Store (a) of docs/prune.md: ``graphlets simulate --pipelines 200 --seed 0`` then ``graphlets
replay``, which takes the store's word for every run's outcome. On the simulator that word is
wrong once a policy skips a would-be push: the simulator's blessing rule rewards a stale deployed
model (``staleness_bonus``) and punishes a changed trainer or structure since the last push, so
the runs after a skipped push are evaluated against an older model and push more readily than
the store recorded. The recorded replay keeps the old model deployed until the next *recorded*
push, which overstates how much older the deployed models get.

The closed loop (:class:`SimulatedClosedLoop`) asks the simulator's own rule
(``PipelineHistory.blessed_against``, the one that wrote the store) again for every run that
runs, against the model the replay deployed; never skipping gives back the recorded history
exactly. Both figures are printed. Our simulator's outcomes come from a blessing model we
wrote, so neither proves much about real pipelines (that is ``prune_real_outcomes.py``'s job).

Usage: ``python benchmarks/prune_simulator.py [--pipelines 200] [--days 120] [--seed 0] [--json FILE]``
(the store is kept in ``benchmarks/results/simulator/`` and made again only with ``--fresh``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "simulator")
sys.path.insert(0, HERE)

from airflow_graphlets.prune.dataset import TrainingRuns  # noqa: E402
from airflow_graphlets.prune.features import Candidate, Outcome  # noqa: E402
from airflow_graphlets.simulate.history import PipelineHistory, generate  # noqa: E402
from airflow_graphlets.simulate.profile import Profile  # noqa: E402

_PIPELINE_PREFIX = "ct_pipeline_"


class SimulatedClosedLoop:
    """An outcome source for :func:`airflow_graphlets.prune.replay.replay` over a simulated store:
    each run that runs is blessed (and pushed) or not by the simulator's rule against the model
    the replay has deployed then.

    Args:
      runs: the simulated store's training runs.
      profile, pipelines, days, seed: what ``graphlets simulate`` was given for that store.

    Raises:
      ValueError: a run of the store is not in the simulation those arguments describe.
    """

    def __init__(self, runs: TrainingRuns, profile: Profile, pipelines: int, days: int, seed: int) -> None:
        self.runs, self.profile = runs, profile
        wanted = sorted({_pipeline_number(name) for name in runs.pipelines})
        histories = {h.name: h for h in generate(profile, pipelines, days, seed, only=wanted)}
        self.history: list[PipelineHistory] = []
        self.run_index = np.zeros(len(runs), dtype=np.int64)
        for i, outcome in enumerate(runs.outcomes):
            name = runs.pipelines[runs.pipeline[i]]
            history = histories.get(name)
            r = _run_number(history, outcome.run) if history is not None else None
            if r is None:
                raise ValueError(f"run {outcome.run!r} of {name} is not in the simulation of {pipelines} pipelines, "
                                 f"{days} days, seed {seed}: pass what `graphlets simulate` was given for this store")
            self.history.append(history)
            self.run_index[i] = r

    def candidate(self, i: int, deployed: int | None, latest: int | None) -> Candidate:
        return self.runs.candidates[i]  # the simulator hands the gate no signals

    def outcome(self, i: int, deployed: int | None) -> Outcome:
        recorded = self.runs.outcomes[i]
        history, r = self.history[i], int(self.run_index[i])
        d = None if deployed is None else int(self.run_index[deployed])
        if not history.evaluator or history.trainer_failed[r]:
            return recorded  # nothing to evaluate: as recorded (never pushed)
        blessed = history.blessed_against(self.profile, r, d)
        pushed_at = recorded.pushed_at if recorded.pushed_at is not None else recorded.end
        return dataclasses.replace(recorded, blessed=blessed, pushed=blessed, pushed_at=pushed_at if blessed else None)


def _pipeline_number(name: str) -> int:
    if not name.startswith(_PIPELINE_PREFIX) or not name[len(_PIPELINE_PREFIX):].isdigit():
        raise ValueError(f"pipeline {name!r} is not one `graphlets simulate` writes ({_PIPELINE_PREFIX}<number>)")
    return int(name[len(_PIPELINE_PREFIX):])


def _run_number(history: PipelineHistory, run: str | None) -> int | None:
    """The simulated run a pipeline-run context names (``<dag>.scheduled__<logical date>``)."""
    if not run or "scheduled__" not in run:
        return None
    when = dt.datetime.fromisoformat(run.split("scheduled__", 1)[1]).timestamp()
    r = int(np.searchsorted(history.run_times, when - 5e-4))
    return r if r < len(history.run_times) and abs(history.run_times[r] - when) < 1e-3 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="simulate the store again")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = parser.parse_args()

    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.evaluate import Inputs, evaluate
    from airflow_graphlets.simulate.run import simulate
    from airflow_graphlets.store.uri import parse_store_uri
    from prune_real_outcomes import ceiling, print_evaluation

    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"paper-{args.pipelines}-pipelines-{args.days}-days-seed-{args.seed}.sqlite")
    if args.fresh and os.path.exists(path):
        os.remove(path)
    config = parse_store_uri(f"sqlite:///{path}")
    if not os.path.exists(path):
        began = time.perf_counter()
        simulate(config, args.pipelines, args.days, args.seed)
        print(f"simulated {args.pipelines} pipelines x {args.days} days (seed {args.seed}) in "
              f"{time.perf_counter() - began:.0f} s: {path}")
    extraction, inputs = read_graphlets(config), Inputs.read(config)
    profile, found = Profile.paper(), {}
    for name, source in (("recorded", None),
                         ("closed loop", lambda runs: SimulatedClosedLoop(runs, profile, args.pipelines, args.days,
                                                                          args.seed))):
        began = time.perf_counter()
        evaluation = evaluate(extraction, inputs, source=source, source_name=name)
        document = evaluation.to_json_document()
        document["hindsight"] = ceiling(extraction, inputs, evaluation, source)
        found[name] = document
        print_evaluation(f"simulator, {args.pipelines} pipelines, seed {args.seed} / {name}", document,
                         time.perf_counter() - began)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"pipelines": args.pipelines, "days": args.days, "seed": args.seed, "replays": found}, handle,
                      indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
