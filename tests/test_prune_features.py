"""Features of a training run about to start: each family reads only the pipeline's known past."""

from __future__ import annotations

import math

import numpy as np
import pytest
from airflow_graphlets.prune.evaluator_bar import EvaluatorBar
from airflow_graphlets.prune.features import (
    NAMES,
    Candidate,
    Outcome,
    PipelineHistory,
    changes,
    cost,
    data,
    evaluator,
    features,
    recency,
    signals,
)
from airflow_graphlets.prune.span_statistics import FeatureHistogram, SpanStatistics, SpanStatisticsIndex

HOUR = 3600.0


def outcome(start_hours, spans, pushed, *, structure="s1", code="c1", blessed=None, cost_seconds=100.0, drift=None,
            handed=None, bar=None):
    start = start_hours * HOUR
    return Outcome(start=start, end=start + HOUR, spans=frozenset(spans), structure_hash=structure, code_hash=code,
                   blessed=pushed if blessed is None else blessed, pushed=pushed,
                   pushed_at=start + HOUR if pushed else None, cost=cost_seconds, drift=drift,
                   signals=handed or {}, evaluator_bar=bar)


def candidate(start_hours, spans, *, structure="s1", code="c1", drift=None, handed=None):
    return Candidate(start=start_hours * HOUR, spans=frozenset(spans), structure_hash=structure, code_hash=code,
                     drift=drift, signals=handed or {})


def history(*outcomes):
    known = PipelineHistory()
    for o in outcomes:
        known.add(o)
    return known


def test_every_family_contributes_its_names_in_order():
    assert NAMES == data.NAMES + changes.NAMES + recency.NAMES + cost.NAMES + signals.NAMES + evaluator.NAMES
    assert len(features(PipelineHistory(), candidate(0, {1}))) == len(NAMES)


def test_data_features_compare_with_the_deployed_models_spans_and_report_drift():
    past = history(outcome(0, {1, 2, 3}, True, drift=0.2), outcome(24, {2, 3, 4}, False, drift=1.5))
    new_spans, overlap, drift, drift_since, statistics = data.compute(past, candidate(48, {3, 4, 5}, drift=0.4))
    assert new_spans == 2 and overlap == pytest.approx(1 / 5)  # {4, 5} are new; {3} shared of {1..5}
    assert drift == 0.4 and drift_since == 1.5  # the drift seen since the push, not before it
    assert math.isnan(statistics)  # no span statistics in this history
    assert data.compute(PipelineHistory(), candidate(0, {7, 8}))[:4] == (2.0, 0.0, -1.0, -1.0)


def _span(values) -> SpanStatistics:
    counts, edges = np.histogram(values, bins=10)
    return SpanStatistics(len(values), {"x": FeatureHistogram(edges[:-1], edges[1:], counts.astype(float))})


def test_statistics_drift_compares_the_new_spans_with_the_deployed_models_spans():
    rng = np.random.default_rng(0)
    same = {span: _span(rng.normal(0, 1, 2000)) for span in (1, 2, 3, 4)}
    shifted = {**same, 4: _span(rng.normal(3, 1, 2000))}
    deployed = outcome(0, {1, 2, 3}, True)
    calm = history(deployed)
    calm.statistics = SpanStatisticsIndex(same)
    moved = history(deployed)
    moved.statistics = SpanStatisticsIndex(shifted)
    steady = data.compute(calm, candidate(48, {2, 3, 4}))[4]
    drifted = data.compute(moved, candidate(48, {2, 3, 4}))[4]
    assert steady < 0.05 and 0.5 < drifted <= 1.0  # only span 4 is new: it is what is compared
    retrained = data.compute(calm, candidate(48, {1, 2, 3}))[4]  # no new span: the newest is compared
    assert retrained < 0.05
    missing = history(deployed)
    missing.statistics = SpanStatisticsIndex({1: same[1]})
    assert math.isnan(data.compute(missing, candidate(48, {2, 3, 4}))[4])  # a span's file was unreadable


