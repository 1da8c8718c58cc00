"""The bar a pipeline's evaluator sets, read from TFX's ``eval_config``.

Whether a candidate is blessed is the evaluator's rule: its metric must reach a value threshold
(``lower_bound``) and beat the deployed model by a change threshold (``absolute``). TFX's
Evaluator keeps its ``EvalConfig`` as JSON in the execution's ``eval_config`` property, so every
TFX store holds that bar; with the deployed model's score on the new span (a signal) it tells
the predictor how high the candidate must jump. A pipeline whose evaluator lets ties pass pushes
retrained equals; one with a margin pushes only real gains.

Both EvalConfig layouts are read: per-metric ``threshold`` inside ``metrics_specs[].metrics[]``,
and the ``metrics_specs[].thresholds`` map. The first metric with a threshold counts; for a
metric where lower is better the bar is turned around (negated), so higher is always better.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

EVAL_CONFIG_PROPERTY = "eval_config"  # TFX Evaluator's execution property


@dataclass(frozen=True)
class EvaluatorBar:
    """What a candidate's metric must reach, and how much it must beat the deployed model's by."""

    bound: float | None  # value threshold (None: none set)
    margin: float | None  # change threshold (None: none set; TFX's -1e-10 lets ties pass)


def parse_eval_config(text: str | None) -> EvaluatorBar | None:
    """The bar of a TFX ``eval_config`` JSON document; None when it sets no threshold or is not one."""
    try:
        document = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    for spec in document.get("metrics_specs") or document.get("metricsSpecs") or []:
        if not isinstance(spec, dict):
            continue
        candidates = [metric.get("threshold") for metric in spec.get("metrics") or [] if isinstance(metric, dict)]
        candidates += list((spec.get("thresholds") or {}).values()) if isinstance(spec.get("thresholds"), dict) else []
        for threshold in candidates:
            bar = _bar(threshold)
            if bar is not None:
                return bar
    return None


def _bar(threshold) -> EvaluatorBar | None:
    if not isinstance(threshold, dict):
        return None
    value = threshold.get("value_threshold") or threshold.get("valueThreshold") or {}
    change = threshold.get("change_threshold") or threshold.get("changeThreshold") or {}
    lower = _number(value.get("lower_bound", value.get("lowerBound")))
    upper = _number(value.get("upper_bound", value.get("upperBound")))
    absolute = _number(change.get("absolute"))
    lower_is_better = str(change.get("direction", "")).upper() == "LOWER_IS_BETTER"
    if lower_is_better:
        bound = None if upper is None else -upper
        margin = None if absolute is None else -absolute
    else:
        bound, margin = lower, absolute
    if bound is None and margin is None:
        return None
    return EvaluatorBar(bound, margin)


def _number(value) -> float | None:
    if isinstance(value, dict):  # protobuf's JSON of a DoubleValue wrapper
        value = value.get("value")
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def tfx_eval_config(metric: str, bound: float, margin: float) -> str:
    """An ``eval_config`` as TFX writes it for one metric where higher is better (for writers
    that are not TFX: the example DAGs' evaluator and the real-outcome benchmark)."""
    return json.dumps({"metrics_specs": [{"metrics": [{"class_name": metric, "threshold": {
        "value_threshold": {"lower_bound": {"value": bound}},
        "change_threshold": {"direction": "HIGHER_IS_BETTER", "absolute": {"value": margin if margin else -1e-10}},
    }}]}]}, sort_keys=True)
