"""Where the learned policy operates: a threshold chosen out of sample, a predictor corrected by
how it fared on each pipeline, the evaluator's bar read from TFX's eval_config, and a predictor
retrained in place."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from airflow_graphlets.errors import GraphletsError, NotEnoughHistoryError
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.prune.calibration import Calibration
from airflow_graphlets.prune.evaluate import Inputs, PolicySettings, store_runs
from airflow_graphlets.prune.evaluator_bar import EvaluatorBar, parse_eval_config, tfx_eval_config
from airflow_graphlets.prune.operating_point import choose
from airflow_graphlets.prune.policy import Guardrails, Scoring
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.retrain import retrain
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    config = parse_store_uri(f"sqlite:///{tmp_path_factory.mktemp('point')}/sim.sqlite")
    simulate(config, pipelines=24, days=90, seed=8)
    return config


def test_the_threshold_keeps_the_target_in_a_replay_of_the_training_period_it_never_fitted(simulated):
    runs, matrix = store_runs(read_graphlets(simulated), Inputs())
    past = runs.start < np.quantile(runs.start, 0.6)
    point = choose(runs, matrix, past, target=0.9, scoring=Scoring(), guardrails=Guardrails(), folds=4)
    assert point.folds == 4 and point.target == 0.9
    assert 0.9 <= point.cross_validated_pushes_kept < 0.95  # the highest threshold that still keeps the target
    stricter = choose(runs, matrix, past, target=0.97, scoring=Scoring(), guardrails=Guardrails(), folds=4)
    assert stricter.threshold < point.threshold


def test_too_short_a_history_to_cut_falls_back_to_the_training_rows(simulated):
    runs, matrix = store_runs(read_graphlets(simulated), Inputs())
    early = runs.start < np.quantile(runs.start, 0.02)
    point = choose(runs, matrix, early, target=0.9, scoring=Scoring(), guardrails=Guardrails(), folds=4)
    assert point.folds == 0 and point.cross_validated_pushes_kept is None


def test_calibration_moves_a_pipelines_probabilities_toward_what_it_did():
    calibration = Calibration(window=30, prior=10.0)
    assert calibration.apply(0.2) == 0.2  # no record: the cross-pipeline predictor as it is
    for _ in range(20):
        calibration.add(0.05, True)  # the predictor kept saying no; the pipeline kept pushing
    assert calibration.apply(0.05) > 0.5
    honest = Calibration()
    for k in range(20):
        honest.add(0.5, k % 2 == 0)
    assert honest.apply(0.3) == pytest.approx(0.3, abs=0.02)  # right on average: left alone
    for _ in range(100):
        calibration.add(0.9, False)
    assert len(calibration.pairs) == 30 and calibration.apply(0.9) < 0.3  # only the recent record counts


def test_the_evaluators_bar_is_read_from_both_eval_config_layouts():
    assert parse_eval_config(tfx_eval_config("BinaryAccuracy", 0.7, 0.01)) == EvaluatorBar(0.7, 0.01)
    assert parse_eval_config(tfx_eval_config("BinaryAccuracy", 0.6, 0.0)) == EvaluatorBar(0.6, -1e-10)  # ties pass
    as_tfx_writes_it = json.dumps({"modelSpecs": [{"labelKey": "y"}], "metricsSpecs": [{"thresholds": {"auc": {
        "valueThreshold": {"lowerBound": 0.8}, "changeThreshold": {"direction": "HIGHER_IS_BETTER", "absolute": 0.002}}}}]})
    assert parse_eval_config(as_tfx_writes_it) == EvaluatorBar(0.8, 0.002)
    loss = json.dumps({"metrics_specs": [{"metrics": [{"class_name": "MeanSquaredError", "threshold": {
        "value_threshold": {"upper_bound": 4.0}, "change_threshold": {"direction": "LOWER_IS_BETTER", "absolute": -0.1}}}]}]})
    assert parse_eval_config(loss) == EvaluatorBar(-4.0, 0.1)  # turned around: higher is better
    for nothing in (None, "", "not json", "[1]", json.dumps({"metrics_specs": [{"metrics": [{"class_name": "AUC"}]}]})):
        assert parse_eval_config(nothing) is None


def test_retraining_replaces_the_predictor_whole_and_names_what_it_replaced(simulated, tmp_path):
    path = str(tmp_path / "models" / "push.npz")
    first = retrain(simulated, path, PolicySettings(target_pushes_kept=0.9))
    assert first.replaced is None and PushPredictor.load(path).version == first.predictor.version
    second = retrain(simulated, path, PolicySettings(target_pushes_kept=0.95), seed=1)
    assert second.replaced == first.predictor.version != second.predictor.version
    assert [f for f in os.listdir(tmp_path / "models")] == ["push.npz"]  # no partial file left behind
    assert PushPredictor.load(path).target_pushes_kept == 0.95


def test_retraining_on_too_little_history_leaves_the_old_predictor_in_place(simulated, tmp_path):
    path = str(tmp_path / "push.npz")
    kept = retrain(simulated, path).predictor.version
    empty = parse_store_uri(f"sqlite:///{tmp_path}/empty.sqlite")
    simulate(empty, pipelines=1, days=3, seed=1)
    with pytest.raises(NotEnoughHistoryError, match="needs at least 20 finished runs"):
        retrain(empty, path)
    assert PushPredictor.load(path).version == kept
    with pytest.raises(GraphletsError, match="Cannot write the predictor to"):
        retrain(simulated, str(tmp_path / "no" / "such" / "dir" / "p.npz"), make_directory=False)
