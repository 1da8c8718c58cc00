"""Operators' overrides of the gate, per DAG, kept in the MLMD store with who made them.

Three actions:

* ``force-run``: the DAG's next gate decision runs the training, whatever the predictor says
  (an operator overruling a skip). It is used up by the first gate decision made after it.
  Bound to a run (``run_id``, what the skip log's *Overrule* makes), it is that run's instead:
  the gate of that run honours it when it decides again (the UI clears the run's training
  branch through Airflow so it does at once), and no other run's decision uses it up.
* ``never-skip``: every later decision runs the training, until ``allow-skip``.
* ``allow-skip``: ends a ``never-skip``; the gate decides on its own again.

Each override is an MLMD execution of type :data:`OVERRIDE_TYPE`, with its action, author,
reason and time as custom properties, associated with a context of type
:data:`OVERRIDES_CONTEXT` named after the DAG. They live beside, not inside, the pipeline's own
contexts, so graphlet extraction never mistakes them for task runs, and nothing is ever
overwritten: the log of overrides is append-only, and the state is read from it. Both graphlet
readers leave these executions out (``schema.BOOKKEEPING_EXECUTION_TYPES``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import GraphletsError, StoreUnavailableError
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig

OVERRIDE_TYPE = schema.GATE_OVERRIDE_TYPE
OVERRIDES_CONTEXT = schema.GATE_OVERRIDES_CONTEXT
FORCE_RUN = "force-run"
NEVER_SKIP = "never-skip"
ALLOW_SKIP = "allow-skip"
ACTIONS = (FORCE_RUN, NEVER_SKIP, ALLOW_SKIP)
_OVERRIDES_SQL = sa.text(
    "SELECT p.execution_id, p.name, p.string_value, p.double_value FROM Context c "
    "JOIN Type t ON t.id = c.type_id JOIN Association a ON a.context_id = c.id "
    "JOIN ExecutionProperty p ON p.execution_id = a.execution_id WHERE c.name = :context AND t.name = :context_type"
)
_MAX_TEXT = 1000  # author and reason are free text; keep a stray paste from bloating the store


class OverrideError(GraphletsError, ValueError):
    """An override request is malformed (unknown action, empty DAG id or author)."""


@dataclass(frozen=True)
class Override:
    """One operator override as the store keeps it."""

    execution_id: int
    dag_id: str
    action: str  # one of ACTIONS
    by: str  # who made it: an Airflow user name, or the OS user of the CLI
    reason: str
    at: float  # epoch seconds (wall clock) when it was made
    run_id: str = ""  # a force-run bound to this DAG run; "" for the DAG's next decision
    airflow_clear: str = ""  # what Airflow's clear of the run's training branch did, when asked

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StandingOverrides:
    """What the overrides of one DAG mean for its next gate decision."""

    never_skip: Override | None = None  # in force until an allow-skip
    force_run: Override | None = None  # made after the latest decision, not used up yet
    run_force_run: Override | None = None  # bound to the run deciding, made after its last decision

    @property
    def active(self) -> Override | None:
        """The override the next decision honours (never-skip first), or None."""
        return self.never_skip or self.run_force_run or self.force_run


def validate(dag_id: str, action: str, by: str, run_id: str = "") -> None:
    """Raise :class:`OverrideError` naming what is wrong with an override request."""
    if action not in ACTIONS:
        raise OverrideError(f"unknown override action {action!r}: use one of {', '.join(ACTIONS)}")
    if not dag_id or not dag_id.strip():
        raise OverrideError("an override needs the DAG id it applies to (--dag)")
    if not by or not by.strip():
        raise OverrideError("an override needs who makes it (--by), so the skip log can say")
    if run_id and action != FORCE_RUN:
        raise OverrideError(f"only a force-run can be bound to a run; {action} applies to every later decision")


def record_override(config: StoreConfig, dag_id: str, action: str, by: str, reason: str = "",
                    now: float | None = None, run_id: str = "") -> Override:
    """Append an override for ``dag_id`` to the store and return it (a force-run bound to
    ``run_id`` when given).

    Raises:
      OverrideError: unknown action, empty DAG id or author, or a run given for another action.
      StoreUnavailableError: the store cannot be opened.
    """
    validate(dag_id, action, by, run_id)
    from airflow_graphlets.store.connect import open_store

    # To the millisecond: MLMD hands doubles back to 15 significant digits.
    at = round(time.time() if now is None else float(now), 3)
    store = open_store(config)
    try:
        return _put_override(store, dag_id, action, by, reason, at, run_id)
    finally:
        store.close()  # the API server calls this again and again: hold no connection after


def record_override_within(config: StoreConfig, dag_id: str, action: str, by: str, reason: str = "",
                           seconds: float = 10.0, run_id: str = "") -> Override:
    """:func:`record_override`, waiting at most ``seconds`` for the store: the UI calls it in the
    API server's process, which a store that hangs (a connect that never completes, a locked
    table) must not hold. The write runs in a daemon thread; if it has not finished in time the
    caller is told, and the write may still complete later.

    Raises:
      OverrideError: as :func:`record_override`.
      StoreUnavailableError: the store failed, or did not answer within ``seconds``.
    """
    validate(dag_id, action, by, run_id)
    return _within(seconds, config, f"the {action} override of {dag_id!r}",
                   lambda: record_override(config, dag_id, action, by, reason, run_id=run_id))


def note_airflow_clear_within(config: StoreConfig, override: Override, outcome: str,
                              seconds: float = 10.0) -> Override:
    """Add to ``override`` (in the store) what Airflow's clear of its run's training branch did,
    so the skip log says it beside who overruled; the override, bounded as
    :func:`record_override_within`."""
    return _within(seconds, config, f"the note on override {override.execution_id}",
                   lambda: _note_clear(config, override, outcome))


def _note_clear(config: StoreConfig, override: Override, outcome: str) -> Override:
    from airflow_graphlets.store.connect import open_store

    store = open_store(config)
    try:
        [execution] = store.get_executions_by_id([override.execution_id])
        execution.custom_properties["airflow_clear"].string_value = outcome[:_MAX_TEXT]
        store.put_execution(execution, artifact_and_events=[], contexts=[])
    finally:
        store.close()
    return replace(override, airflow_clear=outcome[:_MAX_TEXT])


def _within(seconds: float, config: StoreConfig, what: str, write_it):
    """``write_it()``'s result, waiting at most ``seconds`` (it runs in a daemon thread)."""
    outcome: list = []

    def write() -> None:
        try:
            outcome.append(write_it())
        except BaseException as err:  # noqa: BLE001 - handed to the caller below
            outcome.append(err)

    worker = threading.Thread(target=write, name="graphlets-override", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise StoreUnavailableError(
            f"The MLMD store {config} did not answer within {seconds:g} s, so {what} "
            "is not confirmed; it may still be recorded when the store answers. Check the skip log before "
            "making it again.")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _put_override(store, dag_id: str, action: str, by: str, reason: str, at: float, run_id: str) -> Override:
    from airflow_graphlets.store import mlmd_proto as mlmd_pb
    from airflow_graphlets.store.types import TypeRegistry

    types = TypeRegistry(store)
    execution = mlmd_pb.Execution(type_id=types.execution_type(OVERRIDE_TYPE),
                                  last_known_state=mlmd_pb.Execution.COMPLETE)
    execution.custom_properties["dag_id"].string_value = dag_id
    execution.custom_properties["action"].string_value = action
    execution.custom_properties["by"].string_value = by[:_MAX_TEXT]
    execution.custom_properties["reason"].string_value = reason[:_MAX_TEXT]
    execution.custom_properties["at_epoch_seconds"].double_value = at
    if run_id:
        execution.custom_properties["run_id"].string_value = run_id
    context = store.get_context_by_type_and_name(OVERRIDES_CONTEXT, dag_id)
    if context is None:
        context = mlmd_pb.Context(type_id=types.context_type(OVERRIDES_CONTEXT), name=dag_id)
    execution_id, _, _ = store.put_execution(execution, artifact_and_events=[], contexts=[context],
                                             reuse_context_if_already_exist=True)
    return Override(execution_id, dag_id, action, by[:_MAX_TEXT], reason[:_MAX_TEXT], at, run_id)


def read_overrides(config: StoreConfig, dag_id: str, engine: Engine | None = None) -> list[Override]:
    """Every override made for ``dag_id``, oldest first (empty when none), read-only, through
    ``engine`` when given.

    Raises:
      StoreNotFoundError, StoreUnavailableError: the store cannot be opened.
    """
    with reading(config, engine) as engine, engine.connect() as conn:
        rows = conn.execute(_OVERRIDES_SQL, {"context": dag_id, "context_type": OVERRIDES_CONTEXT}).all()
    props: dict[int, dict[str, object]] = {}
    for execution_id, name, text, double in rows:
        props.setdefault(int(execution_id), {})[name] = text if text is not None else double
    found = [Override(execution_id, str(p.get("dag_id") or ""), str(p.get("action") or ""), str(p.get("by") or ""),
                      str(p.get("reason") or ""), float(p.get("at_epoch_seconds") or 0.0),
                      str(p.get("run_id") or ""), str(p.get("airflow_clear") or ""))
             for execution_id, p in props.items()]
    found.sort(key=lambda o: (o.at, o.execution_id))
    return found


def awaiting_runs(overrides: Iterable[Override], decisions: Iterable) -> list[Override]:
    """The force-runs bound to a run whose gate has not decided since (``decisions``: the DAG's
    logged decisions, anything with ``run_id`` and ``decided_at``)."""
    last: dict[str, float] = {}
    for decision in decisions:
        last[decision.run_id] = max(last.get(decision.run_id, decision.decided_at), decision.decided_at)
    return [o for o in overrides if o.action == FORCE_RUN and o.run_id
            and standing([o], None, o.run_id, last.get(o.run_id)).run_force_run is not None]


def standing(overrides: Iterable[Override], last_decision_at: float | None, run_id: str | None = None,
             run_decided_at: float | None = None) -> StandingOverrides:
    """The overrides in force for the next decision, given when the DAG's gate last decided
    (and, for a decision of run ``run_id``, when that run's gate last decided).

    A ``never-skip`` stands until a later ``allow-skip``; a ``force-run`` stands if it is newer
    than the latest decision (the first decision after it uses it up); a force-run bound to
    ``run_id`` stands if it is newer than that run's latest decision.
    """
    never_skip = force_run = run_force_run = None
    for override in sorted(overrides, key=lambda o: (o.at, o.execution_id)):
        if override.action == NEVER_SKIP:
            never_skip = override
        elif override.action == ALLOW_SKIP:
            never_skip = None
        elif override.action == FORCE_RUN and override.run_id:
            if override.run_id == run_id and (run_decided_at is None or override.at > run_decided_at):
                run_force_run = override
        elif override.action == FORCE_RUN and (last_decision_at is None or override.at > last_decision_at):
            force_run = override
    return StandingOverrides(never_skip, force_run, run_force_run)
