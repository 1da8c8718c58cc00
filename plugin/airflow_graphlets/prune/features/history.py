"""What a pipeline's past looks like at the moment a training run is about to start.

A :class:`PipelineHistory` holds the graphlets whose outcome was *known* at that moment (their
last execution had ended), in the order they started; :class:`Candidate` is the run about to
train. Feature families read both and nothing else, so a feature can never see the future: the
replay feeds outcomes in as their time comes, and the gate reads the store as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_graphlets.prune.evaluator_bar import EvaluatorBar
    from airflow_graphlets.prune.span_statistics import SpanStatisticsIndex

NO_SIGNALS: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True)
class Candidate:
    """The training run about to start: what the gate knows of it."""

    start: float  # epoch seconds
    spans: frozenset[int]  # the input spans its trainer will read
    structure_hash: str | None
    code_hash: str | None
    drift: float | None  # drift its ExampleValidator reported for the newest span, None when unknown
    # What the DAG measured before training and handed the gate (SIGNALS), e.g. the deployed
    # model's score on the new span; a signal not given is unknown.
    signals: Mapping[str, float] = field(default_factory=lambda: NO_SIGNALS)


@dataclass(frozen=True)
class Outcome:
    """A finished graphlet, as the features see it."""

    start: float
    end: float
    spans: frozenset[int]
    structure_hash: str | None
    code_hash: str | None
    blessed: bool | None
    pushed: bool
    pushed_at: float | None
    cost: float  # seconds a gate before the training branch saves: Transform, trainer and what follows
    drift: float | None
    signals: Mapping[str, float] = field(default_factory=lambda: NO_SIGNALS)  # what its gate was handed
    evaluator_bar: EvaluatorBar | None = None  # what its evaluator required (TFX's eval_config)
    run: str | None = None  # its pipeline-run context's name (the gate's skip log joins on it)


@dataclass
class PipelineHistory:
    """The known outcomes of one pipeline, oldest first, and its deployed model's graphlet."""

    outcomes: list[Outcome] = field(default_factory=list)
    last_pushed: Outcome | None = None
    first_start: float | None = None  # when the pipeline's first graphlet started
    statistics: SpanStatisticsIndex | None = None  # the pipeline's span statistics, where readable

    def add(self, outcome: Outcome) -> None:
        """Record an outcome that has become known (call in the order they become known)."""
        self.outcomes.append(outcome)
        if self.first_start is None or outcome.start < self.first_start:
            self.first_start = outcome.start
        if outcome.pushed and (self.last_pushed is None or (outcome.pushed_at or 0) >= (self.last_pushed.pushed_at or 0)):
            self.last_pushed = outcome

    def since_last_push(self) -> list[Outcome]:
        """Outcomes that started after the deployed model's graphlet (all of them before any push)."""
        if self.last_pushed is None:
            return self.outcomes
        return [o for o in self.outcomes if o.start > self.last_pushed.start]

    def evaluator_bar(self) -> EvaluatorBar | None:
        """The bar of the newest known evaluation that kept one: what the next one will likely require."""
        return next((o.evaluator_bar for o in reversed(self.outcomes) if o.evaluator_bar is not None), None)

    def first_after_push(self) -> Outcome | None:
        """The first outcome whose run started after the deployed model was pushed: what its
        signals measured was the deployed model on the first data it had not seen."""
        if self.last_pushed is None or self.last_pushed.pushed_at is None:
            return None
        return next((o for o in self.outcomes if o.start >= self.last_pushed.pushed_at), None)
