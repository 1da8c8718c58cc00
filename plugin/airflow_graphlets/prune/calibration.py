"""Per-pipeline calibration: the cross-pipeline predictor, corrected by how it has fared on this
pipeline.

Pipelines differ widely (push rates from 3 % to 100 %), and one the predictor never saw can
differ from all it did: a pipeline whose evaluator blesses ties pushes nearly every run, where
the same features elsewhere mean no push. So each pipeline keeps the probabilities the gate gave
its runs that went on to train, with their outcomes, and shifts new probabilities on the logit
scale by how far off they were: ``logit(observed push rate) - logit(mean predicted)`` over its
last ``window`` such runs, shrunk by ``n / (n + prior)``. With no such runs yet the predictor is
used as it is (the cross-pipeline model); the more of its own history a pipeline has, the more
the correction is its own.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW = 20
PRIOR = 10.0
_EDGE = 1e-3  # probabilities are kept off 0 and 1 so logits stay finite


@dataclass
class Calibration:
    """One pipeline's record of predictions against outcomes, and the correction it implies."""

    window: int = WINDOW
    prior: float = PRIOR
    pairs: deque = field(default_factory=deque)  # (probability, pushed), oldest first

    def add(self, probability: float, pushed: bool) -> None:
        """A run the gate gave ``probability`` trained, and pushed or not."""
        self.pairs.append((float(probability), bool(pushed)))
        while len(self.pairs) > self.window:
            self.pairs.popleft()

    def offset(self) -> float:
        """The logit shift for this pipeline (0 with no record)."""
        n = len(self.pairs)
        if n == 0:
            return 0.0
        observed = (sum(pushed for _, pushed in self.pairs) + 0.5) / (n + 1.0)
        predicted = sum(p for p, _ in self.pairs) / n
        return n / (n + self.prior) * (_logit(observed) - _logit(predicted))

    def apply(self, probability: float) -> float:
        """``probability`` as this pipeline's record corrects it."""
        shift = self.offset()
        if shift == 0.0:
            return probability
        return 1.0 / (1.0 + math.exp(-(_logit(probability) + shift)))


def _logit(p: float) -> float:
    p = min(max(p, _EDGE), 1.0 - _EDGE)
    return math.log(p / (1.0 - p))
