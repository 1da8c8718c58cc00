"""Refresh the summary by what changed: re-read only what the changes since the last refresh
reach, and replace those rows.

A graphlet belongs to one pipeline and is assembled from that pipeline's executions (the bulk
reader's pipeline filter reads exactly them), so a pipeline's summary rows depend on its own
executions, artifacts and decisions only. A refresh therefore asks the store which executions
were created or updated, or used an artifact that was, and which pipelines were created, after
its watermark (MLMD's indexed ``last_update_time_since_epoch`` columns). Each changed pipeline is
re-read through a window of its newest runs where the window settles its changes exactly
(``summary/windows.py``), else whole; in one transaction the rows re-read replace theirs, the days
they stand on are summed again from the summary's execution rows, and the day totals move by the
difference.
"""

from __future__ import annotations

import functools
import math
import operator
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import NoGraphletsError
from airflow_graphlets.graphlets.bulk_queries import ints
from airflow_graphlets.store.sql import Sql, chunks
from airflow_graphlets.store.uri import StoreConfig
from airflow_graphlets.summary import tables
from airflow_graphlets.summary.changes import ChangeMarks
from airflow_graphlets.summary.refresh import insert_execution_rows
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

# The summary's layout; a summary of another layout is rebuilt by a full refresh (2: execution
# rows kept; 3: doubles for times and seconds, MySQL's tables made again).
SUMMARY_FORMAT = "3"
# A refresh that would re-read more than this share of the summarised pipelines whole (not
# through windows) reads the store whole instead (at 1,000 pipelines, re-reading all of them
# took 38.6 s, a full summary 27.1 s).
FULL_SHARE = 0.5
_SUMMARY_LOCK = 0x67736D79  # "gsmy"
_ID_CHUNK = 5000  # listed ids per statement (SQLite scans a table for much longer lists)


def refresh_pipelines(config: StoreConfig, engine: Engine, pipelines: list[str], watermark_ms: int,
                      workers: int = 1, marks: ChangeMarks = ChangeMarks(),
                      changed: Mapping[str, set[int]] | None = None,
                      store_engine: Engine | None = None) -> tuple[int, int] | None:
    """Replace the summary rows ``pipelines`` changed with what the store holds now; record the
    watermark and the changes read (``marks``). A pipeline listed in ``changed`` (name -> its
    changed executions) is re-read through a window of its newest runs where one settles its
    changes (``summary/windows.py``), the others whole. Returns the graphlet and decision rows
    written, or None (nothing written) when more than half of the summary's pipelines, and 50 or
    more, would be read whole: reading the store whole costs less then."""
    from airflow_graphlets.summary.refresh import CLOCK
    from airflow_graphlets.summary.windows import Settled, read_windows

    changed = {name: ids for name, ids in (changed or {}).items() if name in set(pipelines)}
    settled, whole = Settled(), list(pipelines)
    if changed:
        summarised = _summarised(engine, sorted(changed))
        changed = {name: ids for name, ids in changed.items() if name in summarised}
        settled, unsettled = read_windows(config, changed, summarised, CLOCK, engine=store_engine)
        whole = sorted(set(pipelines) - set(settled.pipelines))
    if len(whole) >= 50 and len(whole) > FULL_SHARE * summarised_pipelines(engine):
        return None
    extraction, graphlets, decisions, days = _read_whole(config, whole, workers)
    costs = ExecutionCosts.of(extraction)
    with engine.begin() as conn:
        lock_summary(conn)
        old_rows = []
        for part in chunks(whole):
            old_rows += [dict(row._mapping) for row in conn.execute(
                sa.select(tables.compute_day).where(tables.compute_day.c.pipeline.in_(part)))]
            for table in (tables.graphlet, tables.compute_day, tables.pipeline_total, tables.decision,
                          tables.execution):
                conn.execute(table.delete().where(table.c.pipeline.in_(part)))
        for table, rows in ((tables.graphlet, graphlets), (tables.compute_day, days),
                            (tables.pipeline_total, rolled_up(days, "pipeline")), (tables.decision, decisions)):
            if rows:
                conn.execute(table.insert(), rows)
        insert_execution_rows(conn, costs)
        settled_old, settled_new = _replace_settled(conn, settled)
        _update_day_totals(conn, old_rows + settled_old, days + settled_new)
        how = f"incremental: {len(pipelines)} pipelines"
        if settled.pipelines:
            how += f" ({len(settled.pipelines)} through windows of {settled.runs_read} runs, {len(whole)} whole)"
        _set_state(conn, {"watermark_ms": str(watermark_ms), "refreshed_at": repr(time.time()),
                          "last_refresh": how})
        marks.write(conn)
    return len(graphlets) + len(settled.graphlets), len(decisions) + len(settled.decisions)


