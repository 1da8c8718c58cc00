"""The summary's rows, made from an extraction: one per graphlet, per execution's compute, per
gate decision, and the (pipeline, day) rows summed from them.

A full refresh and an incremental one build every row through these functions, and sum each
(pipeline, day) in the same order (executions by id, decisions by execution id), so the two
write the same bits: an incremental refresh recomputes a day from the rows it keeps
(:func:`days_of`), not by moving the old sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from airflow_graphlets.graphlets.model import OUTCOME_NAMES, STATUSES, Extraction
from airflow_graphlets.summary import tables


@dataclass(frozen=True)
class ExecutionCosts:
    """The compute of each execution that counts in a day (it belongs to a pipeline and has a
    start time), as columns ordered by execution id: the summary keeps one row per execution,
    so that a refresh re-reading a window of runs can move a day by the executions it re-read."""

    pipelines: tuple[str, ...]
    ids: np.ndarray  # int64, ascending
    pipeline: np.ndarray  # int index into pipelines
    day: np.ndarray  # int64, whole days since the epoch
    seconds: np.ndarray  # float64
    outcome: np.ndarray  # int8, graphlets.model.OUTCOME_*

    @classmethod
    def of(cls, extraction: Extraction | None) -> "ExecutionCosts":
        if extraction is None:
            return cls.from_rows([])
        e = extraction.executions
        timed = (e.start > 0) & (e.pipeline >= 0)
        return cls(extraction.pipelines, e.ids[timed].astype(np.int64), e.pipeline[timed].astype(np.int64),
                   np.floor(e.start[timed] / tables.DAY).astype(np.int64), e.duration[timed].astype(np.float64),
                   e.outcome[timed].astype(np.int8))

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> "ExecutionCosts":
        """From (execution id, pipeline, day, seconds, outcome) rows, as the summary keeps them."""
        rows = sorted(rows)
        names = tuple(sorted({r[1] for r in rows}))
        index = {name: i for i, name in enumerate(names)}
        return cls(names, np.asarray([r[0] for r in rows], dtype=np.int64),
                   np.asarray([index[r[1]] for r in rows], dtype=np.int64),
                   np.asarray([r[2] for r in rows], dtype=np.int64), np.asarray([r[3] for r in rows], dtype=np.float64),
                   np.asarray([r[4] for r in rows], dtype=np.int8))

    def where(self, keep: np.ndarray) -> "ExecutionCosts":
        return ExecutionCosts(self.pipelines, self.ids[keep], self.pipeline[keep], self.day[keep], self.seconds[keep],
                              self.outcome[keep])

    def tuples(self) -> Iterator[tuple]:
        """The summary's execution rows as (execution id, pipeline, day, seconds, outcome)."""
        names = self.pipelines
        return zip(self.ids.tolist(), [names[p] for p in self.pipeline.tolist()], self.day.tolist(),
                   self.seconds.tolist(), self.outcome.tolist())

    def __len__(self) -> int:
        return len(self.ids)


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


def decision_rows(decisions: dict) -> list[dict]:
    """The summary's rows of the gate decisions ``read_all_decisions`` returns, by execution id."""
    rows = [
        {"execution_id": d.execution_id, "pipeline": dag, "run_id": d.run_id, "decided_at": d.decided_at,
         "decision": d.decision, "probability": d.probability,
         "saved_seconds": float(d.features.get("expected_cost", 0.0) or 0.0) if d.decision == "skip" else 0.0}
        for dag, found in decisions.items() for d in found
    ]
    return sorted(rows, key=lambda row: row["execution_id"])


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


def compute_days(extraction: Extraction | None, decisions: list[dict]) -> list[dict]:
    """One row per (pipeline, day) that had compute, a graphlet, a push or a decision."""
    graphlets = list(graphlet_rows(extraction)) if extraction is not None else []
    return days_of(ExecutionCosts.of(extraction), graphlets, decisions)


def days_of(costs: ExecutionCosts, graphlets: list[dict], decisions: list[dict]) -> list[dict]:
    """The (pipeline, day) rows of these executions (by id), graphlet rows and decision rows (by
    execution id), sorted by key."""
    rows: dict[tuple[str, int], dict] = {}

    def row(pipeline: str, day: int) -> dict:
        key = (pipeline, day)
        if key not in rows:
            rows[key] = {"pipeline": pipeline, "day": day, **{f"{name}_seconds": 0.0 for name in OUTCOME_NAMES},
                         "graphlets": 0, "pushes": 0, "skips": 0, "saved_seconds": 0.0}
        return rows[key]

    if len(costs):
        keys, inverse = np.unique(np.stack([costs.pipeline, costs.day]), axis=1, return_inverse=True)
        inverse = inverse.reshape(-1)
        for code, name in enumerate(OUTCOME_NAMES):
            # bincount adds in the executions' order: every refresh sums a day alike.
            sums = np.bincount(inverse, weights=np.where(costs.outcome == code, costs.seconds, 0.0),
                               minlength=keys.shape[1])
            for k in np.flatnonzero(sums):
                row(costs.pipelines[keys[0, k]], int(keys[1, k]))[f"{name}_seconds"] += float(sums[k])
    for g in graphlets:
        row(g["pipeline"], int(np.floor(g["trainer_start"] / tables.DAY)))["graphlets"] += 1
        if g["pushed_at"] is not None:
            row(g["pipeline"], int(np.floor(g["pushed_at"] / tables.DAY)))["pushes"] += 1
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
