"""Features of a training run about to start, from its pipeline's graphlet history.

One module per family (``data``, ``changes``, ``recency``, ``cost``, ``signals``, ``evaluator``), each with
``NAMES`` and ``compute(history, candidate)``; :func:`features` concatenates them in :data:`NAMES`
order. A feature whose input a store does not hold (span statistics files, the signals a DAG
hands its gate) is NaN, which the predictor treats as missing.
"""

from __future__ import annotations

from airflow_graphlets.prune.features import changes, cost, data, evaluator, recency, signals
from airflow_graphlets.prune.features.history import Candidate, Outcome, PipelineHistory

FAMILIES = (data, changes, recency, cost, signals, evaluator)
NAMES: tuple[str, ...] = tuple(name for family in FAMILIES for name in family.NAMES)

__all__ = ["NAMES", "Candidate", "Outcome", "PipelineHistory", "features"]


def features(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    """Every feature of ``candidate`` given what ``history`` knew, in :data:`NAMES` order."""
    return tuple(value for family in FAMILIES for value in family.compute(history, candidate))
