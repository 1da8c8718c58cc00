"""What the recorder writes: plain, JSON-serialisable records of one task try.

These records are the contract between the Airflow edge (which builds them from a running task)
and the store writer (which turns them into MLMD executions, artifacts and events). They are also
what the spool keeps on disk while the store is away, so they carry everything needed to write the
same MLMD rows later, and nothing that needs Airflow to read.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Union

from airflow_graphlets.errors import RecordError
from airflow_graphlets.store import schema

PropertyValue = Union[int, float, str, bool, list, dict]

# Limits that keep one record from flooding the store; generous for real metadata.
MAX_NAME_LENGTH = 250
MAX_PROPERTY_BYTES = 64 * 1024
MAX_PROPERTIES = 200

RECORD_FORMAT = 1
_FLAGS = frozenset({schema.BLESSED, schema.PUSHED})  # INT 1/0 in TFX; True/False are taken too


class RunState(str, Enum):
    """An Airflow task-instance state, as far as the recorder distinguishes them."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"

    @property
    def is_terminal(self) -> bool:
        return self is not RunState.RUNNING


@dataclass(frozen=True)
class ArtifactRecord:
    """One output artifact of a task try.

    Attributes:
      key: the event-path key, e.g. ``examples``, ``model``, ``blessing``, ``pushed_model``.
      type_name: the MLMD artifact type, TFX's name for standard ones (``Examples``, ``Model``, ...).
      uri: where the artifact's payload lives.
      properties: span, version, split_names, blessed, pushed, metrics, ...; TFX's typed
        properties of the type are written as properties, the rest as custom properties.
      index: position under ``key`` when a task writes several artifacts under one key.
      asset_uri: the Airflow Asset this artifact was declared through, if any.
    """

    key: str
    type_name: str
    uri: str
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    index: int = 0
    asset_uri: str | None = None

    def __post_init__(self) -> None:
        _check_name("artifact key", self.key)
        _check_name("artifact type", self.type_name)
        if not isinstance(self.uri, str):
            raise RecordError(f"The uri of the {self.type_name} artifact {self.key!r} must be a string.")
        _check_storable_text(f"uri of the {self.type_name} artifact {self.key!r}", self.uri)
        if not isinstance(self.index, int) or isinstance(self.index, bool) or self.index < 0:
            raise RecordError(f"The index of artifact {self.key!r} must be a whole number ≥ 0.")
        owner = f"the {self.type_name} artifact {self.key!r}"
        properties = check_properties(self.properties, owner)
        _check_declared_types(self.type_name, properties, owner)
        object.__setattr__(self, "properties", properties)


@dataclass(frozen=True)
class InputRef:
    """Which already-recorded artifacts a task read, under one event-path key.

    Exactly one way of naming them is used, given by ``by``:

    - ``artifact_id``: MLMD artifact ids (``artifact_ids``).
    - ``task_output``: what task ``task_id`` of run ``run_id`` in DAG ``dag_id`` wrote under
      ``output_key`` (all its map indexes unless ``map_index`` is given).
    - ``uri``: the newest live artifact with this ``uri`` (and ``type_name`` if given).
    - ``spans``: the newest version of each ``type_name`` artifact of pipeline ``dag_id`` whose
      span lies in ``[span_min, span_max]``.
    """

    key: str
    by: str
    artifact_ids: tuple[int, ...] = ()
    dag_id: str = ""
    run_id: str = ""
    task_id: str = ""
    output_key: str = ""
    map_index: int | None = None
    uri: str = ""
    type_name: str = ""
    span_min: int = 0
    span_max: int = 0

    _KINDS = ("artifact_id", "task_output", "uri", "spans")

    def __post_init__(self) -> None:
        _check_name("input key", self.key)
        if self.by not in self._KINDS:
            raise RecordError(f"Input {self.key!r}: 'by' must be one of {', '.join(self._KINDS)}.")
        object.__setattr__(self, "artifact_ids", tuple(self.artifact_ids))
        if self.by == "artifact_id" and (
            not self.artifact_ids or not all(isinstance(i, int) and i > 0 for i in self.artifact_ids)
        ):
            raise RecordError(f"Input {self.key!r}: give one or more positive MLMD artifact ids.")
        if self.by == "task_output" and not (self.dag_id and self.run_id and self.task_id and self.output_key):
            raise RecordError(f"Input {self.key!r}: a task output needs dag_id, run_id, task_id and output_key.")
        if self.by == "uri" and not self.uri:
            raise RecordError(f"Input {self.key!r}: give the uri of the artifact read.")
        _check_storable_text(f"uri of input {self.key!r}", self.uri)
        if self.by == "spans":
            if not (self.dag_id and self.type_name):
                raise RecordError(f"Input {self.key!r}: a span range needs the pipeline (dag_id) and type_name.")
            if not (_is_int(self.span_min) and _is_int(self.span_max)) or self.span_min > self.span_max:
                raise RecordError(
                    f"Input {self.key!r}: span_min and span_max must be whole numbers with span_min ≤ span_max."
                )


