"""The gate's decision for one run about to train: read the pipeline's history, compute the
features, ask the predictor, apply the policy inside the guardrails, and fail open.

Failing open is the rule: a missing store, a missing predictor, an error anywhere, or a decision
that took longer than its budget all mean *run the training*, with the cause as the reason. A
gate must never be the reason a model is not trained by mistake.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from airflow_graphlets.prune.features import NAMES, Candidate, PipelineHistory, features
from airflow_graphlets.prune.policy import Decision, Guardrails, PredictedPush
from airflow_graphlets.store.uri import StoreConfig

HOUR = 3600.0


@dataclass(frozen=True)
class GateSettings:
    """What the gate decides with."""

    predictor_path: str | None = None  # a file written by PushPredictor.save
    threshold: float = 0.35  # skip below this predicted push probability
    guardrails: Guardrails = field(default_factory=Guardrails)
    budget_seconds: float = 5.0  # decisions slower than this run the training
    never_skip: bool = False  # an operator's standing override for this pipeline
    policy_version: str = "predictor-v1"


@dataclass(frozen=True)
class GateOutcome:
    """A decision with what it was made from: what the skip log keeps."""

    decision: Decision
    features: dict[str, float]
    policy_version: str
    override: str | None
    seconds: float


def decide(config: StoreConfig | None, pipeline: str, candidate: Candidate, settings: GateSettings, *,
           skips_in_a_row: int = 0, force_run: bool = False, draw: float | None = None) -> GateOutcome:
    """Run or skip the run about to train in ``pipeline``; never raises (fails open)."""
    began = time.perf_counter()
    if settings.never_skip or force_run:
        override = "never-skip" if settings.never_skip else "force-run"
        return GateOutcome(Decision(True, None, f"operator override: {override}"), {}, settings.policy_version,
                           override, time.perf_counter() - began)
    try:
        if config is None:
            raise RuntimeError("no MLMD store is configured")
        if not settings.predictor_path:
            raise RuntimeError("no predictor is configured (predictor_path)")
        from airflow_graphlets.prune.predictor import PushPredictor

        predictor = PushPredictor.load(settings.predictor_path)
        history, last_trained = pipeline_history(config, pipeline, candidate.start)
        x = np.asarray(features(history, candidate))
        probability = float(predictor.push_probability(x)[0])
        run, reason = PredictedPush(settings.threshold).propose(x, probability)
        if not run:
            hours = (candidate.start - last_trained) / HOUR if last_trained is not None else 0.0
            draw = float(np.random.default_rng().random()) if draw is None else draw
            forced = settings.guardrails.check(x, skips_in_a_row, hours, draw)
            if forced is not None:
                run, reason = True, f"guardrail: {forced} (the predictor said: {reason})"
        seconds = time.perf_counter() - began
        if seconds > settings.budget_seconds:
            return GateOutcome(Decision(True, probability, f"fail open: the decision took {seconds:.2f} s "
                                                           f"(budget {settings.budget_seconds:g} s)"),
                               dict(zip(NAMES, x.tolist())), settings.policy_version, None, seconds)
        return GateOutcome(Decision(run, probability, reason), dict(zip(NAMES, x.tolist())), settings.policy_version,
                           None, seconds)
    except Exception as err:  # noqa: BLE001 - any failure runs the training
        return GateOutcome(Decision(True, None, f"fail open: {type(err).__name__}: {err}"), {},
                           settings.policy_version, None, time.perf_counter() - began)


def pipeline_history(config: StoreConfig, pipeline: str, now: float) -> tuple[PipelineHistory, float | None]:
    """The pipeline's outcomes known at ``now`` (in the order they became known), and when its
    latest trainer started (None before any)."""
    from airflow_graphlets.errors import NoGraphletsError
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.graphlets.clock import on_clock
    from airflow_graphlets.prune.dataset import training_runs
    from airflow_graphlets.prune.signals import span_drift

    try:
        extraction = on_clock(read_graphlets(config, [pipeline], workers=1), "logical")
    except NoGraphletsError:
        return PipelineHistory(), None  # a pipeline that has not trained yet
    runs = training_runs(extraction, span_drift(config, pipeline))  # only this pipeline's spans
    history = PipelineHistory()
    for outcome in sorted((o for o in runs.outcomes if o.end <= now), key=lambda o: o.end):
        history.add(outcome)
    started = [o.start for o in runs.outcomes if o.start <= now]
    return history, max(started) if started else None
