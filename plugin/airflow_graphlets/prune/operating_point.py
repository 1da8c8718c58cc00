"""Where the learned policy operates, chosen out of sample.

A threshold picked on the training rows' own probabilities keeps far fewer pushes later: boosted
trees are overconfident on the rows they were fitted to (on a real-outcome store, a threshold set
to keep 93 % of the training period's pushes kept 79 % of the next period's). So the threshold
comes from time-ordered cross-validation inside the training period: the period is cut into
``folds`` slices of equal run count; each slice after the first is predicted by a model fitted
on the slices before it, and that stretch of history is replayed under the guardrails, as the
gate would have lived it, at candidate thresholds. The chosen threshold is the highest whose
replay keeps ``target`` of the pushes with confidence: the lower end of the Wilson interval
(one standard error) of the share kept must reach the target, so a short history, with few
pushes to count, makes a cautious gate. The predictor itself is then fitted on the whole period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.prune.dataset import TrainingRuns
from airflow_graphlets.prune.policy import Guardrails, PredictedPush, Scoring, threshold_for_pushes_kept
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.replay import Probability, play

_SEARCH_STEPS = 12
_CONFIDENCE_Z = 1.0  # one standard error: the share kept is at least this likely to reach the target


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and how it was chosen."""

    threshold: float
    target: float  # the share of pushes it was chosen to keep
    cross_validated_pushes_kept: float | None  # lower end of what it kept in the training period's replay
    #                                          (None: not validated)
    folds: int  # time slices of the training period (0: too little history, in-sample fallback)


def memoized(predictor: PushPredictor) -> Probability:
    """P(push) from a run's replayed features, each distinct feature vector evaluated once (the
    replays of several policies and thresholds see the same histories for most runs)."""
    seen: dict[bytes, float] = {}

    def probability(i: int, x: np.ndarray) -> float:
        key = x.tobytes()
        if key not in seen:
            seen[key] = float(predictor.push_probability(x)[0])
        return seen[key]

    return probability


def choose(runs: TrainingRuns, matrix: np.ndarray, rows: np.ndarray, *, target: float, scoring: Scoring,
           guardrails: Guardrails, folds: int = 4, seed: int = 0) -> OperatingPoint:
    """The threshold that keeps ``target`` of the pushes among ``rows`` (a mask of the training
    period, whole pipelines' pasts), by time-ordered cross-validation.

    Falls back to the in-sample threshold (reported as ``folds=0``, not validated) when the
    period is too short to cut into slices that each hold both outcomes, to replay any skip, or
    to count enough pushes that even never skipping keeps the target with confidence.
    """
    starts = np.sort(runs.start[rows])
    edges = [float(starts[int(len(starts) * k / folds)]) for k in range(1, folds)] if len(starts) >= folds else []
    models: list[tuple[float, PushPredictor]] = []
    for edge in edges:
        before = rows & (runs.start < edge)
        try:
            models.append((edge, PushPredictor.fit(matrix[before], runs.pushed[before], seed=seed)))
        except GraphletsError:
            continue  # too little history before this edge yet
    if not models:
        return OperatingPoint(_in_sample(runs, matrix, rows, target, scoring, seed), target, None, 0)
    first, until = models[0][0], float(runs.start[rows].max()) + 1.0
    probabilities = [memoized(model) for _, model in models]
    bounds = np.asarray([edge for edge, _ in models])

    def probability(i: int, x: np.ndarray) -> float:
        # The newest model fitted only on runs before this one started.
        return probabilities[int(np.searchsorted(bounds, runs.start[i], side="right")) - 1](i, x)

    window = rows & (runs.start >= first)

    def kept(threshold: float) -> float:
        """The share of pushes kept in the cross-validation replay, at its confident lower end."""
        played = play(runs, PredictedPush(threshold, scoring), evaluate_from=first, until=until,
                      probability=probability, guardrails=guardrails, seed=seed, rows=np.flatnonzero(rows))
        would = window & played.would_push
        return wilson_lower(int((would & played.ran).sum()), int(would.sum()))

    # Pushes kept falls as the threshold rises: bisect for the highest threshold that keeps the target.
    if kept(0.0) < target:  # too few pushes counted to show that any threshold keeps the target
        return OperatingPoint(_in_sample(runs, matrix, rows, target, scoring, seed), target, None, 0)
    low, high = 0.0, 1.0
    while kept(high) >= target:
        if high >= 1e6:  # no threshold lost a push: the guardrails forced every run of so short a history
            return OperatingPoint(_in_sample(runs, matrix, rows, target, scoring, seed), target, None, 0)
        low, high = high, high * 2
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if kept(middle) >= target else (low, middle)
    return OperatingPoint(low, target, kept(low), len(models) + 1)


def wilson_lower(kept: int, total: int, z: float = _CONFIDENCE_Z) -> float:
    """The lower end of the Wilson score interval of ``kept / total`` (1 with nothing to count)."""
    return wilson_interval(kept, total, z)[0] if total else 1.0


def wilson_interval(successes: int, total: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of ``successes / total`` (``total`` > 0) at ``z`` standard errors."""
    p = successes / total
    centre = p + z * z / (2 * total)
    spread = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    scale = 1 + z * z / total
    return max(0.0, float((centre - spread) / scale)), min(1.0, float((centre + spread) / scale))


def _in_sample(runs: TrainingRuns, matrix: np.ndarray, rows: np.ndarray, target: float, scoring: Scoring,
               seed: int) -> float:
    predictor = PushPredictor.fit(matrix[rows], runs.pushed[rows], seed=seed)
    scores = scoring.scores(predictor.push_probability(matrix[rows]), matrix[rows])
    return threshold_for_pushes_kept(scores, runs.pushed[rows], target)