@dataclass(frozen=True)
class TaskRunRecord:
    """One task try as the recorder sees it at one moment (start, or end)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int
    state: RunState
    operator_class: str = ""
    component_kind: str | None = None
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    logical_date_ms: int | None = None
    run_type: str = ""
    pool: str = ""
    pool_slots: int = 1
    queue: str = ""
    executor: str = ""
    hostname: str = ""
    code_hash: str = ""
    parameters_hash: str = ""
    dag_structure_hash: str = ""
    dag_version: str = ""
    error: str = ""
    inputs: tuple[InputRef, ...] = ()
    outputs: tuple[ArtifactRecord, ...] = ()
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    # "worker" for what the task's own process saw; "scheduler" for what the scheduler saw when
    # the DAG run ended: tasks it skipped or failed without running them, which only fill gaps,
    # and the final state of tries that ran, which only closes a try still RUNNING in MLMD.
    source: str = "worker"

    def __post_init__(self) -> None:
        _check_name("dag_id", self.dag_id)
        if self.source not in ("worker", "scheduler"):
            raise RecordError(f"source must be 'worker' or 'scheduler', not {self.source!r}.")
        _check_name("task_id", self.task_id)
        _check_name("run_id", self.run_id)
        if not _is_int(self.try_number) or self.try_number < 0:
            raise RecordError(f"try_number must be a whole number ≥ 0, not {self.try_number!r}.")
        if not _is_int(self.map_index) or self.map_index < -1:
            raise RecordError(f"map_index must be -1 (not mapped) or ≥ 0, not {self.map_index!r}.")
        try:
            object.__setattr__(self, "state", RunState(self.state))
        except ValueError:
            raise RecordError(f"state must be one of {', '.join(s.value for s in RunState)}, "
                              f"not {self.state!r}.") from None
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        # Free text Airflow hands over (an exception's message may hold a file name that is not
        # UTF-8): kept readable instead of refusing the record, which MLMD could not store.
        for text in _FREE_TEXT:
            value = getattr(self, text)
            if isinstance(value, str):
                value = value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
                object.__setattr__(self, text, value)
        object.__setattr__(self, "error", self.error[:4000])
        object.__setattr__(self, "properties", check_properties(self.properties, "the execution"))

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time_ms is None or self.end_time_ms is None:
            return None
        return max(0.0, (self.end_time_ms - self.start_time_ms) / 1000.0)

    def with_state(self, state: RunState, **changes: Any) -> TaskRunRecord:
        """A copy of this record in another state (and any other fields changed)."""
        return replace(self, state=state, **changes)

    def to_json(self) -> str:
        """Serialise for the spool; :meth:`from_json` reads it back equal."""
        payload = asdict(self)
        payload["state"] = self.state.value
        payload["format"] = RECORD_FORMAT
        return json.dumps(payload, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TaskRunRecord:
        """Read a record written by :meth:`to_json`.

        Raises:
          RecordError: the text is not a record of a format this version reads.
        """
        try:
            payload = json.loads(text)
        except (ValueError, TypeError) as err:
            raise RecordError(f"Not a task-run record (bad JSON: {err}).") from None
        if not isinstance(payload, dict) or payload.pop("format", None) != RECORD_FORMAT:
            raise RecordError(f"Not a task-run record of format {RECORD_FORMAT}.")
        try:
            payload["inputs"] = tuple(InputRef(**ref) for ref in payload.get("inputs", ()))
            payload["outputs"] = tuple(ArtifactRecord(**art) for art in payload.get("outputs", ()))
            return cls(**payload)
        except (TypeError, ValueError, AttributeError) as err:  # a field of the wrong kind or value
            raise RecordError(f"Task-run record has unexpected fields or values: {err}.") from None


def check_properties(properties: Any, owner: str) -> dict[str, PropertyValue]:
    """Validate property names and values; return a plain dict copy.

    Raises:
      RecordError: a name is not a short string, a value is of a type MLMD cannot hold, a number
        is not finite, or a value is larger than ``MAX_PROPERTY_BYTES`` once serialised.
    """
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise RecordError(f"Properties of {owner} must be a dict of name to value.")
    if len(properties) > MAX_PROPERTIES:
        raise RecordError(f"{owner} has {len(properties)} properties; at most {MAX_PROPERTIES} are kept.")
    checked: dict[str, PropertyValue] = {}
    for name, value in properties.items():
        _check_name(f"property name of {owner}", name)
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordError(f"Property {name!r} of {owner} is {value}; give a finite number.")
        if isinstance(value, (list, tuple, dict)):
            try:
                size = len(json.dumps(value, allow_nan=False))
            except (TypeError, ValueError) as err:
                raise RecordError(
                    f"Property {name!r} of {owner} cannot be stored as JSON ({err}); use numbers, strings, "
                    "booleans, lists and dicts of them."
                ) from None
            value = list(value) if isinstance(value, tuple) else value
        elif isinstance(value, (bool, int, float, str)):
            size = len(value) if isinstance(value, str) else 8
            if isinstance(value, str):
                _check_storable_text(f"property {name!r} of {owner}", value)
            if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                raise RecordError(f"Property {name!r} of {owner} does not fit in a 64-bit integer.")
        else:
            raise RecordError(
                f"Property {name!r} of {owner} has type {type(value).__name__}; MLMD stores int, float, str, "
                "bool, and lists or dicts of those."
            )
        if size > MAX_PROPERTY_BYTES:
            raise RecordError(
                f"Property {name!r} of {owner} is {size} bytes; the limit is {MAX_PROPERTY_BYTES}. Store large "
                "payloads as files and record their uri instead."
            )
        checked[name] = value
    return checked


def _check_declared_types(type_name: str, properties: dict[str, PropertyValue], owner: str) -> None:
    """Properties TFX declares on a standard type must have that type, or MLMD refuses the write."""
    spec = schema.ARTIFACT_TYPES.get(type_name)
    if spec is None:
        return
    for name, declared in spec.properties.items():
        if name not in properties:
            continue
        value = properties[name]
        if declared is schema.PropertyType.INT:
            fits = (_is_int(value) and -(2**31) <= value < 2**31) or (isinstance(value, bool) and name in _FLAGS)
            wanted = "a whole number between -2**31 and 2**31 - 1"
        elif declared is schema.PropertyType.DOUBLE:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
            wanted = "a number"
        elif declared is schema.PropertyType.STRING:
            fits = isinstance(value, str) or (name == schema.SPLIT_NAMES and isinstance(value, list))
            wanted = "a string"
        else:
            continue
        if not fits:
            raise RecordError(
                f"Property {name!r} of {owner} is {_shown(value)} ({type(value).__name__}); TFX declares it "
                f"{declared.name} on {type_name}: give {wanted}, or use another name to keep it as a custom property."
            )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_FREE_TEXT = ("operator_class", "component_kind", "run_type", "pool", "queue", "executor", "hostname", "code_hash",
              "parameters_hash", "dag_structure_hash", "dag_version", "error")


def _check_name(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise RecordError(f"The {what} must be a non-empty string, not {value!r}.")
    if len(value) > MAX_NAME_LENGTH:
        raise RecordError(f"The {what} {value[:40]!r}... is {len(value)} characters; at most {MAX_NAME_LENGTH}.")
    _check_storable_text(what, value)


def _check_storable_text(what: str, value: str) -> None:
    """Text MLMD can store on every backend: UTF-8 (a string holding a lone surrogate, as bytes
    decoded with ``errors='surrogateescape'`` give, cannot be encoded) without NUL characters
    (PostgreSQL's text refuses them). Refused here, with the reason, rather than stop a flusher."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RecordError(
            f"The {what} {value[:40]!r} is not valid UTF-8 text (character {err.start} is "
            f"{value[err.start]!r}); decode the bytes with errors='replace' or 'backslashreplace'."
        ) from None
    if "\x00" in value:
        raise RecordError(f"The {what} {value[:40]!r} holds a NUL character (\\x00), which PostgreSQL "
                          "cannot store; remove it or escape it.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
