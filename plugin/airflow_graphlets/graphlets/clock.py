"""Which clock the analyses read time from: when executions ran, or the runs' logical dates.

A backfill runs weeks of logical dates in minutes: on the wall clock its pipelines live a few
minutes and train hundreds of models a day. On the *logical* clock each execution is placed at
its run's logical date plus how long after the run's first execution it started, so lifespans,
cadence and time between pushes read as the pipelines' own history. Durations (compute) are the
same on both clocks. Runs without a recorded logical date (TFX stores, runs the recorder did not
write) stay on the wall clock.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from airflow_graphlets.graphlets.model import Extraction

CLOCKS = ("logical", "wall")


def on_clock(extraction: Extraction, clock: str) -> Extraction:
    """``extraction`` with its times read from ``clock`` (``"logical"`` or ``"wall"``).

    Raises:
      ValueError: an unknown clock name.
    """
    if clock not in CLOCKS:
        raise ValueError(f"Unknown clock {clock!r}; use one of {', '.join(CLOCKS)}.")
    if clock == "wall" or not extraction.run_logical_times:
        return extraction
    table, graphlets = extraction.executions, extraction.graphlets
    offset = _run_offsets(table.run, table.start, extraction.run_logical_times)
    shift = offset(table.run)
    executions = dataclasses.replace(table, start=np.where(table.start > 0, table.start + shift, table.start))
    if len(table.ids) == 0:
        return extraction
    rows = np.clip(np.searchsorted(table.ids, graphlets.trainer_id), 0, len(table.ids) - 1)
    g_shift = np.where(table.ids[rows] == graphlets.trainer_id, shift[rows], 0.0)  # the trainer's run
    moved = dataclasses.replace(
        graphlets,
        trainer_start=_moved(graphlets.trainer_start, g_shift),
        trainer_end=_moved(graphlets.trainer_end, g_shift),
        end=_moved(graphlets.end, g_shift),
        pushed_at=_moved(graphlets.pushed_at, g_shift),
    )
    return dataclasses.replace(extraction, graphlets=moved, executions=executions)


def _run_offsets(run: np.ndarray, start: np.ndarray, logical: dict[int, float]):
    """A function from run ids to seconds to add: logical date minus the run's first start."""
    timed = (run >= 0) & (start > 0)
    runs, first = run[timed], start[timed]
    order = np.lexsort((first, runs))
    runs, first = runs[order], first[order]
    head = np.ones(len(runs), dtype=bool)
    head[1:] = runs[1:] != runs[:-1]
    run_ids, run_first = runs[head], first[head]
    dates = np.asarray([logical.get(int(r), np.nan) for r in run_ids], dtype=np.float64)
    offsets = np.where(np.isnan(dates), 0.0, dates - run_first)

    def offset(ids: np.ndarray) -> np.ndarray:
        if len(run_ids) == 0:
            return np.zeros(len(ids))
        at = np.clip(np.searchsorted(run_ids, ids), 0, len(run_ids) - 1)
        return np.where(run_ids[at] == ids, offsets[at], 0.0)

    return offset


def _moved(times: np.ndarray, shift: np.ndarray) -> np.ndarray:
    # NaN (not pushed) and 0 (unknown) stay as they are.
    return np.where(np.isfinite(times) & (times > 0), times + shift, times)
