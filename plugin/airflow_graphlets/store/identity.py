"""Deterministic external ids: what makes every write idempotent.

An execution is one try of one (mapped) task instance of one DAG run; its external id is built
from exactly those parts, so a retried, replayed or concurrent write finds the row that is
already there instead of adding a second one. Output artifacts extend their execution's id with
their event-path key and index.
"""

from __future__ import annotations

import functools
import hashlib
from urllib.parse import quote

_PREFIX = "airflow:"
_HASHED_PREFIX = "airflow-sha256:"
_MAX_LENGTH = 255  # MLMD's external_id is VARCHAR(255)


def execution_external_id(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """External id of one task try: ``airflow:<dag>/<run>/<task>/<map_index>/<try>``."""
    parts = (dag_id, run_id, task_id, str(map_index), str(try_number))
    return _bounded(_PREFIX + "/".join(map(_quoted_part, parts)))


@functools.lru_cache(maxsize=4096)
def _quoted_part(part: str) -> str:
    """One part of an execution's external id, percent-encoded (cached: a run's tasks share
    their DAG and run ids, and ``graphlets simulate`` makes millions of these)."""
    return quote(part, safe=":+-_.~")


def artifact_external_id(execution_external: str, key: str, index: int) -> str:
    """External id of an output artifact: its execution's id, then ``/<key>/<index>``."""
    return _bounded(f"{execution_external}/{quote(key, safe='_-.')}/{index}")


def bounded_name(text: str) -> str:
    """A name that fits MLMD's VARCHAR(255) name columns, unique for every input.

    Short names are kept as they are; a longer one keeps its first 238 characters (readable in
    any MLMD tool) followed by ``~`` and 16 hex digits of its SHA-256.
    """
    if len(text) <= _MAX_LENGTH:
        return text
    return f"{text[:238]}~{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"


def _bounded(text: str) -> str:
    if len(text) <= _MAX_LENGTH:
        return text
    return _HASHED_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def pipeline_run_context_name(dag_id: str, run_id: str) -> str:
    """Name of a run's context.

    TFX's portable orchestrator names it by the run id alone, which it makes unique with a
    timestamp; Airflow run ids are unique only within a DAG, so we qualify them by the DAG id as
    TFX's legacy orchestrator did (``<pipeline_name>.<run_id>``). Names longer than MLMD's 255
    characters are shortened with a hash (:func:`bounded_name`).
    """
    return bounded_name(f"{dag_id}.{run_id}")


def node_context_name(dag_id: str, task_id: str) -> str:
    """Name of a task's node context, as TFX's ``compiler_utils.node_context_name``."""
    return bounded_name(f"{dag_id}.{task_id}")
