"""Re-read a window of a changed pipeline's newest runs, not its whole history.

A new run changes few summary rows: its own graphlet, the executions that graphlet reaches back
to (the runs whose spans it read), the days those executions and the run stand on. A refresh
reads the pipeline's last K runs (K: the widest span window its graphlets read, at least 2),
assembles them, and keeps only what that window settles exactly, proven from the window itself:

* The window holds every execution of the pipeline from its oldest execution on (MLMD's ids
  grow as rows are written, and a consumer is written after what it reads): executions logged in
  the pipeline alone are read too, and one in an older run sends the pipeline to a whole read.
* An artifact the window touched that an execution outside the window also touched is a
  *boundary* artifact. A graphlet is exact when none of its members reads such an artifact
  (other than a model-side one, which the upstream walk never crosses) or wrote one; an
  execution's outcome is exact unless it wrote one, or is an analysis or a model's validation or
  push that read one other than as a baseline (it may belong to a graphlet outside the window),
  or read what such an execution wrote.
* The changed executions, every graphlet holding one, and every member of those graphlets must
  be exact. If not, the window doubles; past the pipeline's runs it is read whole.

Rows of the graphlets, executions and decisions settled here replace theirs; days are summed
again from the rows the summary keeps (``summary/rows.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.assemble import assemble
from airflow_graphlets.graphlets.bulk_queries import ints
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.graphlets.provenance import Provenance
from airflow_graphlets.store import schema
from airflow_graphlets.store.columns import fetch_columns
from airflow_graphlets.store.inspect import index_plans, reading
from airflow_graphlets.store.sql import chunks
from airflow_graphlets.store.uri import StoreConfig
from airflow_graphlets.summary.rows import ExecutionCosts, decision_rows, graphlet_rows, on_run_clock

_ROUNDS = 3  # windows tried (each twice as wide) before a pipeline is read whole
_TYPE_KIND_CONTEXT = 2


@dataclass
class Settled:
    """What the windows settled: the rows to replace and their new values."""

    pipelines: list[str] = field(default_factory=list)
    trainers: set[int] = field(default_factory=set)  # graphlet rows replaced (by trainer id)
    graphlets: list[dict] = field(default_factory=list)
    executions: set[int] = field(default_factory=set)  # execution rows replaced
    costs: list[ExecutionCosts] = field(default_factory=list)
    decision_ids: set[int] = field(default_factory=set)  # decision rows replaced
    decisions: list[dict] = field(default_factory=list)
    runs_read: int = 0


def read_windows(config: StoreConfig, changed: Mapping[str, set[int]], widest: Mapping[str, int], clock: str,
                 engine: Engine | None = None) -> tuple[Settled, list[str]]:
    """Settle each pipeline of ``changed`` (name -> ids of its changed executions) from a window of
    its newest runs. ``widest``: the most spans a graphlet of the pipeline read (sizes the first
    window). Returns what was settled, and the pipelines that must be read whole."""
    settled, whole = Settled(), []
    with reading(config, engine, point_reads=True) as engine:
        size = {name: max(2, widest.get(name, 0)) for name in changed}
        with engine.connect() as conn, index_plans(conn):
            pipeline_ids, runs, counts = _runs_of(conn, sorted(changed), newest={
                name: size[name] * 2 ** (_ROUNDS - 1) for name in changed})
        whole += [name for name in changed if name not in pipeline_ids]
        pending = sorted(pipeline_ids)
        for _ in range(_ROUNDS):
            whole += [name for name in pending if size[name] >= counts[name]]
            pending = [name for name in pending if size[name] < counts[name]]
            if not pending:
                break
            windows = {name: runs[name][-size[name]:] for name in pending}
            failed = _settle(config, engine, windows=windows, pipeline_ids=pipeline_ids, changed=changed, clock=clock,
                             into=settled)
            for name in failed:
                size[name] *= 2
            pending = sorted(failed)
        whole += pending
    return settled, sorted(set(whole))


def _runs_of(conn: Connection, names: list[str], newest: Mapping[str, int]
             ) -> tuple[dict[str, int], dict[str, list[int]], dict[str, int]]:
    """Each pipeline's context id, its ``newest[name]`` newest run contexts' ids in the order they
    were made, and how many runs it has (or ``newest[name] + 1`` when it has more)."""
    run_types = [int(i) for i, in conn.execute(sa.text(
        f"SELECT id FROM Type WHERE type_kind = {_TYPE_KIND_CONTEXT} AND name IN "
        f"({', '.join(repr(t) for t in rules.RUN_CONTEXT_TYPES)})"))]
    pipeline_ids: dict[str, int] = {}
    for part in chunks(names):
        statement = sa.text("SELECT c.id, c.name FROM Context c JOIN Type t ON t.id = c.type_id "
                            "AND t.name = :pipeline_type WHERE c.name IN :names").bindparams(
            sa.bindparam("names", expanding=True))
        pipeline_ids |= {name: int(i) for i, name in conn.execute(statement, {
            "names": part, "pipeline_type": schema.PIPELINE_CONTEXT})}
    # Every child of the pipelines by the parent index alone, then the types of only the newest
    # few of each: a run's context is made after the runs before it, and looking up the type of
    # every child (a year of daily runs per pipeline) was most of this.
    children: dict[int, set[int]] = {}
    for part in chunks(sorted(pipeline_ids.values())):
        _group(children, fetch_columns(conn, ("parent_context_id", "context_id"),
                                       f"FROM ParentContext WHERE parent_context_id IN ({ints(part)})"))
    newest_first = {name: sorted(children.get(i, ()), reverse=True) for name, i in pipeline_ids.items()}
    checked = {name: 0 for name in pipeline_ids}  # children whose type is known, newest first
    found: dict[str, list[int]] = {name: [] for name in pipeline_ids}  # runs among them, newest first
    want = {name: newest[name] + 1 for name in pipeline_ids}
    while pending := [name for name in pipeline_ids
                      if len(found[name]) < want[name] and checked[name] < len(newest_first[name])]:
        ask = {name: newest_first[name][checked[name]:checked[name] + want[name] - len(found[name])]
               for name in pending}
        runs_among = set()
        for part in chunks(sorted(c for asked in ask.values() for c in asked), 4000):
            runs_among |= set(fetch_columns(conn, ("id",), f"FROM Context WHERE id IN ({ints(part)}) "
                                            f"AND +type_id IN ({ints(run_types)})")[0].astype(np.int64).tolist())
        for name, asked in ask.items():
            found[name] += [c for c in asked if c in runs_among]
            checked[name] += len(asked)
    runs = {name: sorted(found[name][:newest[name]]) for name in pipeline_ids}
    counts = {name: len(found[name]) if checked[name] == len(newest_first[name]) else want[name]
              for name in pipeline_ids}
    return pipeline_ids, runs, counts


def _settle(config: StoreConfig, engine: Engine, *, windows: Mapping[str, list[int]], pipeline_ids: Mapping[str, int], changed: Mapping[str, set[int]],
            clock: str, into: Settled) -> set[str]:
    """Read the windows, add what they settle to ``into``; return the pipelines they did not."""
    from airflow_graphlets.graphlets.bulk_reader import WindowMembers, read_provenance
    from airflow_graphlets.prune.decisions import read_decisions_of

    failed: set[str] = set()
    with engine.connect() as conn, index_plans(conn):
        members = _members(conn, [r for window in windows.values() for r in window])
        first = {name: min((e for r in window for e in members.get(r, ())), default=None)
                 for name, window in windows.items()}
        failed |= {name for name, e in first.items() if e is None}
        core = _executions_since(conn, {pipeline_ids[n]: e for n, e in first.items() if e is not None})
        extras: dict[str, set[int]] = {}
        ours: dict[str, set[int]] = {}
        for name, e0 in first.items():
            if e0 is None:
                continue
            in_window = {e for r in windows[name] for e in members.get(r, ())}
            extras[name] = core.get(pipeline_ids[name], set()) - in_window
            inside = changed[name] & core.get(pipeline_ids[name], set())
            if any(e < e0 for e in changed[name] - inside):
                failed.add(name)  # a change older than the window, or not (yet) in the pipeline
            # A newer change in no association of the pipeline (an override, found by its DAG
            # id) is in none of its rows: a whole read would not read it either.
            ours[name] = inside
        failed |= _in_older_runs(conn, {name: (pipeline_ids[name], windows[name][0]) for name in extras
                                        if extras[name] and name not in failed}, extras)
    ready = sorted(name for name in windows if name not in failed)
    if not ready:
        return failed
    # The window's executions as read here, so the reader does not look them up again: a run's
    # members from the window's first execution on are its pipeline's (``core``), the others not.
    in_runs: list[tuple[int, int]] = []
    in_pipelines: list[tuple[int, int]] = []
    for name in ready:
        pipeline, held = pipeline_ids[name], core.get(pipeline_ids[name], set())
        for run in windows[name]:
            mine = [e for e in members.get(run, ()) if e in held]
            in_runs += [(e, run) for e in mine]
            in_pipelines += [(e, pipeline) for e in mine]
        in_pipelines += [(e, pipeline) for e in extras[name]]
    provenance = read_provenance(config, ready, workers=2, engine=engine,
                                 runs=[r for name in ready for r in windows[name]],
                                 members=WindowMembers(in_runs, in_pipelines), hashes=False, artifact_events=True)
    boundary = _boundary(provenance)
    extraction = assemble(provenance)
    exact = _Exactness(provenance, extraction, boundary)
    timed = on_clock(extraction, clock)
    costs = ExecutionCosts.of(timed)
    graphlets = {row["trainer_id"]: row for row in graphlet_rows(timed)}
    decided: set[int] = set()
    done: list[str] = []
    settled_here: list[int] = []
    for name in ready:
        verdict = exact.settle(name, ours[name])
        if verdict is None:
            failed.add(name)
            continue
        trainers, executions = verdict
        done.append(name)
        into.pipelines.append(name)
        into.runs_read += len(windows[name])
        into.trainers |= trainers | ours[name]
        into.graphlets += [graphlets[t] for t in sorted(trainers) if t in graphlets]
        into.executions |= executions
        settled_here += executions
        decided |= ours[name]
    if settled_here:
        into.costs.append(costs.where(np.isin(costs.ids, np.asarray(settled_here, dtype=np.int64))))
    if decided:
        into.decision_ids |= decided
        into.decisions += on_run_clock(decision_rows(read_decisions_of(config, sorted(decided), engine)), timed)
    return failed


def _members(conn: Connection, runs: list[int]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for part in chunks(runs):
        _group(found, fetch_columns(conn, ("context_id", "execution_id"),
                                    f"FROM Association WHERE context_id IN ({ints(part)})"))
    return found


def _group(into: dict[int, set[int]], columns: list[np.ndarray]) -> None:
    """Add (key, value) columns to ``into`` as key -> set of values."""
    keys, values = (column.astype(np.int64) for column in columns)
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    edges = np.flatnonzero(np.diff(keys)) + 1
    for key, group in zip(keys[np.r_[0, edges]].tolist() if len(keys) else [], np.split(values, edges)):
        into.setdefault(key, set()).update(group.tolist())


def _executions_since(conn: Connection, first: Mapping[int, int]) -> dict[int, set[int]]:
    """Each pipeline's executions from the given id on (an index range per pipeline)."""
    found: dict[int, set[int]] = {}
    for part in chunks(sorted(first)):
        ranges = " OR ".join(f"(context_id = {int(p)} AND execution_id >= {int(first[p])})" for p in part)
        _group(found, fetch_columns(conn, ("context_id", "execution_id"), f"FROM Association WHERE {ranges}"))
    return found