def _summarised(engine: Engine, pipelines: list[str]) -> dict[str, int]:
    """Of ``pipelines``, those the summary holds rows of, with the most spans a graphlet of each read."""
    found: dict[str, int] = {}
    totals = tables.pipeline_total.c.pipeline
    with engine.connect() as conn:
        for part in chunks(pipelines):
            found |= {name: 0 for name, in conn.execute(sa.select(totals).where(totals.in_(part)))}
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
            extraction = on_clock(read_graphlets(config, pipelines, workers=workers, hashes=False), CLOCK)
        except NoGraphletsError:
            extraction = None
    decisions = on_run_clock(decision_rows(read_all_decisions(config, pipelines=pipelines)), extraction) \
        if pipelines else []
    graphlets = list(graphlet_rows(extraction)) if extraction else []
    return extraction, graphlets, decisions, compute_days(extraction, decisions)


def _replace_settled(conn: sa.Connection, settled: "Settled") -> tuple[list[dict], list[dict]]:
    """Replace the rows a window settled, and sum again the (pipeline, day) rows they stand on,
    from the rows the summary keeps. Returns those days' rows before and after.

    Statements are written as text with ids (read from the store, never user text) inline: a
    refresh of 1,000 pipelines spent half a second building SQLAlchemy expressions of their keys."""
    if not settled.pipelines:
        return [], []
    g, e, d, c, totals = tables.graphlet, tables.execution, tables.decision, tables.compute_day, tables.pipeline_total
    quote = conn.dialect.identifier_preparer.quote
    keys: set[tuple[str, int]] = set()
    for ids, table, key, columns in ((settled.trainers, g, "trainer_id", ("pipeline", "trainer_start", "pushed_at")),
                                     (settled.decision_ids, d, "execution_id", ("pipeline", "decided_at", "decision"))):
        for part in chunks(sorted(ids), _ID_CHUNK):
            where = f"WHERE {key} IN ({ints(part)})"
            keys |= _day_keys(table, [tuple(row) for row in conn.exec_driver_sql(
                f"SELECT {', '.join(quote(name) for name in columns)} FROM {table.name} {where}")])
            conn.exec_driver_sql(f"DELETE FROM {table.name} {where}")
    keys |= _day_keys(g, [(r["pipeline"], r["trainer_start"], r["pushed_at"]) for r in settled.graphlets])
    keys |= _day_keys(d, [(r["pipeline"], r["decided_at"], r["decision"]) for r in settled.decisions])
    keys |= _replace_execution_rows(conn, settled)
    for table, rows in ((g, settled.graphlets), (d, settled.decisions)):
        if rows:
            conn.execute(table.insert(), rows)
    days_by_pipeline: dict[str, set[int]] = {}
    for pipeline, day in keys:
        days_by_pipeline.setdefault(pipeline, set()).add(day)
    metrics = [column.name for column in c.columns if column.name not in ("pipeline", "day")]
    day_columns = ", ".join(quote(name) for name in ("pipeline", "day", *metrics))
    old, new = [], []
    for part in chunks(sorted(days_by_pipeline), 200):
        days = {name: sorted(days_by_pipeline[name]) for name in part}
        names = {f"p{i}": name for i, name in enumerate(part)}
        named = ", ".join(f":{k}" for k in names)
        by_day = lambda columns: " OR ".join(  # noqa: E731
            f"(pipeline = :{k} AND {quote('day')} IN ({ints(days[name])}))" for k, name in names.items())
        # Every day row of these pipelines: the changed days' old values, and the others, which
        # the pipelines' totals sum again.
        # The driver's own rows, here and below: SQLAlchemy's cost more than reading them.
        sql = Sql(conn.connection.dbapi_connection, conn.dialect.name)
        stored = sql.rows(f"SELECT {day_columns} FROM {c.name} WHERE pipeline IN :names", {"names": part})
        old += [dict(zip(("pipeline", "day", *metrics), row)) for row in stored if (row[0], row[1]) in keys]
        conn.execute(sa.text(f"DELETE FROM {c.name} WHERE {by_day(days)}"), names)
        kept = ExecutionCosts.from_rows(sql.rows(
            f"SELECT execution_id, pipeline, {quote('day')}, seconds, outcome FROM {e.name} WHERE {by_day(days)}", names))
        # The earliest day each pipeline re-sums, as epoch seconds (whole numbers).
        since = {k: days[name][0] * tables.DAY for k, name in names.items()}
        graphlets = [{"pipeline": p, "trainer_start": t, "pushed_at": at} for p, t, at in sql.rows(
            f"SELECT pipeline, trainer_start, pushed_at FROM {g.name} WHERE " + " OR ".join(
                f"(pipeline = :{k} AND (trainer_start >= {since[k]!r} OR pushed_at >= {since[k]!r}))" for k in names),
            names)]
        decisions = [{"pipeline": p, "decided_at": at, "decision": v, "saved_seconds": saved}
                     for p, at, v, saved in sql.rows(
                         f"SELECT pipeline, decided_at, decision, saved_seconds FROM {d.name} WHERE " + " OR ".join(
                             f"(pipeline = :{k} AND decided_at >= {since[k]!r})" for k in names)
                         + " ORDER BY execution_id", names)]
        rows = [row for row in days_of(kept, graphlets, decisions) if (row["pipeline"], row["day"]) in keys]
        if rows:
            conn.execute(c.insert(), rows)
        new += rows
        # The pipelines' totals, summed over their days in order as a full refresh sums them.
        by_pipeline: dict[str, list[tuple]] = {}
        for row in stored:
            if (row[0], row[1]) not in keys:
                by_pipeline.setdefault(row[0], []).append(row[1:])
        for row in rows:
            by_pipeline.setdefault(row["pipeline"], []).append((row["day"], *(row[m] for m in metrics)))
        summed: dict[str, list] = {}
        for name, day_values in by_pipeline.items():
            day_values.sort(key=operator.itemgetter(0))
            # 0 + first + second + ...: a full refresh's order (functools.reduce adds in C).
            summed[name] = [functools.reduce(operator.add, column, 0) for column in list(zip(*day_values))[1:]]
        conn.execute(sa.text(f"DELETE FROM {totals.name} WHERE pipeline IN ({named})"), names)
        if summed:
            conn.execute(totals.insert(), [{"pipeline": name, **dict(zip(metrics, values))}
                                           for name, values in sorted(summed.items())])
    return old, new


