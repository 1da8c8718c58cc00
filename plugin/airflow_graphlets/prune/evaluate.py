"""``graphlets replay``: train on the past of a store, replay its future under the learned policy
and every baseline, side by side, with the trade-off curve over thresholds.

Out of sample twice over: the predictor learns from the first ``train_share`` of the period
and its threshold is chosen by time-ordered cross-validation inside that period
(:mod:`.operating_point`), then the rest is replayed (held-out time); and a second predictor,
trained without a quarter of the pipelines, is replayed on those (held-out pipelines).
"""

from __future__ import annotations

import hashlib
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from airflow_graphlets.errors import GraphletsError, NotEnoughHistoryError
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.prune.dataset import TrainingRuns, feature_matrix, training_runs
from airflow_graphlets.prune.evaluator_bar import EvaluatorBar
from airflow_graphlets.prune.features import NAMES
from airflow_graphlets.prune.operating_point import OperatingPoint, choose, memoized
from airflow_graphlets.prune.policy import (
    Guardrails,
    NeverSkip,
    PredictedPush,
    Scoring,
    SkipAfterNotPushed,
    SkipWithoutNewData,
)
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.replay import OutcomeSource, ReplayResult, replay
from airflow_graphlets.prune.signals import StatisticsFound

JSON_SCHEMA = "airflow-graphlets/replay"
JSON_VERSION = 1  # additive changes keep the version: new keys only
SKIP_AFTER = (1, 2, 3, 4)
_HELD_OUT_EVERY = 4  # one pipeline in four is held out


@dataclass(frozen=True)
class PolicySettings:
    """How the learned policy is trained and where it operates (a ``[policy]`` TOML table)."""

    train_share: float = 0.5  # the first half of the period trains the predictor; the rest is replayed
    target_pushes_kept: float = 0.93  # the threshold keeps this share of pushes (cross-validated in the past)
    # Weight the score by 1 + hours since push / this (0: no weighting). Off by default: on the
    # real-outcome benchmark any weighting cost more savings at equal pushes kept than the bare
    # probability's, and without it deployed models aged 7-11 % more (docs/prune.md).
    staleness_hours: float = 0.0
    cost_aware: bool = True  # score push odds per unit of expected compute (policy.Scoring)
    cv_folds: int = 4  # time slices of the training period for choosing the threshold
    guardrails: Guardrails = field(default_factory=Guardrails)

    def evaluation_start(self, runs: TrainingRuns) -> float:
        """Where the replayed period begins: ``train_share`` of the way from the first run's start
        to the last's; runs before it train the predictor."""
        first, last = float(runs.start.min()), float(runs.start.max())
        return first + self.train_share * (last - first)

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
                or settings.staleness_hours < 0 or not 2 <= settings.cv_folds <= 10):
            raise GraphletsError(f"{path}: train_share must be in [0.05, 0.95], target_pushes_kept in (0, 1], "
                                 "staleness_hours >= 0 and cv_folds in [2, 10].")
        return settings


def _check_keys(path: str, table: str, values: dict, known: list[str]) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GraphletsError(f"{path}: unknown key(s) {', '.join(unknown)} in [{table}]; known: {', '.join(known)}.")


@dataclass
class Inputs:
    """What the predictor reads from a store besides its graphlets."""

    drift: dict[tuple[str, int], float] = field(default_factory=dict)  # validators' reported drift
    signals: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # what gates were handed
    statistics: StatisticsFound = field(default_factory=StatisticsFound)  # span statistics files
    bars: dict[tuple[str, str], EvaluatorBar] = field(default_factory=dict)  # evaluators' thresholds

    @classmethod
    def read(cls, config) -> Inputs:
        """Read them from the store ``config`` (read-only)."""
        from airflow_graphlets.prune.signals import evaluator_bars, run_signals, span_drift, span_statistics
        from airflow_graphlets.store.inspect import reading

        with reading(config) as engine:
            return cls(span_drift(config, engine=engine), run_signals(config, engine=engine),
                       span_statistics(config, engine=engine), evaluator_bars(config, engine=engine))


