"""Span statistics in TFDV's format, and drift between them as TFDV's drift comparator measures it.

Every TFX pipeline's StatisticsGen writes, for each span, a ``DatasetFeatureStatisticsList``
proto per split at ``<ExampleStatistics uri>/Split-<split>/FeatureStats.pb``. The paper's main
cause of not pushing is data change, so the gate reads these files: the drift between the span a
run is about to train on and the spans the deployed model was trained on.

Drift is measured the way TFDV's ``drift_comparator`` does: for a numeric feature, the
Jensen-Shannon divergence (base 2, so between 0 and 1) of its two standard histograms, each
bucket's count spread evenly over its range and both rebucketed onto the union of their
boundaries; for a categorical feature, the L-infinity distance of the two value frequency
distributions. A span set's statistics are merged by adding their buckets' counts.

:func:`write_statistics` writes the same files from NumPy columns, for pipelines whose
StatisticsGen is not TFDV's (the example DAGs and the real-outcome benchmark use it).
``tensorflow-metadata`` parses and builds the protos; it is imported when a file is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

STATS_FILE = "FeatureStats.pb"
DEFAULT_SPLIT = "train"
_BUCKETS = 10


@dataclass(frozen=True)
class FeatureHistogram:
    """A numeric feature's standard histogram: bucket boundaries (``low``, ``high``) and counts."""

    low: np.ndarray
    high: np.ndarray
    count: np.ndarray


@dataclass(frozen=True)
class SpanStatistics:
    """What drift is computed from: each numeric feature's histogram, each categorical
    feature's value counts, and how many examples the split held."""

    examples: int
    numeric: dict[str, FeatureHistogram] = field(default_factory=dict)
    categorical: dict[str, dict[str, float]] = field(default_factory=dict)


class SpanStatisticsIndex:
    """One pipeline's span statistics by span number, and the drift between span sets, each
    merge and drift computed once (a replay asks for the same pairs many times)."""

    def __init__(self, by_span: Mapping[int, SpanStatistics]) -> None:
        self.by_span = dict(by_span)
        self._merged: dict[frozenset[int], SpanStatistics] = {}
        self._drift: dict[tuple[frozenset[int], frozenset[int]], float | None] = {}

    def drift(self, current: frozenset[int], reference: frozenset[int]) -> float | None:
        """Drift of the spans ``current`` from the spans ``reference``; None when a span's
        statistics are missing."""
        key = (current, reference)
        if key not in self._drift:
            if not current or not reference or any(span not in self.by_span for span in current | reference):
                self._drift[key] = None
            else:
                self._drift[key] = drift(self._merge(current), self._merge(reference))
        return self._drift[key]

    def _merge(self, spans: frozenset[int]) -> SpanStatistics:
        if spans not in self._merged:
            self._merged[spans] = merge([self.by_span[span] for span in sorted(spans)])
        return self._merged[spans]


def statistics_path(uri: str, split: str = DEFAULT_SPLIT) -> str:
    """Where TFX's StatisticsGen keeps a split's statistics under an ExampleStatistics uri."""
    return os.path.join(_local(uri), f"Split-{split}", STATS_FILE)


def read_statistics(uri: str, split: str = DEFAULT_SPLIT) -> SpanStatistics:
    """The statistics of one split of an ExampleStatistics artifact.

    Raises:
      OSError: no readable file there (a remote uri, a missing or unreadable file).
      ValueError: the file is not a ``DatasetFeatureStatisticsList``.
    """
    from google.protobuf.message import DecodeError
    from tensorflow_metadata.proto.v0 import statistics_pb2

    with open(statistics_path(uri, split), "rb") as handle:
        payload = handle.read()
    parsed = statistics_pb2.DatasetFeatureStatisticsList()
    try:
        parsed.ParseFromString(payload)
    except DecodeError as err:
        raise ValueError(f"{statistics_path(uri, split)} is not TFDV statistics: {err}") from None
    if not parsed.datasets:
        raise ValueError(f"{statistics_path(uri, split)} holds no dataset statistics")
    dataset = parsed.datasets[0]
    numeric, categorical = {}, {}
    for feature in dataset.features:
        name = "/".join(feature.path.step) or feature.name
        if feature.HasField("num_stats"):
            standard = [h for h in feature.num_stats.histograms if h.type == statistics_pb2.Histogram.STANDARD]
            if standard and standard[0].buckets:
                buckets = standard[0].buckets
                numeric[name] = FeatureHistogram(np.asarray([b.low_value for b in buckets]),
                                                 np.asarray([b.high_value for b in buckets]),
                                                 np.asarray([b.sample_count for b in buckets]))
        elif feature.HasField("string_stats"):
            strings = feature.string_stats
            if strings.rank_histogram.buckets:
                categorical[name] = {b.label: float(b.sample_count) for b in strings.rank_histogram.buckets}
            else:
                categorical[name] = {v.value: float(v.frequency) for v in strings.top_values}
    return SpanStatistics(int(dataset.num_examples), numeric, categorical)


def merge(statistics: Sequence[SpanStatistics]) -> SpanStatistics:
    """Several spans' statistics as one: buckets and value counts added up."""
    if len(statistics) == 1:
        return statistics[0]
    numeric: dict[str, list[FeatureHistogram]] = {}
    categorical: dict[str, dict[str, float]] = {}
    for stats in statistics:
        for name, histogram in stats.numeric.items():
            numeric.setdefault(name, []).append(histogram)
        for name, counts in stats.categorical.items():
            merged = categorical.setdefault(name, {})
            for value, count in counts.items():
                merged[value] = merged.get(value, 0.0) + count
    return SpanStatistics(sum(s.examples for s in statistics),
                          {name: _merge_histograms(parts) for name, parts in numeric.items()}, categorical)


