"""``graphlets replay``: train on the past of a store, replay its future under the learned policy
and every baseline, side by side, with the trade-off curve over thresholds."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.prune.dataset import TrainingRuns, feature_matrix, training_runs
from airflow_graphlets.prune.policy import (
    Guardrails,
    NeverSkip,
    PredictedPush,
    SkipAfterNotPushed,
    SkipWithoutNewData,
    push_scores,
    threshold_for_pushes_kept,
)
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.replay import ReplayResult, replay

JSON_SCHEMA = "airflow-graphlets/replay"
JSON_VERSION = 1
CURVE = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


@dataclass(frozen=True)
class PolicySettings:
    """How the learned policy is trained and where it operates (a ``[policy]`` TOML table)."""

    train_share: float = 0.5  # the first half of the period trains the predictor; the rest is replayed
    target_pushes_kept: float = 0.93  # the threshold keeps this share of the training period's pushes
    staleness_hours: float = 24.0  # weight P(push) by 1 + hours since push / this (0: the bare probability)
    guardrails: Guardrails = field(default_factory=Guardrails)

    @classmethod
    def from_toml(cls, path: str) -> PolicySettings:
        """Read ``[policy]`` and ``[policy.guardrails]``; unknown keys are errors naming the known ones.

        Raises:
          GraphletsError: unreadable file, unknown key, or a value out of range.
        """
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise GraphletsError(f"Cannot read the policy file {path}: {err}") from None
        table = dict(document.get("policy", {}))
        rails = dict(table.pop("guardrails", {}))
        _check_keys(path, "policy", table, [f.name for f in fields(cls) if f.name != "guardrails"])
        _check_keys(path, "policy.guardrails", rails, [f.name for f in fields(Guardrails)])
        settings = cls(**table, guardrails=Guardrails(**rails))
        if (not 0.05 <= settings.train_share <= 0.95 or not 0.0 < settings.target_pushes_kept <= 1.0
                or settings.staleness_hours < 0):
            raise GraphletsError(f"{path}: train_share must be in [0.05, 0.95], target_pushes_kept in (0, 1] and "
                                 "staleness_hours >= 0.")
        return settings


def _check_keys(path: str, table: str, values: dict, known: list[str]) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GraphletsError(f"{path}: unknown key(s) {', '.join(unknown)} in [{table}]; known: {', '.join(known)}.")


@dataclass
class Evaluation:
    """Everything ``graphlets replay`` reports."""

    store: str
    runs: int
    train_runs: int
    evaluated_runs: int
    evaluate_from: float
    threshold: float
    settings: PolicySettings
    policies: list[ReplayResult]  # the learned policy first, then the baselines
    curve: list[ReplayResult]  # the learned policy at each threshold of CURVE

    def to_json_document(self) -> dict:
        return {
            "schema": JSON_SCHEMA, "version": JSON_VERSION, "store": self.store, "runs": self.runs,
            "train_runs": self.train_runs, "evaluated_runs": self.evaluated_runs,
            "evaluate_from": self.evaluate_from, "threshold": self.threshold,
            "settings": asdict(self.settings),
            "policies": [_plain(r.as_dict()) for r in self.policies],
            "curve": [{"threshold": t, **_plain(r.as_dict())} for t, r in zip(CURVE, self.curve)],
        }


def _plain(values: dict) -> dict:
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in values.items()}


def evaluate(extraction: Extraction, drift: dict[tuple[str, int], float], settings: PolicySettings | None = None,
             seed: int = 0) -> Evaluation:
    """Train on the first ``train_share`` of the period, replay the rest under every policy.

    Raises:
      GraphletsError: too little history to train on.
    """
    settings = settings or PolicySettings()
    runs, matrix = _rows(extraction, drift)
    first, last = float(runs.start.min()), float(runs.start.max())
    split = first + settings.train_share * (last - first)
    past = runs.start < split
    predictor = PushPredictor.fit(matrix[past], runs.pushed[past], seed=seed)
    probabilities = predictor.push_probability(matrix)
    hours = settings.staleness_hours or None
    threshold = _operating_threshold(probabilities[past], matrix[past], runs.pushed[past], settings)
    bare = threshold_for_pushes_kept(probabilities[past], runs.pushed[past], settings.target_pushes_kept)
    rails = settings.guardrails
    never = replay(runs, NeverSkip(), evaluate_from=split, guardrails=rails, seed=seed)
    baseline_age = never.mean_model_age_hours * 3600.0
    common = {"evaluate_from": split, "guardrails": rails, "seed": seed, "baseline_age": baseline_age}
    learned = replay(runs, PredictedPush(threshold, hours), probabilities=probabilities, **common)
    others = [PredictedPush(bare)] if hours else []  # the bare probability, for comparison
    baselines = [never] + [replay(runs, policy, probabilities=probabilities, **common) for policy in (
        *others, SkipWithoutNewData(), SkipAfterNotPushed(2), SkipAfterNotPushed(3))]
    curve = [replay(runs, PredictedPush(t, hours), probabilities=probabilities, **common) for t in CURVE]
    return Evaluation(extraction.store, len(runs), int(past.sum()), int((~past).sum()), split, threshold, settings,
                      [learned, *baselines], curve)


def train_predictor(extraction: Extraction, drift: dict[tuple[str, int], float],
                    settings: PolicySettings | None = None, seed: int = 0) -> PushPredictor:
    """Train the gate's predictor on every finished run of a store, with the threshold that keeps
    ``settings.target_pushes_kept`` of their pushes (what ``graphlets train-predictor`` saves).

    Raises:
      GraphletsError: too little history to train on.
    """
    settings = settings or PolicySettings()
    runs, matrix = _rows(extraction, drift)
    predictor = PushPredictor.fit(matrix, runs.pushed, seed=seed)
    threshold = _operating_threshold(predictor.push_probability(matrix), matrix, runs.pushed, settings)
    return replace(predictor, threshold=threshold, staleness_hours=settings.staleness_hours or None)


def _rows(extraction: Extraction, drift: dict[tuple[str, int], float]) -> tuple[TrainingRuns, np.ndarray]:
    """The store's finished runs and their features; raises GraphletsError when there are none."""
    runs = training_runs(on_clock(extraction, "logical"), drift)
    if len(runs) == 0:
        raise GraphletsError(f"{extraction.store} holds no finished training runs to learn from.")
    return runs, feature_matrix(runs)


def _operating_threshold(probabilities: np.ndarray, matrix: np.ndarray, pushed: np.ndarray,
                         settings: PolicySettings) -> float:
    """The threshold on the age-weighted score that keeps ``target_pushes_kept`` of these pushes."""
    scores = push_scores(probabilities, matrix, settings.staleness_hours or None)
    return float(threshold_for_pushes_kept(scores, pushed, settings.target_pushes_kept))
