"""The gate's view of one pipeline's past, read from a window of its latest runs.

The features need the deployed model's graphlet, the outcomes since it, the last ``LONG_RATE``
outcomes and the length of the history up to ``LONG_HISTORY`` (:mod:`airflow_graphlets.prune.features`),
and the calibration the outcomes of the last runs the gate decided.
A pipeline that has run for a year holds thousands of graphlets; extracting them all on every
decision would take seconds. So the gate extracts graphlets from its pipeline's latest runs
only (as many as should hold ``KNOWN_OUTCOMES`` outcomes, given how many of its latest runs the
gate skipped), and widens the window (x4) until it holds a pushed outcome known before now and
``KNOWN_OUTCOMES`` known outcomes, or every run. The features then come out as the whole
history's would, as long as no run older than the window is still going on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.errors import NoGraphletsError
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import Extraction
from airflow_graphlets.prune.calibration import WINDOW as CALIBRATION_WINDOW
from airflow_graphlets.prune.dataset import training_runs
from airflow_graphlets.prune.features import PipelineHistory
from airflow_graphlets.prune.features.recency import LONG_HISTORY, LONG_RATE
from airflow_graphlets.prune.signals import (
    signals_and_bars,
    span_drift,
    span_statistics,
    window_signals_and_bars,
)
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig

# Outcomes a decision reads: the longest look back of any feature, and the calibration's.
KNOWN_OUTCOMES = max(LONG_HISTORY, LONG_RATE, CALIBRATION_WINDOW)
FIRST_WINDOW = 2 * KNOWN_OUTCOMES  # runs, when nothing tells how many train
_SPARE_RUNS = 8  # runs in a window that train nothing besides the skipped: the deciding run, failures, runs going on
_WIDEN = 4

# The pipeline's latest runs, newest first: run contexts are made as a run's first record is
# written, so their ids follow the runs' order (a window read too early is widened anyway). The
# pipeline's id as a sub-query PostgreSQL evaluates first, so it walks the index of the child
# contexts by parent, not every parent link of the store (0.3 ms instead of 2.7 with 10,000 runs).
_LATEST_RUNS_SQL = sa.text(
    "SELECT pc.context_id FROM ParentContext pc WHERE pc.parent_context_id = ("
    "SELECT p.id FROM Context p JOIN Type pt ON pt.id = p.type_id WHERE p.name = :pipeline AND pt.name = :pipeline_type) "
    "ORDER BY pc.context_id DESC LIMIT :latest"
)


def first_window(recent_decisions: Sequence[str]) -> int:
    """Runs a decision reads first: enough for ``KNOWN_OUTCOMES`` outcomes, given that a run the
    gate skipped trained nothing: the share of its ``recent_decisions`` ("run" or "skip") that
    ran. Without a skip log, ``FIRST_WINDOW``. A window that falls short is widened anyway; each
    run read costs the decision time (38 runs instead of 61: about 7 ms less of 40 on PostgreSQL)."""
    if not recent_decisions:
        return FIRST_WINDOW
    ran = sum(decision == "run" for decision in recent_decisions) / len(recent_decisions)
    wanted = KNOWN_OUTCOMES + _SPARE_RUNS
    return min(math.ceil(wanted / max(ran, 1 / _WIDEN)), _WIDEN * wanted)


def pipeline_history(config: StoreConfig, pipeline: str, now: float, first_window: int = FIRST_WINDOW,
                     engine: Engine | None = None, candidate_spans: frozenset[int] = frozenset()
                     ) -> tuple[PipelineHistory, float | None]:
    """The pipeline's outcomes known at ``now`` (in the order they became known), with the span
    statistics that compare the candidate's spans with the deployed model's, and when its latest
    trainer started (None before any), on the logical clock.

    Args:
      config: the store (read-only).
      pipeline: the ``pipeline`` context name (the DAG id).
      now: the decision's time on the logical clock.
      first_window: runs read at first.
      engine: an open read-only engine to read through (a new one when None).
      candidate_spans: the spans the run about to train reads (their statistics are read too).

    Raises:
      StoreNotFoundError, StoreUnavailableError, NotAnMlmdStoreError: the store cannot be read.
    """
    window = max(first_window, 1)
    with reading(config, engine, point_reads=True) as engine:
        while True:
            with engine.connect() as conn:
                latest = [int(r) for r, in conn.execute(_LATEST_RUNS_SQL, {
                    "pipeline": pipeline, "pipeline_type": schema.PIPELINE_CONTEXT, "latest": window + 1})]
            chosen = None if len(latest) <= window else sorted(latest[:window])
            history, last_trained = _read_window(config, pipeline, now, chosen, engine)
            if chosen is None or (history.last_pushed is not None and len(history.outcomes) >= KNOWN_OUTCOMES):
                break
            window *= _WIDEN
        if history.last_pushed is not None:
            needed = sorted(history.last_pushed.spans | candidate_spans)
            history.statistics = span_statistics(config, pipeline, needed, engine).by_pipeline.get(pipeline)
        return history, last_trained


def _read_window(config: StoreConfig, pipeline: str, now: float, runs: list[int] | None,
                 engine: Engine) -> tuple[PipelineHistory, float | None]:
    """History from ``runs`` (every run when None) and its latest trainer start."""
    try:
        extraction = on_clock(read_graphlets(config, [pipeline], workers=1, runs=runs, engine=engine), "logical")
    except NoGraphletsError:
        return PipelineHistory(), None  # no trainer in these runs (or none at all yet)
    if runs is None:
        signals, bars = signals_and_bars(config, pipeline, None, engine)
    else:
        signals, bars = window_signals_and_bars(config, pipeline, _run_of_execution(extraction), engine)
    found = training_runs(extraction, span_drift(config, pipeline, runs, engine), signals, bars=bars)
    history = PipelineHistory()
    for outcome in sorted((o for o in found.outcomes if o.end <= now), key=lambda o: o.end):
        history.add(outcome)
    started = [o.start for o in found.outcomes if o.start <= now]
    return history, max(started) if started else None


def _run_of_execution(extraction: Extraction) -> dict[int, str]:
    """Execution id -> its run's context name, for the executions of runs that trained a model
    (only those runs' signals and evaluator bars reach an outcome)."""
    g, table = extraction.graphlets, extraction.executions
    rows = np.minimum(np.searchsorted(table.ids, g.trainer_id), max(len(table.ids) - 1, 0))
    found = (table.ids[rows] == g.trainer_id) if len(table.ids) else np.zeros(len(rows), dtype=bool)
    run_name = {int(table.run[row]): name for row, name, ok in zip(rows.tolist(), g.run.tolist(), found.tolist())
                if ok and name is not None and table.run[row] >= 0}
    return {execution: run_name[run] for execution, run in zip(table.ids.tolist(), table.run.tolist())
            if run in run_name}
