"""How many pushes a gate's skips lost, counted from its exploration runs.

A gate keeps a target share of pushes only as well as its threshold transfers from the past, and
its own probabilities cannot count what it loses: on the real-outcome benchmark they added up
to the pushes where runs ran, but counted the pushes lost where the gate skipped 1.3 to 1.9
times too low (``benchmarks/real_outcomes/calibration.py``). The exploration runs can count
them. Of the runs the policy would skip that no other guardrail forces, a random share
(``Guardrails.exploration``) trains anyway and its reason says so. Those runs are a fair sample
of the skips, so their push rate, times the skips, estimates the pushes lost, and the share of
pushes kept follows: pushes of the runs that trained / (those + the estimate). The range comes
from the Wilson interval (95 %) of the explored runs' push rate; with few explored runs it is
wide, and it says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from airflow_graphlets.prune.decisions import LoggedDecision, read_decisions
from airflow_graphlets.prune.gate import FORCED_BY
from airflow_graphlets.prune.operating_point import wilson_interval
from airflow_graphlets.prune.policy import EXPLORATION
from airflow_graphlets.store.identity import pipeline_run_context_name
from airflow_graphlets.store.uri import StoreConfig

EXPLORED = FORCED_BY + EXPLORATION  # how the gate's reason begins for a would-be skip exploration let train
_Z = 1.96  # the range is the 95 % Wilson interval


@dataclass(frozen=True)
class SkipAudit:
    """What a pipeline's gate decisions and their runs' outcomes say of the pushes it kept."""

    pipeline: str
    decisions: int
    skipped: int
    explored: int  # would-be skips that trained anyway (exploration) and whose outcome is known
    explored_pushed: int
    pushed: int  # pushes of the runs the gate let train, the explored ones included
    unknown: int  # runs the gate let train whose outcome is not in the store (yet)
    lost: float | None  # estimated pushes the skips lost (None: no explored run's outcome yet)
    lost_range: tuple[float, float] | None
    kept_share: float | None  # estimated share of pushes kept
    kept_range: tuple[float, float] | None

    def as_dict(self) -> dict:
        return asdict(self)


def audit(pipeline: str, decisions: Sequence[LoggedDecision], pushed_by_run: Mapping[str, bool]) -> SkipAudit:
    """The audit of ``decisions`` (one pipeline's, oldest first), given whether each run pushed.
    A run decided more than once (a cleared gate) counts with its newest decision.

    Args:
      pushed_by_run: pipeline-run context name -> whether that run's model was pushed, for the
        runs whose outcome the store holds.
    """
    newest = {decision.run_id: decision for decision in decisions}
    skipped = explored = explored_pushed = pushed = unknown = 0
    for decision in newest.values():
        if decision.decision == "skip":
            skipped += 1
            continue
        outcome = pushed_by_run.get(pipeline_run_context_name(pipeline, decision.run_id))
        if outcome is None:
            unknown += 1
            continue
        pushed += outcome
        if decision.reason.startswith(EXPLORED):
            explored += 1
            explored_pushed += outcome
    if explored == 0:
        return SkipAudit(pipeline, len(newest), skipped, 0, 0, pushed, unknown, None, None, None, None)
    low, high = wilson_interval(explored_pushed, explored, _Z)
    lost = skipped * explored_pushed / explored
    lost_range = (skipped * low, skipped * high)
    return SkipAudit(pipeline, len(newest), skipped, explored, explored_pushed, pushed, unknown, lost, lost_range,
                     _share(pushed, lost), (_share(pushed, lost_range[1]), _share(pushed, lost_range[0])))


def read_audit(config: StoreConfig, dag_id: str, since: float | None = None) -> SkipAudit:
    """The audit of a DAG's gate decisions (at or after ``since``, epoch seconds) from the store
    (read-only): its skip log, and its graphlets' outcomes."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.dataset import training_runs

    decisions = read_decisions(config, dag_id, since)
    outcomes = training_runs(read_graphlets(config, pipelines=[dag_id], workers=1)).outcomes
    return audit(dag_id, decisions, {o.run: o.pushed for o in outcomes if o.run is not None})


def _share(pushed: int, lost: float) -> float:
    return pushed / (pushed + lost) if pushed + lost > 0 else 1.0

