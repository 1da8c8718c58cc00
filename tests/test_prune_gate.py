"""The gate's decision for one run: features from the store, the predictor's probability, the
policy inside the guardrails, operator overrides, and failing open whatever goes wrong."""

from __future__ import annotations

import numpy as np
import pytest
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.prune.dataset import feature_matrix, training_runs
from airflow_graphlets.prune.features import NAMES
from airflow_graphlets.prune.gate import GateSettings, decide
from airflow_graphlets.prune.policy import Guardrails
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.signals import span_drift
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri

OPEN = Guardrails(min_history=0, max_consecutive_skips=3, max_hours_without_training=1e9, exploration=0.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulated store, a predictor trained on it, and a late run of one pipeline."""
    tmp = tmp_path_factory.mktemp("gate")
    config = parse_store_uri(f"sqlite:///{tmp}/sim.sqlite")
    simulate(config, pipelines=12, days=120, seed=7)
    runs = training_runs(on_clock(read_graphlets(config), "logical"), span_drift(config))
    matrix = feature_matrix(runs)
    path = str(tmp / "predictor.pkl")
    PushPredictor.fit(matrix, runs.pushed).save(path)
    late = int(np.flatnonzero(runs.pipeline == runs.pipeline[0])[-1])
    return config, runs, matrix, path, late


def test_the_gate_sees_what_the_replay_sees_and_asks_the_predictor(world):
    config, runs, matrix, path, late = world
    pipeline = runs.pipelines[runs.pipeline[late]]
    outcome = decide(config, pipeline, runs.candidates[late], GateSettings(path, threshold=0.0, guardrails=OPEN))
    assert outcome.decision.run and outcome.override is None
    assert list(outcome.features) == list(NAMES)
    assert tuple(outcome.features.values()) == pytest.approx(tuple(matrix[late]))
    expected = PushPredictor.load(path).push_probability(matrix[late])[0]
    assert outcome.decision.probability == pytest.approx(expected)
    assert outcome.decision.reason.startswith("predicted push probability")


def test_a_run_below_the_threshold_is_skipped_until_the_guardrails_force_one(world):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    skip_all = GateSettings(path, threshold=1.01, guardrails=OPEN)
    skipped = decide(config, pipeline, candidate, skip_all, skips_in_a_row=0)
    assert not skipped.decision.run and "< 1.01" in skipped.decision.reason
    forced = decide(config, pipeline, candidate, skip_all, skips_in_a_row=3)
    assert forced.decision.run and forced.decision.reason.startswith("guardrail: 3 runs skipped in a row")


def test_operator_overrides_always_run(world):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    never = decide(config, pipeline, candidate, GateSettings(path, threshold=1.01, guardrails=OPEN, never_skip=True))
    assert (never.decision.run, never.override, never.decision.reason) == (True, "never-skip",
                                                                          "operator override: never-skip")
    forced = decide(config, pipeline, candidate, GateSettings(path, threshold=1.01, guardrails=OPEN), force_run=True)
    assert (forced.decision.run, forced.override) == (True, "force-run")


@pytest.mark.parametrize("case, reason", [
    ("no store", "fail open: RuntimeError: no MLMD store is configured"),
    ("no predictor", "fail open: RuntimeError: no predictor is configured (predictor_path)"),
    ("not a predictor", "is not an airflow-graphlets push predictor"),
    ("over budget", "fail open: the decision took"),
])
def test_the_gate_fails_open(world, tmp_path, case, reason):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    settings = GateSettings(path, threshold=1.01, guardrails=OPEN)
    if case == "no store":
        config = None
    elif case == "no predictor":
        settings = GateSettings(None, threshold=1.01, guardrails=OPEN)
    elif case == "not a predictor":
        (tmp_path / "junk.pkl").write_bytes(b"\x80\x04K\x01.")  # a pickled 1
        settings = GateSettings(str(tmp_path / "junk.pkl"), threshold=1.01, guardrails=OPEN)
    else:
        settings = GateSettings(path, threshold=1.01, guardrails=OPEN, budget_seconds=0.0)
    outcome = decide(config, pipeline, candidate, settings)
    assert outcome.decision.run and reason in outcome.decision.reason
