"""What a store holds that a summary has not read yet: the changes since a watermark.

The watermark is the newest change time the store held when the refresh started, minus a margin
(:data:`MARGIN_MS`): a writer whose transaction was still open then, or whose clock runs a little
behind, commits rows with earlier times that the next refresh still finds. The changes a refresh
read in that margin are kept (:class:`ChangeMarks`), so the next one reads again only pipelines
with a change it has not seen. A refresh of another store, or of a summary without a watermark,
is a full one; ``full=True`` forces one; so is one that would re-read more than half of the
pipelines whole (``incremental.FULL_SHARE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.graphlets.bulk_queries import ints
from airflow_graphlets.graphlets.rules import RUN_CONTEXT_TYPES
from airflow_graphlets.store import schema
from airflow_graphlets.store.columns import fetch_columns
from airflow_graphlets.store.inspect import index_plans, reading
from airflow_graphlets.store.sql import Sql, chunks
from airflow_graphlets.store.uri import StoreConfig
from airflow_graphlets.summary import tables

_ID_CHUNK = 4000  # listed ids per statement (SQLite scans a table for much longer lists)
MARGIN_MS = 5 * 60 * 1000
# Look-ups by index only (MLMD indexes update times, and property rows by their owner): the
# executions and artifacts changed since the watermark; the executions that wrote or read those
# artifacts; the DAG id the recorder writes on each execution. MLMD has no index on an
# association's execution id, so only executions without a DAG id (a TFX store's) are mapped to
# their pipelines through the association table.
_EVENTS_OF_ARTIFACTS = "FROM Event WHERE artifact_id IN ({ids})"  # (their ids listed, read as columns)
_DAG_IDS = ("SELECT execution_id, string_value FROM ExecutionProperty WHERE execution_id IN :ids "
            "AND name = :dag_id AND is_custom_property = :custom")
_PIPELINES_OF = ("SELECT DISTINCT a.execution_id, c.name FROM Association a JOIN Context c ON c.id = a.context_id "
                 "JOIN Type t ON t.id = c.type_id AND t.name = :pipeline_type WHERE a.execution_id IN :ids")
# The runs created since, each with its pipeline; then their executions that are the pipeline's
# too, by key look-ups from the runs: a TFX store's new executions reach their pipelines this way,
# without a look-up by execution id; those of runs begun earlier go through the association
# table. Two statements: in one, PostgreSQL (its statistics not yet holding the new runs) walked
# every execution of each pipeline to meet the run's few (1.2 M probes for 1,000 runs, 1 s).
# (``+n.type_id``: SQLite then finds the new runs by their creation time's index, not every run
# by its type.)
_NEW_RUNS = (
    "SELECT n.id, c.id, c.name FROM Context n CROSS JOIN ParentContext pc JOIN Context c ON c.id = pc.parent_context_id "
    "JOIN Type t ON t.id = c.type_id AND t.name = :pipeline_type "
    "WHERE n.create_time_since_epoch >= :since AND +n.type_id IN (SELECT id FROM Type WHERE type_kind = 2 AND name IN "
    f"({', '.join(repr(name) for name in RUN_CONTEXT_TYPES)})) AND pc.context_id = n.id")
# (CROSS JOIN: SQLite starts from the listed runs' rows.)
_MEMBERS_OF_RUNS = (
    "FROM Association r CROSS JOIN ParentContext pc CROSS JOIN Association p "
    "WHERE r.context_id IN ({runs}) AND pc.context_id = r.context_id AND p.context_id = pc.parent_context_id "
    "AND p.execution_id = r.execution_id AND +pc.parent_context_id IN ({pipelines})")
_NEW_PIPELINES = ("SELECT c.id, c.create_time_since_epoch, c.name FROM Context c JOIN Type t ON t.id = c.type_id "
                  "AND t.name = :pipeline_type WHERE c.create_time_since_epoch >= :since")
_NAMED = ("SELECT c.name FROM Context c JOIN Type t ON t.id = c.type_id AND t.name = :pipeline_type "
          "WHERE c.name IN :names")
_NEWEST = ("SELECT MAX(m) FROM (SELECT MAX(last_update_time_since_epoch) AS m FROM Execution UNION ALL "
           "SELECT MAX(last_update_time_since_epoch) FROM Artifact UNION ALL "
           "SELECT MAX(create_time_since_epoch) FROM Context) newest")
# Changes stamped less than this before a refresh began are never marked seen: a second write
# in the same millisecond as one a refresh saw would carry the same time.
UNSETTLED_MS = 1000


@dataclass(frozen=True)
class ChangeMarks:
    """The changes a refresh has already read, as (kind, id, time in ms): "e" an execution's and
    "a" an artifact's last update, "c" a pipeline's creation. The next refresh looks back a
    margin before its watermark (for writes committed late or stamped by a clock behind) and
    reads again only the pipelines with a change not marked here, so a quiet store costs a few
    index look-ups per refresh, not a re-read of every pipeline written to in the margin."""

    seen: frozenset[tuple[str, int, int]] = frozenset()

    def settled(self, since_ms: int, began_ms: int) -> "ChangeMarks":
        """The marks a refresh looking back to ``since_ms`` needs, without those stamped in the
        last :data:`UNSETTLED_MS` before ``began_ms`` (when the refresh that read them began)."""
        return ChangeMarks(frozenset(m for m in self.seen if since_ms <= m[2] < began_ms - UNSETTLED_MS))

    def write(self, conn: sa.Connection) -> None:
        """Keep these marks with the summary (in place of those it held): one row each, as a
        busy store's five minutes hold thousands."""
        table = tables.seen_change
        conn.execute(table.delete())
        if self.seen:
            # Rows of plain tuples, many to a statement: a busy store's marks are tens of thousands.
            Sql(conn.connection.dbapi_connection, conn.dialect.name).insert_rows(
                f"INSERT INTO {table.name} (kind, id, at_ms) VALUES", sorted(self.seen))

    @classmethod
    def read(cls, engine: Engine) -> "ChangeMarks":
        """The marks the summary holds (none for a new summary: everything in the margin is
        read again)."""
        with engine.connect() as conn:
            return cls(frozenset((str(k), int(i), int(t)) for k, i, t in conn.execute(sa.select(
                tables.seen_change.c.kind, tables.seen_change.c.id, tables.seen_change.c.at_ms))))


