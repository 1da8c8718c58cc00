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
from airflow_graphlets.graphlets.model import (
    FAILED,
    NOT_PUSHED,
    OUTCOME_NAMES,
    OUTCOME_UNATTRIBUTED,
    OUTCOME_WASTED,
    PUSHED,
    RUNNING,
    Extraction,
)

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


def analyze(extraction: Extraction) -> Analysis:
    """Compute every analysis over one extraction (see the module docstring for definitions)."""
    graphlets = extraction.graphlets
    table = extraction.executions
    n_pipelines = len(extraction.pipelines)
    by_pipeline: list[list] = [[] for _ in range(n_pipelines)]
    index = {name: i for i, name in enumerate(extraction.pipelines)}
    for g in graphlets:
        if g.pipeline in index:
            by_pipeline[index[g.pipeline]].append(g)

    in_pipeline = table.pipeline >= 0
    first = np.full(n_pipelines, np.inf)
    last = np.full(n_pipelines, -np.inf)
    np.minimum.at(first, table.pipeline[in_pipeline], table.start[in_pipeline])
    np.maximum.at(last, table.pipeline[in_pipeline], (table.start + table.duration)[in_pipeline])
    compute = np.bincount(table.pipeline[in_pipeline], weights=table.duration[in_pipeline], minlength=n_pipelines)
    wasted_rows = in_pipeline & (table.outcome == OUTCOME_WASTED)
    wasted = np.bincount(table.pipeline[wasted_rows], weights=table.duration[wasted_rows], minlength=n_pipelines)
    graphlet_rows = in_pipeline & (table.outcome != OUTCOME_UNATTRIBUTED)
    graphlet_compute = np.bincount(table.pipeline[graphlet_rows], weights=table.duration[graphlet_rows], minlength=n_pipelines)
    runs = _runs_per_pipeline(table, n_pipelines)

    summaries, lifespans, runs_per_day, models_per_day, push_rates = [], [], [], [], []
    between_pushes, overlaps = [], []
    for i, members in enumerate(by_pipeline):
        if not members:
            continue
        members.sort(key=lambda g: (g.trainer_start, g.trainer_id))
        lifespan = max(last[i] - first[i], 0.0) / DAY
        days = max(lifespan, 1.0)
        pushes = sorted(g.pushed_at for g in members if g.pushed)
        gaps = list(np.diff(pushes) / HOUR) if len(pushes) > 1 else []
        pair_overlaps = [_jaccard(a.span_artifact_ids, b.span_artifact_ids) for a, b in zip(members, members[1:])]
        finished = [g for g in members if g.status != RUNNING]
        rate = sum(g.pushed for g in finished) / len(finished) if finished else None
        summaries.append(
            PipelineSummary(
                pipeline=extraction.pipelines[i],
                lifespan_days=round(lifespan, 6),
                runs=int(runs[i]),
                graphlets=len(members),
                pushed=len(pushes),
                push_rate=_round(rate),
                runs_per_day=round(runs[i] / days, 6),
                models_per_day=round(len(members) / days, 6),
                median_hours_between_pushes=_round(float(np.median(gaps)) if gaps else None),
                mean_spans_per_graphlet=_round(float(np.mean([len(g.span_artifact_ids) for g in members]))),
                mean_overlap=_round(float(np.mean(pair_overlaps)) if pair_overlaps else None),
                compute_seconds=round(float(compute[i]), 6),
                wasted_seconds=round(float(wasted[i]), 6),
                waste_share=_round(wasted[i] / graphlet_compute[i] if graphlet_compute[i] else None),
            )
        )
        lifespans.append(lifespan)
        runs_per_day.append(runs[i] / days)
        models_per_day.append(len(members) / days)
        if rate is not None:
            push_rates.append(rate)
        between_pushes.extend(gaps)
        overlaps.extend(pair_overlaps)

    spans_per_graphlet = np.asarray([len(g.span_artifact_ids) for g in graphlets], dtype=np.float64)
    graphlet_cost = np.asarray([g.cost_seconds for g in graphlets], dtype=np.float64)
    status_counts = {s: sum(1 for g in graphlets if g.status == s) for s in (PUSHED, NOT_PUSHED, FAILED, RUNNING)}
    finished = status_counts[PUSHED] + status_counts[NOT_PUSHED] + status_counts[FAILED]
    by_outcome = {name: float(table.duration[table.outcome == code].sum()) for code, name in enumerate(OUTCOME_NAMES)}
    attributed = by_outcome["pushed"] + by_outcome["wasted"]
    total_compute = float(table.duration.sum())
    times = table.start[table.start > 0]
    totals = {
        "pipelines": sum(1 for members in by_pipeline if members),
        "pipelines_in_store": n_pipelines,
        "runs": int(runs.sum()),
        "graphlets": len(graphlets),
        "models": sum(1 for g in graphlets if g.model_ids),
        "pushed": status_counts[PUSHED],
        "not_pushed": status_counts[NOT_PUSHED],
        "failed": status_counts[FAILED],
        "running": status_counts[RUNNING],
        "push_rate": _round(status_counts[PUSHED] / finished if finished else None),
        "executions": len(table),
        "compute_seconds": round(total_compute, 6),
        "graphlet_compute_seconds": round(attributed + by_outcome["pending"], 6),
        "wasted_seconds": round(by_outcome["wasted"], 6),
        "waste_share": _round(by_outcome["wasted"] / attributed if attributed else None),
        "waste_share_of_all_compute": _round(by_outcome["wasted"] / total_compute if total_compute else None),
        "pending_seconds": round(by_outcome["pending"], 6),
        "unattributed_seconds": round(by_outcome["unattributed"], 6),
    }
    samples = {
        "lifespan_days": np.asarray(lifespans),
        "runs_per_day": np.asarray(runs_per_day),
        "models_per_day": np.asarray(models_per_day),
        "push_rate": np.asarray(push_rates),
        "hours_between_pushes": np.asarray(between_pushes, dtype=np.float64),
        "spans_per_graphlet": spans_per_graphlet,
        "span_overlap": np.asarray(overlaps, dtype=np.float64),
        "graphlet_cost_seconds": graphlet_cost,
    }
    return Analysis(
        store=extraction.store,
        reader=extraction.reader,
        schema_version=extraction.schema_version,
        first_time=float(times.min()) if len(times) else None,
        last_time=float((table.start + table.duration)[table.start > 0].max()) if len(times) else None,
        totals=totals,
        distributions={name: Distribution.of(values) for name, values in samples.items()},
        compute_by_kind=_compute_by_kind(table),
        waste_by_day=_waste_by_day(table),
        pipelines=summaries,
        samples=samples,
    )


def _runs_per_pipeline(table, n_pipelines: int) -> np.ndarray:
    known = (table.pipeline >= 0) & (table.run >= 0)
    pairs = np.unique(np.stack([table.pipeline[known].astype(np.int64), table.run[known]], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=n_pipelines) if len(pairs) else np.zeros(n_pipelines, dtype=np.int64)


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


def _jaccard(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    union = len(set(a) | set(b))
    return len(set(a) & set(b)) / union if union else 0.0


def _round(value) -> float | None:
    return None if value is None else round(float(value), 6)

