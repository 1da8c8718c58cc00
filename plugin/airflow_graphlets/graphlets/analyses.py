"""The paper's analyses of a store's graphlets: lifespan, cadence, pushes, spans, overlap, cost, waste.

Definitions (one place; ``docs/graphlets.md`` explains them):

* **lifespan** of a pipeline: from its first execution's start to its last execution's end;
* **cadence**: runs and trained models (graphlets) per day of lifespan (a lifespan under a day
  counts as one day);
* **push rate**: pushed graphlets over finished ones (pushed, not pushed or failed);
* **time between pushes**: between consecutive pushes of one pipeline;
* **span overlap**: Jaccard similarity of the input-span sets of consecutive graphlets of a
  pipeline (by trainer start);
* **compute**: summed execution durations; each execution counted once, by operator kind;
* **wasted compute**: compute of executions that belong to graphlets none of which pushed a
  model (the paper's "cost of graphlets whose model was not pushed", without counting a span
  shared by several graphlets more than once), absolute and as a share of graphlet compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.graphlets.model import (
    FAILED,
    NOT_PUSHED,
    OUTCOME_NAMES,
    OUTCOME_UNATTRIBUTED,
    OUTCOME_WASTED,
    PUSHED,
    RUNNING,
    STATUS_INDEX,
    Extraction,
)
from airflow_graphlets.graphlets.sorted_sets import distinct, member

DAY = 86_400.0
HOUR = 3_600.0


@dataclass(frozen=True)
class Distribution:
    """Summary of a sample: count, mean and quantiles (None when the sample is empty)."""

    count: int
    mean: float | None
    min: float | None
    p25: float | None
    median: float | None
    p75: float | None
    p90: float | None
    max: float | None

    @classmethod
    def of(cls, values) -> Distribution:
        data = np.asarray(values, dtype=np.float64)
        data = data[~np.isnan(data)]
        if not len(data):
            return cls(0, None, None, None, None, None, None, None)
        q = np.quantile(data, [0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
        return cls(len(data), *(round(float(v), 6) for v in (data.mean(), *q)))


@dataclass(frozen=True)
class PipelineSummary:
    """One pipeline's row of the report."""

    pipeline: str
    lifespan_days: float
    runs: int
    graphlets: int
    pushed: int
    push_rate: float | None
    runs_per_day: float
    models_per_day: float
    median_hours_between_pushes: float | None
    mean_spans_per_graphlet: float | None
    mean_overlap: float | None
    compute_seconds: float
    wasted_seconds: float
    waste_share: float | None
    compute_by_kind: dict[str, float]  # operator kind -> seconds


@dataclass
class Analysis:
    """The full analysis of one store. ``samples`` holds the raw values the plots draw."""

    store: str
    reader: str
    schema_version: int
    first_time: float | None
    last_time: float | None
    totals: dict[str, float | int | None]
    distributions: dict[str, Distribution]
    compute_by_kind: dict[str, dict[str, float]]  # kind -> outcome -> seconds
    waste_by_day: list[dict[str, float | str]]  # day -> compute by outcome
    pipelines: list[PipelineSummary]
    samples: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    clock: str = "wall"  # which clock times were read from (graphlets.clock)