def _replace_execution_rows(conn: sa.Connection, settled: "Settled") -> set[tuple[str, int]]:
    """Replace the execution rows a window settled; the (pipeline, day) rows the old and new rows
    count in. Only rows that changed are written: a window re-reads the runs a new run's spans
    came from, whose rows mostly stay as they were, and rewriting every one of them (tens of
    thousands, scattered through millions) made the summary's commit a fifth of a refresh."""
    e = tables.execution
    old: dict[int, tuple] = {}
    for part in chunks(sorted(settled.executions), _ID_CHUNK):
        old |= {int(row[0]): tuple(row) for row in conn.exec_driver_sql(
            f"SELECT execution_id, pipeline, {conn.dialect.identifier_preparer.quote('day')}, seconds, outcome "
            f"FROM {e.name} WHERE execution_id IN ({ints(part)})")}
    keys = _day_keys(e, [row[1:3] for row in old.values()])
    changed: list[ExecutionCosts] = []
    for found in settled.costs:
        rows = list(found.tuples())
        keys |= _day_keys(e, [row[1:3] for row in rows])
        same = np.fromiter((old.get(row[0]) == row for row in rows), dtype=bool, count=len(rows))
        for execution_id in found.ids[same].tolist():
            del old[execution_id]  # kept as it is
        changed.append(found.where(~same))
    for part in chunks(sorted(old), _ID_CHUNK):  # the old rows left: changed or gone
        conn.exec_driver_sql(f"DELETE FROM {e.name} WHERE execution_id IN ({ints(part)})")
    for found in changed:
        if len(found):
            insert_execution_rows(conn, found)
    return keys


def _day_keys(table: sa.Table, rows: list[tuple]) -> set[tuple[str, int]]:
    """The (pipeline, day) rows these summary rows count in: rows of the execution table as
    (pipeline, day), of graphlets as (pipeline, trainer start, pushed at), of decisions as
    (pipeline, decided at, decision)."""
    keys = set()
    for row in rows:
        if table is tables.execution:
            keys.add((row[0], int(row[1])))
        elif table is tables.graphlet:
            keys.add((row[0], int(math.floor(row[1] / tables.DAY))))
            if row[2] is not None:
                keys.add((row[0], int(math.floor(row[2] / tables.DAY))))
        elif row[2] == "skip":
            keys.add((row[0], int(row[1] // tables.DAY)))
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
    for part in chunks(sorted(set(before) | set(after))):
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

