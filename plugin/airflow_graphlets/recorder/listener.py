"""Airflow edge: the listener that turns task-instance and DAG-run events into records.

Thin by design: each hook builds a record and hands it to the :class:`Recorder`, which spools it
and wakes the spool's flusher process. Every hook catches everything: a failure here is logged once
and never reaches the user's task.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from pluggy import HookimplMarker

from airflow_graphlets.errors import ConnectionLookupError, GraphletsError
from airflow_graphlets.recorder.records import RunState
from airflow_graphlets.recorder.recorder import Recorder
from airflow_graphlets.recorder.spool import Spool

hookimpl = HookimplMarker("airflow")
log = logging.getLogger(__name__)
_LOOKUP_RETRY_SECONDS = 30.0  # how often a failed connection lookup is tried again


class GraphletsListener:
    """Records every task try of every DAG into MLMD. One instance per process, made by the plugin."""

    def __init__(self) -> None:
        self._recorder: Recorder | None = None
        self._disabled = False
        self._wait = False  # [graphlets] record_wait, read with the other settings
        self._fingerprints: dict[str, Any] = {}  # task-instance id -> fingerprint taken at start
        # While the store's connection cannot be looked up: a recorder that only spools.
        self._spool_only: Recorder | None = None
        self._lookup_retry_at = 0.0

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self._record(task_instance, RunState.RUNNING, wait=False)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._record(task_instance, RunState.SUCCESS, wait=self._wait)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        retrying = str(getattr(getattr(task_instance, "state", ""), "value", "")) == "up_for_retry"
        state = RunState.UP_FOR_RETRY if retrying else RunState.FAILED
        self._record(task_instance, state, wait=self._wait, error=error)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._record(task_instance, RunState.SKIPPED, wait=self._wait)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        self._record_scheduler_outcomes(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        self._record_scheduler_outcomes(dag_run)

    def _record(self, ti: Any, state: RunState, *, wait: bool, error: Any = None) -> None:
        try:
            recorder = self._get_recorder(in_scheduler=_outside_a_task(ti))
            if recorder is None:
                return
            from airflow_graphlets.recorder.capture import fingerprint, task_run_record

            key = str(getattr(ti, "id", ""))
            if state.is_terminal:
                prints = self._fingerprints.pop(key, None)
                context = ti.get_template_context() if hasattr(ti, "get_template_context") else None
            else:
                prints = self._fingerprints[key] = fingerprint(getattr(ti, "task", None))
                context = None
            record = task_run_record(ti, state, error=_masked(error), context=context, prints=prints)
            recorder.record(record, wait=wait)
        except Exception:  # noqa: BLE001 - never let recording fail the user's task
            log.warning("airflow-graphlets: could not record %s of %s", state.value, _describe(ti), exc_info=True)

    def _record_scheduler_outcomes(self, dag_run: Any) -> None:
        """Record tasks the scheduler skipped or failed upstream, which no worker ever ran, and
        the final state of every try that ran (closing one whose worker died before recording it)."""
        dag_id = run_id = "?"
        try:
            recorder = self._get_recorder(in_scheduler=True)
            if recorder is None:
                return
            from airflow_graphlets.recorder.capture import scheduler_outcomes

            dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)
            # One flush to disk for the whole run, not one per task instance, on the scheduler's loop.
            recorder.record_many(list(scheduler_outcomes(dag_id, run_id, getattr(dag_run, "dag", None))))
        except Exception:  # noqa: BLE001 - the scheduler must never feel us; log plain strings only
            log.warning("airflow-graphlets: could not record skipped tasks of %s run %s", dag_id, run_id,
                        exc_info=True)

    def _get_recorder(self, in_scheduler: bool = False) -> Recorder | None:
        """The recorder, made on first use. ``in_scheduler``: called inside the scheduler's (or the
        API server's) own database session, which the connection look-up must not touch (see
        ``resolve_store``)."""
        if self._disabled:
            return None
        if self._recorder is None:
            from airflow_graphlets.airflow_config import load_settings, resolve_store

            try:
                settings = load_settings()
                if not settings.enabled:
                    self._disabled = True
                    return None
                if time.monotonic() < self._lookup_retry_at:
                    return self._spool_only
                store = resolve_store(settings, own_session=in_scheduler)
            except ConnectionLookupError as err:
                # Not "no connection": keep records in the spool, say why, and look again later.
                if self._spool_only is None:
                    log.warning("airflow-graphlets: %s", err)
                self._spool_only = Recorder(None, Spool(settings.spool_dir), unresolved=str(err))
                self._lookup_retry_at = time.monotonic() + _LOOKUP_RETRY_SECONDS
                return self._spool_only
            except GraphletsError as err:
                # One clear line, then silence for this process: the task itself carries on.
                log.error("airflow-graphlets: recording is off: %s", err)
                self._disabled = True
                return None
            self._recorder = Recorder(
                store, Spool(settings.spool_dir), settings.record_timeout, settings.flusher_idle_seconds
            )
            self._wait = settings.record_wait
        return self._recorder


def _masked(error: Any) -> str | None:
    """A failed try's error as its task log shows it: every secret Airflow's masker knows in this
    process (connection passwords read by the task, sensitive variables), and any password in an
    address, replaced by ``***``."""
    if error is None:
        return None
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    for module in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
        try:
            text = str(importlib.import_module(module).redact(text))
            break
        except (ImportError, AttributeError):
            continue
    from airflow_graphlets.errors import mask_secrets

    return mask_secrets(text)


def _outside_a_task(ti: Any) -> bool:
    """Whether a task-instance hook runs in the scheduler or the API server (a try they end
    themselves: a lost heartbeat, a state set by hand), which pass Airflow's ORM task instance;
    a task process passes the Task SDK's ``RuntimeTaskInstance``."""
    return type(ti).__module__.startswith("airflow.models")


def _describe(ti: Any) -> str:
    return f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} (run {getattr(ti, 'run_id', '?')})"
