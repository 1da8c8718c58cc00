"""Build the summary from an MLMD store: extract the graphlets, reduce, replace the tables.

The extraction is the bulk reader's (``graphlets analyze`` reads the same). A full one takes
about half a minute at paper scale, so after the first a refresh is incremental: only the
pipelines written to since the last are read again (``summary/incremental.py``). Pages read the
summary; ``graphlets summarize`` refreshes it, started by the UI when it is older than its
maximum age.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import GraphletsError, NoGraphletsError
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import OUTCOME_NAMES, STATUSES, Extraction
from airflow_graphlets.store.uri import StoreConfig
from airflow_graphlets.summary import tables

if TYPE_CHECKING:
    from airflow_graphlets.summary.incremental import ChangeMarks

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
    from airflow_graphlets.summary.incremental import (
        FULL_SHARE,
        MARGIN_MS,
        read_state,
        refresh_pipelines,
        ChangeMarks,
        changes_since,
        store_watermark,
        summarised_pipelines,
    )

    began = time.perf_counter()
    state = read_state(engine)
    margin = MARGIN_MS if margin_ms is None else margin_ms
    # Both before reading: what changes meanwhile is found next time.
    began_ms = int(time.time() * 1000)
    watermark = store_watermark(config)
    since = (int(state["watermark_ms"]) if "watermark_ms" in state else watermark) - margin
    # Marks name one store's changes: a summary of another store reads everything anew.
    same_store = state.get("store") == str(config)
    seen = ChangeMarks.loads(state.get("seen_changes")) if same_store else ChangeMarks()
    touched, marks = changes_since(config, since, seen)
    marks = marks.settled(watermark - margin, began_ms)  # what the next refresh looks back on
    if not full and same_store and "watermark_ms" in state:
        # Re-reading most of the pipelines costs more than reading the store whole.
        if len(touched) < 50 or len(touched) <= FULL_SHARE * summarised_pipelines(engine):
            graphlets, decisions = refresh_pipelines(config, engine, touched, watermark, workers=workers, marks=marks)
            return RefreshResult(graphlets, len(touched), decisions, time.perf_counter() - began, full=False)
    return _refresh_everything(config, engine, workers, watermark, began, marks)


def _refresh_everything(config: StoreConfig, engine: Engine, workers: int, watermark: int,
                        began: float, marks: "ChangeMarks") -> RefreshResult:
    from airflow_graphlets.graphlets.bulk_reader import read_graphlets
    from airflow_graphlets.prune.decisions import read_all_decisions

    try:
        extraction: Extraction | None = on_clock(read_graphlets(config, workers=workers), CLOCK)
    except NoGraphletsError:
        extraction = None
    decisions = on_run_clock(decision_rows(read_all_decisions(config)), extraction)
    graphlets = list(graphlet_rows(extraction)) if extraction else []
    day_rows = compute_days(extraction, decisions)
    from airflow_graphlets.summary.incremental import lock_summary

    with engine.begin() as conn:
        lock_summary(conn)
        for table in (tables.graphlet, tables.compute_day, tables.pipeline_total, tables.day_total, tables.decision,
                      tables.state):
            conn.execute(table.delete())
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
            {"key": "seen_changes", "value": marks.dumps()},
        ])
    pipelines = {row["pipeline"] for row in day_rows}
    return RefreshResult(len(graphlets), len(pipelines), len(decisions), time.perf_counter() - began)


def on_run_clock(decisions: list[dict], extraction: Extraction | None) -> list[dict]:
    """Decision rows placed on the extraction's clock: a gate's decision is an execution of its
    run, so it moves with the run's logical date as the graphlets do (a backfill's skips stand on
    their runs' days, not on the day the backfill ran). Decisions not in the extraction keep
    their time."""
    if extraction is None or not decisions:
        return decisions
    e = extraction.executions
    if not len(e.ids):
        return decisions
    ids = np.asarray([d["execution_id"] for d in decisions], dtype=e.ids.dtype)
    at = np.clip(np.searchsorted(e.ids, ids), 0, len(e.ids) - 1)
    found = (e.ids[at] == ids) & (e.start[at] > 0)
    return [{**d, "decided_at": float(e.start[i])} if ok else d for d, i, ok in zip(decisions, at, found)]


def decision_rows(decisions: dict) -> list[dict]:
    """The summary's rows of the gate decisions ``read_all_decisions`` returns."""
    return [
        {"execution_id": d.execution_id, "pipeline": dag, "run_id": d.run_id, "decided_at": d.decided_at,
         "decision": d.decision, "probability": d.probability,
         "saved_seconds": float(d.features.get("expected_cost", 0.0) or 0.0) if d.decision == "skip" else 0.0}
        for dag, found in decisions.items() for d in found
    ]


