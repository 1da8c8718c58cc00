"""Airflow edge: turn a task instance into a :class:`TaskRunRecord`.

Reads only public attributes of Airflow 3's task instance (the task SDK's ``RuntimeTaskInstance``
on a worker, the ORM ``TaskInstance`` in the scheduler), and never raises for a missing one:
whatever cannot be read is left empty.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_graphlets import lineage as lineage_api
from airflow_graphlets.errors import RecordError
from airflow_graphlets.recorder.records import ArtifactRecord, InputRef, RunState, TaskRunRecord
from airflow_graphlets.store import schema

log = logging.getLogger(__name__)

# Keys of an Asset's ``extra`` (static, or set at run time through ``outlet_events``) that steer
# the recorder; every other key becomes an artifact property.
MLMD_TYPE = "mlmd_type"
MLMD_KEY = "mlmd_key"
MLMD_URI = "mlmd_uri"
MLMD_INDEX = "mlmd_index"
_STEERING = (MLMD_TYPE, MLMD_KEY, MLMD_URI, MLMD_INDEX)


@dataclass(frozen=True)
class TaskFingerprint:
    """Hashes that tell code, parameter and pipeline-structure changes apart.

    Taken when the task starts: by its end, operators such as TaskFlow's have replaced their
    declared arguments with run-time values.
    """

    code_hash: str = ""
    parameters_hash: str = ""
    dag_structure_hash: str = ""


def fingerprint(task: Any) -> TaskFingerprint:
    """The :class:`TaskFingerprint` of a task as declared."""
    if task is None:
        return TaskFingerprint()
    dag = getattr(task, "dag", None)
    return TaskFingerprint(
        code_hash=code_hash(task),
        parameters_hash=parameters_hash(task),
        dag_structure_hash=dag_structure_hash(dag) if dag is not None else "",
    )


def task_run_record(
    ti: Any,
    state: RunState,
    *,
    error: Any = None,
    context: Any = None,
    prints: TaskFingerprint | None = None,
) -> TaskRunRecord:
    """The record of task instance ``ti`` in ``state``.

    Args:
      ti: the running task instance.
      state: the state to record.
      error: the exception or message a failed try ended with.
      context: the task's template context (for runtime outlet extras and lineage declarations);
        read only when the task has ended.
      prints: the fingerprint taken when the task started; taken now if not given.
    """
    task = getattr(ti, "task", None)
    dag = getattr(task, "dag", None)
    prints = prints or fingerprint(task)
    declared = lineage_api.declared(context) if context is not None else None
    outputs: tuple[ArtifactRecord, ...] = ()
    inputs = _asset_inputs(ti, task, dag)
    if state is RunState.SUCCESS:
        outputs = _asset_outputs(task, context) + tuple(declared.outputs if declared else ())
    if declared is not None and state.is_terminal:
        inputs += tuple(declared.inputs)
    dag_run = getattr(ti, "_ti_context_from_server", None)
    dag_run = getattr(dag_run, "dag_run", None) or getattr(ti, "dag_run", None)
    start = getattr(ti, "start_date", None)
    end = getattr(ti, "end_date", None) if state.is_terminal else None
    if state.is_terminal and end is None:
        end = datetime.now(timezone.utc)
    return TaskRunRecord(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        try_number=int(getattr(ti, "try_number", 0) or 0),
        map_index=_map_index(ti),
        state=state,
        operator_class=_class_path(task) if task is not None else str(getattr(ti, "operator", "") or ""),
        component_kind=component_kind(task, outputs),
        start_time_ms=_ms(start),
        end_time_ms=_ms(end),
        logical_date_ms=_ms(getattr(dag_run, "logical_date", None)),
        run_type=str(getattr(getattr(dag_run, "run_type", ""), "value", getattr(dag_run, "run_type", "")) or ""),
        pool=str(getattr(task, "pool", "") or getattr(ti, "pool", "") or ""),
        pool_slots=int(getattr(task, "pool_slots", 1) or 1),
        queue=str(getattr(ti, "queue", "") or getattr(task, "queue", "") or ""),
        executor=str(getattr(task, "executor", "") or getattr(ti, "executor", "") or ""),
        hostname=str(getattr(ti, "hostname", "") or socket.gethostname()),
        code_hash=prints.code_hash,
        parameters_hash=prints.parameters_hash,
        dag_structure_hash=prints.dag_structure_hash,
        dag_version=str(getattr(ti, "dag_version_id", "") or ""),
        error=_error_text(error),
        inputs=inputs,
        outputs=outputs,
        properties=dict(declared.properties) if declared and state.is_terminal else {},
    )


# Task states the scheduler sets without running the task, and the final states of tries that
# ran: recorded so that a try whose worker died before recording its end is closed in MLMD.
_SCHEDULER_STATES = {"skipped": RunState.SKIPPED, "upstream_failed": RunState.UPSTREAM_FAILED,
                     "success": RunState.SUCCESS, "failed": RunState.FAILED}


def scheduler_outcomes(dag_id: str, run_id: str, dag: Any = None) -> list[TaskRunRecord]:
    """Records of a DAG run's task instances as the run ends: those skipped or upstream-failed
    (no worker ran them) and the final state of those that ran (see ``Writer._close``).

    Reads Airflow's metadata database through a connection of its own, with plain column
    selects: the DAG-run listener runs inside the scheduler's session, which must not be touched
    (Airflow's ``settings.Session`` is thread-scoped, so even ``create_session`` would close it).
    """
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    columns = (TI.task_id, TI.map_index, TI.try_number, TI.state, TI.operator, TI.pool, TI.pool_slots,
               TI.queue, TI.start_date, TI.end_date, TI.hostname)
    query = select(*columns).where(TI.dag_id == dag_id, TI.run_id == run_id, TI.state.in_(list(_SCHEDULER_STATES)))
    with settings.engine.connect() as conn:
        rows = conn.execute(query).all()
    records = []
    task_dict = getattr(dag, "task_dict", {}) or {}
    for row in rows:
        task = task_dict.get(row.task_id)
        state = _SCHEDULER_STATES[str(getattr(row.state, "value", row.state))]
        records.append(
            TaskRunRecord(
                dag_id=dag_id,
                task_id=row.task_id,
                run_id=run_id,
                try_number=int(row.try_number or 0),
                map_index=-1 if row.map_index is None else int(row.map_index),
                state=state,
                operator_class=_operator_path(task) if task is not None else str(row.operator or ""),
                component_kind=component_kind(task) if task is not None else None,
                start_time_ms=_ms(row.start_date),
                end_time_ms=_ms(row.end_date),
                pool=str(row.pool or ""),
                pool_slots=int(row.pool_slots or 1),
                queue=str(row.queue or ""),
                hostname=str(row.hostname or ""),
                source="scheduler",
            )
        )
    return records


def component_kind(task: Any, outputs: tuple[ArtifactRecord, ...] = ()) -> str | None:
    """The task's TFX component kind: declared on the callable or operator, else inferred from outputs."""
    for holder in (getattr(task, "python_callable", None), task):
        kind = getattr(holder, lineage_api.COMPONENT_ATTRIBUTE, None)
        if isinstance(kind, str) and kind:
            return kind
    types = [a.type_name for a in outputs] or [
        str(_extra(asset).get(MLMD_TYPE)) for asset in getattr(task, "outlets", ()) or () if _extra(asset).get(MLMD_TYPE)
    ]
    return schema.infer_component_kind(types)


def code_hash(task: Any) -> str:
    """Hash of the task's code: its Python callable's source, or its operator class's source."""
    target = getattr(task, "python_callable", None) or type(task)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        source = repr((code.co_code, code.co_consts)) if code is not None else _class_path(task)
    return _digest(source)


def parameters_hash(task: Any) -> str:
    """Hash of the parameters the task was declared with (``op_args``, ``op_kwargs``, ``params``)."""
    params = getattr(task, "params", None)
    params_dict = params.dump() if hasattr(params, "dump") else dict(params or {})
    payload = {
        "op_args": getattr(task, "op_args", None),
        "op_kwargs": getattr(task, "op_kwargs", None),
        "params": params_dict,
    }
    return _digest(json.dumps(payload, sort_keys=True, default=_stable_repr))


def _stable_repr(value: Any) -> str:
    """A repr that is the same in every process: no memory addresses, no attribute look-ups
    (context accessors turn those into connection or variable fetches)."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    if isinstance(value, XComArg):  # name its source, not its identity
        return f"xcom:{[op.task_id for op, _ in value.iter_references()]}"
    text = repr(value)
    return f"<{type(value).__module__}.{type(value).__qualname__}>" if " at 0x" in text else text


def dag_structure_hash(dag: Any) -> str:
    """Hash of the DAG's shape: each task's id, operator class and upstream ids."""
    shape = sorted(
        (task_id, _class_path(task), sorted(getattr(task, "upstream_task_ids", ()) or ()))
        for task_id, task in (getattr(dag, "task_dict", {}) or {}).items()
    )
    return _digest(json.dumps(shape))


def _asset_outputs(task: Any, context: Any) -> tuple[ArtifactRecord, ...]:
    outlet_events = context.get("outlet_events") if context is not None else None
    outputs: list[ArtifactRecord] = []
    used: dict[str, int] = {}
    for asset in getattr(task, "outlets", ()) or ():
        static = _extra(asset)
        if MLMD_TYPE not in static:
            continue
        runtime = _runtime_extra(outlet_events, asset)
        merged = {**static, **runtime}
        try:
            type_name = str(merged[MLMD_TYPE])
            key = str(merged.get(MLMD_KEY) or _event_key(type_name, "output"))
            index = int(merged.get(MLMD_INDEX, used.get(key, 0)))
            used[key] = index + 1
            outputs.append(
                ArtifactRecord(
                    key=key,
                    type_name=type_name,
                    uri=str(merged.get(MLMD_URI) or getattr(asset, "uri", "")),
                    properties={k: v for k, v in merged.items() if k not in _STEERING},
                    index=index,
                    asset_uri=str(getattr(asset, "uri", "")) or None,
                )
            )
        except (RecordError, ValueError, TypeError) as err:
            log.error("airflow-graphlets: outlet %s is not recorded: %s", getattr(asset, "uri", asset), err)
    return tuple(outputs)


def _asset_inputs(ti: Any, task: Any, dag: Any) -> tuple[InputRef, ...]:
    inputs: list[InputRef] = []
    for asset in getattr(task, "inlets", ()) or ():
        static = _extra(asset)
        if MLMD_TYPE not in static:
            continue
        type_name = str(static[MLMD_TYPE])
        key = str(static.get(MLMD_KEY) or _event_key(type_name, "input"))
        producer = _producer_in_dag(dag, task, asset)
        try:
            if producer is not None:
                producer_task, producer_key = producer
                inputs.append(
                    InputRef(key=key, by="task_output", dag_id=ti.dag_id, run_id=ti.run_id,
                             task_id=producer_task, output_key=producer_key)
                )
            else:
                inputs.append(InputRef(key=key, by="uri", uri=str(asset.uri), type_name=type_name))
        except RecordError as err:
            log.error("airflow-graphlets: inlet %s is not recorded: %s", getattr(asset, "uri", asset), err)
    return tuple(inputs)


def _producer_in_dag(dag: Any, consumer: Any, asset: Any) -> tuple[str, str] | None:
    """The upstream task of the same DAG that has ``asset`` among its outlets, and its key."""
    upstream = getattr(consumer, "get_flat_relative_ids", None)
    ancestors = upstream(upstream=True) if callable(upstream) else set()
    for task_id in sorted(ancestors):
        candidate = dag.task_dict.get(task_id)
        for outlet in getattr(candidate, "outlets", ()) or ():
            if getattr(outlet, "uri", None) == getattr(asset, "uri", object()) and MLMD_TYPE in _extra(outlet):
                extra = _extra(outlet)
                type_name = str(extra[MLMD_TYPE])
                return task_id, str(extra.get(MLMD_KEY) or _event_key(type_name, "output"))
    return None


def _event_key(type_name: str, fallback: str) -> str:
    """TFX's event-path key for an artifact type, or ``fallback`` for a type TFX does not define."""
    spec = schema.ARTIFACT_TYPES.get(type_name)
    return spec.default_key if spec else fallback


def _extra(asset: Any) -> dict:
    extra = getattr(asset, "extra", None)
    return dict(extra) if isinstance(extra, dict) else {}


def _runtime_extra(outlet_events: Any, asset: Any) -> dict:
    if outlet_events is None:
        return {}
    try:
        extra = outlet_events[asset].extra
    except Exception:  # noqa: BLE001 - an accessor we cannot read adds nothing
        return {}
    return dict(extra) if isinstance(extra, dict) else {}


def _map_index(ti: Any) -> int:
    value = getattr(ti, "map_index", -1)
    return -1 if value is None else int(value)


def _operator_path(task: Any) -> str:
    """The task's operator class path; the scheduler holds serialized tasks that name it."""
    module, name = getattr(task, "_task_module", None), getattr(task, "task_type", None)
    if isinstance(module, str) and isinstance(name, str):
        return f"{module}.{name}"
    return _class_path(task)


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _error_text(error: Any) -> str:
    if error is None:
        return ""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