def store_watermark(config: StoreConfig, engine: Engine | None = None) -> int:
    """The newest create or update time (ms) the store holds now; 0 for an empty store."""
    with reading(config, engine) as engine, engine.connect() as conn:
        return int(conn.execute(sa.text(_NEWEST)).scalar() or 0)


def touched_pipelines(config: StoreConfig, since_ms: int, engine: Engine | None = None) -> list[str]:
    """The pipelines with an execution or artifact created or updated, or that were created, at
    or after ``since_ms``."""
    return changes_since(config, since_ms, engine=engine)[0]


@dataclass(frozen=True)
class Changes:
    """What a store holds that a summary has not read: the pipelines changed, by name, with the
    executions changed in each (created or updated, or using an artifact that was); a pipeline
    created since has none listed and is read whole."""

    pipelines: list[str]
    executions: dict[str, set[int]]
    marks: ChangeMarks


def changes_since(config: StoreConfig, since_ms: int, seen: ChangeMarks = ChangeMarks(),
                  engine: Engine | None = None) -> tuple[list[str], ChangeMarks]:
    """The pipelines with a change at or after ``since_ms`` that ``seen`` does not hold (an
    execution or artifact created or updated, a pipeline created), and the changes found that
    now count as seen."""
    found = read_changes(config, since_ms, seen, engine)
    return found.pipelines, found.marks


