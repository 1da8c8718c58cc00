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
EXPLORATION = "exploration"  # how the reason of a run the exploration guardrail forced begins


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
    # No deployed model goes two weeks without a trained candidate. (72 h, the first default, made
    # every pipeline that runs every three days or less often unskippable.)
    max_hours_without_training: float = 336.0
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
            return f"{EXPLORATION} ({self.exploration:.0%} of would-be skips run)"
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


@dataclass(frozen=True)
class Scoring:
    """How a predicted push probability becomes the score the threshold is compared with.

    - ``cost_reference``: weigh what a skip saves against what it risks. Skipping a run saves its
      cost when it would not have pushed and loses a push when it would have, so, to save the
      most compute for the pushes it may lose, a policy skips the runs with the lowest
      ``p / (1 - p) x cost_reference / expected cost`` (the odds of a push per unit of compute
      saved; ``expected_cost`` is a feature, ``cost_reference`` the training runs' median).
      Without it the score is ``p``.
    - ``staleness_hours``: what a skipped would-be push costs in freshness is the deployed
      model's age for as long as the next push takes: little right after a push, a lot when the
      deployed model is old. So the score is also weighted by ``1 + hours_since_push /
      staleness_hours``: a run is skipped readily while the deployed model is fresh, and hardly
      ever once it is stale.
    """

    staleness_hours: float | None = None
    cost_reference: float | None = None

    def scores(self, probabilities: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Scores of rows of ``features`` with these push probabilities."""
        import numpy as np

        p = np.asarray(probabilities, dtype=np.float64)
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if self.cost_reference:
            cost = x[:, _I["expected_cost"]]
            ratio = np.where(cost > 0, self.cost_reference / np.where(cost > 0, cost, 1.0), 1.0)
            p = p / np.maximum(1.0 - p, 1e-6) * ratio
        if self.staleness_hours:
            p = p * (1.0 + x[:, _I["hours_since_push"]] / self.staleness_hours)
        return p

    def describe(self) -> str:
        said = ", as push odds per unit of expected compute" if self.cost_reference else ""
        if self.staleness_hours:
            said += f", weighted by 1 + hours since push / {self.staleness_hours:g}"
        return said


class PredictedPush:
    """Skip when the predicted push probability, as a :class:`Scoring` scores it, is below
    ``threshold``."""

    needs_probability = True

    def __init__(self, threshold: float, scoring: Scoring | None = None) -> None:
        self.threshold = threshold
        self.scoring = scoring or Scoring()
        self.name = f"predictor (skip below {threshold:.3g}{self.scoring.describe()})"

    def score(self, features: np.ndarray, probability: float) -> float:
        """The probability as the threshold sees it."""
        return float(self.scoring.scores([probability], features)[0])

    def propose(self, features: np.ndarray, probability: float | None) -> tuple[bool, str]:
        assert probability is not None
        score = self.score(features, probability)
        said = f"predicted push probability {probability:.2f}"
        weighed = ([f"expected compute {features[_I['expected_cost']]:.0f} s"] if self.scoring.cost_reference else []) + (
            [f"{features[_I['hours_since_push']]:.0f} h since the last push"] if self.scoring.staleness_hours else [])
        if weighed:
            said += f", scored {score:.3g} ({', '.join(weighed)})"
        if score < self.threshold:
            return False, f"{said} < {self.threshold:.3g}"
        return True, f"{said} >= {self.threshold:.3g}"


def threshold_for_pushes_kept(probabilities: np.ndarray, pushed: np.ndarray, target: float) -> float:
    """The highest threshold that keeps at least ``target`` of the pushes among these rows
    (``probabilities``: the scores the threshold is compared with)."""
    import numpy as np

    pushed_p = np.sort(probabilities[pushed])
    if len(pushed_p) == 0:
        return 0.0
    lost = int(np.floor((1.0 - target) * len(pushed_p)))
    return float(pushed_p[lost]) if lost < len(pushed_p) else float(pushed_p[-1])
