"""Data features: how much the input changed since the deployed model was trained.

The paper's first cause of no-push: a model trained on nearly the same spans as the deployed
one, or on data that has not drifted, rarely beats it.

- ``new_spans``: spans the candidate reads that the deployed model's graphlet did not.
- ``span_overlap``: Jaccard similarity of the two span sets (0 before any push).
- ``drift``: the drift the candidate's ExampleValidator reported for the newest span (-1 unknown).
- ``drift_since_push``: the largest drift reported by a graphlet since the last push, the
  candidate's included (-1 unknown).
- ``statistics_drift``: the drift between the statistics of the spans the candidate reads that
  the deployed model did not (its newest span when there are none) and the statistics of the
  deployed model's spans, measured as TFDV's drift comparator does (largest Jensen-Shannon
  divergence or L-infinity distance of any feature, :mod:`..span_statistics`); NaN (unknown)
  before any push or where a span's statistics file is not readable.
"""

from __future__ import annotations

import math

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory

NAMES = ("new_spans", "span_overlap", "drift", "drift_since_push", "statistics_drift")
UNKNOWN = -1.0


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    deployed = history.last_pushed
    if deployed is None:
        new_spans, overlap = float(len(candidate.spans)), 0.0
    else:
        new_spans = float(len(candidate.spans - deployed.spans))
        union = candidate.spans | deployed.spans
        overlap = len(candidate.spans & deployed.spans) / len(union) if union else 0.0
    drift = UNKNOWN if candidate.drift is None else float(candidate.drift)
    seen = [o.drift for o in history.since_last_push() if o.drift is not None]
    if candidate.drift is not None:
        seen.append(candidate.drift)
    return new_spans, overlap, drift, max(seen) if seen else UNKNOWN, _statistics_drift(history, candidate)


def _statistics_drift(history: PipelineHistory, candidate: Candidate) -> float:
    deployed = history.last_pushed
    if history.statistics is None or deployed is None or not candidate.spans or not deployed.spans:
        return math.nan
    new = candidate.spans - deployed.spans or frozenset({max(candidate.spans)})
    measured = history.statistics.drift(new, deployed.spans)
    return math.nan if measured is None else measured