def read_changes(config: StoreConfig, since_ms: int, seen: ChangeMarks = ChangeMarks(),
                 engine: Engine | None = None) -> Changes:
    """As :func:`changes_since`, with each pipeline's changed executions."""
    with reading(config, engine) as engine, engine.connect() as conn:
        def marked(statement: str, **params) -> list[tuple[int, int, str | None]]:
            return [(int(row[0]), int(row[1]), row[2] if len(row) > 2 else None)
                    for row in conn.execute(sa.text(statement), {"since": since_ms, **params})]

        def changed(table: str) -> list[tuple[int, int, None]]:  # as columns: thousands after a busy spell
            ids, times = (column.astype(np.int64).tolist() for column in fetch_columns(
                conn, ("id", "last_update_time_since_epoch"),
                f"FROM {table} WHERE last_update_time_since_epoch >= {int(since_ms)}"))
            return [(i, t, None) for i, t in zip(ids, times)]

        found = {"e": changed("Execution"), "a": changed("Artifact"),
                 "c": marked(_NEW_PIPELINES, pipeline_type=schema.PIPELINE_CONTEXT)}
        new = {kind: [row for row in rows if (kind, row[0], row[1]) not in seen.seen] for kind, rows in found.items()}
        executions = {i for i, _, _ in new["e"]}
        users: dict[int, set[int]] = {}  # a new artifact's executions
        for part in chunks(sorted({i for i, _, _ in new["a"]}), _ID_CHUNK):
            artifact_ids, execution_ids = (column.astype(np.int64).tolist() for column in fetch_columns(
                conn, ("artifact_id", "execution_id"), _EVENTS_OF_ARTIFACTS.format(ids=ints(part))))
            for artifact_id, execution_id in zip(artifact_ids, execution_ids):
                users.setdefault(artifact_id, set()).add(execution_id)
        executions |= set().union(*users.values()) if users else set()
        pipeline_of: dict[int, set[str]] = {}
        for part in chunks(sorted(executions)):
            for execution_id, dag_id in conn.execute(_expanding(_DAG_IDS), {
                    "ids": part, "dag_id": schema.ExecutionProps.DAG_ID, "custom": True}):
                if dag_id:
                    pipeline_of.setdefault(int(execution_id), set()).add(dag_id)
        if executions - set(pipeline_of):
            for execution_id, name in _in_new_runs(conn, since_ms):
                if execution_id in executions:
                    pipeline_of.setdefault(execution_id, set()).add(name)
        for part in chunks(sorted(executions - set(pipeline_of))):
            for execution_id, name in conn.execute(_expanding(_PIPELINES_OF), {
                    "ids": part, "pipeline_type": schema.PIPELINE_CONTEXT}):
                pipeline_of.setdefault(int(execution_id), set()).add(name)
        names = set().union(*pipeline_of.values()) if pipeline_of else set()
        # Only names that are pipelines of the store (a DAG id may name another kind of context),
        # and every pipeline created since.
        touched = {name for _, _, name in new["c"]}
        for part in chunks(sorted(names)):
            touched |= {name for (name,) in conn.execute(_expanding(_NAMED), {
                "names": part, "pipeline_type": schema.PIPELINE_CONTEXT})}
        # A change is marked seen once it led to a pipeline: an execution whose association or
        # DAG id is not there yet, or an artifact no execution has used yet, is looked at again.
        placed = {("e", i, t) for i, t, _ in found["e"] if (("e", i, t) in seen.seen or i in pipeline_of)}
        placed |= {("a", i, t) for i, t, _ in found["a"]
                   if ("a", i, t) in seen.seen or any(e in pipeline_of for e in users.get(i, ()))}
        placed |= {("c", i, t) for i, t, _ in found["c"]}
        marks = ChangeMarks(frozenset(placed))
        created = {name for _, _, name in new["c"]}
        by_pipeline: dict[str, set[int]] = {name: set() for name in touched if name not in created}
        for execution_id, names in pipeline_of.items():
            for name in names & by_pipeline.keys():
                by_pipeline[name].add(execution_id)
        return Changes(sorted(touched), {name: ids for name, ids in by_pipeline.items() if ids}, marks)


def _in_new_runs(conn: sa.Connection, since_ms: int) -> list[tuple[int, str]]:
    """(execution id, pipeline name) of every execution of the runs created at or after
    ``since_ms`` that is its run's pipeline's too."""
    runs, names = set(), {}
    for run, pipeline, name in conn.execute(sa.text(_NEW_RUNS), {"since": since_ms,
                                                                   "pipeline_type": schema.PIPELINE_CONTEXT}):
        runs.add(int(run))
        names[int(pipeline)] = name
    found = []
    # Planned as look-ups from the listed runs: left to itself, PostgreSQL scanned every pipeline
    # run link in parallel to merge them with the runs' few (after 1,000 runs: 88 ms, not 25 ms).
    with index_plans(conn):
        for part in chunks(sorted(runs), _ID_CHUNK):
            executions, pipelines = (column.astype(np.int64).tolist() for column in fetch_columns(
                conn, ("r.execution_id", "p.context_id"), _MEMBERS_OF_RUNS.format(runs=ints(part),
                                                                                  pipelines=ints(sorted(names)))))
            found += [(execution, names[pipeline]) for execution, pipeline in zip(executions, pipelines)]
    return found


def _expanding(statement: str) -> sa.TextClause:
    clause = sa.text(statement)
    for name in ("ids", "names"):
        if f":{name}" in statement:
            clause = clause.bindparams(sa.bindparam(name, expanding=True))
    return clause