def _in_older_runs(conn: Connection, first_runs: Mapping[str, tuple[int, int]],
                   extras: Mapping[str, set[int]]) -> set[str]:
    """The pipelines (name -> (context id, first run of the window)) with an execution after
    their window began that belongs to an older run (a backfill's, or a run still going): its
    run is not whole in the window."""
    found = set()
    for name, (pipeline, first_run) in first_runs.items():
        hit = conn.exec_driver_sql(
            "SELECT 1 FROM ParentContext pc CROSS JOIN Association r WHERE r.context_id = pc.context_id "
            f"AND pc.parent_context_id = {int(pipeline)} AND pc.context_id < {int(first_run)} "
            f"AND r.execution_id IN ({ints(sorted(extras[name]))}) LIMIT 1").first()
        if hit is not None:
            found.add(name)
    return found


def _boundary(p: Provenance) -> np.ndarray:
    """Per artifact row of ``p``: whether an execution outside the window has an event on it
    (from the events on the window's artifacts by executions outside it, read with the window)."""
    inside = np.asarray(p.exec_id, dtype=np.int64)
    outside = np.zeros(len(p.art_id), dtype=bool)
    artifact, execution = p.artifact_events
    if not len(artifact):
        return outside
    at = np.clip(np.searchsorted(inside, execution), 0, max(len(inside) - 1, 0))
    stranger = (inside[at] != execution) if len(inside) else np.ones(len(execution), dtype=bool)
    outside[np.searchsorted(p.art_id, artifact[stranger])] = True
    return outside


