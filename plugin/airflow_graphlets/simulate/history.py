"""Draw each simulated pipeline's history: when it runs, what it reads, what it costs, what pushes.

Every pipeline draws from its own generator seeded by ``(seed, pipeline index)``, so a history
is the same whatever the number of pipelines drawn before it, and the same seed gives the same
store. Whether a run's model is blessed (and so pushed) depends on causes, not on a coin:

    logit = tendency(pipeline) - drift_penalty * |drift of the new span|
            - structure_change_penalty * [structure changed since the last push]
            - code_change_penalty * [trainer code changed since the last push]
            + staleness_bonus * log1p(days since the last push) + noise
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from airflow_graphlets.simulate.profile import Profile

DAY = 86_400.0
# The tasks of one run, in order (our recorder's component kinds).
TASKS = ("example_gen", "statistics_gen", "schema_gen", "example_validator", "transform", "trainer", "evaluator", "pusher")
KIND_OF_TASK = {
    "example_gen": "ExampleGen",
    "statistics_gen": "StatisticsGen",
    "schema_gen": "SchemaGen",
    "example_validator": "ExampleValidator",
    "transform": "Transform",
    "trainer": "Trainer",
    "evaluator": "Evaluator",
    "pusher": "Pusher",
}


@dataclass
class PipelineHistory:
    """One pipeline's runs. Arrays have one entry per run, in time order."""

    name: str
    window: int
    evaluator: bool
    run_times: np.ndarray  # float64 epoch seconds
    transform: np.ndarray  # bool: the run has a Transform step
    code_version: np.ndarray  # int: trainer code version
    trainer_failed: np.ndarray  # bool
    blessed: np.ndarray  # bool (False where there is no evaluator or the trainer failed)
    drift: np.ndarray  # float: drift of the run's new span
    observed_drift: np.ndarray  # float >= 0: the drift its ExampleValidator reports (|drift| + noise)
    durations: np.ndarray  # float64 [run, task] seconds, in TASKS order
    tendency: float  # the pipeline's own tendency to bless (the logit's constant)
    noise: np.ndarray  # float: each run's draw of the blessing logit's noise

    def blessed_against(self, profile: Profile, r: int, deployed: int | None) -> bool:
        """Whether run ``r``'s model is blessed when the model deployed then is run ``deployed``'s
        (None: none yet), by the rule above: what a closed-loop replay asks when a skip changed
        which model is deployed."""
        if not self.evaluator or self.trainer_failed[r]:
            return False
        if deployed is None:
            pushed_at, structure, code = self.run_times[0] - DAY, self.transform[0], self.code_version[0]
        else:
            pushed_at, structure, code = self.run_times[deployed], self.transform[deployed], self.code_version[deployed]
        logit = (
            self.tendency
            - profile.drift_penalty * abs(self.drift[r])
            - profile.structure_change_penalty * float(self.transform[r] != structure)
            - profile.code_change_penalty * float(self.code_version[r] != code)
            + profile.staleness_bonus * np.log1p((self.run_times[r] - pushed_at) / DAY)
            + float(self.noise[r])
        )
        return bool(logit > 0)


def generate(profile: Profile, pipelines: int, days: int, seed: int,
             only: Iterable[int] | None = None) -> Iterator[PipelineHistory]:
    """Histories of ``pipelines`` pipelines over ``days`` days, deterministic in ``seed``.

    ``only``: just these pipelines (by number), each the same as in the whole history (every
    pipeline draws from its own generator), so that processes can build parts side by side."""
    start = dt.datetime.fromisoformat(profile.start_date).replace(tzinfo=dt.timezone.utc).timestamp()
    width = len(str(max(pipelines - 1, 1)))
    for index in range(pipelines) if only is None else only:
        yield _pipeline(profile, f"ct_pipeline_{index:0{width}d}", np.random.default_rng([seed, index]), start, days)


def _pipeline(profile: Profile, name: str, rng: np.random.Generator, start: float, days: int) -> PipelineHistory:
    if rng.random() < profile.whole_period_share:
        first, last = 0.0, float(days)
    else:
        first, last = np.sort(rng.uniform(0, days, size=2))
        last = max(last, first + 1.0)
    rate = profile.runs_per_day_median * float(np.exp(rng.normal(0, profile.runs_per_day_sigma)))
    n_runs = max(2, int(rng.poisson(rate * (last - first))))
    run_times = np.round(start + np.sort(rng.uniform(first, last, size=n_runs)) * DAY, 3)
    window = int(min(profile.window_max, 1 + rng.poisson(max(profile.window_mean - 1, 0))))
    evaluator = bool(rng.random() < profile.evaluator_share)

    has_transform = rng.random() < profile.transform_share
    transform = np.full(n_runs, has_transform)
    if not has_transform and rng.random() < profile.structure_change_share / max(1 - profile.transform_share, 1e-9):
        transform[int(rng.integers(1, n_runs)):] = True  # a Transform step added mid-history
    code_version = np.cumsum(rng.random(n_runs) < profile.code_change_rate)
    trainer_failed = rng.random(n_runs) < profile.trainer_failure_rate
    drift = rng.normal(0, profile.drift_sd, size=n_runs)
    noise = rng.normal(0, profile.noise_sd, size=n_runs)
    tendency = rng.normal(profile.tendency_mean, profile.tendency_sd)

    scale = float(np.exp(rng.normal(0, profile.pipeline_scale_sigma)))
    medians = np.asarray([profile.durations[KIND_OF_TASK[t]] for t in TASKS]) * scale
    durations = medians * np.exp(rng.normal(0, profile.duration_sigma, size=(n_runs, len(TASKS))))
    # A trainer reading more spans works longer.
    durations[:, TASKS.index("trainer")] *= np.sqrt(window)
    # Drawn last, so every draw above is the same as before this was observed.
    observed = np.abs(np.abs(drift) + rng.normal(0, profile.drift_observation_sd, size=n_runs))
    history = PipelineHistory(name, window, evaluator, run_times, transform, code_version, trainer_failed,
                              np.zeros(n_runs, dtype=bool), drift, np.round(observed, 6), np.round(durations, 3),
                              float(tendency), noise)
    deployed = None
    for r in range(n_runs):
        if history.blessed_against(profile, r, deployed):
            history.blessed[r], deployed = True, r
    return history
