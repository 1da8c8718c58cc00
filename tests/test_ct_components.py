"""The continuous-training example's building blocks (dags/ct_pipelines), without Airflow:
streams drift for real, spans are reproducible, and the evaluator blesses only what beats the
deployed model."""

from __future__ import annotations

import os
import sys
from datetime import date

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dags"))

from ct_pipelines import components, streams
from ct_pipelines.pipelines import PIPELINES, START_DATE, Release, pipeline_named, today


def store_span(tmp_path, stream, seed, span, rows=400):
    drawn = streams.read_span(stream, seed, span, rows)
    path = str(tmp_path / stream / f"span-{span}.npz")
    components.write_span(path, drawn.features, drawn.labels, drawn.feature_names)
    return path


def fit(paths, kind="logistic_regression", transform=None):
    features, labels = components.read_window(paths)
    model = components.make_model(kind, 0).fit(transform.transform(features) if transform else features, labels)
    return components.TrainedModel(model, transform, [], len(labels))


def test_a_span_is_the_same_rows_every_time_and_spans_differ():
    first = streams.read_span("agrawal", 5, 3, 200)
    again = streams.read_span("agrawal", 5, 3, 200)
    later = streams.read_span("agrawal", 5, 4, 200)
    assert first.features.shape == (200, 9) and first.feature_names[0] == "salary"
    assert np.array_equal(first.features, again.features) and np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.features, later.features)


def test_unknown_streams_and_negative_spans_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="Unknown stream 'nope'; choose one of agrawal, hyperplane, rbf, sea"):
        streams.read_span("nope", 1, 0, 10)
    with pytest.raises(ValueError, match="span must be >= 0"):
        streams.read_span("sea", 1, -1, 10)


@pytest.mark.parametrize("stream, before, after", [("sea", 5, 12), ("agrawal", 5, 12)])
def test_the_concept_drifts_so_an_old_model_loses_accuracy(tmp_path, stream, before, after):
    """A model fitted before the drift does worse after it than on fresh data before it."""
    model = fit([store_span(tmp_path, stream, 3, k) for k in range(before - 2, before)], kind="random_forest")
    features_before, labels_before = components.read_span(store_span(tmp_path, stream, 3, before), "eval")
    features_after, labels_after = components.read_span(store_span(tmp_path, stream, 3, after), "eval")
    accuracy_before = (model.predict(features_before) == labels_before).mean()
    accuracy_after = (model.predict(features_after) == labels_after).mean()
    assert accuracy_before - accuracy_after > 0.05, (accuracy_before, accuracy_after)


def test_splits_hold_out_every_third_row(tmp_path):
    path = store_span(tmp_path, "sea", 1, 0, rows=30)
    train, _ = components.read_span(path, "train")
    held_out, _ = components.read_span(path, "eval")
    everything, _ = components.read_span(path)
    assert len(train) == 20 and len(held_out) == 10
    assert np.array_equal(held_out, everything[2::3])


def test_statistics_schema_and_validation_report_drift_and_out_of_range_values(tmp_path):
    stats = components.compute_statistics(store_span(tmp_path, "agrawal", 2, 0))
    assert stats["rows"] == 400 and set(stats["features"]) >= {"salary", "age", "loan"}
    assert abs(sum(stats["label_shares"].values()) - 1.0) < 1e-9
    schema = components.infer_schema(stats)
    assert components.validate(stats, schema, previous=None) == {"anomalies": [], "feature_drift": 0.0,
                                                                  "label_drift": 0.0}
    shifted = {**stats, "features": {**stats["features"],
                                     "age": {**stats["features"]["age"], "mean": stats["features"]["age"]["mean"] + 30,
                                             "max": 10_000.0}}}
    report = components.validate(shifted, schema, previous=stats)
    bounds = schema["features"]["age"]
    assert report["anomalies"] == [f"feature age is outside [{bounds['min']:.4g}, {bounds['max']:.4g}]"]
    assert report["feature_drift"] == pytest.approx(30 / stats["features"]["age"]["std"], rel=1e-5)


