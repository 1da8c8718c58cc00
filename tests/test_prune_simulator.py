"""The simulator's closed loop (benchmarks/prune_simulator.py): a run that runs is blessed by the
simulator's own rule against the model the replay deployed, so a skipped push changes later
outcomes as the simulator would have; never skipping is the store's recorded history."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from airflow_graphlets.graphlets.bulk_reader import read_graphlets  # noqa: E402
from airflow_graphlets.prune.evaluate import Inputs, store_runs  # noqa: E402
from airflow_graphlets.prune.policy import Guardrails, NeverSkip, SkipAfterNotPushed  # noqa: E402
from airflow_graphlets.prune.replay import play  # noqa: E402
from airflow_graphlets.simulate.history import generate  # noqa: E402
from airflow_graphlets.simulate.profile import Profile  # noqa: E402
from airflow_graphlets.simulate.run import simulate  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from prune_simulator import SimulatedClosedLoop  # noqa: E402

PIPELINES, DAYS, SEED = 12, 40, 5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    config = parse_store_uri(f"sqlite:///{tmp_path_factory.mktemp('simulated') / 'store.sqlite'}")
    simulate(config, PIPELINES, DAYS, SEED, producers=1)
    return store_runs(read_graphlets(config, workers=1), Inputs.read(config))[0]


def test_the_simulators_rule_writes_the_history_it_generates():
    profile = Profile.paper()
    for history in generate(profile, PIPELINES, DAYS, SEED):
        deployed = None
        for r in range(len(history.run_times)):
            assert history.blessed[r] == history.blessed_against(profile, r, deployed)
            deployed = r if history.blessed[r] else deployed


def test_never_skipping_in_closed_loop_is_the_recorded_history(runs):
    split = float(np.quantile(runs.start, 0.3))
    closed = play(runs, NeverSkip(), evaluate_from=split,
                  source=SimulatedClosedLoop(runs, Profile.paper(), PIPELINES, DAYS, SEED))
    np.testing.assert_array_equal(closed.pushed, runs.pushed)


def test_a_skipped_push_makes_later_runs_evaluated_against_the_model_still_deployed(runs):
    profile = Profile.paper()
    source = SimulatedClosedLoop(runs, profile, PIPELINES, DAYS, SEED)
    rails = Guardrails(min_history=0, max_consecutive_skips=3, max_hours_without_training=1e9, exploration=0.0)
    split = float(np.quantile(runs.start, 0.3))
    closed = play(runs, SkipAfterNotPushed(1), evaluate_from=split, guardrails=rails, source=source)
    recorded = play(runs, SkipAfterNotPushed(1), evaluate_from=split, guardrails=rails)
    ran = closed.ran & recorded.ran
    assert (closed.pushed[ran] != recorded.pushed[ran]).any()  # a blessing changed with the deployed model
    for i in np.flatnonzero(closed.ran):
        earlier = np.flatnonzero(closed.pushed[:i] & (runs.pipeline[:i] == runs.pipeline[i]))
        deployed = int(source.run_index[earlier[-1]]) if len(earlier) else None
        assert closed.pushed[i] == source.history[i].blessed_against(profile, int(source.run_index[i]), deployed)


def test_a_store_that_is_not_the_simulation_named_is_refused(runs):
    with pytest.raises(ValueError, match="seed 6: pass what `graphlets simulate` was given"):
        SimulatedClosedLoop(runs, Profile.paper(), PIPELINES, DAYS, SEED + 1)