def test_signal_features_are_the_deployed_models_score_and_its_drop_since_the_push():
    deployed = outcome(0, {1}, True)
    first_after = outcome(24, {2}, False, handed={"deployed_score": 0.90, "latest_score": 0.91})
    past = history(deployed, first_after)
    now, drop, gap = signals.compute(past, candidate(48, {3}, handed={"deployed_score": 0.80, "latest_score": 0.86}))
    assert now == 0.80 and drop == pytest.approx(0.10) and gap == pytest.approx(0.06)
    right_after = signals.compute(history(deployed), candidate(24, {2}, handed={"deployed_score": 0.9}))
    assert right_after[:2] == (0.9, 0.0) and math.isnan(right_after[2])  # no latest score handed
    assert all(math.isnan(v) for v in signals.compute(past, candidate(48, {3})))  # a store without signals
    assert all(math.isnan(v) for v in signals.compute(history(deployed), candidate(48, {3}, handed={"other": 1.0})))


def test_evaluator_features_read_the_bar_of_the_newest_known_evaluation():
    past = history(outcome(0, {1}, True, bar=EvaluatorBar(0.7, -1e-10)), outcome(24, {2}, False))
    margin, bound_gap = evaluator.compute(past, candidate(48, {3}, handed={"deployed_score": 0.8, "latest_score": 0.75}))
    assert margin == 0.0 and bound_gap == pytest.approx(0.05)  # ties pass; the latest model's score is the guess
    only_deployed = evaluator.compute(past, candidate(48, {3}, handed={"deployed_score": 0.65}))
    assert only_deployed[1] == pytest.approx(-0.05)
    assert all(math.isnan(v) for v in evaluator.compute(history(outcome(0, {1}, True)), candidate(24, {2})))


def test_change_features_compare_hashes_with_the_deployed_model():
    past = history(outcome(0, {1}, True, structure="a", code="x"), outcome(24, {2}, False, structure="b", code="y"))
    assert changes.compute(past, candidate(48, {3}, structure="a", code="x")) == (0.0, 0.0)
    assert changes.compute(past, candidate(48, {3}, structure="b", code="x")) == (1.0, 0.0)
    assert changes.compute(past, candidate(48, {3}, structure="a", code="z")) == (0.0, 1.0)
    assert changes.compute(past, candidate(48, {3}, structure=None, code=None)) == (0.0, 0.0)
    assert changes.compute(PipelineHistory(), candidate(0, {1}, structure="q")) == (0.0, 0.0)


def test_recency_features_count_time_and_runs_since_the_push_and_the_track_record():
    past = history(outcome(0, {1}, False, blessed=False), outcome(10, {2}, True), outcome(20, {3}, False),
                   outcome(30, {4}, False, blessed=None))
    hours, runs, streak, push_rate, blessed_rate, length, own_rate = recency.compute(past, candidate(40, {5}))
    assert hours == pytest.approx(40 - 11)  # pushed at its end, hour 11
    assert (runs, streak, length) == (2, 2, 4)
    assert push_rate == pytest.approx(1 / 4)
    assert blessed_rate == pytest.approx(1 / 4)  # blessed only the pushed one; every one was judged
    assert own_rate == pytest.approx((1 + 1) / (4 + 2))  # one push in four, with one of each outcome added
    assert recency.compute(PipelineHistory(), candidate(0, {1}))[6] == 0.5  # nothing known: even odds
    fresh = recency.compute(history(outcome(5, {1}, False)), candidate(8, {2}))
    assert fresh[0] == pytest.approx(3) and fresh[1] == 1  # no push yet: since the first run


def test_cost_is_the_median_of_recent_runs():
    past = history(*(outcome(h, {h}, False, cost_seconds=c) for h, c in enumerate([900, 10, 20, 30, 40, 50])))
    assert cost.compute(past, candidate(9, {9})) == (30.0,)  # the last five: 10..50
    assert cost.compute(PipelineHistory(), candidate(0, {0})) == (-1.0,)


def test_the_deployed_model_is_the_latest_push_by_push_time():
    past = history(outcome(0, {1}, True), outcome(5, {2}, True), outcome(2, {3}, False))
    assert past.last_pushed.spans == frozenset({2})
    assert [o.spans for o in past.since_last_push()] == []
