"""Change features: did the pipeline's structure or the trainer's code change since the deployed
model was trained? The paper's second cause of no-push (structure), and one it found weak (code).

- ``structure_changed``, ``code_changed``: 1 when the candidate's hash differs from the deployed
  model's graphlet's, 0 when equal or before any push or when a hash is unknown.
"""

from __future__ import annotations

from airflow_graphlets.prune.features.history import Candidate, PipelineHistory

NAMES = ("structure_changed", "code_changed")


def compute(history: PipelineHistory, candidate: Candidate) -> tuple[float, ...]:
    deployed = history.last_pushed
    if deployed is None:
        return 0.0, 0.0
    return _differs(candidate.structure_hash, deployed.structure_hash), _differs(candidate.code_hash, deployed.code_hash)


def _differs(now: str | None, then: str | None) -> float:
    return float(now is not None and then is not None and now != then)
