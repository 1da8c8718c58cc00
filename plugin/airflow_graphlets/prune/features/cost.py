"""Cost feature: what the run about to start is likely to cost, so a policy can weigh it.

- ``expected_cost``: the median cost of the training branch (Transform, trainer and what follows,
  seconds) of the last 5 known graphlets; -1 with none.
"""

from __future__ import annotations

import statistics

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory

NAMES = ("expected_cost",)
RECENT = 5


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    costs = [o.cost for o in history.outcomes[-RECENT:]]
    return (float(statistics.median(costs)) if costs else -1.0,)
