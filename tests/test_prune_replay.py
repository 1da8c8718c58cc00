"""Learning from graphlet history and replaying it: features respect time, the predictor learns
real signal, guardrails bound every skip, and the metrics mean what the project defines."""

from __future__ import annotations

import numpy as np
import pytest
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.prune.dataset import TrainingRuns, feature_matrix, training_runs
from airflow_graphlets.prune.features import NAMES, Candidate, Outcome, PipelineHistory, features
from airflow_graphlets.prune.operating_point import memoized
from airflow_graphlets.prune.policy import Guardrails, NeverSkip, PredictedPush, Scoring, threshold_for_pushes_kept
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.replay import Played, mean_model_age, play, replay
from airflow_graphlets.prune.signals import span_drift
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri

HOUR = 3600.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    config = parse_store_uri(f"sqlite:///{tmp_path_factory.mktemp('prune')}/sim.sqlite")
    simulate(config, pipelines=40, days=120, seed=3)
    return training_runs(on_clock(read_graphlets(config), "logical"), span_drift(config))


def test_every_finished_graphlet_is_a_run_with_the_drift_its_validator_reported(runs):
    assert len(runs) > 3000 and 0.3 < runs.pushed.mean() < 0.9
    assert all(c.drift is not None and c.drift >= 0 for c in runs.candidates)
    starts_ok = [np.all(np.diff(runs.start[runs.pipeline == p]) >= 0) for p in np.unique(runs.pipeline)]
    assert all(starts_ok)


def test_features_use_only_outcomes_known_before_the_run_started(runs):
    matrix = feature_matrix(runs)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(runs), size=60, replace=False):
        same = np.flatnonzero(runs.pipeline == runs.pipeline[i])
        known = sorted((runs.outcomes[j] for j in same if runs.outcomes[j].end <= runs.start[i] and j != i),
                       key=lambda o: o.end)
        history = PipelineHistory()
        for o in known:
            history.add(o)
        assert tuple(matrix[i]) == pytest.approx(features(history, runs.candidates[i]), nan_ok=True)


def test_the_predictor_learns_the_causes_and_ranks_future_runs(runs):
    from sklearn.metrics import roc_auc_score

    matrix = feature_matrix(runs)
    split = float(np.quantile(runs.start, 0.5))
    past = runs.start < split
    predictor = PushPredictor.fit(matrix[past], runs.pushed[past])
    future_auc = roc_auc_score(runs.pushed[~past], predictor.push_probability(matrix[~past]))
    assert future_auc > 0.8  # trained on the past only


def test_the_predictor_refuses_to_learn_from_one_outcome():
    with pytest.raises(Exception, match="needs at least 20 finished runs with both outcomes"):
        PushPredictor.fit(np.zeros((50, len(NAMES))), np.ones(50, dtype=bool))


def test_never_skipping_saves_nothing_and_keeps_everything(runs):
    split = float(np.quantile(runs.start, 0.5))
    result = replay(runs, NeverSkip(), evaluate_from=split)
    assert (result.skipped, result.compute_saved_share, result.pushes_kept_share, result.age_increase) == (0, 0, 1, 0)
    assert result.decided == int((runs.start >= split).sum())


def test_guardrails_bound_a_policy_that_would_skip_everything(runs):
    split = float(np.quantile(runs.start, 0.5))
    rails = Guardrails(min_history=5, max_consecutive_skips=2, max_hours_without_training=1e9, exploration=0.0)
    result = replay(runs, PredictedPush(threshold=2.0), evaluate_from=split,
                    probability=lambda i, x: 0.0, guardrails=rails)
    # Every third run of a pipeline runs: at most two skips in a row.
    assert result.skipped <= 2 * result.decided / 3 + 2 * len(np.unique(runs.pipeline))
    assert result.forced_by_guardrails > 0 and result.pushes_kept_share < 1


def test_guardrails_name_the_rule_that_forced_a_run():
    rails = Guardrails(min_history=10, max_consecutive_skips=3, max_hours_without_training=48, exploration=0.1)
    x = np.zeros(len(NAMES))
    x[NAMES.index("history_length")] = 4
    assert rails.check(x, 0, 0, 0.9) == "too little history (4 < 10 graphlets)"
    x[NAMES.index("history_length")] = 50
    assert rails.check(x, 3, 0, 0.9) == "3 runs skipped in a row (limit 3)"
    assert rails.check(x, 0, 50, 0.9) == "50 h without a trained candidate (limit 48 h)"
    assert rails.check(x, 0, 0, 0.05) == "exploration (10% of would-be skips run)"
    assert rails.check(x, 0, 0, 0.5) is None


def test_the_threshold_keeps_the_target_share_of_pushes():
    p = np.linspace(0, 1, 101)
    pushed = np.ones(101, dtype=bool)
    threshold = threshold_for_pushes_kept(p, pushed, 0.9)
    assert (p[pushed] >= threshold).mean() >= 0.9 > (p[pushed] > threshold + 0.02).mean()


