"""Signal features: what the DAG measured before training and handed the gate.

The strongest cheap signal is how the deployed model does on the new span: scoring it costs a
small fraction of training, and a model that still does as well as when it was pushed is hard
to beat. A DAG hands it to the gate as ``signals={"deployed_score": ...}`` (any metric where
higher is better, the one its evaluator compares); stores without it (TFX stores, DAGs that do
not measure it) leave these features unknown (NaN), which the predictor treats as missing.

- ``deployed_score``: the deployed model's score on the new span.
- ``deployed_score_drop``: how much lower it is than on the first span the deployed model saw
  after its push (0 for that first run; unknown before any push).
"""

from __future__ import annotations

import math

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory

DEPLOYED_SCORE = "deployed_score"
SIGNALS = (DEPLOYED_SCORE,)  # the signals a DAG can hand the gate
NAMES = ("deployed_score", "deployed_score_drop")
UNKNOWN = math.nan


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    now = _signal(candidate.signals)
    if math.isnan(now) or history.last_pushed is None:
        return now, UNKNOWN
    first = history.first_after_push()
    reference = now if first is None else _signal(first.signals)
    return now, reference - now if not math.isnan(reference) else UNKNOWN


def _signal(signals) -> float:
    value = signals.get(DEPLOYED_SCORE)
    try:
        return float(value) if value is not None else UNKNOWN
    except (TypeError, ValueError):
        return UNKNOWN