def graphlet_rows(extraction: Extraction) -> Iterator[dict]:
    """The summary's row of each graphlet of ``extraction`` that belongs to a pipeline."""
    g = extraction.graphlets
    spans = g.lists["spans"]
    offsets, values = spans.offsets, spans.values
    for i in range(len(g)):
        if g.pipeline[i] < 0:
            continue
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        pushed_at = float(g.pushed_at[i])
        yield {
            "trainer_id": int(g.trainer_id[i]), "pipeline": g.pipelines[g.pipeline[i]], "run": g.run[i],
            "status": STATUSES[g.status[i]], "trainer_start": float(g.trainer_start[i]), "end": float(g.end[i]),
            "cost_seconds": int(g.cost_micros[i]) / 1e6, "blessed": int(g.blessed[i]),
            "pushed_at": None if np.isnan(pushed_at) else pushed_at,
            "first_span": int(values[lo]) if hi > lo else None, "last_span": int(values[hi - 1]) if hi > lo else None,
            "spans": hi - lo,
        }


def compute_days(extraction: Extraction | None, decisions: list[dict]) -> list[dict]:
    """One row per (pipeline, day) that had compute, a graphlet, a push or a decision."""
    rows: dict[tuple[str, int], dict] = {}

    def row(pipeline: str, day: int) -> dict:
        key = (pipeline, day)
        if key not in rows:
            rows[key] = {"pipeline": pipeline, "day": day, **{f"{name}_seconds": 0.0 for name in OUTCOME_NAMES},
                         "graphlets": 0, "pushes": 0, "skips": 0, "saved_seconds": 0.0}
        return rows[key]

    if extraction is not None:
        e = extraction.executions
        timed = (e.start > 0) & (e.pipeline >= 0)
        day = np.floor(e.start[timed] / tables.DAY).astype(np.int64)
        pipeline = e.pipeline[timed].astype(np.int64)
        keys, inverse = np.unique(np.stack([pipeline, day]), axis=1, return_inverse=True)
        inverse = inverse.reshape(-1)
        for code, name in enumerate(OUTCOME_NAMES):
            weights = np.where(e.outcome[timed] == code, e.duration[timed], 0.0)
            sums = np.bincount(inverse, weights=weights, minlength=keys.shape[1])
            for k in np.flatnonzero(sums):
                row(extraction.pipelines[keys[0, k]], int(keys[1, k]))[f"{name}_seconds"] += float(sums[k])
        g = extraction.graphlets
        named = g.pipeline >= 0
        _count(row, g.pipelines, g.pipeline[named], g.trainer_start[named], "graphlets")
        pushed = named & ~np.isnan(g.pushed_at)
        _count(row, g.pipelines, g.pipeline[pushed], g.pushed_at[pushed], "pushes")
    for d in decisions:
        if d["decision"] == "skip":
            target = row(d["pipeline"], int(d["decided_at"] // tables.DAY))
            target["skips"] += 1
            target["saved_seconds"] += d["saved_seconds"]
    return [rows[key] for key in sorted(rows)]


def rolled_up(day_rows: list[dict], key: str) -> list[dict]:
    """The (pipeline, day) rows summed per ``key`` ("pipeline" or "day")."""
    totals: dict[object, dict] = {}
    for row in day_rows:
        target = totals.setdefault(row[key], {key: row[key]})
        for name, value in row.items():
            if name not in ("pipeline", "day"):
                target[name] = target.get(name, 0) + value
    return [totals[k] for k in sorted(totals)]


def _count(row, names: tuple[str, ...], pipeline: np.ndarray, times: np.ndarray, field: str) -> None:
    """Add to ``field`` of each (pipeline, day) row the number of ``times`` that fall in it."""
    if not len(pipeline):
        return
    keys, counts = np.unique(np.stack([pipeline.astype(np.int64), np.floor(times / tables.DAY).astype(np.int64)]),
                             axis=1, return_counts=True)
    for k in range(keys.shape[1]):
        row(names[keys[0, k]], int(keys[1, k]))[field] += int(counts[k])


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
