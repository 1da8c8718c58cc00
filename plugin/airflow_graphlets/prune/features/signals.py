"""Signal features: what the DAG measured before training and handed the gate.

The strongest cheap signal is how the deployed model does on the new span: scoring it costs a
small fraction of training, and a model that still does as well as when it was pushed is hard
to beat. A DAG hands it to the gate as ``signals={"deployed_score": ...}`` (the metric its
evaluator compares, higher is better), and, as cheaply, the score of the model trained most
recently (pushed or not) on the same rows, ``"latest_score"``: what a retrained model is likely
to reach. Stores without them (TFX stores, DAGs that do not measure them) leave these features
unknown (NaN), which the predictor treats as missing.

- ``deployed_score``: the deployed model's score on the new span.
- ``deployed_score_drop``: how much lower it is than on the first span the deployed model saw
  after its push (0 for that first run; unknown before any push).
- ``latest_score_gap``: the latest model's score minus the deployed model's, on the new span.
"""

from __future__ import annotations

import math

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory

DEPLOYED_SCORE = "deployed_score"
LATEST_SCORE = "latest_score"
SIGNALS = (DEPLOYED_SCORE, LATEST_SCORE)  # the signals a DAG can hand the gate
NAMES = ("deployed_score", "deployed_score_drop", "latest_score_gap")
UNKNOWN = math.nan


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    now = signal(candidate.signals, DEPLOYED_SCORE)
    gap = signal(candidate.signals, LATEST_SCORE) - now  # NaN when either is unknown
    if math.isnan(now) or history.last_pushed is None:
        return now, UNKNOWN, gap
    first = history.first_after_push()
    reference = now if first is None else signal(first.signals, DEPLOYED_SCORE)
    return now, reference - now if not math.isnan(reference) else UNKNOWN, gap


def signal(signals, name: str) -> float:
    """A signal's value, NaN when it was not handed (or is not a number)."""
    value = signals.get(name)
    try:
        return float(value) if value is not None else UNKNOWN
    except (TypeError, ValueError):
        return UNKNOWN
