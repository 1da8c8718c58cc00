"""Drifting data streams for the real-outcome benchmark, drawn row by row from river's generators.

A pipeline's data is one stream over its active days. What changes over time is real: the
concept (the function from features to label) switches abruptly, gradually or back and forth,
moves incrementally, or stays put under heavy label noise; the feature distribution can shift
under a fixed concept (rows selected by a feature's value). Nothing here knows which runs will
push: that comes from training and evaluating models on these rows (:mod:`lab`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# Each family: a maker of concept ``k`` (an infinite river generator) from a seed.
FAMILIES: dict[str, Callable[[int, int, float], Iterator]] = {}


def _family(name: str):
    def register(maker):
        FAMILIES[name] = maker
        return maker

    return register


@_family("sea")
def _sea(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.SEA(variant=concept % 4, noise=0.05, seed=seed))


@_family("agrawal")
def _agrawal(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.Agrawal(classification_function=concept % 10, seed=seed, perturbation=0.05))


@_family("stagger")
def _stagger(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.STAGGER(classification_function=concept % 3, seed=seed))


@_family("sine")
def _sine(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.Sine(classification_function=concept % 4, seed=seed, has_noise=True))


@_family("mixed")
def _mixed(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.Mixed(classification_function=concept % 2, seed=seed))


@_family("hyperplane")
def _hyperplane(seed: int, concept: int, speed: float):
    # A new concept is a new random hyperplane; ``speed`` rotates it a little with every row.
    from river.datasets import synth

    return iter(synth.Hyperplane(seed=seed * 31 + concept, n_features=8, n_drift_features=3, mag_change=speed,
                                 noise_percentage=0.05, sigma=0.1))


@_family("rbf")
def _rbf(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.RandomRBFDrift(seed_model=seed * 31 + concept, seed_sample=seed + 7, n_classes=3, n_features=6,
                                     n_centroids=15, change_speed=speed, n_drift_centroids=6 if speed else 0))


@_family("tree")
def _tree(seed: int, concept: int, speed: float):
    from river.datasets import synth

    return iter(synth.RandomTree(seed_tree=seed * 31 + concept, seed_sample=seed, n_classes=2, n_num_features=5,
                                 n_cat_features=2, max_tree_depth=5, first_leaf_level=3))


# Families whose generator can move incrementally (``speed`` > 0).
INCREMENTAL = ("hyperplane", "rbf")
# How many distinct concepts each family has (the others make a new one from every seed).
CONCEPTS = {"sea": 4, "agrawal": 10, "stagger": 3, "sine": 4, "mixed": 2}


@dataclass(frozen=True)
class Change:
    """The concept switches to ``concept`` around ``day``, over ``width_days`` (river's sigmoid)."""

    day: float
    width_days: float
    concept: int


@dataclass(frozen=True)
class StreamSpec:
    """Everything that shapes one pipeline's rows."""

    family: str
    seed: int
    changes: tuple[Change, ...] = ()
    speed: float = 0.0  # incremental drift, for INCREMENTAL families
    label_noise: float = 0.0  # share of labels replaced by a random class
    shift_day: float | None = None  # from then on, rows are selected by their first feature's value
    shift_keep: float = 1.0  # the share of rows above that feature's median that are kept after shift_day


def draw_rows(spec: StreamSpec, rows_per_day: int, first_day: int, last_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of days ``first_day`` .. ``last_day - 1``: features, labels and the day of each row.

    Deterministic in ``spec``: the same spec always gives the same rows.
    """
    rng = random.Random(spec.seed)
    sources: dict[int, Iterator] = {}

    def source(concept: int) -> Iterator:
        if concept not in sources:
            sources[concept] = FAMILIES[spec.family](spec.seed + 1000 * concept, concept, spec.speed)
        return sources[concept]

    features, labels, days = [], [], []
    names: list | None = None
    classes: set[int] = set()
    median: float | None = None
    for day in range(first_day, last_day):
        wanted, drawn = rows_per_day, 0
        while drawn < wanted:
            t = day + drawn / rows_per_day
            concept = 0
            for change in spec.changes:
                z = -4.0 * (t - change.day) / max(change.width_days, 1e-3)
                p = 0.0 if z > 50 else 1.0 / (1.0 + math.exp(z))
                if rng.random() < p:
                    concept = change.concept
            x, y = next(source(concept))
            if names is None:
                names = list(x)
            row = [float(x[name]) for name in names]
            label = int(y)
            if spec.shift_day is not None:
                if median is None and t >= spec.shift_day and features:
                    median = float(np.median([r[0] for r in features]))
                if median is not None and row[0] > median and rng.random() > spec.shift_keep:
                    continue  # selected out: the feature distribution shifts, the concept does not
            classes.add(label)
            if spec.label_noise and rng.random() < spec.label_noise:
                label = -1  # replaced below, once every class is known
            features.append(row)
            labels.append(label)
            days.append(day)
            drawn += 1
    y = np.asarray(labels, dtype=np.int64)
    noisy = np.flatnonzero(y < 0)
    if len(noisy):
        known = np.asarray(sorted(classes), dtype=np.int64)
        y[noisy] = known[np.random.default_rng(spec.seed).integers(0, len(known), len(noisy))]
    return np.asarray(features, dtype=np.float64), y, np.asarray(days, dtype=np.int32)


def feature_names(spec: StreamSpec) -> list[str]:
    """The stream's feature names, in column order."""
    x, _ = next(FAMILIES[spec.family](spec.seed, 0, spec.speed))
    return [f"x_{name}" if isinstance(name, int) else str(name) for name in x]
