"""Evaluator features: the bar the candidate's evaluation will set, from TFX's ``eval_config``
(:mod:`..evaluator_bar`), as the pipeline's newest known evaluation kept it.

- ``evaluator_margin``: how much a candidate must beat the deployed model by (about 0 when ties
  pass, as TFX's usual ``-1e-10`` lets them).
- ``evaluator_bound_gap``: the latest model's score on the new span (the deployed model's when
  no latest score was handed) minus the evaluator's value threshold: below 0, a retrained
  model is unlikely to reach it.

Both NaN where unknown: no ``eval_config`` with a threshold, or no score handed.
"""

from __future__ import annotations

import math

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory
from airflow_graphlets.prune.features.signals import DEPLOYED_SCORE, LATEST_SCORE, signal

NAMES = ("evaluator_margin", "evaluator_bound_gap")
UNKNOWN = math.nan


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    bar = history.evaluator_bar()
    if bar is None:
        return UNKNOWN, UNKNOWN
    margin = UNKNOWN if bar.margin is None else max(bar.margin, 0.0)
    score = signal(candidate.signals, LATEST_SCORE)
    if math.isnan(score):
        score = signal(candidate.signals, DEPLOYED_SCORE)
    return margin, UNKNOWN if bar.bound is None else score - bar.bound
