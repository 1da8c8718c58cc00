"""Drifting data streams, cut into spans: what ExampleGen ingests.

Every stream is one of river's synthetic generators (``river.datasets.synth``), seeded, so a
span's rows are the same every time it is ingested. Span ``k`` holds rows ``k*rows .. (k+1)*rows``
of the stream, so a drift placed at row ``p`` arrives in span ``p // rows``. river's generators
are pure Python and draw a few hundred thousand rows a second: regenerating the prefix of the
stream for every span is cheaper than keeping state between runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """One span's rows: features (float64), labels (int64) and the feature names, in column order."""

    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]


def _sea(seed: int, rows: int):
    # Abrupt concept drift: SEA's threshold function changes twice (river's ConceptDriftStream).
    from river.datasets import synth

    first = synth.ConceptDriftStream(
        synth.SEA(variant=0, noise=0.1, seed=seed), synth.SEA(variant=1, noise=0.1, seed=seed + 1),
        position=9 * rows, width=rows // 2, seed=seed + 2,
    )
    return synth.ConceptDriftStream(first, synth.SEA(variant=3, noise=0.1, seed=seed + 3),
                                    position=20 * rows, width=rows // 2, seed=seed + 4)


def _agrawal(seed: int, rows: int):
    # Loan approval (Agrawal et al.): the approval rule changes from function 0 to 2, then to 5.
    from river.datasets import synth

    first = synth.ConceptDriftStream(
        synth.Agrawal(classification_function=0, seed=seed, perturbation=0.05),
        synth.Agrawal(classification_function=2, seed=seed + 1, perturbation=0.05),
        position=8 * rows, width=rows, seed=seed + 2,
    )
    return synth.ConceptDriftStream(first, synth.Agrawal(classification_function=5, seed=seed + 3, perturbation=0.05),
                                    position=18 * rows, width=rows, seed=seed + 4)


def _hyperplane(seed: int, rows: int):
    # Incremental drift: the separating hyperplane rotates a little with every row (as much per
    # span whatever the span's size).
    from river.datasets import synth

    return synth.Hyperplane(seed=seed, n_features=10, n_drift_features=4, mag_change=1.6 / rows,
                            noise_percentage=0.05, sigma=0.1)


def _rbf(seed: int, rows: int):
    # Moving clusters: some of the centroids of a radial-basis-function mixture drift steadily.
    from river.datasets import synth

    return synth.RandomRBFDrift(seed_model=seed, seed_sample=seed + 1, n_classes=3, n_features=8, n_centroids=20,
                                change_speed=1.6 / rows, n_drift_centroids=10)


STREAMS: dict[str, Callable] = {"sea": _sea, "agrawal": _agrawal, "hyperplane": _hyperplane, "rbf": _rbf}


def read_span(stream: str, seed: int, span: int, rows: int) -> Span:
    """Rows ``span*rows .. (span+1)*rows`` of ``stream`` drawn with ``seed``.

    Raises:
      ValueError: an unknown stream name or a negative span.
    """
    if stream not in STREAMS:
        raise ValueError(f"Unknown stream {stream!r}; choose one of {', '.join(sorted(STREAMS))}.")
    if span < 0 or rows < 1:
        raise ValueError(f"span must be >= 0 and rows >= 1 (got span {span}, rows {rows}).")
    source = STREAMS[stream](seed, rows)
    drawn = list(itertools.islice(source, span * rows, (span + 1) * rows))
    names = tuple(str(name) for name in drawn[0][0])
    features = np.array([[float(x[name]) for name in drawn[0][0]] for x, _ in drawn])
    labels = np.array([int(y) for _, y in drawn], dtype=np.int64)
    return Span(features, labels, names)
