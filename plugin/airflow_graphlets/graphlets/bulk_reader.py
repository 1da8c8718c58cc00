"""The bulk reader: a store's whole provenance graph in a dozen set-based queries.

Reads MLMD's tables directly with SQLAlchemy (SQLite, PostgreSQL, MySQL/MariaDB), read-only,
into :class:`~.provenance.Provenance` columns, then :func:`~.assemble.assemble` builds every
graphlet at once. No query is issued per model. The big queries (:mod:`.bulk_queries`) are cut
into id ranges and read by a pool of processes side by side; each returns compact NumPy columns,
which :mod:`.bulk_columns` turns into the provenance graph.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_graphlets.errors import NoGraphletsError
from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.assemble import assemble
from airflow_graphlets.graphlets.bulk_queries import (
    ColumnQuery,
    RowQuery,
    Scope,
    column_queries,
    events_query,
    ints,
    row_queries,
)
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.graphlets.bulk_columns import provenance_of
from airflow_graphlets.graphlets.provenance import Provenance
from airflow_graphlets.store import schema
from airflow_graphlets.store.columns import fetch_columns
from airflow_graphlets.store.inspect import index_plans, key_lookups, mlmd_schema_version, read_only_engine, reading
from airflow_graphlets.store.uri import StoreConfig

_TYPE_KIND_EXECUTION, _TYPE_KIND_CONTEXT = 0, 2  # MLMD's Type.type_kind
log = logging.getLogger(__name__)

_PIECES = 4  # id ranges per big query: keeps two readers busy to the end
# A read of at most this share of the store's pipelines is planned as index look-ups (see
# store.inspect.index_plans); a larger one as the database prefers.
_NARROW_SHARE = 0.05
_FEW_PIPELINES = 50  # fewer pipelines than this are read in threads, not in processes
# Listed ids per statement: SQLite scans a whole table for an IN list much longer than this
# (61,000 execution ids: every event of the store, 2 s; 5,000 at a time: 0.04 s each). The
# other databases look each up by index, and each statement costs a round trip and a plan.
_ID_LISTS = {"sqlite": 4000}
_ID_LIST = 50_000
_MANY_RUNS = 500  # a window of more runs than this is read by index look-ups on PostgreSQL (a gate's: 38-152)
# A wide window's early reads (its executions' times and baselines: random reads of older runs'
# property and path rows) go in this many pieces per query, each on a connection of its own: where
# those pages are not cached, more reads in flight keep the disk busy (a refresh after 1,000 runs,
# its property tables evicted: 2.35-2.43 s -> 2.20-2.25 s; cached, no difference).
_EARLY_PIECES = 2


def read_graphlets(config: StoreConfig, pipelines: Sequence[str] | None = None, workers: int = 2,
                   runs: Sequence[int] | None = None, engine: Engine | None = None, hashes: bool = True) -> Extraction:
    """Every model graphlet of a store, read in bulk.

    Args:
      config: the store (opened read-only).
      pipelines: only these pipelines (``pipeline`` context names); all when ``None``.
      workers: processes reading tables side by side (1 keeps everything in this process, on
        one connection).
      runs: only the executions of these ``pipeline_run`` contexts (ids) of ``pipelines``: a
        window of a long history (the gate reads its pipeline's recent runs this way).
      engine: an open read-only engine for the in-process reads (a new one when None).
      hashes: read the trainers' code and structure hashes (the gate's features need them; the
        summary's rows do not, and leave them empty).

    Returns:
      The graphlets, ordered by trainer execution id, and the execution cost table.

    Raises:
      StoreNotFoundError, NotAnMlmdStoreError, UnsupportedSchemaError: the store cannot be read.
      NoGraphletsError: the store (or the pipelines asked for) holds no trainer execution.
    """
    extraction = assemble(read_provenance(config, pipelines, workers, runs, engine, hashes=hashes))
    if not len(extraction.graphlets):
        scope = f"pipelines {', '.join(pipelines)} of the " if pipelines else ""
        raise NoGraphletsError(
            f"The {scope}MLMD store {config} holds no model graphlet: no execution of a Trainer "
            "(a type named ...Trainer or based on mlmd.Train) ran there. Record a pipeline with a "
            "trainer task (see docs/recording.md), or check --store."
        )
    return extraction


@dataclass(frozen=True)
class WindowMembers:
    """A window's executions as its caller found them: (execution, run) pairs, each run one of the
    window's, and (execution, pipeline context id) pairs, each execution of a run in the window
    (or logged in the pipeline alone) that the run's pipeline holds too."""

    runs: Sequence[tuple[int, int]]
    pipelines: Sequence[tuple[int, int]]


def read_provenance(config: StoreConfig, pipelines: Sequence[str] | None = None, workers: int = 2,
                    runs: Sequence[int] | None = None, engine: Engine | None = None,
                    members: WindowMembers | None = None, hashes: bool = True,
                    artifact_events: bool = False) -> Provenance:
    """The store's provenance graph as columns (see :class:`Provenance`).

    Args:
      config: the store (opened read-only).
      pipelines: only these pipelines; all when ``None``.
      workers: queries run side by side (1: one after another, on one connection): in a pool of
        processes, or for a few pipelines in threads of this process, each on a connection of
        its own: such a read (the summary's refresh of the pipelines written to) is mostly
        shorter than starting processes.
      runs: only these ``pipeline_run`` context ids of ``pipelines`` (needs ``pipelines``).
      engine: an open read-only engine (a new one when None).
      members: with ``runs``, the window's executions, when the caller has read them (a summary
        refresh has): the reader then does not look them up again.
      hashes: read the trainers' code and structure hashes (see :func:`read_graphlets`).
      artifact_events: with ``runs``, also the events on the window's artifacts by executions
        outside the window (``Provenance.artifact_events``): a summary refresh's boundary.
    """
    if runs is not None and pipelines is None:
        raise ValueError("a window of runs is read within named pipelines: pass pipelines too")
    # A window of many runs (a summary refresh's, across pipelines) is planned as index look-ups
    # from the start: PostgreSQL prices a long list of run ids at millions of rows and scans.
    wide_window = runs is not None and len(runs) > _MANY_RUNS
    with reading(config, engine, point_reads=runs is not None) as engine, \
            _early_reads(engine, workers if runs is not None else 1, wide_window) as early:
        version = mlmd_schema_version(engine, config)
        with engine.connect() as conn, index_plans(conn, wide_window):
            plan = _plan(conn, pipelines, runs, members, hashes=hashes, early=early,
                         artifact_events=artifact_events)
            if workers <= 1:
                with index_plans(conn, plan.narrow and not wide_window):
                    results = _collect(plan.tasks(), [_fetch_on(conn, query, id_range)
                                                      for _, _, query, id_range in plan.tasks()])
        if workers > 1 and plan.in_threads:
            results = _read_in_threads(engine, plan, workers)
        started = early.results() if early else {}
    if workers > 1 and not plan.in_threads:
        results = _run(config, plan.tasks(), workers)
    found = plan.known | started | results
    on_artifacts = found.pop("artifact_events", None)
    provenance = provenance_of(str(config), version, plan.type_names, plan.type_bases, plan.pipeline_rows, found)
    if artifact_events:
        owner, execution = on_artifacts or (np.empty(0), np.empty(0))
        provenance.artifact_events = (np.asarray(owner, dtype=np.int64), np.asarray(execution, dtype=np.int64))
    return provenance


class _EarlyReads:
    """A window's queries that need only its executions, started in threads as soon as they are
    known, while the events (and so the artifacts) are read: on PostgreSQL two backends work."""

    def __init__(self, engine: Engine, pool: ThreadPoolExecutor, narrow: bool, pieces: int = 1) -> None:
        self.engine, self.pool, self.narrow = engine, pool, narrow
        self.pieces = pieces  # each query's pieces (a wide window's: see _EARLY_PIECES)
        self.started: list[tuple[str, ColumnQuery | RowQuery, Future]] = []

    def start(self, tasks: list[tuple[str, ColumnQuery | RowQuery]]) -> None:
        self.started += [(name, query, self.pool.submit(self._fetch, query)) for name, query in tasks]

    def _fetch(self, query: ColumnQuery | RowQuery) -> list:
        with self.engine.connect() as conn, index_plans(conn, self.narrow):
            return _fetch_on(conn, query, None)

    def results(self) -> dict[str, list]:
        return _collect([(name, 0, query, None) for name, query, _ in self.started],
                        [future.result() for _, _, future in self.started])


@contextmanager
def _early_reads(engine: Engine, workers: int, narrow: bool) -> Iterator["_EarlyReads | None"]:
    """Early reads for a window read with several workers (None otherwise); every thread is
    joined on exit, before the engine may close."""
    if workers <= 1:
        yield None
        return
    pieces = _EARLY_PIECES if narrow else 1
    with ThreadPoolExecutor(max_workers=workers * pieces, thread_name_prefix="graphlets-early") as pool:
        early = _EarlyReads(engine, pool, narrow, pieces)
        try:
            yield early
        finally:
            for _, _, future in early.started:
                future.cancel()


def _read_in_threads(engine: Engine, plan: "_Plan", workers: int) -> dict[str, list]:
    """Every task of a few pipelines' plan, in ``workers`` threads on connections of their own (the
    drivers wait for the database without the GIL); all joined before the engine may close."""
    def fetch(task) -> list:
        _, _, query, id_range = task
        with engine.connect() as conn, index_plans(conn, plan.narrow):
            return _fetch_on(conn, query, id_range)

    tasks = plan.tasks()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graphlets-read") as pool:
        return _collect(tasks, list(pool.map(fetch, tasks)))


@dataclass
class _Plan:
    """What the small first queries found (types, pipelines, id ranges) and so the big ones to run."""

    type_names: dict[int, str]
    type_bases: dict[int, str | None]
    pipeline_rows: list[tuple[int, str]]  # (context id, name), by name
    columns: list[tuple[str, ColumnQuery]]  # a name may come more than once: its pieces, in order
    rows: list[tuple[str, RowQuery]]
    id_bounds: dict[str, tuple[int, int]]  # table -> (min id, max id)
    whole_store: bool  # no pipeline filter: big queries may be cut into id ranges
    narrow: bool = False  # a small part of the store: read by index look-ups
    window: bool = False  # a window of runs (listed ids)
    known: dict[str, list] = field(default_factory=dict)  # results the plan's own queries read already

    @property
    def in_threads(self) -> bool:
        """Whether a read with several workers runs in threads (a few pipelines, or a window of
        runs: its listed ids are looked up faster than processes start), not processes."""
        return not self.whole_store and (self.narrow or self.window or len(self.pipeline_rows) < _FEW_PIPELINES)

    def tasks(self) -> list[tuple[str, int, ColumnQuery | RowQuery, tuple[int, int] | None]]:
        """(query name, piece, query, id range) to run, largest first."""
        whole: list[tuple[str, int, ColumnQuery | RowQuery, tuple[int, int] | None]] = []
        pieces: list[tuple[str, int, ColumnQuery | RowQuery, tuple[int, int] | None]] = []
        for name, query in self.columns:
            low, high = self.id_bounds.get(query.split_table, (0, 0))
            if self.whole_store and query.split_on and high > low:
                edges = np.linspace(low, high + 1, _PIECES + 1).astype(np.int64)
                pieces += [(name, i, query, (int(edges[i]), int(edges[i + 1]))) for i in range(_PIECES)]
            else:
                whole.append((name, 0, query, None))
        whole += [(name, 0, query, None) for name, query in self.rows]
        # Queries that cannot be cut go first, so the pieces even out the end of the run.
        return whole + pieces


# Every type with its base type's name, and every pipeline (context id, name), in one statement:
# a gate's decision reads a window of runs this way, and each statement costs it a round trip.
_TYPES_AND_PIPELINES = (
    "SELECT 0, t.id, t.name, t.type_kind, b.name FROM Type t LEFT JOIN ParentType pt ON pt.type_id = t.id "
    "LEFT JOIN Type b ON b.id = pt.parent_type_id UNION ALL "
    "SELECT 1, c.id, c.name, NULL, NULL FROM Context c JOIN Type ct ON ct.id = c.type_id "
    f"AND ct.name = '{schema.PIPELINE_CONTEXT}' AND ct.type_kind = {_TYPE_KIND_CONTEXT}"
)


# A window's queries that need its executions but not its artifacts (see _EarlyReads).
_EXECUTION_SIDE = frozenset({"executions", "execution_times", "references", "run_logical_times", "trainer_properties"})


def _plan(conn: Connection, only: Sequence[str] | None, runs_only: Sequence[int] | None = None,
          members: WindowMembers | None = None, hashes: bool = True,
          early: "_EarlyReads | None" = None,
          artifact_events: bool = False) -> _Plan:
    types, type_bases, pipeline_rows = {}, {}, []
    for row_kind, row_id, name, kind, base in conn.execute(sa.text(_TYPES_AND_PIPELINES)):
        if row_kind == 1:
            pipeline_rows.append((int(row_id), name))
            continue
        types[int(row_id)] = (name, kind)
        if base is not None:
            type_bases[int(row_id)] = base
    ids_of_kind = lambda kind, names: [i for i, (n, k) in types.items() if k == kind and n in names]
    run_types = ids_of_kind(_TYPE_KIND_CONTEXT, set(rules.RUN_CONTEXT_TYPES))
    trainer_types = [i for i, (n, k) in types.items()
                     if k == _TYPE_KIND_EXECUTION and rules.execution_kind(n, type_bases.get(i)) == "Trainer"]
    pipeline_count = len(pipeline_rows)
    if only is not None:
        pipeline_rows = [(i, n) for i, n in pipeline_rows if n in set(only)]
    pipeline_rows.sort(key=lambda row: row[1])
    pipeline_ids = [i for i, _ in pipeline_rows]
    # With a pipeline filter every query keeps to the executions of those pipelines, and a
    # pipeline's runs are its child contexts (TFX and the recorder link them); with a window of
    # runs, to the executions of those runs, listed.
    limit = _ID_LISTS.get(conn.dialect.name, _ID_LIST)
    skipped = set() if hashes else {"trainer_properties"}
    started: set[str] = set()

    def start_early(executions: list[int]) -> None:
        tasks: list[tuple[str, ColumnQuery | RowQuery]] = []
        pieces = Scope(pipeline_ids, executions).pieces(min(limit, max(1, -(-len(executions) // early.pieces))))
        for piece, run_list in zip(pieces, _cut(sorted(runs_only or []), len(pieces))):
            runs_sql = f"SELECT id FROM Context WHERE +type_id IN ({ints(run_types)}) AND id IN ({ints(run_list)})"
            tasks += [(name, query) for name, query in (
                *column_queries(conn.dialect.name, piece, pipeline_ids, runs_sql).items(),
                *row_queries(piece, runs_sql, trainer_types).items()) if name in _EXECUTION_SIDE - skipped]
        started.update(name for name, _ in tasks)
        early.start(tasks)

    scope, known = Scope(None if only is None else pipeline_ids), {}
    if runs_only is not None:
        scope, known = _window_scope(conn, pipeline_ids, runs_only, run_types, members,
                                     on_executions=start_early if early else None)
    if not hashes:
        known["trainer_properties"] = None
    runs = f"SELECT id FROM Context WHERE type_id IN ({ints(run_types)})"
    if only is not None and runs_only is None:
        runs += f" AND id IN (SELECT context_id FROM ParentContext WHERE parent_context_id IN ({ints(pipeline_ids)}))"
    bounds = {}
    for table in ("Event", "Execution", "Artifact", "Association") if only is None else ():  # for id-range pieces
        # Two statements: SQLite answers a lone MIN or MAX from the index, not both at once.
        low = conn.execute(sa.text(f"SELECT MIN(id) FROM {table}")).scalar()
        high = conn.execute(sa.text(f"SELECT MAX(id) FROM {table}")).scalar()
        bounds[table] = (int(low or 0), int(high or 0))
    columns: list[tuple[str, ColumnQuery]] = []
    rows: list[tuple[str, RowQuery]] = []
    pieces = scope.pieces(limit)
    for piece, run_list in zip(pieces, _cut(sorted(runs_only or []), len(pieces))):
        # A window: the caller's runs of these pipelines, looked up by key.
        runs_sql = runs if runs_only is None else \
            f"SELECT id FROM Context WHERE +type_id IN ({ints(run_types)}) AND id IN ({ints(run_list)})"
        columns += [(name, query) for name, query in column_queries(conn.dialect.name, piece, pipeline_ids,
                                                                    runs_sql).items()
                    if name not in known and name not in started]
        if artifact_events and runs_only is not None:
            # Only the events of executions outside the window: those inside are the window's own
            # events, read already (after 1,000 new runs, 193,000 of the 244,000 rows).
            columns.append(("artifact_events", ColumnQuery(
                ("artifact_id", "execution_id"), ("i8", "i8"), "Event",
                (*piece.artifacts("artifact_id"), scope.outside("execution_id")), by_key=True)))
        rows += [(name, query) for name, query in row_queries(piece, runs_sql, trainer_types).items()
                 if name not in known and name not in started]
    return _Plan(
        type_names={i: n for i, (n, _) in types.items()},
        type_bases=type_bases,
        pipeline_rows=pipeline_rows,
        columns=columns,
        rows=rows,
        id_bounds=bounds,
        whole_store=only is None,
        # (A gate's window of runs is read by literal ids on a point-reads connection already.)
        narrow=(runs_only is None and only is not None and len(pipeline_ids) <= _NARROW_SHARE * pipeline_count)
        or (runs_only is not None and len(runs_only) > _MANY_RUNS),
        known=known,
        window=runs_only is not None,
    )


def _window_scope(conn: Connection, pipeline_ids: list[int], runs: Sequence[int], run_types: list[int],
                  members: WindowMembers | None = None, on_executions: Callable[[list[int]], None] | None = None
                  ) -> tuple[Scope, dict[str, list]]:
    """The executions of ``runs`` that belong to the pipelines (or, when given, the ``members``
    the caller found) and the artifacts they touched, by id; with the results of the queries
    this already answers (each execution's run and pipeline, the runs' names, the executions'
    events), which the plan then leaves out: a gate's decision pays a round trip and a plan for
    each statement."""
    if members is not None:
        in_runs, in_pipelines = sorted(set(members.runs)), set(members.pipelines)
    else:
        in_runs, in_pipelines = _window_members(conn, pipeline_ids, runs, run_types)
    named_runs = sorted({r for _, r in in_runs})
    in_pipelines = sorted(in_pipelines)
    executions = sorted({e for e, _ in in_pipelines})
    if on_executions is not None:
        on_executions(executions)
    known: dict[str, list] = {
        "runs": _pair_columns(in_runs),
        "pipelines": _pair_columns(in_pipelines),
        "run_names": sorted((int(r), name) for r, name in _literal(
            conn, f"SELECT id, name FROM Context WHERE id IN ({ints(named_runs)})")),
    }
    events = [_fetch_on(conn, events_query(piece), None)
              for piece in Scope(pipeline_ids, executions).pieces(_ID_LISTS.get(conn.dialect.name, _ID_LIST))]
    known["events"] = [np.concatenate(column) for column in zip(*events)]
    artifacts = np.unique(known["events"][0]).astype(np.int64).tolist()
    return Scope(pipeline_ids, executions, artifacts), known


def _window_members(conn: Connection, pipeline_ids: list[int], runs: Sequence[int], run_types: list[int]
                    ) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """(execution, run) and (execution, pipeline) pairs of the executions of ``runs`` that their
    run's pipeline holds too."""
    # Each checked against its run's pipeline by one key look-up (a summary refresh reads the
    # runs of many pipelines at once). CROSS JOIN fixes SQLite's order: the runs' rows first, not
    # every run by its type or the pipelines' thousands of rows; the unary plus keeps it from
    # probing the pair key once per listed pipeline. Numbers only (a COPY on PostgreSQL).
    member_execution, member_run, member_pipeline = (column.astype(np.int64).tolist() for column in fetch_columns(
        conn, ("r.execution_id", "r.context_id", "p.context_id"),
        "FROM Association r CROSS JOIN Context c "
        "CROSS JOIN ParentContext pc CROSS JOIN Association p WHERE c.id = r.context_id "
        "AND pc.context_id = r.context_id AND p.context_id = pc.parent_context_id "
        f"AND p.execution_id = r.execution_id AND r.context_id IN ({ints(runs)}) "
        f"AND c.type_id IN ({ints(run_types)}) AND +pc.parent_context_id IN ({ints(pipeline_ids)})"))
    return sorted(set(zip(member_execution, member_run))), set(zip(member_execution, member_pipeline))


def _cut(values: list[int], count: int) -> list[list[int]]:
    """``values`` in ``count`` runs of consecutive items."""
    return [values[len(values) * k // count:len(values) * (k + 1) // count] for k in range(count)]


def _pair_columns(pairs: list[tuple[int, int]]) -> list[np.ndarray]:
    """(id, id) pairs as the two int64 columns an association query returns."""
    both = np.asarray(pairs, dtype=np.int64).reshape(len(pairs), 2)
    return [np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])]


def _run(config: StoreConfig, tasks, workers: int) -> dict[str, list]:
    """Run every task in a pool of ``workers`` processes, each query on its own connection."""
    # Children of a fork server (started once per process, this module preloaded), not of this
    # process: SQLite's in-memory state of a file this process has open (a caller's open store)
    # must not be carried across fork(); a forked reader then read a -shm file the parent's
    # closing connection had truncated, and died of SIGBUS.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [_submit(pool, config, query, id_range) for _, _, query, id_range in tasks]
        return _collect(tasks, _results(futures, config, tasks))


def _submit(pool: ProcessPoolExecutor, config: StoreConfig, query: ColumnQuery | RowQuery,
            id_range: tuple[int, int] | None) -> Future | None:
    """The piece handed to the pool; None when a reader already died and the pool takes no more."""
    try:
        return pool.submit(_fetch, config, query, id_range)
    except BrokenProcessPool:
        return None


def _results(futures: list[Future | None], config: StoreConfig, tasks) -> list:
    """The pieces' results; those of a reader process that died (killed, out of memory), and
    those the broken pool no longer took, read here."""
    results, broken = [], False
    for future, (_, _, query, id_range) in zip(futures, tasks):
        try:
            if future is None:
                raise BrokenProcessPool("the pool was broken before this piece was handed to it")
            results.append(future.result())
        except BrokenProcessPool:
            if not broken:
                log.warning("graphlets: a reader process ended abruptly (killed, or out of memory?); "
                            "reading the pieces it left in this process, one at a time")
                broken = True
            results.append(_fetch(config, query, id_range))
    return results


def _collect(tasks, pieces: list) -> dict[str, list]:
    """Per query name, its result (pieces joined in id order)."""
    parts: dict[str, list] = {}
    for (name, _, _, _), piece in zip(tasks, pieces):
        parts.setdefault(name, []).append(piece)
    kinds = {name: query for name, _, query, _ in tasks}
    return {
        name: ([np.concatenate(column) for column in zip(*pieces_of)] if isinstance(kinds[name], ColumnQuery)
               else [row for piece in pieces_of for row in piece])
        for name, pieces_of in parts.items()
    }


def _fetch(config: StoreConfig, query: ColumnQuery | RowQuery, id_range: tuple[int, int] | None):
    engine = read_only_engine(config)
    try:
        with engine.connect() as conn:
            return _fetch_on(conn, query, id_range)
    finally:
        engine.dispose()


def _fetch_on(conn: Connection, query: ColumnQuery | RowQuery, id_range: tuple[int, int] | None):
    if isinstance(query, RowQuery):
        return [tuple(row) for row in _literal(conn, query.sql)]
    with key_lookups(conn, query.by_key):
        columns = fetch_columns(conn, query.columns, query.sql_rest(id_range))
    return [_compact(column, dtype) for column, dtype in zip(columns, query.dtypes)]


def _literal(conn: Connection, sql: str) -> sa.CursorResult:
    """A statement without parameters, as written: its ids are literals, and SQLAlchemy would
    scan its text for parameters and compile it (a window's lists of ids make that text long)."""
    return conn.exec_driver_sql(sql, execution_options={"no_parameters": True})


def _compact(column: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "f8":
        return column
    return np.nan_to_num(column, nan=-1).astype(dtype)
