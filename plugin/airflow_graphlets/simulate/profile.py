"""The parameters of a simulated history; the defaults (``profiles/paper.toml``) follow the paper."""

from __future__ import annotations

import dataclasses
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field
from importlib.resources import files

from airflow_graphlets.errors import StoreConfigError

PAPER_PROFILE = files("airflow_graphlets.simulate") / "profiles" / "paper.toml"


@dataclass(frozen=True)
class Profile:
    """How pipelines live, run, and end up pushed or not (docs/simulate.md explains each field).

    The defaults live in one place, the shipped ``profiles/paper.toml``: use
    :meth:`paper` for them and :meth:`from_toml` to override some.
    """

    start_date: str
    whole_period_share: float
    runs_per_day_median: float
    runs_per_day_sigma: float
    window_mean: float
    window_max: int
    transform_share: float
    evaluator_share: float
    structure_change_share: float
    code_change_rate: float
    trainer_failure_rate: float
    tendency_mean: float
    tendency_sd: float
    drift_sd: float
    drift_penalty: float
    drift_observation_sd: float  # noise of the drift ExampleValidator reports (feature_drift)
    structure_change_penalty: float
    code_change_penalty: float
    staleness_bonus: float
    noise_sd: float
    duration_sigma: float
    pipeline_scale_sigma: float
    durations: dict[str, float] = field(default_factory=dict)  # median seconds by operator kind

    @classmethod
    def paper(cls) -> Profile:
        """The paper-calibrated default profile."""
        return cls(**_load(str(PAPER_PROFILE), PAPER_PROFILE.read_bytes()))

    @classmethod
    def from_toml(cls, path: str) -> Profile:
        """The default profile with the settings of the TOML file ``path`` over it.

        Raises:
          StoreConfigError: the file cannot be read or parsed, or names a setting that does not
            exist (the message lists the known ones).
        """
        try:
            with open(path, "rb") as handle:
                overrides = _load(path, handle.read())
        except OSError as err:
            raise StoreConfigError(f"Cannot read the simulation profile {path}: {err.strerror}.") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise StoreConfigError(
                f"Unknown setting(s) {', '.join(unknown)} in {path}; known: {', '.join(sorted(known))}."
            )
        base = dataclasses.asdict(cls.paper())
        durations = {**base["durations"], **overrides.pop("durations", {})}
        return cls(**{**base, **overrides, "durations": durations})


def _load(path: str, data: bytes) -> dict:
    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise StoreConfigError(f"The simulation profile {path} is not valid TOML: {err}") from None
