"""Build the summary from an MLMD store: extract the graphlets, reduce, replace the tables.

The extraction is the bulk reader's (``graphlets analyze`` reads the same). A full one takes
about a minute at paper scale, so after the first a refresh is incremental: only the newest runs
of the pipelines written to since the last are read again (``summary/incremental.py``). Pages read the
summary; ``graphlets summarize`` refreshes it, started by the UI when it is older than its
maximum age.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import itertools
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from airflow_graphlets.errors import GraphletsError, NoGraphletsError
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig
from airflow_graphlets.summary import tables
from airflow_graphlets.summary.rows import ExecutionCosts, compute_days, decision_rows, graphlet_rows, on_run_clock, rolled_up

if TYPE_CHECKING:
    from airflow_graphlets.summary.changes import ChangeMarks

_BATCH = 20_000  # rows per INSERT batch: bounded memory for the driver at paper scale
# The pages place runs where `graphlets analyze` does by default: on the runs' logical dates (a
# backfill's days stay days apart), falling back to when executions ran where a run has none.
CLOCK = "logical"


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh wrote: a full one every row, an incremental one the rows of the pipelines
    written to since the last (``pipelines`` counts those)."""

    graphlets: int
    pipelines: int
    decisions: int
    seconds: float
    full: bool = True


def refresh_summary(config: StoreConfig, engine: Engine, workers: int = 2, *, full: bool = False,
                    margin_ms: int | None = None) -> RefreshResult:
    """Bring the summary in ``engine`` up to what the store ``config`` holds now: incrementally
    (``summary/incremental.py``) when it already summarises this store, else, or with ``full``,
    by replacing everything. ``margin_ms``: how far before the last watermark an incremental
    refresh looks again (default ``MARGIN_MS``, 5 minutes).

    Raises:
      StoreNotFoundError, StoreUnavailableError, NotAnMlmdStoreError, UnsupportedSchemaError:
        the store cannot be read (the summary is left as it was).
    """
    from airflow_graphlets.summary.changes import MARGIN_MS, ChangeMarks, read_changes, store_watermark
    from airflow_graphlets.summary.incremental import SUMMARY_FORMAT, read_state, refresh_pipelines

    began = time.perf_counter()
    state = read_state(engine)
    margin = MARGIN_MS if margin_ms is None else margin_ms
    # Both before reading: what changes meanwhile is found next time.
    began_ms = int(time.time() * 1000)
    # One engine for the look-ups by key (changes, windows): each new one costs a connection.
    with reading(config, point_reads=True) as store:
        watermark = store_watermark(config, store)
        since = (int(state["watermark_ms"]) if "watermark_ms" in state else watermark) - margin
        # Marks name one store's changes: a summary of another store reads everything anew.
        same_store = state.get("store") == str(config)
        seen = ChangeMarks.read(engine) if same_store else ChangeMarks()
        changes = read_changes(config, since, seen, store)
        touched = changes.pipelines
        marks = changes.marks.settled(watermark - margin, began_ms)  # what the next refresh looks back on
        if not full and same_store and "watermark_ms" in state and state.get("format") == SUMMARY_FORMAT:
            # None: most pipelines would be re-read whole, which costs more than reading the store whole.
            written = refresh_pipelines(config, engine, touched, watermark, workers=workers, marks=marks,
                                        changed=changes.executions, store_engine=store)
            if written is not None:
                graphlets, decisions = written
                return RefreshResult(graphlets, len(touched), decisions, time.perf_counter() - began, full=False)
    if state and state.get("format") != SUMMARY_FORMAT and engine.dialect.name == "mysql":
        # An older layout's columns: single-precision FLOAT times. MySQL ends a transaction at
        # DDL, so the tables are made anew before the rebuild's transaction, not inside it.
        tables.metadata.drop_all(engine)
        tables.metadata.create_all(engine)
    return _refresh_everything(config, engine, workers, watermark, began, marks)


