"""Airflow edge: ``GraphletGateOperator``, placed before a DAG's training branch.

It asks :func:`airflow_graphlets.prune.gate.decide` whether this run's model is likely to be
pushed. On *skip* it raises Airflow's skip, so the training branch downstream shows as skipped
with the reason in this task's log; on *run* it succeeds. Either way the decision, probability,
features, policy version, reason and override are set as properties of the gate's own execution,
which the recorder writes into MLMD: the skip log. Anything going wrong runs the training.

    gate = GraphletGateOperator(task_id="graphlet_gate", spans=window, drift=drift,
                                predictor_path="/models/push-predictor.npz")
    validator >> gate >> transform >> trainer

The TaskFlow form, ``@graphlet_gate`` (also ``@task.graphlet_gate``), wraps a function that returns
what the gate needs to know of the run, ``{"spans": [...], "drift": 0.4, "signals": {...}}``:

    @graphlet_gate(predictor_path="/models/push-predictor.npz")
    def gate(window: dict, anomalies: dict) -> dict:
        return {"spans": window["spans"], "drift": anomalies["drift"],
                "signals": {"deployed_score": score_deployed_model_on(window["newest"])}}

``signals`` are what the DAG measured before training (``deployed_score``: the deployed model's
score on the new span, the strongest cheap signal); every gate logs them as
``graphlets_signals``, with or without a predictor, so the predictor can learn from them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.decorator import DecoratedOperator, determine_kwargs, task_decorator_factory
from airflow.sdk.exceptions import AirflowSkipException

from airflow_graphlets import lineage
from airflow_graphlets.store import schema

if TYPE_CHECKING:  # the gate's machinery (NumPy, SQLAlchemy) loads when a gate runs, not when a DAG parses
    from airflow_graphlets.prune.gate import GateOutcome
    from airflow_graphlets.prune.policy import Guardrails

DECISION = "graphlets_decision"
SIGNALS = schema.GATE_SIGNALS_PROPERTY  # what the DAG handed the gate (prune/signals.py reads it back)


class GraphletGateOperator(BaseOperator):
    """Skip the training branch when its model is predicted not to be pushed (docs/prune.md).

    Args:
      spans: the span numbers the trainer will read (templated).
      drift: the drift the validator reported for the newest span, or None (templated).
      signals: what the DAG measured before training, ``{name: number}`` (templated), e.g.
        ``{"deployed_score": 0.91}``: the deployed model's score on the new span.
      trainer_task_id: the trainer task, whose code hash is a feature.
      predictor_path: a file written by ``graphlets train-predictor`` (templated); default
        ``[graphlets] predictor_path``.
      threshold: skip below this age-weighted push probability; default the predictor's own.
      never_skip: always run the training (the DAG author's standing override).
      guardrails: limits every skip works within (:class:`~airflow_graphlets.prune.policy.Guardrails`).
      budget_seconds: with no decision by then, the training runs.
      prior: while no predictor file exists, decide with the prior shipped with the package
        (``prune/prior.py``), corrected by this pipeline's own outcomes; False runs every training
        until ``graphlets train-predictor`` (or the maintenance DAG) has written one.
    """

    template_fields = ("spans", "drift", "signals", "predictor_path")
    graphlets_component = None
    _input_error: str | None = None  # set by @graphlet_gate when its function failed: training runs

    def __init__(self, *, spans: Any = None, drift: Any = None, signals: Any = None, trainer_task_id: str = "trainer",
                 predictor_path: str | None = None, threshold: float | None = None, never_skip: bool = False,
                 guardrails: Guardrails | None = None, budget_seconds: float = 5.0, prior: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spans = spans
        self.drift = drift
        self.signals = signals
        self.trainer_task_id = trainer_task_id
        self.predictor_path = predictor_path
        self.threshold = threshold
        self.never_skip = never_skip
        self.guardrails = guardrails  # None: Guardrails() when the gate runs
        self.budget_seconds = budget_seconds
        self.prior = prior

    def execute(self, context: Any) -> dict:
        signals = self._signals()
        outcome = self._decide(context, signals)
        decision = outcome.decision
        self._log_decision(context, signals, outcome)
        if not decision.run:
            self.log.info("airflow-graphlets gate: skipping the training branch: %s", decision.reason)
            raise AirflowSkipException(f"airflow-graphlets gate: {decision.reason}")
        self.log.info("airflow-graphlets gate: training runs: %s", decision.reason)
        return {"run": True, "probability": decision.probability, "reason": decision.reason}

    def _log_decision(self, context: Any, signals: dict[str, float], outcome: GateOutcome) -> None:
        """Set the decision as properties of the gate's execution (the skip log). A value MLMD
        cannot hold (a probability that is not a number, a NUL in a reason) is made storable, and
        if logging fails all the same the decision stands: the skip log must not block training."""
        decision = outcome.decision
        probability = decision.probability
        if probability is None or not math.isfinite(probability):
            probability = -1.0
        try:
            lineage.of(context).set_properties(**{
                SIGNALS: json.dumps(signals, sort_keys=True),
                DECISION: "run" if decision.run else "skip",
                "graphlets_probability": float(probability),
                "graphlets_reason": _storable(decision.reason),
                "graphlets_features": json.dumps(outcome.features, sort_keys=True),  # NaN is None there
                "graphlets_policy_version": _storable(outcome.policy_version),
                "graphlets_override": _storable(outcome.override or ""),
            })
        except Exception as err:  # noqa: BLE001 - a decision that cannot be logged still stands
            self.log.warning("airflow-graphlets gate: the decision (%s) could not be logged: %s",
                             "run" if decision.run else "skip", err)

    def _signals(self) -> dict[str, float]:
        """The finite numbers among ``signals``; anything else is named in the log and left out."""
        if self.signals is None:
            return {}
        if not isinstance(self.signals, Mapping):
            self.log.warning("airflow-graphlets gate: signals must be a dict of name to number, not %s; ignored",
                             type(self.signals).__name__)
            return {}
        kept = {}
        for name, value in self.signals.items():
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            if number is None or not math.isfinite(number):
                self.log.warning("airflow-graphlets gate: signal %r = %r is not a finite number; ignored", name, value)
                continue
            kept[str(name)] = float(number)
        return kept

    def _decide(self, context: Any, signals: dict[str, float]) -> GateOutcome:
        from airflow_graphlets.prune.features import Candidate
        from airflow_graphlets.prune.gate import GateOutcome, GateSettings, decide
        from airflow_graphlets.prune.policy import Decision, Guardrails

        if self._input_error:
            return GateOutcome(Decision(True, None, f"fail open: {self._input_error}"), {},
                               GateSettings().policy_version, None, 0.0)
        config, predictor_path = None, self.predictor_path
        candidate = Candidate(time.time(), frozenset(), None, None, None, signals)
        try:
            from airflow_graphlets.airflow_config import load_settings, resolve_store
            from airflow_graphlets.recorder.capture import code_hash, dag_structure_hash

            graphlets = load_settings()
            predictor_path = predictor_path or graphlets.predictor_path  # [graphlets] predictor_path
            config = resolve_store(graphlets)
            dag = context["dag"]
            trainer = dag.task_dict.get(self.trainer_task_id)
            candidate = Candidate(
                start=_logical_now(context),
                spans=frozenset(int(s) for s in (self.spans or [])),
                structure_hash=dag_structure_hash(dag),
                code_hash=code_hash(trainer) if trainer is not None else None,
                drift=None if self.drift is None else float(self.drift),
                signals=signals,
            )
        except Exception as err:  # noqa: BLE001 - decide() fails open on a missing store
            self.log.warning("airflow-graphlets gate: could not read the run's context: %s", err)
        settings = GateSettings(predictor_path, self.threshold, self.guardrails or Guardrails(), self.budget_seconds,
                                self.never_skip, prior=self.prior)
        return decide(config, context["dag"].dag_id, candidate, settings, gate_task_id=self.task_id,
                      run_id=context.get("run_id"))


def _storable(text: str) -> str:
    """``text`` as MLMD's databases store it: PostgreSQL refuses NUL characters in text."""
    return str(text).replace("\x00", "\\x00")


def _logical_now(context: Any) -> float:
    """Now on the logical clock the graphlet history uses: the run's logical date plus the time
    since the run started.

    A run whose start date is its logical date (``dag.test`` sets it so for any past date) gives
    no usable start: then now is the logical date itself, not months after it.
    """
    logical = context.get("logical_date")
    run = context.get("dag_run")
    started = getattr(run, "start_date", None)
    if logical is None:
        return time.time()
    if started is None or started <= logical:
        return logical.timestamp()
    return logical.timestamp() + max(time.time() - started.timestamp(), 0.0)


class _GraphletGateDecoratedOperator(DecoratedOperator, GraphletGateOperator):
    """``@graphlet_gate``: the wrapped function says which spans the run trains on (and their
    drift); the gate then decides as :class:`GraphletGateOperator` does."""

    template_fields = (*DecoratedOperator.template_fields, *GraphletGateOperator.template_fields)
    custom_operator_name = "@task.graphlet_gate"

    def execute(self, context: Any) -> dict:
        try:
            # Airflow's own rule for which context entries a TaskFlow function receives.
            kwargs = determine_kwargs(self.python_callable, self.op_args, {**context, **self.op_kwargs})
            inputs = self.python_callable(*self.op_args, **kwargs)
            if not isinstance(inputs, Mapping) or "spans" not in inputs:
                raise TypeError(f"a @graphlet_gate function must return a dict with 'spans' (and optionally "
                                f"'drift' and 'signals'), not {type(inputs).__name__}")
            self.spans, self.drift, self.signals = inputs["spans"], inputs.get("drift"), inputs.get("signals")
        except Exception as err:  # noqa: BLE001 - the user's function failing must not block training
            self.log.warning("airflow-graphlets gate: the gate function failed, so training runs: %s", err)
            self._input_error = f"the gate function failed: {type(err).__name__}: {err}"
        return GraphletGateOperator.execute(self, context)


def graphlet_gate(python_callable: Callable | None = None, **kwargs: Any):
    """TaskFlow form of :class:`GraphletGateOperator`: decorate a function returning
    ``{"spans": [...], "drift": float | None, "signals": {name: number}}``; keyword arguments go to
    the gate."""
    return task_decorator_factory(python_callable=python_callable, multiple_outputs=False,
                                  decorated_operator_class=_GraphletGateDecoratedOperator, **kwargs)
