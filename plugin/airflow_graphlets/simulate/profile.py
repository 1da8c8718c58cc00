"""The parameters of a simulated history, with defaults shaped after the paper's figures."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field

from airflow_graphlets.errors import StoreConfigError

# Median seconds per operator kind (lognormal around these).
DEFAULT_DURATIONS = {
    "ExampleGen": 420.0,
    "StatisticsGen": 180.0,
    "SchemaGen": 20.0,
    "ExampleValidator": 25.0,
    "Transform": 600.0,
    "Trainer": 1800.0,
    "Evaluator": 360.0,
    "Pusher": 40.0,
}


@dataclass(frozen=True)
class Profile:
    """How pipelines live, run, and end up pushed or not. Every field can be set from TOML."""

    start_date: str = "2026-01-01"
    # Lifespan: this share of pipelines spans the whole period; the others start and end at
    # uniformly drawn days inside it.
    whole_period_share: float = 0.6
    # Cadence: runs per day of each pipeline, lognormal.
    runs_per_day_median: float = 1.32
    runs_per_day_sigma: float = 0.7
    # Spans per graphlet (the trainer's rolling window): 1 + Poisson(window_mean - 1), capped.
    window_mean: float = 6.0
    window_max: int = 30
    # Operator mix.
    transform_share: float = 0.8
    evaluator_share: float = 0.92
    # Changes: a share of pipelines gains a Transform step mid-history; trainer code changes at
    # this rate per run.
    structure_change_share: float = 0.2
    code_change_rate: float = 0.02
    trainer_failure_rate: float = 0.03
    # Blessing: logit = tendency + weights x causes + noise (see docs/simulate.md).
    tendency_mean: float = 1.2
    tendency_sd: float = 1.0
    drift_sd: float = 1.0
    drift_penalty: float = 1.1
    structure_change_penalty: float = 2.5
    code_change_penalty: float = 0.8
    staleness_bonus: float = 0.6
    noise_sd: float = 0.6
    # Cost.
    durations: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DURATIONS))
    duration_sigma: float = 0.35
    pipeline_scale_sigma: float = 0.8

    @classmethod
    def from_toml(cls, path: str) -> Profile:
        """Read a profile; unknown keys are an error naming the key and the known ones."""
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise StoreConfigError(f"Cannot read the simulation profile {path}: {err}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StoreConfigError(
                f"Unknown setting(s) {', '.join(unknown)} in {path}; known: {', '.join(sorted(known))}."
            )
        if "durations" in data:
            data["durations"] = {**DEFAULT_DURATIONS, **data["durations"]}
        return cls(**data)
