"""The example continuous-training pipelines, and the releases of each.

A pipeline is a stream, a model, a window and an evaluator's bar. A *release* is a version of the
pipeline's code that a team deploys on a date: from then on, the DAG has that shape. Two pipelines
change mid-history, as the paper's pipelines do: one gains a Transform step (a structure change),
one gets new trainer code (a code change).

In production a release is an edit to the DAG file. The demo replays a deployment history
instead: ``GRAPHLETS_CT_TODAY`` (an ISO date) says which day it is for the code, so the DAG file
builds the release in effect on that day; unset, it is the real today.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date

START_DATE = date(2026, 1, 1)


@dataclass(frozen=True)
class Release:
    """One deployed version of a pipeline's code, in effect from ``since``."""

    since: date
    transform: bool = False  # a Transform step (standardisation) before the trainer
    trainer: str = "v1"  # which trainer code (ct_pipelines.trainers.TRAINERS)


@dataclass(frozen=True)
class Pipeline:
    """A continuous-training pipeline: where its data comes from and how its models are judged."""

    dag_id: str
    description: str
    stream: str  # ct_pipelines.streams.STREAMS
    seed: int
    model: str  # ct_pipelines.components.make_model
    window: int  # spans the trainer reads: the newest and the window-1 before it
    rows_per_span: int
    threshold: float  # the evaluator's minimum accuracy
    margin: float  # how much a candidate must beat the deployed model by
    releases: tuple[Release, ...] = field(default=(Release(START_DATE),))

    def release_on(self, day: date) -> Release:
        """The release in effect on ``day`` (the first one before any was made)."""
        current = self.releases[0]
        for release in self.releases:
            if release.since <= day:
                current = release
        return current


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline(
        dag_id="ct_sea_logistic",
        description="SEA concepts with two abrupt drifts; logistic regression on the last 3 spans. "
                    "Its trainer code changes on 2026-01-07.",
        stream="sea", seed=11, model="logistic_regression", window=3, rows_per_span=1000,
        threshold=0.6, margin=0.01,
        releases=(Release(START_DATE), Release(date(2026, 1, 7), trainer="v2")),
    ),
    Pipeline(
        dag_id="ct_agrawal_forest",
        description="Agrawal loan approvals whose rule changes twice; a random forest on the last 5 spans.",
        stream="agrawal", seed=21, model="random_forest", window=5, rows_per_span=1000,
        threshold=0.6, margin=0.01,
    ),
    Pipeline(
        dag_id="ct_agrawal_linear",
        description="Agrawal loan approvals; logistic regression on the last 4 spans. "
                    "A Transform step (standardisation) is added on 2026-01-07.",
        stream="agrawal", seed=31, model="logistic_regression", window=4, rows_per_span=1000,
        threshold=0.55, margin=0.01,
        releases=(Release(START_DATE), Release(date(2026, 1, 7), transform=True)),
    ),
    Pipeline(
        dag_id="ct_hyperplane_sgd",
        description="A rotating hyperplane (incremental drift); SGD logistic model on the last 2 spans.",
        stream="hyperplane", seed=41, model="sgd", window=2, rows_per_span=1000,
        threshold=0.6, margin=0.015, releases=(Release(START_DATE, transform=True),),
    ),
    Pipeline(
        dag_id="ct_rbf_boosting",
        description="Drifting radial-basis clusters, three classes; gradient boosting on the last 4 spans.",
        stream="rbf", seed=51, model="gradient_boosting", window=4, rows_per_span=1000,
        threshold=0.5, margin=0.01,
    ),
)


def today() -> date:
    """The day the code is deployed as: ``GRAPHLETS_CT_TODAY`` when set (the demo's replay), else today.

    Raises:
      ValueError: ``GRAPHLETS_CT_TODAY`` is not an ISO date.
    """
    value = os.environ.get("GRAPHLETS_CT_TODAY", "").strip()
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"GRAPHLETS_CT_TODAY={value!r} is not an ISO date such as 2026-01-15.") from None


def data_root() -> str:
    """Where the pipelines keep spans, models and the serving directories."""
    default = os.path.join(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "ct-data")
    return os.environ.get("GRAPHLETS_CT_DATA", default)


def pipeline_named(dag_id: str) -> Pipeline:
    """The pipeline whose DAG is ``dag_id``.

    Raises:
      KeyError: no example pipeline has that DAG id.
    """
    for pipeline in PIPELINES:
        if pipeline.dag_id == dag_id:
            return pipeline
    raise KeyError(f"No example pipeline has the DAG id {dag_id!r}; known: {', '.join(p.dag_id for p in PIPELINES)}.")


def data_dir(dag_id: str) -> str:
    """The directory of one pipeline's spans, models and serving copies."""
    return os.path.join(data_root(), dag_id)


def span_of(logical_day: date) -> int:
    """The span a run ingests: one per day since the pipelines started."""
    return (logical_day - START_DATE).days