@dataclass
class Comparison:
    """The learned policy against one baseline at the baseline's share of pushes kept."""

    baseline: str
    pushes_kept_share: float
    baseline_saved: float
    learned_saved: float | None  # on the learned trade-off curve at that share (None: outside it)
    ahead: bool | None

    def as_dict(self) -> dict:
        return asdict(self)


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
    curve: list[tuple[float, ReplayResult]]  # (threshold, result) of the learned policy along its trade-off
    operating_point: OperatingPoint
    comparisons: list[Comparison]
    held_out_pipelines: dict | None  # the same, replayed on pipelines the predictor never saw
    features_missing: dict[str, float]  # share of the replayed runs each feature was unknown for
    statistics: str  # how many span statistics files were readable
    source: str = "recorded"  # or what replayed the outcomes ("closed loop")
    given_predictor: str | None = None  # the version of a predictor replayed as given (not trained here)

    @property
    def features_lacking(self) -> list[str]:
        """Features the store gave no value for in any replayed run."""
        return [name for name, share in self.features_missing.items() if share >= 1.0]

    def to_json_document(self) -> dict:
        return {
            "schema": JSON_SCHEMA, "version": JSON_VERSION, "store": self.store, "source": self.source,
            "runs": self.runs, "train_runs": self.train_runs, "evaluated_runs": self.evaluated_runs,
            "evaluate_from": self.evaluate_from, "threshold": self.threshold,
            "settings": asdict(self.settings),
            "operating_point": asdict(self.operating_point),
            "policies": [_plain(r.as_dict()) for r in self.policies],
            "curve": [{"threshold": t, **_plain(r.as_dict())} for t, r in self.curve],
            "comparisons": [c.as_dict() for c in self.comparisons],
            "held_out_pipelines": self.held_out_pipelines,
            "features_missing": self.features_missing, "features_lacking": self.features_lacking,
            "statistics": self.statistics, "given_predictor": self.given_predictor,
        }


def _plain(values: dict) -> dict:
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in values.items()}


def evaluate(extraction: Extraction, inputs: Inputs | None = None, settings: PolicySettings | None = None,
             seed: int = 0, source=None, source_name: str = "recorded",
             predictor: PushPredictor | None = None) -> Evaluation:
    """Train on the first ``train_share`` of the period, replay the rest under every policy.

    Args:
      extraction: the store's graphlets.
      inputs: validators' drift, gates' signals and span statistics (none when None).
      source: a function from the :class:`TrainingRuns` to the :class:`OutcomeSource` replayed
        runs take their outcomes from (the recorded history when None).
      source_name: what to call that source in reports.
      predictor: replay this predictor at its own operating point instead of training one on the
        first part of the period (the prior, say); there is then no held-out-pipeline replay.

    Raises:
      GraphletsError: too little history to train on.
    """
    settings, inputs = settings or PolicySettings(), inputs or Inputs()
    runs, matrix = store_runs(extraction, inputs)
    split = settings.evaluation_start(runs)
    past = runs.start < split
    outcome_source = source(runs) if source is not None else None
    main = _evaluate_on(runs, matrix, past, np.ones(len(runs), dtype=bool), split, settings, seed, outcome_source,
                        predictor)
    held_out = None if predictor else _held_out(runs, matrix, past, split, settings, seed, outcome_source)
    return Evaluation(extraction.store, len(runs), int(past.sum()), int((~past).sum()), split,
                      main["operating_point"].threshold, settings, main["policies"], main["curve"],
                      main["operating_point"], main["comparisons"], held_out, missing_shares(matrix[~past]),
                      inputs.statistics.describe(), source_name, predictor.version if predictor else None)


# Features whose "unknown" is -1 (from before NaN meant unknown).
_MINUS_ONE_UNKNOWN = frozenset({"drift", "drift_since_push"})


