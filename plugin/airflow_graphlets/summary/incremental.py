"""Refresh the summary by what changed: re-extract only the pipelines written to since the last
refresh, and replace their rows.

A graphlet belongs to one pipeline and is assembled from that pipeline's executions (the bulk
reader's pipeline filter reads exactly them), so a pipeline's summary rows depend on its own
executions, artifacts and decisions only. A refresh therefore asks the store which pipelines
have an execution or artifact created or updated, or a context created, after its watermark
(MLMD's indexed ``last_update_time_since_epoch`` columns), re-extracts those pipelines, and in one
transaction replaces their graphlet, day, pipeline-total and decision rows and recomputes the day
totals of the days they touch, in the order a full refresh sums them.

The watermark is the newest change time the store held when the refresh started, minus a margin
(:data:`MARGIN_MS`): a writer whose transaction was still open then, or whose clock runs a little
behind, commits rows with earlier times that the next refresh still finds. The changes a refresh
read in that margin are kept (:class:`ChangeMarks`), so the next one reads again only pipelines
with a change it has not seen. A refresh of another store, or of a summary without a watermark,
is a full one; ``full=True`` forces one; so is one that would re-read more than half of the
pipelines (:data:`FULL_SHARE`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import NoGraphletsError
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig
from airflow_graphlets.summary import tables
from airflow_graphlets.summary.refresh import insert_in_batches
from airflow_graphlets.summary.rows import (
    ExecutionCosts,
    compute_days,
    days_of,
    decision_rows,
    graphlet_rows,
    on_run_clock,
    rolled_up,
)

if TYPE_CHECKING:
    from airflow_graphlets.summary.windows import Settled

# The summary's layout; a summary of another layout (older, without execution rows) is rebuilt
# by a full refresh.
SUMMARY_FORMAT = "2"

MARGIN_MS = 5 * 60 * 1000
# A refresh that would re-read more than this share of the summarised pipelines reads the store
# whole instead (at 1,000 pipelines, re-reading all of them took 38.6 s, a full summary 27.1 s).
FULL_SHARE = 0.5
_SUMMARY_LOCK = 0x67736D79  # "gsmy"
_CHUNK = 500
# Look-ups by index only (MLMD indexes update times, and property rows by their owner): the
# executions and artifacts changed since the watermark; the executions that wrote or read those
# artifacts; the DAG id the recorder writes on each execution. MLMD has no index on an
# association's execution id, so only executions without a DAG id (a TFX store's) are mapped to
# their pipelines through the association table.
_CHANGED_EXECUTIONS = "SELECT id, last_update_time_since_epoch FROM Execution WHERE last_update_time_since_epoch >= :since"
_CHANGED_ARTIFACTS = "SELECT id, last_update_time_since_epoch FROM Artifact WHERE last_update_time_since_epoch >= :since"
_EVENTS_OF_ARTIFACTS = "SELECT DISTINCT artifact_id, execution_id FROM Event WHERE artifact_id IN :ids"
_DAG_IDS = ("SELECT execution_id, string_value FROM ExecutionProperty WHERE execution_id IN :ids "
            "AND name = :dag_id AND is_custom_property = :custom")
_PIPELINES_OF = ("SELECT DISTINCT a.execution_id, c.name FROM Association a JOIN Context c ON c.id = a.context_id "
                 "JOIN Type t ON t.id = c.type_id AND t.name = :pipeline_type WHERE a.execution_id IN :ids")
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

    def dumps(self) -> str:
        return json.dumps(sorted(self.seen), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> "ChangeMarks":
        """The marks a summary's state holds (none when absent or unreadable: everything in
        the margin is read again, as before marks existed)."""
        try:
            return cls(frozenset((str(k), int(i), int(t)) for k, i, t in json.loads(text or "[]")))
        except (ValueError, TypeError):
            return cls()


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

        found = {"e": marked(_CHANGED_EXECUTIONS), "a": marked(_CHANGED_ARTIFACTS),
                 "c": marked(_NEW_PIPELINES, pipeline_type=schema.PIPELINE_CONTEXT)}
        new = {kind: [row for row in rows if (kind, row[0], row[1]) not in seen.seen] for kind, rows in found.items()}
        executions = {i for i, _, _ in new["e"]}
        users: dict[int, set[int]] = {}  # a new artifact's executions
        for part in _chunks(sorted({i for i, _, _ in new["a"]})):
            for artifact_id, execution_id in conn.execute(_expanding(_EVENTS_OF_ARTIFACTS), {"ids": part}):
                users.setdefault(int(artifact_id), set()).add(int(execution_id))
        executions |= set().union(*users.values()) if users else set()
        pipeline_of: dict[int, set[str]] = {}
        for part in _chunks(sorted(executions)):
            for execution_id, dag_id in conn.execute(_expanding(_DAG_IDS), {
                    "ids": part, "dag_id": schema.ExecutionProps.DAG_ID, "custom": True}):
                if dag_id:
                    pipeline_of.setdefault(int(execution_id), set()).add(dag_id)
        for part in _chunks(sorted(executions - set(pipeline_of))):
            for execution_id, name in conn.execute(_expanding(_PIPELINES_OF), {
                    "ids": part, "pipeline_type": schema.PIPELINE_CONTEXT}):
                pipeline_of.setdefault(int(execution_id), set()).add(name)
        names = set().union(*pipeline_of.values()) if pipeline_of else set()
        # Only names that are pipelines of the store (a DAG id may name another kind of context),
        # and every pipeline created since.
        touched = {name for _, _, name in new["c"]}
        for part in _chunks(sorted(names)):
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


def _expanding(statement: str) -> sa.TextClause:
    clause = sa.text(statement)
    for name in ("ids", "names"):
        if f":{name}" in statement:
            clause = clause.bindparams(sa.bindparam(name, expanding=True))
    return clause


def refresh_pipelines(config: StoreConfig, engine: Engine, pipelines: list[str], watermark_ms: int,
                      workers: int = 1, marks: ChangeMarks = ChangeMarks(),
                      changed: Mapping[str, set[int]] | None = None) -> tuple[int, int]:
    """Replace the summary rows ``pipelines`` changed with what the store holds now; record the
    watermark and the changes read (``marks``). A pipeline listed in ``changed`` (name -> its
    changed executions) is re-read through a window of its newest runs where one settles its
    changes (``summary/windows.py``), the others whole. Returns the graphlet and decision rows
    written."""
    from airflow_graphlets.summary.refresh import CLOCK
    from airflow_graphlets.summary.windows import Settled, read_windows

    changed = {name: ids for name, ids in (changed or {}).items() if name in set(pipelines)}
    settled, whole = Settled(), list(pipelines)
    if changed:
        summarised = _summarised(engine, sorted(changed))
        changed = {name: ids for name, ids in changed.items() if name in summarised}
        settled, unsettled = read_windows(config, changed, summarised, CLOCK)
        whole = sorted(set(pipelines) - set(settled.pipelines))
    extraction, graphlets, decisions, days = _read_whole(config, whole, workers)
    costs = ExecutionCosts.of(extraction)
    with engine.begin() as conn:
        lock_summary(conn)
        old_rows = []
        for part in _chunks(whole):
            old_rows += [dict(row._mapping) for row in conn.execute(
                sa.select(tables.compute_day).where(tables.compute_day.c.pipeline.in_(part)))]
            for table in (tables.graphlet, tables.compute_day, tables.pipeline_total, tables.decision,
                          tables.execution):
                conn.execute(table.delete().where(table.c.pipeline.in_(part)))
        for table, rows in ((tables.graphlet, graphlets), (tables.compute_day, days),
                            (tables.pipeline_total, rolled_up(days, "pipeline")), (tables.decision, decisions)):
            if rows:
                conn.execute(table.insert(), rows)
        insert_in_batches(conn, tables.execution, costs.rows())
        settled_old, settled_new = _replace_settled(conn, settled)
        _update_day_totals(conn, old_rows + settled_old, days + settled_new)
        how = f"incremental: {len(pipelines)} pipelines"
        if settled.pipelines:
            how += f" ({len(settled.pipelines)} through windows of {settled.runs_read} runs, {len(whole)} whole)"
        _set_state(conn, {"watermark_ms": str(watermark_ms), "refreshed_at": repr(time.time()),
                          "last_refresh": how, "seen_changes": marks.dumps()})
    return len(graphlets) + len(settled.graphlets), len(decisions) + len(settled.decisions)


def _summarised(engine: Engine, pipelines: list[str]) -> dict[str, int]:
    """Of ``pipelines``, those the summary holds rows of, with the most spans a graphlet of each read."""
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for part in _chunks(pipelines):
            found |= {name: int(total) for name, total in conn.execute(
                sa.select(tables.pipeline_total.c.pipeline, sa.literal(0)).where(
                    tables.pipeline_total.c.pipeline.in_(part)))}
            found |= {name: int(widest or 0) for name, widest in conn.execute(
                sa.select(tables.graphlet.c.pipeline, sa.func.max(tables.graphlet.c.spans)).where(
                    tables.graphlet.c.pipeline.in_(part)).group_by(tables.graphlet.c.pipeline))}
    return found


def _read_whole(config: StoreConfig, pipelines: list[str], workers: int):
    """The whole rows of ``pipelines``: extraction, graphlet rows, decision rows, day rows."""
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.graphlets.clock import on_clock
    from airflow_graphlets.prune.decisions import read_all_decisions
    from airflow_graphlets.summary.refresh import CLOCK

    extraction = None
    if pipelines:
        try:
            extraction = on_clock(read_graphlets(config, pipelines, workers=workers), CLOCK)
        except NoGraphletsError:
            extraction = None
    decisions = on_run_clock(decision_rows(read_all_decisions(config, pipelines=pipelines)), extraction) \
        if pipelines else []
    graphlets = list(graphlet_rows(extraction)) if extraction else []
    return extraction, graphlets, decisions, compute_days(extraction, decisions)


def _replace_settled(conn: sa.Connection, settled: "Settled") -> tuple[list[dict], list[dict]]:
    """Replace the rows a window settled, and sum again the (pipeline, day) rows they stand on,
    from the rows the summary keeps. Returns those days' rows before and after."""
    if not settled.pipelines:
        return [], []
    keys: set[tuple[str, int]] = set()
    g, e, d = tables.graphlet, tables.execution, tables.decision
    for ids, table, key in ((settled.trainers, g, g.c.trainer_id), (settled.executions, e, e.c.execution_id),
                            (settled.decision_ids, d, d.c.execution_id)):
        for part in _chunks(sorted(ids)):
            keys |= _day_keys(table, [dict(row._mapping) for row in conn.execute(sa.select(table).where(key.in_(part)))])
            conn.execute(table.delete().where(key.in_(part)))
    costs = [row for found in settled.costs for row in found.rows()]
    for table, rows in ((g, settled.graphlets), (e, costs), (d, settled.decisions)):
        keys |= _day_keys(table, rows)
        if rows:
            conn.execute(table.insert(), rows)
    days_by_pipeline: dict[str, set[int]] = {}
    for pipeline, day in keys:
        days_by_pipeline.setdefault(pipeline, set()).add(day)
    old, new = [], []
    c = tables.compute_day
    for part in _chunks(sorted(days_by_pipeline), 100):
        wanted = sa.or_(*[sa.and_(c.c.pipeline == name, c.c.day.in_(sorted(days_by_pipeline[name]))) for name in part])
        old += [dict(row._mapping) for row in conn.execute(sa.select(c).where(wanted))]
        conn.execute(c.delete().where(wanted))
        in_days = sa.or_(*[sa.and_(e.c.pipeline == name, e.c.day.in_(sorted(days_by_pipeline[name]))) for name in part])
        kept = ExecutionCosts.from_rows([tuple(row) for row in conn.execute(
            sa.select(e.c.execution_id, e.c.pipeline, e.c.day, e.c.seconds, e.c.outcome).where(in_days))])
        graphlets = [dict(row._mapping) for row in conn.execute(
            sa.select(g.c.pipeline, g.c.trainer_start, g.c.pushed_at).where(g.c.pipeline.in_(part)))]
        decisions = [dict(row._mapping) for row in conn.execute(
            sa.select(d.c.pipeline, d.c.decided_at, d.c.decision, d.c.saved_seconds).where(
                d.c.pipeline.in_(part)).order_by(d.c.execution_id))]
        rows = [row for row in days_of(kept, graphlets, decisions) if (row["pipeline"], row["day"]) in keys]
        if rows:
            conn.execute(c.insert(), rows)
        new += rows
        for name in part:  # the pipelines' totals, summed over their days in order as a full refresh does
            conn.execute(tables.pipeline_total.delete().where(tables.pipeline_total.c.pipeline == name))
        totals = rolled_up([dict(row._mapping) for row in conn.execute(
            sa.select(c).where(c.c.pipeline.in_(part)).order_by(c.c.pipeline, c.c.day))], "pipeline")
        if totals:
            conn.execute(tables.pipeline_total.insert(), totals)
    return old, new


