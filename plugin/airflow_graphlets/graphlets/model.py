"""The records extraction produces: one :class:`Graphlet` per trained model, plus a cost table.

A model graphlet (Xin et al., SIGMOD 2021) is the provenance subgraph of one trained model. Ours,
for a trainer execution ``t`` (see ``docs/graphlets.md`` for the reasons behind each choice):

* **upstream**: every execution ``t`` depends on, walking inputs to their producers, without
  crossing model-side artifacts (models, blessings, pushes, evaluations, analyzer caches), plus
  the analysis executions (StatisticsGen, SchemaGen, ExampleValidator) that read one of its spans
  or read what such an analysis wrote;
* **input spans**: the Examples artifacts met upstream that an ingestion (ExampleGen) wrote;
* **model**: ``t``'s Model outputs; **downstream**: executions reading the model other than as a
  baseline or warm start (Evaluator, InfraValidator, Pusher), and Pushers reading what they wrote.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

# What became of a graphlet.
PUSHED = "pushed"
NOT_PUSHED = "not_pushed"  # trained, then not blessed or not pushed
FAILED = "failed"  # the trainer failed
RUNNING = "running"  # the trainer or its validation is still running
STATUSES = (PUSHED, NOT_PUSHED, FAILED, RUNNING)

# What an execution's compute went to (ExecutionTable.outcome).
OUTCOME_PUSHED = 0  # part of at least one graphlet whose model was pushed
OUTCOME_WASTED = 1  # part of graphlets only, all finished, none pushed
OUTCOME_PENDING = 2  # part of a graphlet still running, none pushed yet
OUTCOME_UNATTRIBUTED = 3  # part of no graphlet (data-only runs, other operators)
OUTCOME_NAMES = ("pushed", "wasted", "pending", "unattributed")


@dataclass(frozen=True)
class Graphlet:
    """One model graphlet. Times are seconds since the Unix epoch; costs are seconds."""

    pipeline: str
    run: str | None
    trainer_id: int
    trainer_state: str
    status: str
    model_ids: tuple[int, ...]
    span_artifact_ids: tuple[int, ...]
    spans: tuple[int, ...]  # distinct span numbers, ascending
    upstream_ids: tuple[int, ...]
    downstream_ids: tuple[int, ...]
    trainer_start: float
    trainer_end: float
    end: float  # latest end of the trainer and its downstream executions
    cost_seconds: float  # all member executions, shared ones included
    cost_by_kind: tuple[tuple[str, float], ...]
    blessed: bool | None  # None: no evaluation blessed or rejected the model
    infra_blessed: bool | None
    pushed: bool
    pushed_at: float | None
    code_hash: str | None
    structure_hash: str | None
    previous_pushed_trainer_id: int | None  # last graphlet of the pipeline pushed before this one began

    @property
    def execution_ids(self) -> tuple[int, ...]:
        """Every member execution: upstream, trainer and downstream, ascending."""
        return tuple(sorted((*self.upstream_ids, self.trainer_id, *self.downstream_ids)))


@dataclass
class ExecutionTable:
    """Every execution of the store as columns: what it cost and what its compute went to."""

    ids: np.ndarray  # int64, ascending
    kind: np.ndarray  # int8 index into rules.KINDS
    pipeline: np.ndarray  # int32 index into Extraction.pipelines, -1 when in no pipeline
    run: np.ndarray  # int64 MLMD id of its pipeline-run context, -1 when in none
    start: np.ndarray  # float64 epoch seconds
    duration: np.ndarray  # float64 seconds
    outcome: np.ndarray  # int8, OUTCOME_*

    def __len__(self) -> int:
        return len(self.ids)

    def equals(self, other: ExecutionTable) -> bool:
        """Whether two tables hold the same rows (durations compared to the microsecond)."""
        return (
            np.array_equal(self.ids, other.ids)
            and np.array_equal(self.kind, other.kind)
            and np.array_equal(self.pipeline, other.pipeline)
            and np.array_equal(self.run, other.run)
            and np.allclose(self.start, other.start, rtol=0, atol=1e-6)
            and np.allclose(self.duration, other.duration, rtol=0, atol=1e-6)
            and np.array_equal(self.outcome, other.outcome)
        )


@dataclass
class Extraction:
    """Everything a reader found in one store."""

    store: str
    schema_version: int
    pipelines: tuple[str, ...]
    graphlets: list[Graphlet]
    executions: ExecutionTable
    reader: str = field(default="bulk")


def execution_outcomes(
    n_executions: int, member_graphlet: np.ndarray, member_execution: np.ndarray, statuses: list[str]
) -> np.ndarray:
    """Label each execution with what its compute went to (``OUTCOME_*``).

    Args:
      n_executions: rows of the execution table.
      member_graphlet: for each (graphlet, execution) membership, the graphlet's position.
      member_execution: the execution's row, same length.
      statuses: each graphlet's status.
    """
    status = np.asarray(statuses, dtype=object)
    pushed = (status == PUSHED)[member_graphlet]
    running = (status == RUNNING)[member_graphlet]
    outcome = np.full(n_executions, OUTCOME_UNATTRIBUTED, dtype=np.int8)
    outcome[member_execution] = OUTCOME_WASTED
    outcome[member_execution[running]] = OUTCOME_PENDING
    outcome[member_execution[pushed]] = OUTCOME_PUSHED
    return outcome


def previous_pushed(graphlets: list[dict]) -> None:
    """Fill ``previous_pushed_trainer_id``: the pipeline's last push before each trainer started.

    Works on plain dicts (before records are frozen); both readers call it, so they agree.
    """
    by_pipeline: dict[str, list[dict]] = {}
    for g in graphlets:
        by_pipeline.setdefault(g["pipeline"], []).append(g)
    for members in by_pipeline.values():
        pushes = sorted((g["pushed_at"], g["trainer_id"]) for g in members if g["pushed"])
        push_times = [p[0] for p in pushes]
        for g in members:
            i = bisect.bisect_left(push_times, g["trainer_start"])
            g["previous_pushed_trainer_id"] = pushes[i - 1][1] if i > 0 else None