def missing_shares(matrix: np.ndarray) -> dict[str, float]:
    """For each feature, the share of these rows it was unknown for."""
    if len(matrix) == 0:
        return {}
    shares = {}
    for k, name in enumerate(NAMES):
        unknown = ~np.isfinite(matrix[:, k])
        if name in _MINUS_ONE_UNKNOWN:
            unknown |= matrix[:, k] == -1.0
        shares[name] = float(unknown.mean())
    return shares


def _evaluate_on(runs: TrainingRuns, matrix: np.ndarray, train: np.ndarray, replayed: np.ndarray, split: float,
                 settings: PolicySettings, seed: int, source: OutcomeSource | None,
                 given: PushPredictor | None = None) -> dict:
    """Fit on ``train`` rows, choose the threshold by cross-validation, replay the pipelines of
    ``replayed`` (a mask) from ``split`` on under every policy (``given``: replay that predictor
    at its own operating point instead)."""
    rails = settings.guardrails
    if given is not None:
        predictor, scoring = given, given.scoring
        point = OperatingPoint(given.threshold, given.target_pushes_kept or settings.target_pushes_kept, None, 0)
    else:
        scoring = scoring_for(settings, matrix[train])
        predictor = PushPredictor.fit(matrix[train], runs.pushed[train], seed=seed)
        point = choose(runs, matrix, train, target=settings.target_pushes_kept, scoring=scoring,
                       guardrails=rails, folds=settings.cv_folds, seed=seed)
    probability = memoized(predictor)
    rows = np.flatnonzero(replayed)
    never = replay(runs, NeverSkip(), evaluate_from=split, guardrails=rails, seed=seed, source=source, rows=rows)
    common = {"evaluate_from": split, "guardrails": rails, "seed": seed, "source": source, "rows": rows,
              "baseline_age": never.mean_model_age_hours * 3600.0, "probability": probability}
    learned = replay(runs, PredictedPush(point.threshold, scoring), **common)
    baselines = [never]
    if scoring != Scoring() and given is None:  # the bare probability, its threshold chosen alike, to compare
        bare = choose(runs, matrix, train, target=settings.target_pushes_kept, scoring=Scoring(),
                      guardrails=rails, folds=settings.cv_folds, seed=seed)
        baselines.append(replay(runs, PredictedPush(bare.threshold), **common))
    baselines += [replay(runs, policy, **common) for policy in
                  (SkipWithoutNewData(), *(SkipAfterNotPushed(k) for k in SKIP_AFTER))]
    curve = _curve(lambda t: replay(runs, PredictedPush(t, scoring), **common), point,
                   lowest_kept=min(r.pushes_kept_share for r in baselines))
    return {"operating_point": point, "policies": [learned, *baselines], "curve": curve,
            "comparisons": compare(learned, [r for _, r in curve], baselines[1:])}


def _curve(replayed, point: OperatingPoint, lowest_kept: float) -> list[tuple[float, ReplayResult]]:
    """The learned policy's trade-off: the operating threshold scaled down until it keeps nearly
    every push, and up until it keeps fewer pushes than any baseline (so each baseline has a
    point of the curve to be compared at)."""
    base = point.threshold if point.threshold > 0 else 0.05
    curve = [(base * f, replayed(base * f)) for f in (0.02, 0.1, 0.25, 0.5, 0.75, 1.0)]
    factor = 1.0
    while curve[-1][1].pushes_kept_share > lowest_kept - 0.01 and factor < 1e4 and len(curve) < 30:
        factor *= 1.5
        curve.append((base * factor, replayed(base * factor)))
    return curve


def compare(learned: ReplayResult, curve: list[ReplayResult], baselines: list[ReplayResult]) -> list[Comparison]:
    """Each baseline against the learned trade-off curve at the baseline's pushes kept."""
    points = sorted({(r.pushes_kept_share, r.compute_saved_share) for r in [learned, *curve]})
    kept = np.asarray([k for k, _ in points])
    saved = np.asarray([s for _, s in points])
    found = []
    for baseline in baselines:
        if len(kept) == 0 or not kept[0] - 1e-9 <= baseline.pushes_kept_share <= kept[-1] + 1e-9:
            found.append(Comparison(baseline.policy, baseline.pushes_kept_share, baseline.compute_saved_share, None,
                                    None))
            continue
        at = float(np.interp(baseline.pushes_kept_share, kept, saved))
        found.append(Comparison(baseline.policy, baseline.pushes_kept_share, baseline.compute_saved_share, at,
                                at >= baseline.compute_saved_share - 1e-9))
    return found


