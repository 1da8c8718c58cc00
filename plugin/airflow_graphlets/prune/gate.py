"""The gate's decision for one run about to train: read the pipeline's history, compute the
features, ask the predictor, apply the policy inside the guardrails, and fail open.

Failing open is the rule: a missing store, a missing predictor, an error anywhere, or a decision
that took longer than its budget all mean *run the training*, with the cause as the reason. A
gate must never be the reason a model is not trained by mistake.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from airflow_graphlets.prune.calibration import WINDOW as CALIBRATION_WINDOW
from airflow_graphlets.prune.calibration import Calibration
from airflow_graphlets.prune.features import NAMES, Candidate, features
from airflow_graphlets.prune.overrides import StandingOverrides
from airflow_graphlets.prune.policy import Decision, Guardrails, PredictedPush
from airflow_graphlets.prune.prior import PRIOR_LABEL
from airflow_graphlets.store.identity import pipeline_run_context_name
from airflow_graphlets.store.uri import StoreConfig

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

HOUR = 3600.0
FORCED_BY = "guardrail: "  # how the reason of a run a guardrail forced begins (the skip audit reads it)


@dataclass(frozen=True)
class GateSettings:
    """What the gate decides with."""

    predictor_path: str | None = None  # a file written by PushPredictor.save
    threshold: float | None = None  # skip below this (weighted) push probability (None: the predictor's own)
    guardrails: Guardrails = field(default_factory=Guardrails)
    budget_seconds: float = 5.0  # decisions slower than this run the training
    never_skip: bool = False  # the DAG author's standing override (operators use `graphlets override`)
    prior: bool = True  # with no predictor file yet, decide with the prior (prune/prior.py)
    policy_version: str = "no-predictor"  # what a decision made without a predictor names (a predictor names itself)


@dataclass(frozen=True)
class GateState:
    """What the skip log and the overrides say before a decision."""

    skips_in_a_row: int = 0  # the DAG's latest decisions that were skips, counting back from the newest
    last_decision_at: float | None = None  # wall clock of the latest decision
    overrides: StandingOverrides = field(default_factory=StandingOverrides)
    recent: tuple = ()  # the gate's latest LoggedDecisions, oldest first (its calibration reads them)


def read_gate_state(config: StoreConfig, dag_id: str, gate_task_id: str | None = None,
                    latest: int | None = None, engine: Engine | None = None, run_id: str | None = None) -> GateState:
    """The DAG's gate state from its skip log and override log in the store.

    Args:
      config: the store (read-only).
      dag_id: the DAG.
      gate_task_id: read this gate task's decisions only (fast); every gate of the DAG when None.
      latest: with ``gate_task_id``, read only its newest ``latest`` decisions (enough to count
        a run of skips up to the guardrail's limit).
      engine: an open read-only engine to read through (a new one when None).
      run_id: the DAG run about to decide (a force-run bound to it counts; see ``overrides``).
    """
    from airflow_graphlets.prune.decisions import read_decisions
    from airflow_graphlets.prune.overrides import read_overrides, standing

    decisions = read_decisions(config, dag_id, gate_task_id=gate_task_id, latest=latest, engine=engine)
    skips = 0
    for logged in reversed(decisions):
        if logged.decision != "skip":
            break
        skips += 1
    last = decisions[-1].decided_at if decisions else None
    overrides = read_overrides(config, dag_id, engine)
    run_decided_at = None
    if run_id and any(o.run_id == run_id for o in overrides):  # rare: read that run's own decisions
        of_run = [d.decided_at for d in read_decisions(config, dag_id, gate_task_id=gate_task_id, engine=engine)
                  if d.run_id == run_id]
        run_decided_at = max(of_run, default=None)
    return GateState(skips, last, standing(overrides, last, run_id, run_decided_at), tuple(decisions))


@dataclass(frozen=True)
class GateOutcome:
    """A decision with what it was made from: what the skip log keeps."""

    decision: Decision
    features: dict[str, float | None]  # None: unknown to this store (NaN to the predictor)
    policy_version: str
    override: str | None
    seconds: float


def decide(config: StoreConfig | None, pipeline: str, candidate: Candidate, settings: GateSettings, *,
           state: GateState | None = None, gate_task_id: str | None = None, draw: float | None = None,
           run_id: str | None = None) -> GateOutcome:
    """Run or skip the run about to train in ``pipeline``; never raises (fails open).

    Args:
      config: the MLMD store holding the pipeline's history, skip log and overrides.
      pipeline: the DAG id.
      candidate: what is known of the run about to train.
      settings: predictor, threshold, guardrails, budget.
      state: the skip log and overrides; read from the store when not given.
      gate_task_id: the gate's task id, so the skip log is read from its own decisions.
      draw: the exploration draw in [0, 1) (random when not given).
      run_id: the DAG run deciding (an operator's force-run bound to it is honoured).
    """
    began = time.perf_counter()
    if settings.never_skip:
        return GateOutcome(Decision(True, None, "operator override: never-skip (set on the gate in the DAG)"), {},
                           settings.policy_version, "never-skip", time.perf_counter() - began)
    # The reads run in a daemon thread the gate waits for at most budget_seconds: a store that
    # hangs (a connect that never completes, a locked table) cannot hold the task, and the
    # thread ends with the task's process. The database drivers release the GIL while they wait.
    done: list[GateOutcome] = []
    worker = threading.Thread(target=lambda: done.append(_decide_or_fail_open(
        config, pipeline, candidate, settings, state, gate_task_id, draw, run_id)), name="graphlets-gate", daemon=True)
    with _collector_paused():
        worker.start()
        worker.join(settings.budget_seconds)
    seconds = time.perf_counter() - began
    if not done:
        return GateOutcome(Decision(True, None, f"fail open: no decision within the budget of "
                                                f"{settings.budget_seconds:g} s (budget_seconds)"),
                           {}, settings.policy_version, None, seconds)
    return dataclasses.replace(done[0], seconds=seconds)


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector held off while the gate waits for its decision: a full
    collection in a task process (Airflow, SQLAlchemy and NumPy loaded) takes longer than the
    decision, and the decision's rows set one off now and then. Resumed however the wait ends,
    as it was (a task that disabled it keeps it disabled)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decide_or_fail_open(config: StoreConfig | None, pipeline: str, candidate: Candidate, settings: GateSettings,
                         state: GateState | None, gate_task_id: str | None, draw: float | None,
                         run_id: str | None = None) -> GateOutcome:
    try:
        if config is None:
            raise RuntimeError("no MLMD store is configured")
        from airflow_graphlets.store.inspect import reading

        with reading(config, point_reads=True) as engine:  # one connection pool for every read
            return _decide(config, engine, pipeline, candidate, settings, state, gate_task_id, draw, run_id)
    except Exception as err:  # noqa: BLE001 - any failure runs the training
        return GateOutcome(Decision(True, None, f"fail open: {type(err).__name__}: {err}"), {},
                           settings.policy_version, None, 0.0)


def calibrate(predictor, pipeline: str, history, decisions) -> Calibration:
    """The pipeline's calibration, as the replay keeps it: each decision the gate made with a
    predictor whose run trained and whose outcome is known now, with the probability the
    current predictor gives its logged features (:mod:`.calibration`)."""
    calibration = Calibration()
    outcomes = {o.run: o for o in history.outcomes if o.run is not None}
    for logged in decisions:
        outcome = outcomes.get(pipeline_run_context_name(pipeline, logged.run_id))
        if logged.decision != "run" or outcome is None or set(logged.features) != set(NAMES):
            continue
        values = (logged.features[name] for name in NAMES)
        x = np.asarray([np.nan if v is None else float(v) for v in values])
        calibration.add(float(predictor.push_probability(x)[0]), outcome.pushed)
    return calibration


def _decide(config: StoreConfig, engine: Engine, pipeline: str, candidate: Candidate, settings: GateSettings,
            state: GateState | None, gate_task_id: str | None, draw: float | None,
            run_id: str | None = None) -> GateOutcome:
    """The decision, raising on any failure (``decide`` turns that into running the training)."""
    from airflow_graphlets.prune.gate_history import first_window, pipeline_history

    if state is None:
        # Enough of the skip log to count a run of skips, and the calibration's window of runs.
        latest = max(settings.guardrails.max_consecutive_skips + 1, 3 * CALIBRATION_WINDOW) if gate_task_id else None
        state = read_gate_state(config, pipeline, gate_task_id, latest, engine, run_id)
    override = state.overrides.active
    if override is not None:
        said = f": {override.reason}" if override.reason else ""
        return GateOutcome(Decision(True, None, f"operator override: {override.action} by {override.by}{said}"),
                           {}, settings.policy_version, f"{override.action} by {override.by}", 0.0)
    predictor, version = _predictor(settings)
    # The gate's latest decisions tell how many of the latest runs trained, so how many to read.
    window = first_window([logged.decision for logged in state.recent])
    history, last_trained = pipeline_history(config, pipeline, candidate.start, first_window=window, engine=engine,
                                             candidate_spans=candidate.spans)
    x = np.asarray(features(history, candidate))
    raw = float(predictor.push_probability(x)[0])
    if not np.isfinite(raw):
        raise ValueError(f"the predictor {predictor.version} gave no probability ({raw}); train it again")
    probability = calibrate(predictor, pipeline, history, state.recent).apply(raw)
    threshold = predictor.threshold if settings.threshold is None else settings.threshold
    run, reason = PredictedPush(threshold, predictor.scoring).propose(x, probability)
    if version != predictor.version:
        reason = f"{PRIOR_LABEL} predictor (no predictor trained on this store yet): {reason}"
    if not run:
        hours = (candidate.start - last_trained) / HOUR if last_trained is not None else 0.0
        draw = float(np.random.default_rng().random()) if draw is None else draw
        forced = settings.guardrails.check(x, state.skips_in_a_row, hours, draw)
        if forced is not None:
            run, reason = True, f"{FORCED_BY}{forced} (the predictor said: {reason})"
    known = {name: (value if np.isfinite(value) else None) for name, value in zip(NAMES, x.tolist())}
    return GateOutcome(Decision(run, probability, reason), known, version, None, 0.0)


def _predictor(settings: GateSettings):
    """The predictor a decision uses and the version it logs: the file at ``predictor_path``, or,
    while none exists there, the prior (a damaged file is an error, not a reason for the prior)."""
    import os

    from airflow_graphlets.prune.predictor import PushPredictor
    from airflow_graphlets.prune.prior import load_prior

    if settings.predictor_path and os.path.exists(settings.predictor_path):
        predictor = PushPredictor.load(settings.predictor_path)
        return predictor, predictor.version
    if not settings.prior:
        if not settings.predictor_path:
            raise RuntimeError("no predictor is configured (predictor_path)")
        PushPredictor.load(settings.predictor_path)  # raises, saying how to train one
    prior = load_prior()
    return prior, f"{PRIOR_LABEL}/{prior.version}"