def one_pipeline(pushes: list[tuple[float, float]], last_start: float) -> TrainingRuns:
    """Runs of one pipeline; ``pushes``: (trainer start, push time) in hours; then a final unpushed run."""
    starts = [s for s, _ in pushes] + [last_start]
    pushed = np.asarray([True] * len(pushes) + [False])
    pushed_at = np.asarray([t * HOUR for _, t in pushes] + [np.nan])
    outcomes = [Outcome(s * HOUR, s * HOUR + 1, frozenset({k}), None, None, bool(p), bool(p), None, 10.0, None)
                for k, (s, p) in enumerate(zip(starts, pushed))]
    return TrainingRuns(
        pipeline=np.zeros(len(starts), dtype=np.int32), pipelines=("p",), trainer_id=np.arange(len(starts)),
        start=np.asarray(starts) * HOUR, pushed=pushed, pushed_at=pushed_at, cost=np.full(len(starts), 10.0),
        waste_start=np.zeros(0), waste_seconds=np.zeros(0), waste_pipeline=np.zeros(0, dtype=np.int32),
        candidates=[Candidate(s * HOUR, frozenset({k}), None, None, None) for k, s in enumerate(starts)],
        outcomes=outcomes,
    )


def test_the_deployed_models_age_is_averaged_over_time():
    # Trained at 0 and pushed at 2; trained at 10 and pushed at 12; the period ends at 20.
    runs = one_pipeline([(0, 2), (10, 12)], last_start=20)

    def played(pushed):
        pushed = np.asarray(pushed)
        return Played(np.ones(3, dtype=bool), pushed, pushed, np.where(pushed, runs.pushed_at, np.nan), 0)

    # From 2 to 12 the age grows 2 -> 12 (mean 7); from 12 to 20 it grows 2 -> 10 (mean 6).
    assert mean_model_age(runs, played([True, True, False]), evaluate_from=0) / HOUR == pytest.approx((10 * 7 + 8 * 6) / 18)
    # Skipping the second push: the first model ages from 2 to 20 (mean 11).
    assert mean_model_age(runs, played([True, False, False]), evaluate_from=0) / HOUR == pytest.approx(11)


def test_the_same_probability_skips_while_the_deployed_model_is_fresh_and_runs_once_it_is_stale():
    policy = PredictedPush(threshold=0.6, scoring=Scoring(staleness_hours=24))
    x = np.zeros(len(NAMES))
    x[NAMES.index("hours_since_push")] = 2
    run, reason = policy.propose(x, 0.5)
    assert not run
    assert reason == "predicted push probability 0.50, scored 0.542 (2 h since the last push) < 0.6"
    x[NAMES.index("hours_since_push")] = 48
    assert policy.propose(x, 0.5) == (True, "predicted push probability 0.50, scored 1.5 (48 h since the last push) "
                                            ">= 0.6")
    assert PredictedPush(threshold=0.6).propose(x, 0.5)[0] is False  # unweighted, age does not matter


def test_cost_aware_scoring_skips_the_expensive_run_of_two_equally_likely_ones():
    scoring = Scoring(cost_reference=1000.0)
    x = np.zeros((2, len(NAMES)))
    x[:, NAMES.index("expected_cost")] = (500.0, 4000.0)
    cheap, dear = scoring.scores([0.2, 0.2], x)
    assert cheap == pytest.approx(0.25 * 2) and dear == pytest.approx(0.25 / 4)  # push odds per unit of compute
    policy = PredictedPush(0.3, scoring)
    assert policy.propose(x[0], 0.2)[0] and not policy.propose(x[1], 0.2)[0]
    unknown = np.zeros(len(NAMES))
    unknown[NAMES.index("expected_cost")] = -1.0  # no history: scored at the reference cost
    assert scoring.scores([0.2], unknown)[0] == pytest.approx(0.25)


def test_the_replay_asks_the_predictor_on_the_features_the_replay_computed(runs):
    """A skipped run's outcome is unknown to the runs after it, so their features (and the
    probability asked of the predictor) are the replay's, not the recorded history's."""
    split = float(np.quantile(runs.start, 0.5))
    seen: dict[int, np.ndarray] = {}

    def probability(i, x):
        seen[i] = x.copy()
        return 0.0

    rails = Guardrails(min_history=0, max_consecutive_skips=1, max_hours_without_training=1e9, exploration=0.0)
    played = play(runs, PredictedPush(0.5), evaluate_from=split, probability=probability, guardrails=rails)
    matrix = feature_matrix(runs)
    skipped_then_asked = [i for i in seen if i > 0 and not played.ran[i - 1] and runs.pipeline[i] == runs.pipeline[i - 1]]
    assert skipped_then_asked
    length = NAMES.index("history_length")
    assert any(seen[i][length] < matrix[i][length] for i in skipped_then_asked)  # the skipped run is not known


def test_a_memoized_predictor_is_asked_once_per_distinct_feature_vector(runs):
    matrix = feature_matrix(runs)
    predictor = PushPredictor.fit(matrix[:1500], runs.pushed[:1500])
    probability = memoized(predictor)
    calls = []
    original = predictor.trees.probability
    object.__setattr__(predictor.trees, "probability", lambda rows: calls.append(1) or original(rows))
    first = probability(0, matrix[3])
    assert probability(7, matrix[3].copy()) == first and len(calls) == 1
