"""Replay a store's history as a gate would have lived it, and measure what skipping gives and costs.

Pipelines are replayed one by one, runs in the order their trainers started. Before the
evaluation start every run runs (that is the history the gate begins with); from then on each
run is decided with only what was known at that moment, and a skipped run's outcome never
enters the history. Metrics (defined once for the project, ``../shared/paper.md``):

- compute saved: the skipped runs' training-branch compute, of those that would not have
  pushed, as a share of the wasted compute of the period (executions that served no pushed
  model, each counted once, as ``graphlets analyze`` counts it); ingestion and data analysis
  are part of that waste but run anyway, so the share a gate can reach is below 100 %, and is
  reported too (``avoidable_saved_share``: of the training-branch compute of unpushed runs);
- pushes kept: share of would-be pushes whose run still ran;
- freshness: time-averaged age of the deployed model (now minus its trainer's start), and its
  increase over never skipping; a skipped would-be push costs only the delay until the next one;
- skipped would-be pushes: how many, and their compute.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from airflow_graphlets.prune.dataset import TrainingRuns
from airflow_graphlets.prune.features import PipelineHistory, features
from airflow_graphlets.prune.policy import Guardrails, NeverSkip

HOUR = 3600.0


@dataclass
class ReplayResult:
    """What one policy would have done over the evaluation period."""

    policy: str
    decided: int  # runs decided (in the evaluation period)
    skipped: int
    compute_saved_share: float  # of wasted compute
    avoidable_saved_share: float  # of the wasted training-branch compute (what a gate can avoid)
    pushes_kept_share: float
    skipped_pushes: int
    skipped_push_compute: float
    mean_model_age_hours: float
    age_increase: float  # over never skipping (0.05 = 5 % older on average)
    forced_by_guardrails: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def replay(runs: TrainingRuns, policy, *, evaluate_from: float, probabilities: np.ndarray | None = None,
           guardrails: Guardrails | None = None, seed: int = 0, baseline_age: float | None = None) -> ReplayResult:
    """Replay ``policy`` over the runs that start at or after ``evaluate_from``.

    Args:
      probabilities: P(push) per run for predictor policies (rows of ``runs``).
      baseline_age: never skipping's mean model age, for ``age_increase`` (computed when None).
    """
    guardrails = guardrails or Guardrails()
    rng = np.random.default_rng(seed)
    ran = np.ones(len(runs), dtype=bool)
    forced = 0
    history, pending, current = PipelineHistory(), [], -1
    skips_in_a_row, last_trained = 0, -np.inf
    for i in range(len(runs)):
        if runs.pipeline[i] != current:
            history, pending, current = PipelineHistory(), [], runs.pipeline[i]
            skips_in_a_row, last_trained = 0, -np.inf
        candidate = runs.candidates[i]
        while pending and pending[0][0] <= candidate.start:
            history.add(heapq.heappop(pending)[2])
        if candidate.start >= evaluate_from:
            x = np.asarray(features(history, candidate))
            run, _ = policy.propose(x, None if probabilities is None else float(probabilities[i]))
            if not run:
                hours = (candidate.start - last_trained) / HOUR if np.isfinite(last_trained) else 0.0
                if guardrails.check(x, skips_in_a_row, hours, float(rng.random())) is not None:
                    run, forced = True, forced + 1
            ran[i] = run
        if ran[i]:
            heapq.heappush(pending, (runs.outcomes[i].end, i, runs.outcomes[i]))
            skips_in_a_row, last_trained = 0, candidate.start
        else:
            skips_in_a_row += 1
    return _measure(runs, policy.name, ran, runs.start >= evaluate_from, forced, evaluate_from, baseline_age)


def _measure(runs: TrainingRuns, name: str, ran: np.ndarray, window: np.ndarray, forced: int, evaluate_from: float,
             baseline_age: float | None) -> ReplayResult:
    skipped = window & ~ran
    not_pushed = window & ~runs.pushed
    wasted = float(runs.waste_seconds[runs.waste_start >= evaluate_from].sum())
    avoidable = float(runs.cost[not_pushed].sum())
    saved = float(runs.cost[skipped & ~runs.pushed].sum())
    pushes = window & runs.pushed
    age = mean_model_age(runs, ran, evaluate_from)
    if baseline_age is None:
        baseline_age = mean_model_age(runs, np.ones(len(runs), dtype=bool), evaluate_from)
    return ReplayResult(
        policy=name,
        decided=int(window.sum()),
        skipped=int(skipped.sum()),
        compute_saved_share=saved / wasted if wasted else 0.0,
        avoidable_saved_share=saved / avoidable if avoidable else 0.0,
        pushes_kept_share=float((pushes & ran).sum() / pushes.sum()) if pushes.any() else 1.0,
        skipped_pushes=int((skipped & runs.pushed).sum()),
        skipped_push_compute=float(runs.cost[skipped & runs.pushed].sum()),
        mean_model_age_hours=age / HOUR,
        age_increase=(age / baseline_age - 1.0) if baseline_age else 0.0,
        forced_by_guardrails=forced,
    )


def mean_model_age(runs: TrainingRuns, ran: np.ndarray, evaluate_from: float) -> float:
    """Time-averaged age (seconds) of each pipeline's deployed model over the evaluation period,
    pooled over pipelines; a pipeline counts from its first push that ran."""
    total_area = total_time = 0.0
    for p in np.unique(runs.pipeline):
        rows = np.flatnonzero(runs.pipeline == p)
        end = float(runs.start[rows].max())
        pushes = rows[ran[rows] & runs.pushed[rows]]
        if len(pushes) == 0:
            continue
        order = np.argsort(runs.pushed_at[pushes], kind="stable")
        at, trained = runs.pushed_at[pushes][order], runs.start[pushes][order]
        begin = max(evaluate_from, float(at[0]))
        if end <= begin:
            continue
        # Piecewise: from each push to the next, the model's age grows from (push - trained) linearly.
        bounds = np.append(at, end)
        for k in range(len(at)):
            a, b = max(bounds[k], begin), min(bounds[k + 1], end)
            if b <= a:
                continue
            total_area += (b - a) * ((a - trained[k]) + (b - trained[k])) / 2.0
            total_time += b - a
    return total_area / total_time if total_time else 0.0


def never_skip(runs: TrainingRuns, evaluate_from: float) -> ReplayResult:
    return replay(runs, NeverSkip(), evaluate_from=evaluate_from)
