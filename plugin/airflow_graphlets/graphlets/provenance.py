"""A whole store's provenance graph as NumPy columns: what the bulk reader loads.

Executions and artifacts are rows sorted by MLMD id; events refer to rows, not ids. At paper
scale (millions of executions, tens of millions of events) columns cost a few hundred MB where
Python objects would cost gigabytes, and let :mod:`.assemble` walk every graphlet at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NO_SPAN = np.iinfo(np.int64).min  # art_span where the artifact has no span
NO_VALUE = -1  # art_blessed / art_pushed where the property is absent


@dataclass
class Provenance:
    """The provenance graph of one store (or of the pipelines a reader was asked for)."""

    store: str
    schema_version: int
    type_names: dict[int, str]  # every type id -> name
    type_bases: dict[int, str | None]  # every type id -> MLMD base type name
    pipelines: tuple[str, ...]
    run_names: dict[int, str]  # pipeline-run context id -> name
    # Executions, by ascending id.
    exec_id: np.ndarray  # int64
    exec_type: np.ndarray  # int64 type id
    exec_state: np.ndarray  # int8 MLMD Execution.State
    exec_start: np.ndarray  # float64 epoch seconds
    exec_end: np.ndarray  # float64 epoch seconds
    exec_duration: np.ndarray  # float64 seconds
    exec_pipeline: np.ndarray  # int32 index into pipelines, -1 none
    exec_run: np.ndarray  # int64 run context id, -1 none
    trainer_props: dict[int, dict[str, str]] | None  # trainer execution id -> code/structure hashes; None: not read
    # Artifacts, by ascending id.
    art_id: np.ndarray  # int64
    art_type: np.ndarray  # int64 type id
    art_state: np.ndarray  # int8 MLMD Artifact.State
    art_span: np.ndarray  # int64, NO_SPAN when absent
    art_blessed: np.ndarray  # int8 1/0, NO_VALUE when absent
    art_pushed: np.ndarray  # int8 1/0, NO_VALUE when absent
    # Events, as rows of the two tables above.
    ev_art: np.ndarray  # int32 artifact row
    ev_exec: np.ndarray  # int32 execution row
    ev_input: np.ndarray  # bool: an input of the execution (else an output)
    ev_reference: np.ndarray  # bool: input read as a baseline or warm start
    run_logical_times: dict[int, float] = field(default_factory=dict)  # run context id -> logical date
    # With ``artifact_events`` asked of a window read: the events on the artifacts read by
    # executions outside the window, as (artifact id, execution id) columns.
    artifact_events: tuple[np.ndarray, np.ndarray] | None = None


def execution_times(
    create_ms: np.ndarray, update_ms: np.ndarray, start_prop: np.ndarray, end_prop: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and duration of executions; NaN in a property column means absent.

    The recorder's own times win (custom ``start_epoch_seconds``/``end_epoch_seconds``); a TFX
    store has none, and there MLMD's create and last-update times (registration at start,
    publication at the end) are the best clock there is. Duration is end minus start.
    """
    start = to_millis(np.where(np.isnan(start_prop), create_ms / 1000.0, start_prop))
    end = to_millis(np.where(np.isnan(end_prop), update_ms / 1000.0, end_prop))
    return start, end, np.maximum(end - start, 0.0)


def to_millis(seconds):
    """Times kept to the millisecond: MLMD's API returns doubles to 15 significant digits only,
    so finer digits would make the two readers disagree about the same stored value."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * 1000.0) / 1000.0
