"""The push predictor: trained with scikit-learn, used as plain NumPy trees that give the same
probabilities, saved as a data file (no pickle) that is refused clearly when it is not ours, and
written by ``graphlets train-predictor``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.prune.features import NAMES
from airflow_graphlets.prune.policy import Scoring
from airflow_graphlets.prune.predictor import FORMAT, PushPredictor
from airflow_graphlets.prune.trees import TreeEnsemble
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri


@pytest.fixture(scope="module")
def rows():
    """Features with signal, noise and missing values, and labels that depend on them."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, len(NAMES)))
    x[rng.random(x.shape) < 0.1] = np.nan  # the gate's features are NaN before a first push
    logit = 1.5 * np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) + 0.5 * np.isnan(x[:, 5])
    pushed = rng.random(len(x)) < 1 / (1 + np.exp(-logit))
    return x, pushed


def test_the_numpy_trees_give_scikit_learns_probabilities(rows):
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, pushed = rows
    model = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(x, pushed)
    trees = TreeEnsemble.from_sklearn(model)
    assert len(trees.roots) == model.n_iter_
    fresh = np.random.default_rng(9).normal(size=(500, len(NAMES)))
    fresh[::7, 5] = np.nan
    np.testing.assert_allclose(trees.probability(fresh), model.predict_proba(fresh)[:, 1], rtol=1e-9, atol=1e-12)


def test_a_saved_predictor_loads_with_its_operating_point_and_the_same_answers(rows, tmp_path):
    x, pushed = rows
    predictor = PushPredictor.fit(x, pushed).with_operating_point(0.27, Scoring(24.0, 1800.0), 1.7e9, 0.93)
    path = str(tmp_path / "push.npz")
    predictor.save(path)
    loaded = PushPredictor.load(path)
    assert (loaded.threshold, loaded.trained_rows, loaded.feature_names) == (0.27, len(x), NAMES)
    assert (loaded.scoring, loaded.trained_until, loaded.target_pushes_kept) == (Scoring(24.0, 1800.0), 1.7e9, 0.93)
    assert loaded.push_rate == pytest.approx(pushed.mean())
    assert loaded.version == predictor.version
    np.testing.assert_array_equal(loaded.push_probability(x[:50]), predictor.push_probability(x[:50]))


def test_a_predictors_version_names_its_trees_and_operating_point(rows):
    x, pushed = rows
    predictor = PushPredictor.fit(x, pushed)
    assert predictor.version.startswith("push-predictor-") and len(predictor.version) == len("push-predictor-") + 12
    assert replace(predictor, threshold=0.5).version != predictor.version
    assert PushPredictor.fit(x[:2000], pushed[:2000]).version != predictor.version
    assert PushPredictor.fit(x, pushed).version == predictor.version  # the same training, the same name


def test_a_feature_no_row_knows_is_learned_around(rows):
    x, pushed = rows
    blank = x.copy()
    blank[:, 4] = np.nan  # a store without span statistics, say
    predictor = PushPredictor.fit(blank, pushed)
    assert np.all(np.isfinite(predictor.push_probability(blank[:100])))
    assert np.all(np.isfinite(predictor.push_probability(x[:100])))  # known later: still a probability


def test_a_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "old.pkl"
    path.write_bytes(b"\x80\x04K\x01.")  # a pickled 1: loading it must not run pickle at all
    with pytest.raises(GraphletsError, match="is not an airflow-graphlets push predictor"):
        PushPredictor.load(str(path))


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(GraphletsError, match="train one with `graphlets train-predictor`"):
        PushPredictor.load(str(tmp_path / "nothing.npz"))


def test_a_predictor_for_other_features_or_with_broken_trees_is_refused(rows, tmp_path):
    x, pushed = rows
    arrays = PushPredictor.fit(x, pushed).trees.to_arrays()
    other = tmp_path / "other.npz"
    meta = {"format": FORMAT, "feature_names": ["a", "b"]}
    np.savez(other, meta=np.asarray(json.dumps(meta)), **arrays)
    with pytest.raises(GraphletsError, match="trained on other features"):
        PushPredictor.load(str(other))

    broken = dict(arrays, left=arrays["left"] + len(arrays["value"]))  # children past the last node
    damaged = tmp_path / "damaged.npz"
    np.savez(damaged, meta=np.asarray(json.dumps(dict(meta, feature_names=list(NAMES)))), **broken)
    with pytest.raises(GraphletsError, match="is damaged: tree arrays: left points outside the nodes"):
        PushPredictor.load(str(damaged))


def graphlets(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow_graphlets.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "GLOG_minloglevel": "2"}, check=False)


def test_train_predictor_writes_a_file_the_gate_reads(tmp_path):
    store = f"sqlite:///{tmp_path}/sim.sqlite"
    simulate(parse_store_uri(store), pipelines=6, days=60, seed=4)
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\ntarget_pushes_kept = 0.9\n")
    out = str(tmp_path / "gate.npz")
    done = graphlets("train-predictor", "--store", store, "--out", out, "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    predictor = PushPredictor.load(out)
    assert done.stdout.startswith(f"wrote {out}: {predictor.version}, trained on {predictor.trained_rows:,} runs")
    assert "chosen by time-ordered cross-validation to keep 90% of pushes" in done.stdout
    assert predictor.threshold > 0.0 and predictor.scoring.staleness_hours is None  # the default: no age weighting
    assert predictor.scoring.cost_reference > 0 and predictor.target_pushes_kept == 0.9
    again = graphlets("train-predictor", "--store", store, "--out", out, "--policy", str(policy), "--seed", "5")
    assert again.returncode == 0 and f"replaces {predictor.version}" in again.stdout


def test_train_predictor_names_what_is_wrong(tmp_path):
    store = f"sqlite:///{tmp_path}/sim.sqlite"
    simulate(parse_store_uri(store), pipelines=2, days=20, seed=4)
    unwritable = graphlets("train-predictor", "--store", store, "--out", str(tmp_path / "no" / "dir" / "p.npz"))
    assert unwritable.returncode != 0
    assert "Cannot write the predictor to" in unwritable.stderr and "Pick a writable path" in unwritable.stderr
    short = graphlets("train-predictor", "--store", store, "--out", str(tmp_path / "p.npz"))
    assert short.returncode != 0 and "Keep recording; until then the gates use the prior predictor" in short.stderr
    assert not (tmp_path / "p.npz").exists() and not list(tmp_path.glob(".push-predictor-*"))  # nothing half-written
    missing = graphlets("train-predictor", "--store", f"sqlite:///{tmp_path}/absent.sqlite", "--out", "p.npz")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
