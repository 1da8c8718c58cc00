"""Replay a store's history as a gate would have lived it, and measure what skipping gives and costs.

Pipelines are replayed one by one, runs in the order their trainers started. Before the
evaluation start every run runs (that is the history the gate begins with); from then on each
run is decided with only what was known at that moment: its features are computed from the
outcomes of the runs that ran (a skipped run's outcome never enters the history), and the
predictor is asked then.

What a run that runs yields comes from an :class:`OutcomeSource`. :class:`RecordedOutcomes`
takes the store's word: a run keeps its recorded outcome whatever was skipped before it. A
closed-loop source (the real-outcome benchmark's) evaluates it again against the model the
replay has deployed at that moment, so a skip that changes the deployed model changes later
blessings too.

Metrics (defined once for the project, ``../shared/paper.md``):

- compute saved: the skipped runs' training-branch compute, of those that would not have
  pushed, as a share of the wasted compute of the period (executions that served no pushed
  model, each counted once, as ``graphlets analyze`` counts it); ingestion and data analysis
  are part of that waste but run anyway, so the share a gate can reach is below 100 %, and is
  reported too (``avoidable_saved_share``: of the training-branch compute of unpushed runs);
- pushes kept: share of would-be pushes whose run still ran (a skipped run would have pushed
  when its outcome, at that moment, was a push);
- freshness: time-averaged age of the deployed model (now minus its trainer's start), and its
  increase over never skipping;
- skipped would-be pushes: how many, and their compute.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from airflow_graphlets.prune.calibration import Calibration
from airflow_graphlets.prune.dataset import TrainingRuns
from airflow_graphlets.prune.features import Candidate, Outcome, features
from airflow_graphlets.prune.policy import Guardrails, NeverSkip

HOUR = 3600.0
# P(push) of run ``i`` given its features as the replay computed them.
Probability = Callable[[int, np.ndarray], float]


class OutcomeSource(Protocol):
    """What a replayed run is, and what it yields if it runs, given the model deployed then
    (the row of the last run that pushed in this replay, or None) and the latest model trained
    (the row of the last run that ran, or None)."""

    def candidate(self, i: int, deployed: int | None, latest: int | None) -> Candidate: ...

    def outcome(self, i: int, deployed: int | None) -> Outcome: ...


class RecordedOutcomes:
    """The store's history as it happened: each run's recorded candidate and outcome."""

    def __init__(self, runs: TrainingRuns) -> None:
        self.runs = runs

    def candidate(self, i: int, deployed: int | None, latest: int | None) -> Candidate:
        return self.runs.candidates[i]

    def outcome(self, i: int, deployed: int | None) -> Outcome:
        return self.runs.outcomes[i]


@dataclass
class Played:
    """What happened in one replay: per run, whether it ran, and whether it pushed or would have."""

    ran: np.ndarray  # bool
    pushed: np.ndarray  # bool: ran and pushed
    would_push: np.ndarray  # bool: pushed, or was skipped and would have pushed then
    pushed_at: np.ndarray  # float, NaN where it did not push
    forced: int  # skips the guardrails turned into runs


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


def replay(runs: TrainingRuns, policy, *, evaluate_from: float, probability: Probability | None = None,
           guardrails: Guardrails | None = None, seed: int = 0, baseline_age: float | None = None,
           source: OutcomeSource | None = None, rows: np.ndarray | None = None) -> ReplayResult:
    """Replay ``policy`` over the runs that start at or after ``evaluate_from``, and measure it.

    Args:
      probability: P(push) of a run from its replayed features, for predictor policies.
      baseline_age: never skipping's mean model age (seconds), for ``age_increase`` (computed when None).
      source: where runs' candidates and outcomes come from (the recorded history when None).
      rows: replay only these rows' pipelines (every pipeline when None).
    """
    source = source or RecordedOutcomes(runs)
    played = play(runs, policy, evaluate_from=evaluate_from, probability=probability, guardrails=guardrails,
                  seed=seed, source=source, rows=rows)
    window = (runs.start >= evaluate_from) & _pipelines_of(runs, rows)
    if baseline_age is None:
        never = play(runs, NeverSkip(), evaluate_from=evaluate_from, source=source, rows=rows)
        baseline_age = mean_model_age(runs, never, evaluate_from, window)
    return measure(runs, played, policy.name, evaluate_from, window, baseline_age)


def play(runs: TrainingRuns, policy, *, evaluate_from: float, probability: Probability | None = None,
         guardrails: Guardrails | None = None, seed: int = 0, source: OutcomeSource | None = None,
         rows: np.ndarray | None = None, until: float = np.inf) -> Played:
    """Decide every run from ``evaluate_from`` on with ``policy`` inside ``guardrails`` (runs that
    start at or after ``until`` are left out)."""
    guardrails = guardrails or Guardrails()
    source = source or RecordedOutcomes(runs)
    rng = np.random.default_rng(seed)
    n = len(runs)
    ran, pushed, would = np.ones(n, dtype=bool), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    pushed_at = np.full(n, np.nan)
    forced = 0
    wanted = _pipelines_of(runs, rows)
    history, pending, current, calibration = None, [], -1, Calibration()
    deployed: int | None = None
    latest: int | None = None
    skips_in_a_row, last_trained = 0, -np.inf
    needs_probability = getattr(policy, "needs_probability", False)
    for i in range(n):
        if not wanted[i] or runs.start[i] >= until:
            continue
        if runs.pipeline[i] != current:
            history, pending, current = runs.new_history(runs.pipeline[i]), [], runs.pipeline[i]
            skips_in_a_row, last_trained, deployed, calibration = 0, -np.inf, None, Calibration()
            latest = None
        candidate = source.candidate(i, deployed, latest)
        while pending and pending[0][0] <= candidate.start:
            _, _, known, predicted = heapq.heappop(pending)
            history.add(known)
            if predicted is not None:
                calibration.add(predicted, known.pushed)
        outcome = source.outcome(i, deployed)
        would[i] = outcome.pushed
        p = None
        if candidate.start >= evaluate_from:
            x = np.asarray(features(history, candidate))
            p = probability(i, x) if needs_probability and probability is not None else None
            run, _ = policy.propose(x, None if p is None else calibration.apply(p))
            if not run:
                hours = (candidate.start - last_trained) / HOUR if np.isfinite(last_trained) else 0.0
                if guardrails.check(x, skips_in_a_row, hours, float(rng.random())) is not None:
                    run, forced = True, forced + 1
            ran[i] = run
        if ran[i]:
            heapq.heappush(pending, (outcome.end, i, outcome, p))
            skips_in_a_row, last_trained, latest = 0, candidate.start, i
            if outcome.pushed:
                pushed[i], pushed_at[i], deployed = True, outcome.pushed_at if outcome.pushed_at else outcome.end, i
        else:
            skips_in_a_row += 1
    return Played(ran, pushed, would, pushed_at, forced)


def measure(runs: TrainingRuns, played: Played, name: str, evaluate_from: float, window: np.ndarray,
            baseline_age: float) -> ReplayResult:
    """The metrics of one replay over the runs of ``window``."""
    skipped = window & ~played.ran
    in_waste = (runs.waste_start >= evaluate_from) & np.isin(runs.waste_pipeline, np.unique(runs.pipeline[window]))
    wasted = float(runs.waste_seconds[in_waste].sum())
    avoidable = float(runs.cost[window & ~runs.pushed].sum())
    saved = float(runs.cost[skipped & ~played.would_push].sum())
    would = window & played.would_push
    age = mean_model_age(runs, played, evaluate_from, window)
    return ReplayResult(
        policy=name,
        decided=int(window.sum()),
        skipped=int(skipped.sum()),
        compute_saved_share=saved / wasted if wasted else 0.0,
        avoidable_saved_share=saved / avoidable if avoidable else 0.0,
        pushes_kept_share=float((would & played.ran).sum() / would.sum()) if would.any() else 1.0,
        skipped_pushes=int((skipped & played.would_push).sum()),
        skipped_push_compute=float(runs.cost[skipped & played.would_push].sum()),
        mean_model_age_hours=age / HOUR,
        age_increase=(age / baseline_age - 1.0) if baseline_age else 0.0,
        forced_by_guardrails=played.forced,
    )


def _pipelines_of(runs: TrainingRuns, rows: np.ndarray | None) -> np.ndarray:
    if rows is None:
        return np.ones(len(runs), dtype=bool)
    return np.isin(runs.pipeline, np.unique(runs.pipeline[rows]))


def mean_model_age(runs: TrainingRuns, played: Played, evaluate_from: float, window: np.ndarray | None = None) -> float:
    """Time-averaged age (seconds) of each pipeline's deployed model over the evaluation period,
    pooled over pipelines; a pipeline counts from its first push."""
    total_area = total_time = 0.0
    window = np.ones(len(runs), dtype=bool) if window is None else window
    for p in np.unique(runs.pipeline[window]):
        rows = np.flatnonzero(runs.pipeline == p)
        end = float(runs.start[rows].max())
        pushes = rows[played.pushed[rows]]
        if len(pushes) == 0:
            continue
        order = np.argsort(played.pushed_at[pushes], kind="stable")
        at, trained = played.pushed_at[pushes][order], runs.start[pushes][order]
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
