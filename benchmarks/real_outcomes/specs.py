"""The pipelines of a real-outcome benchmark, drawn from a seed.

Each pipeline is a stream (:mod:`streams`), a model kind, a rolling window of 1 to 14 spans, a
cadence (daily to weekly), an evaluator's bar (a minimum accuracy and a margin over the deployed
model), dates it starts and stops, and releases: some pipelines gain a Transform step, some get
new trainer code. A pipeline is drawn from its own generator seeded by ``(seed, index)``, so it
is the same whatever the number of pipelines drawn.

Seeds are kept apart: :data:`DEVELOPMENT_SEEDS` are the ones to look at while building the
predictor; :data:`REPORT_SEEDS` are only run for the figures reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from real_outcomes.streams import CONCEPTS, FAMILIES, INCREMENTAL, Change, StreamSpec

DEVELOPMENT_SEEDS = (1, 2)
REPORT_SEEDS = (101, 102, 103)
DAYS = 120
DRIFTS = ("none", "gradual", "abrupt", "recurring", "noisy", "incremental")
MODELS = ("logistic_regression", "sgd", "random_forest", "gradient_boosting", "decision_tree", "naive_bayes")
CADENCES = (1, 1, 1, 1, 2, 3, 7)  # days between runs: daily is the most common
MARGINS = (0.0, 0.0, 0.005, 0.01, 0.02)
MAX_WINDOW_ROWS = 12000  # a trainer reads at most this many rows (keeps the benchmark within minutes)


@dataclass(frozen=True)
class PipelineSpec:
    """One continuous-training pipeline of the benchmark."""

    name: str
    index: int
    stream: StreamSpec
    drift: str  # the drift kind its stream was drawn with (DRIFTS)
    model: str
    window: int  # spans the trainer reads
    cadence_days: int
    span_rows: int  # rows a run's new span holds (spread over the days since the last run)
    start_day: int
    stop_day: int  # exclusive
    threshold: float  # the evaluator's minimum accuracy
    margin: float  # how much a candidate must beat the deployed model by
    transform_always: bool
    transform_from_day: int | None  # the release that adds a Transform step
    code_change_day: int | None  # the release with new trainer code
    late_rate: float  # share of runs whose ExampleGen finds no new span
    cost_scale: float  # how heavy the pipeline's data is, for its executions' durations

    def run_days(self) -> list[int]:
        return list(range(self.start_day, self.stop_day, self.cadence_days))

    def transform_on(self, day: int) -> bool:
        return self.transform_always or (self.transform_from_day is not None and day >= self.transform_from_day)

    def code_version_on(self, day: int) -> int:
        return 2 if self.code_change_day is not None and day >= self.code_change_day else 1


def draw_pipelines(seed: int, count: int, days: int = DAYS) -> list[PipelineSpec]:
    """``count`` pipelines of the benchmark ``seed``."""
    return [draw_pipeline(seed, i, days) for i in range(count)]


def draw_pipeline(seed: int, index: int, days: int = DAYS) -> PipelineSpec:
    rng = np.random.default_rng([seed, index])
    drift = str(rng.choice(DRIFTS))
    families = sorted(INCREMENTAL) if drift == "incremental" else sorted(FAMILIES)
    family = str(rng.choice(families))
    cadence = int(rng.choice(CADENCES))
    start = 0 if rng.random() < 0.6 else int(rng.integers(1, days // 2))
    stop = days if rng.random() < 0.7 else int(rng.integers(min(start + days // 3, days - 1), days))
    changes: list[Change] = []
    speed, noise = 0.0, 0.0
    concepts = CONCEPTS.get(family, 10)  # concept 0 is the first; any other differs from it
    if drift in ("gradual", "abrupt"):
        for _ in range(int(rng.integers(1, 4))):
            changes.append(Change(float(rng.uniform(start + 5, stop)), float(rng.uniform(3, 12) if drift == "gradual"
                                                                              else rng.uniform(0.05, 0.3)),
                                  int(rng.integers(1, concepts))))
        changes.sort(key=lambda c: c.day)
    elif drift == "recurring":
        period, other = float(rng.uniform(8, 25)), int(rng.integers(1, concepts))
        day, concept = start + period * float(rng.uniform(0.5, 1.0)), other
        while day < stop:
            changes.append(Change(day, float(rng.uniform(0.1, 2.0)), concept))
            concept = 0 if concept == other else other
            day += period
    elif drift == "incremental":
        speed = float(rng.uniform(0.0005, 0.004))
    elif drift == "noisy":
        noise = float(rng.uniform(0.1, 0.3))
    shift_day = float(rng.uniform(start + 10, stop)) if rng.random() < 0.2 else None
    stream = StreamSpec(family, int(rng.integers(1, 2**31 - 1)), tuple(changes), speed, noise, shift_day,
                        float(rng.uniform(0.2, 0.6)))
    window = int(rng.integers(1, 15))
    window = max(1, min(window, 28 // cadence))  # at most four weeks of data
    span_rows = int(np.exp(rng.uniform(np.log(500), np.log(4000))))
    span_rows = max(240, min(span_rows, MAX_WINDOW_ROWS // window))
    active = list(range(start, stop, cadence))
    return PipelineSpec(
        name=f"ct-{seed}-{index:03d}",
        index=index,
        stream=stream,
        drift=drift,
        model=str(rng.choice(MODELS)),
        window=window,
        cadence_days=cadence,
        span_rows=span_rows,
        start_day=start,
        stop_day=stop,
        threshold=float(rng.uniform(0.5, 0.8)),
        margin=float(rng.choice(MARGINS)),
        transform_always=bool(rng.random() < 0.3),
        transform_from_day=int(rng.choice(active[len(active) // 4:])) if rng.random() < 0.25 and len(active) > 4 else None,
        code_change_day=int(rng.choice(active[len(active) // 4:])) if rng.random() < 0.25 and len(active) > 4 else None,
        late_rate=float(rng.choice((0.0, 0.0, 0.05, 0.15))),
        cost_scale=float(rng.lognormal(0.0, 0.8)),
    )
