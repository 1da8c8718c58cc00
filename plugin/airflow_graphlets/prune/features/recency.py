"""Recency and track-record features: how long since the last push, and how the pipeline's
recent runs fared. A stale deployed model is easy to beat; a pipeline that has not pushed in its
last runs tends not to push in the next.

- ``hours_since_push``: since the deployed model was pushed (since the pipeline's first run
  before any push).
- ``runs_since_push``: known graphlets that started after the deployed model's.
- ``consecutive_not_pushed``: known graphlets since the last pushed one, counting back.
- ``recent_push_rate``: pushed share of the last 10 known graphlets (-1 with none).
- ``recent_blessed_rate``: blessed share of the last 10 known graphlets with an evaluation (-1).
- ``history_length``: known graphlets, counted up to ``LONG_HISTORY`` (20): past that a history
  is long, and a count that grows forever would only tell the predictor a pipeline's age, which
  the gate could then not read from a window of recent runs.
- ``pipeline_push_rate``: the pipeline's own push rate over its last ``LONG_RATE`` (30) known
  graphlets, (pushes + 1) / (graphlets + 2): how the cross-pipeline predictor is calibrated to
  one pipeline, whose push rate may be anywhere from 3 % to 100 %. With little history it
  stays near one half and the predictor leans on the other features, as it does for every
  pipeline; with more it is the pipeline's own.
"""

from __future__ import annotations

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory

NAMES = ("hours_since_push", "runs_since_push", "consecutive_not_pushed", "recent_push_rate",
         "recent_blessed_rate", "history_length", "pipeline_push_rate")
RECENT = 10
LONG_RATE = 30
LONG_HISTORY = 20
HOUR = 3600.0


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    deployed = history.last_pushed
    if deployed is not None and deployed.pushed_at is not None:
        since = candidate.start - deployed.pushed_at
    else:
        since = candidate.start - (history.first_start if history.first_start is not None else candidate.start)
    runs_since = len(history.since_last_push())
    streak = 0
    for outcome in reversed(history.outcomes):
        if outcome.pushed:
            break
        streak += 1
    recent = history.outcomes[-RECENT:]
    push_rate = sum(o.pushed for o in recent) / len(recent) if recent else -1.0
    judged = [o for o in history.outcomes[-RECENT:] if o.blessed is not None]
    blessed_rate = sum(bool(o.blessed) for o in judged) / len(judged) if judged else -1.0
    length = min(len(history.outcomes), LONG_HISTORY)
    longer = history.outcomes[-LONG_RATE:]
    own_rate = (sum(o.pushed for o in longer) + 1.0) / (len(longer) + 2.0)
    return (max(since, 0.0) / HOUR, float(runs_since), float(streak), push_rate, blessed_rate, float(length),
            own_rate)
