"""The ``[graphlets]`` settings, as plain values with their defaults and checks.

Airflow's configuration is read at the edge (``airflow_config.py``); this module only knows
the names, defaults and rules, so it can be used and tested without Airflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from airflow_graphlets.errors import StoreConfigError

SECTION = "graphlets"


@dataclass(frozen=True)
class Option:
    """One ``[graphlets]`` option: its default and what it does (rendered into the README)."""

    name: str
    default: str
    description: str


OPTIONS: tuple[Option, ...] = (
    Option("enabled", "True", "Record task runs into MLMD. False turns the listener into a no-op."),
    Option("conn_id", "mlmd_default", "Airflow connection that names the MLMD store."),
    Option(
        "default_store",
        "{AIRFLOW_HOME}/graphlets/mlmd.sqlite",
        "SQLite file used when the connection named by conn_id does not exist.",
    ),
    Option(
        "spool_dir",
        "{AIRFLOW_HOME}/graphlets/spool",
        "Durable local spool where each record waits until it is in MLMD.",
    ),
    Option(
        "record_wait",
        "False",
        "Whether a finishing task waits (at most record_timeout) until its record is in MLMD. Records "
        "are written in order on each machine either way; waiting only makes them visible before the "
        "task's process ends, at a cost of a few milliseconds per task.",
    ),
    Option(
        "record_timeout",
        "5.0",
        "With record_wait, the most seconds a finishing task waits; after that the record stays in the "
        "spool and is written later. No wait at all while the store is known to be down.",
    ),
    Option(
        "predictor_path",
        "{AIRFLOW_HOME}/graphlets/push-predictor.npz",
        "The push predictor a graphlet gate uses when it names none (written by graphlets "
        "train-predictor). While it does not exist, gates run every training.",
    ),
    Option(
        "summary_uri",
        "sqlite:///{AIRFLOW_HOME}/graphlets/summary.sqlite",
        "Database (SQLAlchemy URL) of the summary the Graphlets UI pages read, made from the MLMD "
        "store by graphlets summarize. Never the MLMD database itself.",
    ),
    Option(
        "summary_max_age_seconds",
        "20",
        "The UI refreshes the summary (in a process of its own; incrementally, reading only the "
        "newest runs of the pipelines written to since) when a page finds it older than this; the "
        "page shows the summary it has meanwhile and reloads itself when the newer one is there.",
    ),
    Option(
        "airflow_api_url",
        "",
        "Where the Graphlets pages reach Airflow's own REST API (to clear an overruled run's training "
        "branch as the signed-in user), such as http://127.0.0.1:8080 (with any sub-path). Empty: the "
        "address and port the API server took the request on.",
    ),
    Option(
        "flusher_idle_seconds",
        "300",
        "Seconds the background flusher of a spool stays alive without work before it exits.",
    ),
)


@dataclass(frozen=True)
class GraphletsSettings:
    """Resolved ``[graphlets]`` settings."""

    enabled: bool
    conn_id: str
    default_store: str
    spool_dir: str
    record_wait: bool
    record_timeout: float
    flusher_idle_seconds: float
    predictor_path: str = ""
    summary_uri: str = ""
    summary_max_age_seconds: float = 20.0
    airflow_api_url: str = ""


def settings_from_mapping(values: Mapping[str, str], airflow_home: str | None = None) -> GraphletsSettings:
    """Build settings from raw option strings (missing ones take their defaults).

    Raises:
      StoreConfigError: an option has a value of the wrong kind; the message names the option,
        the environment variable that sets it, and a valid value.
    """
    home = airflow_home or os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    raw = {opt.name: values.get(opt.name) or opt.default for opt in OPTIONS}
    expand = lambda text: os.path.expanduser(text.replace("{AIRFLOW_HOME}", home))  # noqa: E731
    timeout = _parse_float("record_timeout", raw["record_timeout"])
    if not 0 < timeout <= 600:
        raise StoreConfigError(_bad("record_timeout", raw["record_timeout"], "a number of seconds in (0, 600]"))
    idle = _parse_float("flusher_idle_seconds", raw["flusher_idle_seconds"])
    if idle <= 0:
        raise StoreConfigError(_bad("flusher_idle_seconds", raw["flusher_idle_seconds"], "a positive number of seconds"))
    max_age = _parse_float("summary_max_age_seconds", raw["summary_max_age_seconds"])
    if max_age <= 0:
        raise StoreConfigError(_bad("summary_max_age_seconds", raw["summary_max_age_seconds"], "a positive number of seconds"))
    return GraphletsSettings(
        enabled=_parse_bool("enabled", raw["enabled"]),
        conn_id=raw["conn_id"].strip(),
        default_store=expand(raw["default_store"]),
        spool_dir=expand(raw["spool_dir"]),
        record_wait=_parse_bool("record_wait", raw["record_wait"]),
        record_timeout=timeout,
        flusher_idle_seconds=idle,
        predictor_path=expand(raw["predictor_path"]),
        summary_uri=raw["summary_uri"].replace("{AIRFLOW_HOME}", home).strip(),
        summary_max_age_seconds=max_age,
        airflow_api_url=_parse_url("airflow_api_url", raw["airflow_api_url"]),
    )


def _parse_url(name: str, text: str) -> str:
    url = str(text).strip().rstrip("/")
    if url and not (url.startswith("http://") or url.startswith("https://")):
        raise StoreConfigError(_bad(name, text, "an http:// or https:// address, such as http://127.0.0.1:8080"))
    return url


def _parse_bool(name: str, text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise StoreConfigError(_bad(name, text, "True or False"))


def _parse_float(name: str, text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise StoreConfigError(_bad(name, text, "a number such as 5.0")) from None


def _bad(name: str, value: str, expected: str) -> str:
    return (
        f"[{SECTION}] {name} = {value!r} is not valid: give {expected} "
        f"(set it in airflow.cfg or AIRFLOW__{SECTION.upper()}__{name.upper()})."
    )