def _refresh_everything(config: StoreConfig, engine: Engine, workers: int, watermark: int,
                        began: float, marks: "ChangeMarks") -> RefreshResult:
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.decisions import read_all_decisions

    try:
        extraction: Extraction | None = on_clock(read_graphlets(config, workers=workers, hashes=False), CLOCK)
    except NoGraphletsError:
        extraction = None
    decisions = on_run_clock(decision_rows(read_all_decisions(config)), extraction)
    graphlets = list(graphlet_rows(extraction)) if extraction else []
    day_rows = compute_days(extraction, decisions)
    costs = ExecutionCosts.of(extraction)
    from airflow_graphlets.summary.incremental import SUMMARY_FORMAT, lock_summary

    with engine.begin() as conn:
        lock_summary(conn)
        for table in (tables.graphlet, tables.compute_day, tables.pipeline_total, tables.day_total, tables.decision,
                      tables.execution, tables.state):
            conn.execute(table.delete())
        insert_execution_rows(conn, costs, emptied=True)
        for table, rows in ((tables.graphlet, graphlets), (tables.compute_day, day_rows),
                            (tables.pipeline_total, rolled_up(day_rows, "pipeline")),
                            (tables.day_total, rolled_up(day_rows, "day")), (tables.decision, decisions)):
            for start in range(0, len(rows), _BATCH):
                conn.execute(table.insert(), rows[start:start + _BATCH])
        conn.execute(tables.state.insert(), [
            {"key": "store", "value": str(config)},
            {"key": "refreshed_at", "value": repr(time.time())},
            {"key": "watermark_ms", "value": str(watermark)},
            {"key": "last_refresh", "value": "full"},
            {"key": "clock", "value": CLOCK},
            {"key": "format", "value": SUMMARY_FORMAT},
        ])
        marks.write(conn)
    pipelines = {row["pipeline"] for row in day_rows}
    return RefreshResult(len(graphlets), len(pipelines), len(decisions), time.perf_counter() - began)


def insert_execution_rows(conn, costs: ExecutionCosts, emptied: bool = False) -> None:
    """Write the summary's execution rows (millions at paper scale) at the driver's bulk speed:
    COPY on PostgreSQL, plain tuples elsewhere (as dicts through SQLAlchemy, 3.5 million rows
    took 46 s on SQLite). Into an ``emptied`` table (a full refresh) the rows go before the
    table's index is made again: 9 s instead of 28 s on SQLite (MySQL keeps it: its DDL would
    end the refresh's transaction)."""
    table = tables.execution
    columns = [column.name for column in table.columns]
    rows = costs.tuples()
    dialect = conn.dialect.name
    rebuild = emptied and dialect in ("sqlite", "postgresql") and len(costs) > _BATCH
    if rebuild:
        for index in table.indexes:
            index.drop(conn)
    if dialect == "postgresql":
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        text.seek(0)
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", text)
    else:
        marks = ", ".join("%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?" for _ in columns)
        statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        while batch := list(itertools.islice(rows, _BATCH * 10)):
            conn.exec_driver_sql(statement, batch)
    if rebuild:
        for index in table.indexes:
            index.create(conn)


def summary_lock_path(summary_url: str) -> str:
    """The lock file that keeps refreshes of one summary one at a time on a machine, in a
    directory only this user can write (a name in the shared temporary directory could be
    taken first by another user, to hold the lock or point it elsewhere).

    Raises:
      GraphletsError: that directory exists and is not this user's private directory.
    """
    digest = hashlib.sha256(summary_url.encode()).hexdigest()[:16]
    return os.path.join(_private_directory(), f"summary-{digest}.lock")


def _private_directory() -> str:
    path = os.path.join(tempfile.gettempdir(), f"airflow-graphlets-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise GraphletsError(f"{path} is not a directory only this user can write (owner uid {found.st_uid}, "
                             f"mode {stat.filemode(found.st_mode)}); remove it, and airflow-graphlets makes it again.")
    return path


@contextmanager
def refresh_lock(path: str) -> Iterator[bool]:
    """An exclusive, non-blocking lock on ``path``: yields whether this process holds it (one
    refresh at a time per machine, however many API-server workers ask for one)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)  # never through a planted link
    with os.fdopen(descriptor, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