def _day_keys(table: sa.Table, rows: list[dict]) -> set[tuple[str, int]]:
    """The (pipeline, day) rows these summary rows count in."""
    keys = set()
    for row in rows:
        if table is tables.execution:
            keys.add((row["pipeline"], int(row["day"])))
        elif table is tables.graphlet:
            keys.add((row["pipeline"], int(math.floor(row["trainer_start"] / tables.DAY))))
            if row["pushed_at"] is not None:
                keys.add((row["pipeline"], int(math.floor(row["pushed_at"] / tables.DAY))))
        elif row["decision"] == "skip":
            keys.add((row["pipeline"], int(row["decided_at"] // tables.DAY)))
    return keys


def lock_summary(conn: sa.Connection) -> None:
    """Hold the summary for this transaction: API servers on several machines may refresh one
    shared summary database at once, and two replacing the same pipelines' rows side by side
    would collide on their keys. On PostgreSQL (the database docs/ui.md names for a shared
    summary) a lock held until the transaction ends; SQLite's write lock serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SUMMARY_LOCK})


def _update_day_totals(conn: sa.Connection, old_rows: list[dict], new_rows: list[dict]) -> None:
    """Move each day's totals by what the re-read pipelines' rows changed: the old rows' values
    out, the new ones in, without reading the other pipelines' rows. Counts stay exact; sums of
    seconds may differ from a full refresh's in the last bits (another summation order), which
    a full refresh (``--full``) resets. A day no pipeline has rows for any more loses its row."""
    before = {row["day"]: row for row in rolled_up(old_rows, "day")}
    after = {row["day"]: row for row in rolled_up(new_rows, "day")}
    metrics = [c.name for c in tables.day_total.columns if c.name != "day"]
    for part in _chunks(sorted(set(before) | set(after))):
        stored = {row.day: dict(row._mapping) for row in conn.execute(
            sa.select(tables.day_total).where(tables.day_total.c.day.in_(part)))}
        alive = {day for (day,) in conn.execute(
            sa.select(tables.compute_day.c.day).where(tables.compute_day.c.day.in_(part)).distinct())}
        for day in part:
            if day not in alive:
                conn.execute(tables.day_total.delete().where(tables.day_total.c.day == day))
                continue
            old, new = before.get(day, {}), after.get(day, {})
            current = stored.get(day)
            if current is None:
                values = {name: new.get(name, 0) for name in metrics}
                conn.execute(tables.day_total.insert(), [{"day": day, **values}])
            else:
                values = {name: _settled(current[name] - old.get(name, 0) + new.get(name, 0)) for name in metrics}
                conn.execute(tables.day_total.update().where(tables.day_total.c.day == day).values(**values))


def _settled(value):
    """A moved sum with the residue of cancelled terms (below the data's microseconds) removed."""
    return 0.0 if isinstance(value, float) and abs(value) < 1e-6 else value


def _set_state(conn: sa.Connection, values: dict[str, str]) -> None:
    conn.execute(tables.state.delete().where(tables.state.c.key.in_(list(values))))
    conn.execute(tables.state.insert(), [{"key": k, "value": v} for k, v in values.items()])


def summarised_pipelines(engine: Engine) -> int:
    """How many pipelines the summary holds."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(tables.pipeline_total)).scalar() or 0)


def read_state(engine: Engine) -> dict[str, str]:
    """The summary's key/value state (empty for a new summary)."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(tables.state.c.key, tables.state.c.value)).all())


def _chunks(values: Iterable, size: int = _CHUNK) -> Iterable[list]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]
