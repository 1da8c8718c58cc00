"""The bulk reader: a store's whole provenance graph in a dozen set-based queries.

Reads MLMD's tables directly with SQLAlchemy (SQLite, PostgreSQL, MySQL/MariaDB), read-only,
into :class:`~.provenance.Provenance` columns, then :func:`~.assemble.assemble` builds every
graphlet at once. No query is issued per model, so the cost grows with the store's size, not
with round trips. Table names are written as MLMD creates them (PostgreSQL folds them to lower
case, MySQL needs them exact).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_graphlets.errors import NoGraphletsError
from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.assemble import assemble
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.graphlets.provenance import NO_SPAN, NO_VALUE, Provenance, execution_times, rows_of
from airflow_graphlets.store import schema
from airflow_graphlets.store.columns import fetch_columns
from airflow_graphlets.store.inspect import mlmd_schema_version, read_only_engine
from airflow_graphlets.store.uri import StoreConfig

_TYPE_KIND_EXECUTION, _TYPE_KIND_ARTIFACT, _TYPE_KIND_CONTEXT = 0, 1, 2
_TRUE = {"sqlite": "1", "mysql": "1", "postgresql": "TRUE"}  # is_custom_property is BOOLEAN on PostgreSQL


def read_graphlets(config: StoreConfig, pipelines: Sequence[str] | None = None, workers: int = 2) -> Extraction:
    """Every model graphlet of a store, read in bulk.

    Args:
      config: the store (opened read-only).
      pipelines: only these pipelines (``pipeline`` context names); all when ``None``.
      workers: processes reading tables side by side (1 keeps everything in this process).

    Returns:
      The graphlets, ordered by trainer execution id, and the execution cost table.

    Raises:
      StoreNotFoundError, NotAnMlmdStoreError, UnsupportedSchemaError: the store cannot be read.
      NoGraphletsError: the store (or the pipelines asked for) holds no trainer execution.
    """
    extraction = assemble(read_provenance(config, pipelines, workers))
    if not len(extraction.graphlets):
        scope = f"pipelines {', '.join(pipelines)} of " if pipelines else ""
        raise NoGraphletsError(
            f"The {scope}MLMD store {config} holds no model graphlet: no execution of a Trainer "
            "(a type named ...Trainer or based on mlmd.Train) ran there. Record a pipeline with a "
            "trainer task (see docs/recording.md), or check --store."
        )
    return extraction


def read_provenance(config: StoreConfig, pipelines: Sequence[str] | None = None, workers: int = 2) -> Provenance:
    """The store's provenance graph as columns (see :class:`Provenance`).

    Args:
      config: the store (opened read-only).
      pipelines: only these pipelines; all when ``None``.
      workers: processes running the column queries side by side (1: all in this process).
    """
    engine = read_only_engine(config)
    try:
        version = mlmd_schema_version(engine, config)
        with engine.connect() as conn:
            plan = _plan(conn, pipelines)
    finally:
        engine.dispose()
    columns = _run_queries(config, plan.queries(), workers)
    return _provenance(str(config), version, plan, columns)


@dataclass
class _Plan:
    """What the small first queries found: types, contexts, and so the big queries to run."""

    type_names: dict[int, str]
    type_bases: dict[int, str | None]
    trainer_types: list[int]
    run_types: list[int]
    pipeline_rows: list[tuple[int, str]]
    run_names: dict[int, str]
    scope: _Scope
    dialect: str
    trainer_props: dict[int, dict[str, str]] = field(default_factory=dict)

    def queries(self) -> dict[str, tuple[list[str], str]]:
        """Name -> (select list, rest of the query), biggest first."""
        true = _TRUE[self.dialect]
        scope = self.scope
        time_join = " ".join(
            f"LEFT JOIN ExecutionProperty {alias} ON {alias}.execution_id = e.id AND {alias}.name = '{name}' "
            f"AND {alias}.is_custom_property = {true}"
            for alias, name in (("s", rules.START_PROPERTY), ("f", rules.END_PROPERTY))
        )
        queries = {
            "events": (["artifact_id", "execution_id", "type"], f"FROM Event {scope.where('execution_id')}"),
            "executions": (
                ["e.id", "e.type_id", "e.last_known_state", "e.create_time_since_epoch",
                 "e.last_update_time_since_epoch", "COALESCE(s.double_value, s.int_value)",
                 "COALESCE(f.double_value, f.int_value)"],
                f"FROM Execution e {time_join} {scope.where('e.id')} ORDER BY e.id",
            ),
            "artifacts": (["id", "type_id", "state"], f"FROM Artifact {scope.where_artifact('id')} ORDER BY id"),
            "artifact_properties": _artifact_property_query(scope),
            "runs": _association_query(f"SELECT id FROM Context WHERE type_id IN ({_ints(self.run_types)})", scope),
            "pipelines": _association_query(_ints([i for i, _ in self.pipeline_rows]), scope),
            "references": _reference_query(scope),
        }
        return queries


def _plan(conn: Connection, only: Sequence[str] | None) -> _Plan:
    types = conn.execute(sa.text("SELECT id, name, type_kind FROM Type")).all()
    type_bases = {int(t): n for t, n in conn.execute(sa.text(
        "SELECT pt.type_id, p.name FROM ParentType pt JOIN Type p ON p.id = pt.parent_type_id"))}
    ids_of_kind = lambda kind, names: [int(i) for i, n, k in types if k == kind and n in names]  # noqa: E731
    pipeline_types = ids_of_kind(_TYPE_KIND_CONTEXT, {schema.PIPELINE_CONTEXT})
    run_types = ids_of_kind(_TYPE_KIND_CONTEXT, set(rules.RUN_CONTEXT_TYPES))
    pipeline_rows = [(int(i), n) for i, n in conn.execute(sa.text(
        f"SELECT id, name FROM Context WHERE type_id IN ({_ints(pipeline_types)})"))]
    if only is not None:
        pipeline_rows = [(i, n) for i, n in pipeline_rows if n in set(only)]
    pipeline_rows.sort(key=lambda row: row[1])
    # With a pipeline filter, every query keeps to the executions of those pipelines.
    scope = _Scope(None if only is None else [i for i, _ in pipeline_rows])
    run_names = {int(i): n for i, n in conn.execute(sa.text(
        f"SELECT id, name FROM Context WHERE type_id IN ({_ints(run_types)})"))}
    trainer_types = [
        int(i) for i, n, k in types
        if k == _TYPE_KIND_EXECUTION and rules.execution_kind(n, type_bases.get(int(i))) == "Trainer"
    ]
    plan = _Plan({int(i): n for i, n, _ in types}, type_bases, trainer_types, run_types, pipeline_rows, run_names,
                 scope, conn.dialect.name)
    plan.trainer_props = _trainer_properties(conn, trainer_types, scope)
    return plan


def _run_queries(config: StoreConfig, queries: dict[str, tuple[list[str], str]], workers: int) -> dict[str, list[np.ndarray]]:
    """Run the column queries, in ``workers`` processes when more than one."""
    if workers <= 1:
        return {name: _fetch(config, query) for name, query in queries.items()}
    # Fork: the children start at once with this process's imports, and open their own connections.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {name: pool.submit(_fetch, config, query) for name, query in queries.items()}
        return {name: future.result() for name, future in futures.items()}


def _fetch(config: StoreConfig, query: tuple[list[str], str]) -> list[np.ndarray]:
    engine = read_only_engine(config)
    try:
        with engine.connect() as conn:
            return fetch_columns(conn, *query)
    finally:
        engine.dispose()


def _provenance(store: str, version: int, plan: _Plan, columns: dict[str, list[np.ndarray]]) -> Provenance:
    exec_id, exec_type, exec_state, created, updated, start_prop, end_prop = columns["executions"]
    exec_id = exec_id.astype(np.int64)
    start, end, duration = execution_times(created, updated, start_prop, end_prop)

    pipeline_ids = np.asarray([i for i, _ in plan.pipeline_rows], dtype=np.int64)
    exec_pipeline = np.full(len(exec_id), -1, dtype=np.int32)
    e, c = (x.astype(np.int64) for x in columns["pipelines"])
    rows = rows_of(exec_id, e)
    by_id = np.argsort(pipeline_ids)  # pipelines are in name order, rows_of needs id order
    pipeline_of_context = rows_of(pipeline_ids[by_id], c)
    exec_pipeline[rows[rows >= 0]] = np.where(pipeline_of_context >= 0, by_id[pipeline_of_context], -1)[rows >= 0]
    exec_run = np.full(len(exec_id), -1, dtype=np.int64)
    e, c = (x.astype(np.int64) for x in columns["runs"])
    rows = rows_of(exec_id, e)
    exec_run[rows[rows >= 0]] = c[rows >= 0]

    art_id, art_type, art_state = columns["artifacts"]
    art_id = art_id.astype(np.int64)
    art_span, art_blessed, art_pushed = _artifact_properties(art_id, *columns["artifact_properties"])

    ev_art_id, ev_exec_id, ev_type = columns["events"]
    ev_art, ev_exec = rows_of(art_id, ev_art_id.astype(np.int64)), rows_of(exec_id, ev_exec_id.astype(np.int64))
    keep = (ev_art >= 0) & (ev_exec >= 0) & np.isin(ev_type, list(rules.INPUT_EVENT_TYPES | rules.OUTPUT_EVENT_TYPES))
    ev_art, ev_exec, ev_type = ev_art[keep], ev_exec[keep], ev_type[keep]
    ev_input = np.isin(ev_type, list(rules.INPUT_EVENT_TYPES))
    ref_art, ref_exec = columns["references"]
    n_exec = max(len(exec_id), 1)
    wanted = rows_of(art_id, ref_art.astype(np.int64)) * n_exec + rows_of(exec_id, ref_exec.astype(np.int64))
    ev_reference = ev_input & np.isin(ev_art * n_exec + ev_exec, wanted) if len(wanted) else np.zeros(len(ev_art), bool)

    return Provenance(
        store=store,
        schema_version=version,
        type_names=plan.type_names,
        type_bases=plan.type_bases,
        pipelines=tuple(n for _, n in plan.pipeline_rows),
        run_names=plan.run_names,
        exec_id=exec_id,
        exec_type=exec_type.astype(np.int64),
        exec_state=exec_state.astype(np.int8),
        exec_start=start,
        exec_end=end,
        exec_duration=duration,
        exec_pipeline=exec_pipeline,
        exec_run=exec_run,
        trainer_props=plan.trainer_props,
        art_id=art_id,
        art_type=art_type.astype(np.int64),
        art_state=np.nan_to_num(art_state).astype(np.int8),
        art_span=art_span,
        art_blessed=art_blessed,
        art_pushed=art_pushed,
        ev_art=ev_art,
        ev_exec=ev_exec,
        ev_input=ev_input,
        ev_reference=ev_reference,
    )


class _Scope:
    """SQL conditions keeping a query to the executions of some pipelines (or to all)."""

    def __init__(self, pipeline_context_ids: list[int] | None) -> None:
        self.ids = pipeline_context_ids

    def cond(self, execution_column: str) -> str:
        if self.ids is None:
            return ""
        return f"{execution_column} IN (SELECT execution_id FROM Association WHERE context_id IN ({_ints(self.ids)}))"

    def artifact_cond(self, artifact_column: str) -> str:
        if self.ids is None:
            return ""
        return f"{artifact_column} IN (SELECT artifact_id FROM Event WHERE {self.cond('execution_id')})"

    def where(self, execution_column: str) -> str:
        return f"WHERE {self.cond(execution_column)}" if self.ids is not None else ""

    def where_artifact(self, artifact_column: str) -> str:
        return f"WHERE {self.artifact_cond(artifact_column)}" if self.ids is not None else ""

    def also(self, execution_column: str) -> str:
        return f" AND {self.cond(execution_column)}" if self.ids is not None else ""

    def also_artifact(self, artifact_column: str) -> str:
        return f" AND {self.artifact_cond(artifact_column)}" if self.ids is not None else ""


def _ints(values: Sequence[int]) -> str:
    """An SQL list of integers (our own ids, never user text); ``NULL`` keeps ``IN ()`` valid."""
    return ", ".join(str(int(v)) for v in values) or "NULL"


def _association_query(context_ids_sql: str, scope: _Scope) -> tuple[list[str], str]:
    """(execution, context) pairs of the contexts ``context_ids_sql`` lists or selects."""
    return ["a.execution_id", "a.context_id"], f"FROM Association a WHERE a.context_id IN ({context_ids_sql})" + scope.also("a.execution_id")


_ARTIFACT_PROPERTIES = (schema.SPAN, schema.BLESSED, schema.PUSHED)


def _artifact_property_query(scope: _Scope) -> tuple[list[str], str]:
    code = "CASE name " + " ".join(f"WHEN '{n}' THEN {i}" for i, n in enumerate(_ARTIFACT_PROPERTIES)) + " END"
    value = ("COALESCE(int_value, double_value, "
             "CASE WHEN bool_value IS NULL THEN NULL WHEN bool_value THEN 1 ELSE 0 END)")
    where = f"name IN ({', '.join(repr(n) for n in _ARTIFACT_PROPERTIES)})" + scope.also_artifact("artifact_id")
    return ["artifact_id", code, "CASE WHEN is_custom_property THEN 1 ELSE 0 END", value], f"FROM ArtifactProperty WHERE {where}"


def _artifact_properties(art_id, owner, which, custom, value) -> tuple[np.ndarray, ...]:
    """Span, blessed and pushed per artifact row."""
    span, blessed, pushed = _property_columns(art_id, owner, which, custom, value, len(_ARTIFACT_PROPERTIES), np.nan)
    return (
        np.where(np.isnan(span), NO_SPAN, np.nan_to_num(span)).astype(np.int64),
        np.where(np.isnan(blessed), NO_VALUE, blessed == 1).astype(np.int8),
        np.where(np.isnan(pushed), NO_VALUE, pushed == 1).astype(np.int8),
    )


def _property_columns(ids, owner, which, custom, value, n_names, missing) -> list[np.ndarray]:
    """Scatter (owner, property, value) rows into one column per property; typed beats custom."""
    rows = rows_of(ids, owner.astype(np.int64))
    columns = [np.full(len(ids), missing, dtype=np.float64) for _ in range(n_names)]
    for is_custom in (1, 0):  # custom first, so typed values overwrite them
        for k in range(n_names):
            pick = (rows >= 0) & (which == k) & (custom == is_custom) & ~np.isnan(value)
            columns[k][rows[pick]] = value[pick]
    return columns


def _trainer_properties(conn: Connection, trainer_types: list[int], scope: _Scope) -> dict[int, dict[str, str]]:
    names = (*rules.CODE_HASH_PROPERTIES, rules.STRUCTURE_HASH_PROPERTY)
    if not trainer_types:
        return {}
    where = f"e.type_id IN ({_ints(trainer_types)}) AND p.name IN ({', '.join(repr(n) for n in names)})"
    where += scope.also("e.id")
    props: dict[int, dict[str, str]] = {}
    rows = conn.execute(sa.text(
        "SELECT p.execution_id, p.name, p.string_value, p.is_custom_property FROM ExecutionProperty p "
        f"JOIN Execution e ON e.id = p.execution_id WHERE {where} ORDER BY p.is_custom_property DESC"))
    for execution_id, name, value, _ in rows:
        if value is not None:
            props.setdefault(int(execution_id), {})[name] = value
    return props


def _reference_query(scope: _Scope) -> tuple[list[str], str]:
    """Input events that read a model as a baseline or warm start (by their event-path key)."""
    keys = ", ".join(repr(k) for k in sorted(rules.REFERENCE_INPUT_KEYS))
    inputs = _ints(sorted(rules.INPUT_EVENT_TYPES))
    where = f"p.step_key IN ({keys}) AND e.type IN ({inputs})" + scope.also("e.execution_id")
    return ["e.artifact_id", "e.execution_id"], f"FROM Event e JOIN EventPath p ON p.event_id = e.id WHERE {where}"