def test_the_evaluator_blesses_only_a_candidate_that_beats_the_deployed_model_by_the_margin(tmp_path):
    paths = [store_span(tmp_path, "agrawal", 4, k) for k in range(3)]
    newest = paths[-1]
    good = fit(paths, kind="random_forest")
    weak = fit(paths[:1], kind="logistic_regression")
    first = components.evaluate(good, None, newest, threshold=0.6, margin=0.01)
    assert first.blessed and first.baseline_accuracy is None and "no model is deployed" in first.reason
    same = components.evaluate(good, good, newest, threshold=0.6, margin=0.01)
    assert not same.blessed and same.accuracy == same.baseline_accuracy
    better = components.evaluate(good, weak, newest, threshold=0.6, margin=0.01)
    assert better.accuracy >= better.baseline_accuracy + 0.01 and better.blessed
    too_high = components.evaluate(good, None, newest, threshold=0.999, margin=0.01)
    assert not too_high.blessed and "below the threshold" in too_high.reason


def test_the_gate_is_handed_both_models_scores_on_the_rows_the_evaluator_compares(tmp_path):
    paths = [store_span(tmp_path, "agrawal", 4, k) for k in range(3)]
    newest = paths[-1]
    models, serving = str(tmp_path / "models"), str(tmp_path / "serving")
    assert components.model_scores(serving, models, newest) == {}  # no model yet
    old, new = fit(paths[:1], kind="logistic_regression"), fit(paths, kind="random_forest")
    components.save_model(old, os.path.join(models, "old.pkl"))
    components.push(os.path.join(models, "old.pkl"), serving, "run-1")
    components.save_model(new, os.path.join(models, "new.pkl"))
    os.utime(os.path.join(models, "new.pkl"), (2e9, 2e9))  # the newest file
    scores = components.model_scores(serving, models, newest)
    compared = components.evaluate(new, old, newest, threshold=0.0, margin=0.0)  # the Evaluator's own rows
    assert scores == pytest.approx({"deployed_score": compared.baseline_accuracy, "latest_score": compared.accuracy},
                                   abs=1e-6)


def test_the_transform_standardises_with_the_window_statistics(tmp_path):
    paths = [store_span(tmp_path, "agrawal", 6, k) for k in range(2)]
    target = str(tmp_path / "transform.pkl")
    components.fit_transform(paths, target)
    scaled = components.load_transform(target).transform(components.read_window(paths)[0])
    assert np.allclose(scaled.mean(axis=0), 0.0, atol=1e-9) and np.allclose(scaled.std(axis=0), 1.0, atol=1e-6)


def test_push_makes_the_model_the_deployed_one(tmp_path):
    model_path = str(tmp_path / "models" / "m.pkl")
    components.save_model(fit([store_span(tmp_path, "sea", 1, 0)]), model_path)
    serving = str(tmp_path / "serving")
    assert components.deployed(serving) is None
    served = components.push(model_path, serving, "backfill__2026-01-03T00:00:00+00:00")
    assert components.deployed(serving) == {"model_uri": model_path, "served_path": served,
                                            "run_id": "backfill__2026-01-03T00:00:00+00:00"}
    assert os.path.dirname(served).endswith("backfill__2026-01-03T00_00_00_00_00")


def test_releases_change_the_pipeline_on_their_day(monkeypatch):
    sea = pipeline_named("ct_sea_logistic")
    assert sea.release_on(START_DATE).trainer == "v1"
    assert sea.release_on(date(2026, 1, 7)).trainer == "v2"
    linear = pipeline_named("ct_agrawal_linear")
    assert [linear.release_on(date(2026, 1, d)).transform for d in (6, 7)] == [False, True]
    assert Release(START_DATE).trainer == "v1"
    assert len({p.dag_id for p in PIPELINES}) == len(PIPELINES) >= 5
    monkeypatch.setenv("GRAPHLETS_CT_TODAY", "2026-01-12")
    assert today() == date(2026, 1, 12)
    monkeypatch.setenv("GRAPHLETS_CT_TODAY", "12/01/2026")
    with pytest.raises(ValueError, match="GRAPHLETS_CT_TODAY='12/01/2026' is not an ISO date"):
        today()
    with pytest.raises(KeyError, match="No example pipeline has the DAG id 'nope'"):
        pipeline_named("nope")


def test_the_rolling_window_holds_the_last_spans_ingested(tmp_path):
    for k in (3, 4, 6):
        store_span(tmp_path, "sea", 1, k, rows=9)
    examples = str(tmp_path / "sea")
    first, paths = components.window(examples, 6, 3)
    assert first == 4 and [os.path.basename(p) for p in paths] == ["span-4.npz", "span-6.npz"]
    assert components.window(examples, 4, 10)[0] == 3
    with pytest.raises(FileNotFoundError, match="Span 5 was not ingested"):
        components.window(examples, 5, 3)