def analyze(extraction: Extraction, clock: str = "wall") -> Analysis:
    """Compute every analysis over one extraction (see the module docstring for definitions).

    Args:
      clock: ``"wall"``: times are when executions ran; ``"logical"``: runs are placed at their
        logical dates (see :mod:`airflow_graphlets.graphlets.clock`), what a backfill needs.
    """
    extraction = on_clock(extraction, clock)
    g = extraction.graphlets
    table = extraction.executions
    n_pipelines = len(extraction.pipelines)

    # Per pipeline, from the execution table: lifespan, compute, waste, runs.
    in_pipeline = table.pipeline >= 0
    first = np.full(n_pipelines, np.inf)
    last = np.full(n_pipelines, -np.inf)
    np.minimum.at(first, table.pipeline[in_pipeline], table.start[in_pipeline])
    np.maximum.at(last, table.pipeline[in_pipeline], (table.start + table.duration)[in_pipeline])
    compute = _sum_by(table.pipeline, table.duration, in_pipeline, n_pipelines)
    wasted = _sum_by(table.pipeline, table.duration, in_pipeline & (table.outcome == OUTCOME_WASTED), n_pipelines)
    graphlet_compute = _sum_by(table.pipeline, table.duration, in_pipeline & (table.outcome != OUTCOME_UNATTRIBUTED), n_pipelines)
    runs = _runs_per_pipeline(table, n_pipelines)
    n_kinds = len(rules.KINDS)
    by_kind = _sum_by(table.pipeline * n_kinds + table.kind, table.duration, in_pipeline,
                      n_pipelines * n_kinds).reshape(n_pipelines, n_kinds) if n_pipelines else np.zeros((0, n_kinds))

    # Per graphlet, in time order within each pipeline.
    known = g.pipeline >= 0
    graphlets = np.bincount(g.pipeline[known], minlength=n_pipelines)
    pushed = g.pushed
    pushes = np.bincount(g.pipeline[known & pushed], minlength=n_pipelines)
    finished = known & (g.status != STATUS_INDEX[RUNNING])
    finished_count = np.bincount(g.pipeline[finished], minlength=n_pipelines)
    span_counts = g.lists["span_artifact_ids"].lengths()
    spans_sum = np.bincount(g.pipeline[known], weights=span_counts[known], minlength=n_pipelines)
    order = np.lexsort((g.trainer_id, g.trainer_start, g.pipeline))
    order = order[known[order]]
    same = g.pipeline[order[1:]] == g.pipeline[order[:-1]]
    overlap = _jaccard_pairs(g.lists["span_artifact_ids"], order[:-1][same], order[1:][same])
    overlap_pipeline = g.pipeline[order[1:][same]]
    push_order = np.lexsort((g.pushed_at, g.pipeline))
    push_order = push_order[(known & pushed)[push_order]]
    push_same = g.pipeline[push_order[1:]] == g.pipeline[push_order[:-1]]
    gaps = (g.pushed_at[push_order[1:]] - g.pushed_at[push_order[:-1]])[push_same] / HOUR
    gap_pipeline = g.pipeline[push_order[1:]][push_same]

    summaries = []
    lifespan = np.maximum(last - first, 0.0) / DAY
    days = np.maximum(lifespan, 1.0)
    active = np.flatnonzero(graphlets > 0)
    gap_groups = _groups(gap_pipeline, gaps, n_pipelines)
    overlap_groups = _groups(overlap_pipeline, overlap, n_pipelines)
    for i in active:
        summaries.append(
            PipelineSummary(
                pipeline=extraction.pipelines[i],
                lifespan_days=round(float(lifespan[i]), 6),
                runs=int(runs[i]),
                graphlets=int(graphlets[i]),
                pushed=int(pushes[i]),
                push_rate=_round(pushes[i] / finished_count[i] if finished_count[i] else None),
                runs_per_day=round(float(runs[i] / days[i]), 6),
                models_per_day=round(float(graphlets[i] / days[i]), 6),
                median_hours_between_pushes=_round(np.median(gap_groups[i]) if len(gap_groups[i]) else None),
                mean_spans_per_graphlet=_round(spans_sum[i] / graphlets[i]),
                mean_overlap=_round(np.mean(overlap_groups[i]) if len(overlap_groups[i]) else None),
                compute_seconds=round(float(compute[i]), 6),
                wasted_seconds=round(float(wasted[i]), 6),
                waste_share=_round(wasted[i] / graphlet_compute[i] if graphlet_compute[i] else None),
                compute_by_kind={rules.KINDS[k]: round(float(v), 6) for k, v in enumerate(by_kind[i]) if v},
            )
        )

    status_counts = {s: int((g.status == STATUS_INDEX[s]).sum()) for s in (PUSHED, NOT_PUSHED, FAILED, RUNNING)}
    n_finished = status_counts[PUSHED] + status_counts[NOT_PUSHED] + status_counts[FAILED]
    by_outcome = {name: float(table.duration[table.outcome == code].sum()) for code, name in enumerate(OUTCOME_NAMES)}
    attributed = by_outcome["pushed"] + by_outcome["wasted"]
    total_compute = float(table.duration.sum())
    timed = table.start > 0
    totals = {
        "pipelines": len(active),
        "pipelines_in_store": n_pipelines,
        "runs": int(runs.sum()),
        "graphlets": len(g),
        "models": int((g.lists["model_ids"].lengths() > 0).sum()),
        "pushed": status_counts[PUSHED],
        "not_pushed": status_counts[NOT_PUSHED],
        "failed": status_counts[FAILED],
        "running": status_counts[RUNNING],
        "push_rate": _round(status_counts[PUSHED] / n_finished if n_finished else None),
        "executions": len(table),
        "compute_seconds": round(total_compute, 6),
        "graphlet_compute_seconds": round(attributed + by_outcome["pending"], 6),
        "wasted_seconds": round(by_outcome["wasted"], 6),
        "waste_share": _round(by_outcome["wasted"] / attributed if attributed else None),
        "waste_share_of_all_compute": _round(by_outcome["wasted"] / total_compute if total_compute else None),
        "pending_seconds": round(by_outcome["pending"], 6),
        "unattributed_seconds": round(by_outcome["unattributed"], 6),
    }
    finished_rates = pushes[active] / np.maximum(finished_count[active], 1)
    samples = {
        "lifespan_days": lifespan[active],
        "runs_per_day": runs[active] / days[active],
        "models_per_day": graphlets[active] / days[active],
        "push_rate": finished_rates[finished_count[active] > 0],
        "hours_between_pushes": gaps,
        "spans_per_graphlet": span_counts.astype(np.float64),
        "span_overlap": overlap,
        "graphlet_cost_seconds": g.cost_micros / 1e6,
    }
    return Analysis(
        store=extraction.store,
        reader=extraction.reader,
        clock=clock,
        schema_version=extraction.schema_version,
        first_time=float(table.start[timed].min()) if timed.any() else None,
        last_time=float((table.start + table.duration)[timed].max()) if timed.any() else None,
        totals=totals,
        distributions={name: Distribution.of(values) for name, values in samples.items()},
        compute_by_kind=_compute_by_kind(table),
        waste_by_day=_waste_by_day(table),
        pipelines=summaries,
        samples=samples,
    )


