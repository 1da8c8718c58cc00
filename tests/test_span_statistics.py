"""Span statistics in TFDV's format, and drift measured as TFDV's drift comparator measures it."""

from __future__ import annotations

import numpy as np
import pytest
from airflow_graphlets.prune.span_statistics import (
    FeatureHistogram,
    SpanStatistics,
    SpanStatisticsIndex,
    drift,
    jensen_shannon,
    l_infinity,
    merge,
    read_statistics,
    statistics_path,
    write_statistics,
)


def histogram(values, edges) -> FeatureHistogram:
    counts, edges = np.histogram(values, bins=edges)
    return FeatureHistogram(edges[:-1], edges[1:], counts.astype(float))


def test_written_statistics_are_tfdvs_protos_at_tfxs_paths(tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    rows = np.column_stack([np.arange(100.0), np.zeros(100)])
    write_statistics(str(tmp_path / "stats"), {"train": rows, "eval": rows[:10]}, ["x", "label"])
    path = tmp_path / "stats" / "Split-train" / "FeatureStats.pb"
    assert statistics_path(f"file://{tmp_path}/stats") == str(path)
    parsed = statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())
    dataset = parsed.datasets[0]
    assert (dataset.name, dataset.num_examples, [f.path.step[0] for f in dataset.features]) == ("train", 100, ["x", "label"])
    x = dataset.features[0].num_stats
    assert (x.min, x.max, x.mean, x.num_zeros) == (0.0, 99.0, 49.5, 1)
    kinds = [h.type for h in x.histograms]
    assert kinds == [statistics_pb2.Histogram.STANDARD, statistics_pb2.Histogram.QUANTILES]
    assert sum(b.sample_count for b in x.histograms[0].buckets) == 100
    read = read_statistics(str(tmp_path / "stats"), "eval")
    assert read.examples == 10 and set(read.numeric) == {"x", "label"}


def test_unreadable_statistics_are_refused_clearly(tmp_path):
    with pytest.raises(OSError):
        read_statistics(str(tmp_path / "nowhere"))
    with pytest.raises(OSError, match="not on a local file system"):
        read_statistics("gs://bucket/statistics/7")
    bad = tmp_path / "bad" / "Split-train"
    bad.mkdir(parents=True)
    (bad / "FeatureStats.pb").write_bytes(b"\xff\xff\xff not a proto")
    with pytest.raises(ValueError, match="is not TFDV statistics"):
        read_statistics(str(tmp_path / "bad"))


def test_jensen_shannon_is_zero_for_equal_and_one_for_disjoint_histograms():
    a = histogram([0.1, 0.2, 0.6], [0, 0.5, 1])
    assert jensen_shannon(a, a) == pytest.approx(0.0)
    far = histogram([5.5, 5.6, 5.7], [5, 6])
    assert jensen_shannon(a, far) == pytest.approx(1.0)


def test_jensen_shannon_rebuckets_histograms_with_other_boundaries():
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(1)
    values_a, values_b = rng.normal(0, 1, 5000), rng.normal(0.7, 1.2, 5000)
    coarse = histogram(values_a, np.linspace(-4, 4, 9))
    fine = histogram(values_b, np.linspace(-4, 6, 21))
    # The same measure on one common fine grid, where rebucketing is exact, agrees closely.
    common = np.linspace(-4, 6, 41)
    p = np.histogram(values_a, common)[0].astype(float)
    q = np.histogram(values_b, common)[0].astype(float)
    assert jensen_shannon(coarse, fine) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=0.03)


def test_l_infinity_is_the_largest_frequency_change():
    assert l_infinity({"a": 50, "b": 50}, {"a": 80, "b": 20}) == pytest.approx(0.3)
    assert l_infinity({"a": 1}, {"b": 1}) == pytest.approx(1.0)


def test_merged_spans_add_their_counts_and_drift_takes_the_worst_feature():
    edges = np.linspace(0, 1, 11)
    one = SpanStatistics(100, {"x": histogram(np.full(100, 0.05), edges), "y": histogram(np.full(100, 0.5), edges)})
    two = SpanStatistics(100, {"x": histogram(np.full(100, 0.95), edges), "y": histogram(np.full(100, 0.5), edges)})
    both = merge([one, two])
    assert both.examples == 200 and both.numeric["x"].count.sum() == pytest.approx(200)
    assert drift(one, one) == pytest.approx(0.0)
    assert drift(one, two) == pytest.approx(1.0)  # x moved entirely, y did not: the worst counts
    assert drift(one, both) == pytest.approx(jensen_shannon(one.numeric["x"], both.numeric["x"]))


def test_the_index_remembers_and_says_when_a_span_is_missing():
    edges = np.linspace(0, 1, 11)
    spans = {k: SpanStatistics(10, {"x": histogram(np.full(10, 0.1 * k + 0.01), edges)}) for k in range(5)}
    index = SpanStatisticsIndex(spans)
    assert index.drift(frozenset({4}), frozenset({1, 2, 3})) == pytest.approx(
        drift(spans[4], merge([spans[1], spans[2], spans[3]])))
    assert index.drift(frozenset({9}), frozenset({1})) is None
    assert index.drift(frozenset(), frozenset({1})) is None
