"""Policies: turn what is known before a run into run or skip, inside guardrails.

Every policy proposes; :class:`Guardrails` decide. A skip is never silent or unbounded: a
pipeline with too little history always runs, so does a run after too many consecutive skips or
too long without a trained candidate, and a small share of would-be skips run anyway (exploration,
so the predictor keeps seeing outcomes of runs it would skip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_graphlets.prune.features import NAMES

if TYPE_CHECKING:  # NumPy is imported where it computes: a DAG file that sets Guardrails stays light
    import numpy as np

_I = {name: i for i, name in enumerate(NAMES)}


@dataclass(frozen=True)
class Decision:
    """What the gate decided about one run, and why."""

    run: bool
    probability: float | None  # P(push) from the predictor, None for rule-based policies
    reason: str


@dataclass(frozen=True)
class Guardrails:
    """Limits every policy works within."""

    min_history: int = 10  # never skip a pipeline with fewer known graphlets
    max_consecutive_skips: int = 3
    max_hours_without_training: float = 72.0
    exploration: float = 0.05  # share of would-be skips that run anyway

    def check(self, features: np.ndarray, skips_in_a_row: int, hours_since_trained: float, draw: float) -> str | None:
        """The guardrail that forces this run, or None when the policy may skip it."""
        if features[_I["history_length"]] < self.min_history:
            return f"too little history ({int(features[_I['history_length']])} < {self.min_history} graphlets)"
        if skips_in_a_row >= self.max_consecutive_skips:
            return f"{skips_in_a_row} runs skipped in a row (limit {self.max_consecutive_skips})"
        if hours_since_trained >= self.max_hours_without_training:
            return f"{hours_since_trained:.0f} h without a trained candidate (limit {self.max_hours_without_training:g} h)"
        if draw < self.exploration:
            return f"exploration ({self.exploration:.0%} of would-be skips run)"
        return None


class NeverSkip:
    name = "never skip"

    def propose(self, features: np.ndarray, probability: float | None) -> tuple[bool, str]:
        return True, "never skips"


class SkipWithoutNewData:
    name = "skip when no new data"

    def propose(self, features: np.ndarray, probability: float | None) -> tuple[bool, str]:
        if features[_I["new_spans"]] == 0:
            return False, "no span the deployed model has not seen"
        return True, "new spans since the deployed model"


class SkipAfterNotPushed:
    def __init__(self, k: int = 3) -> None:
        self.k = k
        self.name = f"skip after {k} not pushed"

    def propose(self, features: np.ndarray, probability: float | None) -> tuple[bool, str]:
        streak = int(features[_I["consecutive_not_pushed"]])
        if streak >= self.k:
            return False, f"the last {streak} runs did not push"
        return True, f"{streak} runs without a push (< {self.k})"


class PredictedPush:
    """Skip when the predicted push probability, weighted by how stale the deployed model is, is
    below ``threshold``.

    What a skipped would-be push costs in freshness is the deployed model's age for as long as
    the next push takes: little right after a push, a lot when the deployed model is old. So the
    probability is weighted by ``1 + hours_since_push / staleness_hours`` before it is compared:
    a run is skipped readily while the deployed model is fresh, and hardly ever once it is stale.
    ``staleness_hours=None`` compares the bare probability.
    """

    def __init__(self, threshold: float, staleness_hours: float | None = None) -> None:
        self.threshold = threshold
        self.staleness_hours = staleness_hours
        weighted = f", weighted by 1 + hours since push / {staleness_hours:g}" if staleness_hours else ""
        self.name = f"predictor (skip below p={threshold:.2f}{weighted})"

    def score(self, features: np.ndarray, probability: float) -> float:
        """The probability as the threshold sees it."""
        import numpy as np

        return float(push_scores(np.asarray([probability]), np.atleast_2d(features), self.staleness_hours)[0])

    def propose(self, features: np.ndarray, probability: float | None) -> tuple[bool, str]:
        assert probability is not None
        score = self.score(features, probability)
        said = f"predicted push probability {probability:.2f}"
        if self.staleness_hours:
            said += (f", weighted by the deployed model's age ({features[_I['hours_since_push']]:.0f} h since the "
                     f"last push): {score:.2f}")
        if score < self.threshold:
            return False, f"{said} < {self.threshold:.2f}"
        return True, f"{said} >= {self.threshold:.2f}"


def push_scores(probabilities: np.ndarray, features: np.ndarray, staleness_hours: float | None) -> np.ndarray:
    """Push probabilities weighted by ``1 + hours_since_push / staleness_hours`` (rows of features)."""
    import numpy as np

    if not staleness_hours:
        return np.asarray(probabilities, dtype=np.float64)
    return probabilities * (1.0 + np.asarray(features)[:, _I["hours_since_push"]] / staleness_hours)


def threshold_for_pushes_kept(probabilities: np.ndarray, pushed: np.ndarray, target: float) -> float:
    """The highest threshold that keeps at least ``target`` of the pushes among these rows
    (``probabilities``: the scores the threshold is compared with)."""
    import numpy as np

    pushed_p = np.sort(probabilities[pushed])
    if len(pushed_p) == 0:
        return 0.0
    lost = int(np.floor((1.0 - target) * len(pushed_p)))
    return float(pushed_p[lost]) if lost < len(pushed_p) else float(pushed_p[-1])
