"""The training runs of a store as the gate would have seen them: features known before each
run started, and whether its model was pushed.

Per pipeline, graphlets are walked in the order their trainers started; a graphlet's outcome
joins the pipeline's history only once its last execution has ended before the next trainer
starts, so no row ever sees its own future (:mod:`airflow_graphlets.prune.features.history`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from airflow_graphlets.graphlets.model import OUTCOME_WASTED, STATUS_INDEX, Extraction
from airflow_graphlets.prune.evaluator_bar import EvaluatorBar
from airflow_graphlets.prune.features import NAMES, Candidate, Outcome, PipelineHistory, features
from airflow_graphlets.prune.features.history import NO_SIGNALS
from airflow_graphlets.prune.span_statistics import SpanStatisticsIndex

# What a gate placed before the training branch saves when it skips: Transform, the trainer and
# what follows it. Ingestion and data analysis run anyway (later runs read their spans).
SKIPPABLE_KINDS = ("Transform", "Trainer", "Evaluator", "InfraValidator", "Pusher")


@dataclass
class TrainingRuns:
    """One row per finished graphlet, in trainer-start order within each pipeline."""

    pipeline: np.ndarray  # int32 index into pipelines
    pipelines: tuple[str, ...]
    trainer_id: np.ndarray  # int64
    start: np.ndarray  # float64 trainer start
    pushed: np.ndarray  # bool, the label
    pushed_at: np.ndarray  # float64, NaN when not pushed
    cost: np.ndarray  # float64 seconds a skip saves
    waste_start: np.ndarray  # float64: start of each execution whose compute served no pushed model
    waste_seconds: np.ndarray  # float64: its duration (wasted compute, each execution counted once)
    waste_pipeline: np.ndarray  # int32: its pipeline (index into pipelines)
    candidates: list[Candidate]
    outcomes: list[Outcome]
    statistics: dict[str, SpanStatisticsIndex] = field(default_factory=dict)  # by pipeline, where readable

    def __len__(self) -> int:
        return len(self.trainer_id)

    def new_history(self, pipeline: int) -> PipelineHistory:
        """An empty history of pipeline ``pipeline`` (an index), with its span statistics."""
        return PipelineHistory(statistics=self.statistics.get(self.pipelines[pipeline]))


def training_runs(extraction: Extraction, drift: dict[tuple[str, int], float] | None = None,
                  signals: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
                  statistics: Mapping[str, SpanStatisticsIndex] | None = None,
                  bars: Mapping[tuple[str, str], EvaluatorBar] | None = None) -> TrainingRuns:
    """Every finished graphlet of ``extraction`` as a candidate (what the gate knew) and an outcome.

    Args:
      drift: ``(pipeline, span) -> drift`` its validator reported (:func:`..signals.span_drift`).
      signals: ``(pipeline, run name) -> {signal: value}`` its gate was handed (:func:`..signals.run_signals`).
      statistics: each pipeline's span statistics (:func:`..signals.span_statistics`).
      bars: ``(pipeline, run name) -> EvaluatorBar`` its evaluator set (:func:`..signals.evaluator_bars`).
    """
    g, table, drift, signals, bars = extraction.graphlets, extraction.executions, drift or {}, signals or {}, bars or {}
    wasted = (table.outcome == OUTCOME_WASTED) & (table.pipeline >= 0)
    finished = np.isin(g.status, [STATUS_INDEX["pushed"], STATUS_INDEX["not_pushed"], STATUS_INDEX["failed"]])
    finished &= g.pipeline >= 0
    rows = np.flatnonzero(finished)
    rows = rows[np.lexsort((g.trainer_id[rows], g.trainer_start[rows], g.pipeline[rows]))]
    skippable = [g.kinds.index(k) for k in SKIPPABLE_KINDS if k in g.kinds]
    cost = g.cost_by_kind_micros[:, skippable].sum(axis=1) / 1e6
    candidates, outcomes = [], []
    for r in rows:
        pipeline = g.pipelines[g.pipeline[r]]
        spans = frozenset(int(s) for s in g.lists["spans"].row(r))
        newest = drift.get((pipeline, max(spans))) if spans else None
        handed = signals.get((pipeline, g.run[r]), NO_SIGNALS) if g.run[r] is not None else NO_SIGNALS
        candidates.append(Candidate(float(g.trainer_start[r]), spans, g.structure_hash[r], g.code_hash[r], newest,
                                    handed))
        pushed = bool(g.status[r] == STATUS_INDEX["pushed"])
        outcomes.append(Outcome(
            start=float(g.trainer_start[r]), end=float(max(g.end[r], g.trainer_end[r])), spans=spans,
            structure_hash=g.structure_hash[r], code_hash=g.code_hash[r],
            blessed=None if g.blessed[r] < 0 else bool(g.blessed[r]), pushed=pushed,
            pushed_at=float(g.pushed_at[r]) if pushed else None, cost=float(cost[r]), drift=newest, signals=handed,
            evaluator_bar=bars.get((pipeline, g.run[r])) if g.run[r] is not None else None, run=g.run[r],
        ))
    pushed = g.status[rows] == STATUS_INDEX["pushed"]
    return TrainingRuns(
        pipeline=g.pipeline[rows].astype(np.int32), pipelines=g.pipelines, trainer_id=g.trainer_id[rows],
        start=g.trainer_start[rows].astype(np.float64), pushed=pushed, pushed_at=g.pushed_at[rows],
        cost=cost[rows], waste_start=table.start[wasted], waste_seconds=table.duration[wasted],
        waste_pipeline=_graphlet_pipeline_index(extraction)[table.pipeline[wasted]],
        candidates=candidates, outcomes=outcomes, statistics=dict(statistics or {}),
    )


def _graphlet_pipeline_index(extraction: Extraction) -> np.ndarray:
    """Execution-table pipeline indexes (into ``extraction.pipelines``) as graphlet-table ones."""
    position = {name: i for i, name in enumerate(extraction.graphlets.pipelines)}
    return np.asarray([position.get(name, -1) for name in extraction.pipelines] + [-1], dtype=np.int32)


def feature_matrix(runs: TrainingRuns) -> np.ndarray:
    """Features of every run, computed with the recorded history (nothing skipped)."""
    matrix = np.zeros((len(runs), len(NAMES)), dtype=np.float64)
    history, pending, current = PipelineHistory(), [], -1
    for i in range(len(runs)):
        if runs.pipeline[i] != current:
            history, pending, current = runs.new_history(runs.pipeline[i]), [], runs.pipeline[i]
        candidate = runs.candidates[i]
        while pending and pending[0][0] <= candidate.start:
            history.add(heapq.heappop(pending)[2])
        matrix[i] = features(history, candidate)
        heapq.heappush(pending, (runs.outcomes[i].end, i, runs.outcomes[i]))
    return matrix