class _Exactness:
    """Which graphlets and executions of a window are what a whole read would find."""

    def __init__(self, p: Provenance, x: Extraction, boundary: np.ndarray) -> None:
        self.p, self.x = p, x
        model_side = np.zeros(max(p.type_names, default=0) + 1, dtype=bool)
        for type_id, name in p.type_names.items():
            model_side[type_id] = rules.is_model_side_type(name, p.type_bases.get(type_id))
        n = len(p.exec_id)
        on_boundary = boundary[p.ev_art]
        reads = p.ev_input & ~p.ev_reference & on_boundary  # a baseline or warm start joins no graphlet
        writes = ~p.ev_input & on_boundary
        structural = reads & ~model_side[p.art_type[p.ev_art]]
        self.bad_member = np.zeros(n, dtype=bool)  # may reach out of the window as a graphlet member
        self.bad_member[p.ev_exec[structural | writes]] = True
        kinds = [rules.KIND_INDEX[k] for k in (*rules.ANALYSIS_KINDS, *rules.DOWNSTREAM_KINDS)]
        joins_by_reading = np.isin(x.executions.kind, kinds)
        unsure = np.zeros(n, dtype=bool)  # may belong to a graphlet outside the window
        unsure[p.ev_exec[writes]] = True
        unsure[p.ev_exec[reads & joins_by_reading[p.ev_exec]]] = True
        while True:  # ... or read what such an analysis or validation wrote
            tainted_art = np.zeros(len(p.art_id), dtype=bool)
            tainted_art[p.ev_art[~p.ev_input & unsure[p.ev_exec]]] = True
            more = p.ev_input & tainted_art[p.ev_art] & joins_by_reading[p.ev_exec] & ~unsure[p.ev_exec]
            if not more.any():
                break
            unsure[p.ev_exec[more]] = True
        self.unsure = unsure
        g = x.graphlets
        owners, rows = [], []
        for name in ("upstream_ids", "downstream_ids"):
            owners.append(g.lists[name].owner())
            rows.append(g.lists[name].values)
        owners.append(np.arange(len(g), dtype=np.int64))
        rows.append(g.trainer_id)
        member_graphlet = np.concatenate(owners).astype(np.int64)
        member_row = np.searchsorted(p.exec_id, np.concatenate(rows).astype(np.int64))
        # Members grouped by their graphlet's pipeline: each pipeline's verdict looks at its own.
        by_pipeline = np.argsort(g.pipeline[member_graphlet], kind="stable")
        self.member_graphlet, self.member_row = member_graphlet[by_pipeline], member_row[by_pipeline]
        self.member_bounds = np.searchsorted(g.pipeline[self.member_graphlet], np.arange(len(x.pipelines) + 1))
        self.pipeline_index = {name: i for i, name in enumerate(x.pipelines)}

    def settle(self, pipeline: str, changed: set[int]) -> tuple[set[int], set[int]] | None:
        """The trainer ids and execution ids whose rows a change in ``pipeline`` may alter, or None
        when the window cannot settle them exactly."""
        p, x = self.p, self.x
        if not len(p.exec_id):
            return None
        ids = np.fromiter(changed, dtype=np.int64)
        rows = np.clip(np.searchsorted(p.exec_id, ids), 0, len(p.exec_id) - 1)
        # The window holds every change (its caller checked); one the reader left out is a
        # bookkeeping record (an override), which no summary row counts.
        rows = rows[p.exec_id[rows] == ids]
        index = self.pipeline_index[pipeline]
        low, high = self.member_bounds[index], self.member_bounds[index + 1]
        graphlets, members = self.member_graphlet[low:high], self.member_row[low:high]
        touched = np.unique(graphlets[np.isin(members, rows)])
        member_rows = np.unique(members[np.isin(graphlets, touched)])
        if self.bad_member[member_rows].any():
            return None
        affected = np.union1d(member_rows, rows)
        if self.unsure[affected].any():
            return None
        return set(x.graphlets.trainer_id[touched].tolist()), set(p.exec_id[affected].tolist())