def drift(current: SpanStatistics, reference: SpanStatistics) -> float:
    """The largest drift of any feature the two share: Jensen-Shannon divergence for numeric
    features, L-infinity distance for categorical ones (both between 0 and 1)."""
    worst = 0.0
    for name in current.numeric.keys() & reference.numeric.keys():
        worst = max(worst, jensen_shannon(current.numeric[name], reference.numeric[name]))
    for name in current.categorical.keys() & reference.categorical.keys():
        worst = max(worst, l_infinity(current.categorical[name], reference.categorical[name]))
    return worst


def jensen_shannon(a: FeatureHistogram, b: FeatureHistogram) -> float:
    """Jensen-Shannon divergence (base 2) of two histograms, rebucketed onto common boundaries."""
    edges = np.unique(np.concatenate([a.low, a.high, b.low, b.high]))
    p, q = _rebucket(a, edges), _rebucket(b, edges)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(max(0.0, min(1.0, (_kl(p, m) + _kl(q, m)) / 2)))


def l_infinity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Largest difference between two value frequency distributions."""
    total_a, total_b = sum(a.values()) or 1.0, sum(b.values()) or 1.0
    return max((abs(a.get(v, 0.0) / total_a - b.get(v, 0.0) / total_b) for v in a.keys() | b.keys()), default=0.0)


def write_statistics(uri: str, splits: Mapping[str, np.ndarray], feature_names: Sequence[str]) -> None:
    """Write TFDV-format statistics of numeric columns, one file per split, under ``uri``:
    count, mean, standard deviation, zeros, min, median, max, a 10-bucket standard histogram and
    a 10-bucket quantiles histogram per feature, as TFDV's StatisticsGen computes them."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    for split, rows in splits.items():
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(feature_names))
        listing = statistics_pb2.DatasetFeatureStatisticsList()
        dataset = listing.datasets.add()
        dataset.name, dataset.num_examples = split, len(rows)
        for column, name in enumerate(feature_names):
            values = rows[:, column][np.isfinite(rows[:, column])]
            feature = dataset.features.add()
            feature.path.step.append(str(name))
            feature.type = statistics_pb2.FeatureNameStatistics.FLOAT
            stats = feature.num_stats
            stats.common_stats.num_non_missing = len(values)
            stats.common_stats.num_missing = len(rows) - len(values)
            stats.common_stats.min_num_values = stats.common_stats.max_num_values = 1
            stats.common_stats.avg_num_values = 1.0
            if len(values) == 0:
                continue
            stats.mean, stats.std_dev = float(values.mean()), float(values.std())
            stats.num_zeros = int((values == 0).sum())
            stats.min, stats.median, stats.max = float(values.min()), float(np.median(values)), float(values.max())
            _add_histogram(stats.histograms.add(), statistics_pb2.Histogram.STANDARD,
                           np.linspace(stats.min, stats.max, _BUCKETS + 1), values)
            _add_histogram(stats.histograms.add(), statistics_pb2.Histogram.QUANTILES,
                           np.quantile(values, np.linspace(0, 1, _BUCKETS + 1)), values, even=True)
        path = statistics_path(uri, split)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as handle:
            handle.write(listing.SerializeToString())
        os.replace(path + ".tmp", path)


def _add_histogram(histogram, kind, edges: np.ndarray, values: np.ndarray, even: bool = False) -> None:
    histogram.type = kind
    counts = np.full(len(edges) - 1, len(values) / (len(edges) - 1)) if even else \
        np.histogram(values, bins=edges)[0] if edges[-1] > edges[0] else np.asarray([len(values)] + [0] * (len(edges) - 2))
    for low, high, count in zip(edges[:-1], edges[1:], counts):
        bucket = histogram.buckets.add()
        bucket.low_value, bucket.high_value, bucket.sample_count = float(low), float(high), float(count)


def _rebucket(h: FeatureHistogram, edges: np.ndarray) -> np.ndarray:
    """Counts of ``h`` over the buckets between consecutive ``edges``, each of its buckets'
    count spread evenly over its range (a bucket of zero width keeps its count where it is)."""
    out = np.zeros(max(len(edges) - 1, 1))
    for low, high, count in zip(h.low, h.high, h.count):
        if count <= 0:
            continue
        if high <= low:
            out[min(max(int(np.searchsorted(edges, low, side="right")) - 1, 0), len(out) - 1)] += count
            continue
        overlap = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0.0, None)
        out[: len(overlap)] += count * overlap / (high - low)
    return out


def _merge_histograms(parts: list[FeatureHistogram]) -> FeatureHistogram:
    edges = np.unique(np.concatenate([np.concatenate([h.low, h.high]) for h in parts]))
    if len(edges) < 2:
        return parts[0]
    counts = sum(_rebucket(h, edges) for h in parts)
    return FeatureHistogram(edges[:-1], edges[1:], counts)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log2(p[nonzero] / q[nonzero])))


def _local(uri: str) -> str:
    """A local path from a ``file://`` uri or a plain path (other schemes are not readable here)."""
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if "://" in uri:
        raise OSError(f"statistics at {uri} are not on a local file system")
    return uri