def _sum_by(group: np.ndarray, values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group[rows], weights=values[rows], minlength=n)


def _groups(group: np.ndarray, values: np.ndarray, n: int) -> list[np.ndarray]:
    """``values`` split by ``group`` (sorted by group already)."""
    bounds = np.searchsorted(group, np.arange(n + 1))
    return [values[bounds[i] : bounds[i + 1]] for i in range(n)]


def _jaccard_pairs(lists, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the id sets of graphlets ``a[i]`` and ``b[i]``, for every i."""
    if not len(a):
        return np.empty(0)
    lengths = lists.lengths()

    def keyed(rows):  # (pair index, id) keys of every id in each pair's set
        counts = lengths[rows]
        pair = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
        starts = np.repeat(lists.offsets[rows] - np.cumsum(counts) + counts, counts)
        ids = lists.values[starts + np.arange(counts.sum())]
        return pair, pair * (int(lists.values.max(initial=0)) + 1) + ids

    _, keys_a = keyed(a)
    pair_b, keys_b = keyed(b)
    common = np.bincount(pair_b[member(keys_a, keys_b)], minlength=len(a))  # keys_a is sorted: pairs, then ids
    union = lengths[a] + lengths[b] - common
    return np.where(union > 0, common / np.maximum(union, 1), 0.0)


def _runs_per_pipeline(table, n_pipelines: int) -> np.ndarray:
    known = (table.pipeline >= 0) & (table.run >= 0)
    width = int(table.run.max(initial=0)) + 1
    pairs = distinct(table.pipeline[known].astype(np.int64) * width + table.run[known])
    return np.bincount(pairs // width, minlength=n_pipelines)


def _compute_by_kind(table) -> dict[str, dict[str, float]]:
    result = {}
    for k, kind in enumerate(rules.KINDS):
        rows = table.kind == k
        if rows.any():
            result[kind] = {
                name: round(float(table.duration[rows & (table.outcome == code)].sum()), 6)
                for code, name in enumerate(OUTCOME_NAMES)
            }
    return result


def _waste_by_day(table) -> list[dict[str, float | str]]:
    timed = table.start > 0
    if not timed.any():
        return []
    day = np.floor(table.start[timed] / DAY).astype(np.int64)
    first = day.min()
    n_days = int(day.max() - first + 1)
    rows = []
    columns = {
        name: np.bincount(day - first, weights=np.where(table.outcome[timed] == code, table.duration[timed], 0.0), minlength=n_days)
        for code, name in enumerate(OUTCOME_NAMES)
    }
    for d in range(n_days):
        rows.append({"day": str(np.datetime64(int(first + d), "D")), **{k: round(float(v[d]), 6) for k, v in columns.items()}})
    return rows


def _round(value) -> float | None:
    return None if value is None else round(float(value), 6)