def _held_out(runs: TrainingRuns, matrix: np.ndarray, past: np.ndarray, split: float, settings: PolicySettings,
              seed: int, source: OutcomeSource | None) -> dict | None:
    """The learned policy and the baselines on pipelines the predictor never saw."""
    names = runs.pipelines
    order = sorted(range(len(names)), key=lambda p: hashlib.sha1(names[p].encode()).hexdigest())
    held = {p for rank, p in enumerate(order) if rank % _HELD_OUT_EVERY == 0}
    held_rows = np.isin(runs.pipeline, np.fromiter(held, dtype=np.int32)) if held else np.zeros(len(runs), bool)
    if len(names) < _HELD_OUT_EVERY or not (held_rows & ~past).any():
        return None
    try:
        result = _evaluate_on(runs, matrix, past & ~held_rows, held_rows, split, settings, seed, source)
    except GraphletsError as err:
        return {"skipped": str(err)}
    return {
        "pipelines": sorted(names[p] for p in held),
        "threshold": result["operating_point"].threshold,
        "policies": [_plain(r.as_dict()) for r in result["policies"]],
        "comparisons": [c.as_dict() for c in result["comparisons"]],
    }


def train_predictor(extraction: Extraction, inputs: Inputs | None = None, settings: PolicySettings | None = None,
                    seed: int = 0) -> PushPredictor:
    """Train the gate's predictor on every finished run of a store, with the threshold that keeps
    ``settings.target_pushes_kept`` of the pushes, chosen by time-ordered cross-validation over
    the whole history (what ``graphlets train-predictor`` saves).

    Raises:
      NotEnoughHistoryError: too little history to train on, or to validate a threshold.
    """
    settings, inputs = settings or PolicySettings(), inputs or Inputs()
    runs, matrix = store_runs(extraction, inputs)
    everything = np.ones(len(runs), dtype=bool)
    predictor = PushPredictor.fit(matrix, runs.pushed, seed=seed)
    scoring = scoring_for(settings, matrix)
    point = choose(runs, matrix, everything, target=settings.target_pushes_kept, scoring=scoring,
                   guardrails=settings.guardrails, folds=settings.cv_folds, seed=seed)
    if point.cross_validated_pushes_kept is None:
        raise NotEnoughHistoryError(
            f"{extraction.store} holds {len(runs)} finished runs with {int(runs.pushed.sum())} pushes: too few to show "
            f"out of sample that a threshold keeps {settings.target_pushes_kept:.0%} of the pushes. Keep recording; "
            "until then the gates use the prior predictor (docs/prune.md).")
    return predictor.with_operating_point(point.threshold, scoring, float(runs.start.max()),
                                          settings.target_pushes_kept)


def scoring_for(settings: PolicySettings, matrix: np.ndarray) -> Scoring:
    """The scoring ``settings`` ask for; the cost reference is the median expected compute of these rows."""
    reference = None
    if settings.cost_aware:
        costs = matrix[:, NAMES.index("expected_cost")]
        costs = costs[costs > 0]
        reference = float(np.median(costs)) if len(costs) else None
    return Scoring(settings.staleness_hours or None, reference)


def store_runs(extraction: Extraction, inputs: Inputs) -> tuple[TrainingRuns, np.ndarray]:
    """The store's finished runs and their features; raises GraphletsError when there are none."""
    runs = training_runs(on_clock(extraction, "logical"), inputs.drift, inputs.signals,
                         inputs.statistics.by_pipeline, inputs.bars)
    if len(runs) == 0:
        raise NotEnoughHistoryError(f"{extraction.store} holds no finished training runs to learn from.")
    return runs, feature_matrix(runs)
