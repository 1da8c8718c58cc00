"""What each Graphlets page shows, aggregated in SQL over the summary's tables.

Every function takes an engine on the summary database and returns plain dataclasses; the UI
renders them, the tests check them against the store. DAG access is passed in as ``dags``: None
means every DAG, a set means only those (what Airflow's auth manager lets the user read).
"""

from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import dataclass, field, fields

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.summary import tables

_OUTCOMES = ("pushed", "wasted", "pending", "unattributed")
MAX_DAY_BARS = 180  # longer ranges are drawn by week


@dataclass(frozen=True)
class ComputeTotals:
    """Compute in seconds, and counts, over a range of days."""

    pushed: float = 0.0
    wasted: float = 0.0
    pending: float = 0.0
    unattributed: float = 0.0
    saved: float = 0.0
    graphlets: int = 0
    pushes: int = 0
    skips: int = 0

    @property
    def spent(self) -> float:
        return self.pushed + self.wasted + self.pending + self.unattributed

    @property
    def waste_share(self) -> float:
        return self.wasted / self.spent if self.spent else 0.0


@dataclass(frozen=True)
class DayBucket:
    day: int  # first day of the bucket, whole days since the epoch
    totals: ComputeTotals


@dataclass(frozen=True)
class DagRow:
    dag_id: str
    totals: ComputeTotals


@dataclass(frozen=True)
class Overview:
    """The waste overview: totals, a series over time, one page of DAGs (most waste first)."""

    totals: ComputeTotals
    series: list[DayBucket]
    bucket_days: int
    dags: list[DagRow]
    dag_count: int
    first_day: int | None  # of the whole summary, for the range picker
    last_day: int | None


def _sums(c) -> list:
    return [sa.func.coalesce(sa.func.sum(getattr(c, f"{name}_seconds")), 0.0).label(name) for name in _OUTCOMES] + [
        sa.func.coalesce(sa.func.sum(c.saved_seconds), 0.0).label("saved"),
        sa.func.coalesce(sa.func.sum(c.graphlets), 0).label("graphlets"),
        sa.func.coalesce(sa.func.sum(c.pushes), 0).label("pushes"),
        sa.func.coalesce(sa.func.sum(c.skips), 0).label("skips"),
    ]


def _totals(row) -> ComputeTotals:
    return ComputeTotals(float(row.pushed), float(row.wasted), float(row.pending), float(row.unattributed),
                         float(row.saved), int(row.graphlets), int(row.pushes), int(row.skips))


def _add(a: ComputeTotals, b: ComputeTotals) -> ComputeTotals:
    return ComputeTotals(*(getattr(a, f.name) + getattr(b, f.name) for f in fields(ComputeTotals)))


def _where(c, first_day: int | None, last_day: int | None, dags: Collection[str] | None, dag: str | None) -> list:
    clauses = []
    if first_day is not None:
        clauses.append(c.day >= first_day)
    if last_day is not None:
        clauses.append(c.day <= last_day)
    if dags is not None:
        clauses.append(c.pipeline.in_(sorted(dags)) if dags else sa.false())
    if dag:
        clauses.append(c.pipeline == dag)
    return clauses


def overview(engine: Engine, *, first_day: int | None = None, last_day: int | None = None,
             dags: Collection[str] | None = None, dag: str | None = None, page: int = 0,
             per_page: int = 25) -> Overview:
    """Compute spent, wasted and saved in ``[first_day, last_day]`` (None: unbounded), over time
    and per DAG, for the DAGs in ``dags`` (None: all), or one ``dag``."""
    c = tables.compute_day.c
    where = _where(c, first_day, last_day, dags, dag)
    # Unfiltered (every visitor's first page): the roll-ups, a few thousand rows, not every
    # (pipeline, day).
    rolled = first_day is None and last_day is None and dags is None and not dag
    by_day = tables.day_total.c if rolled else c
    by_dag = tables.pipeline_total.c if rolled else c
    with engine.connect() as conn:
        t = tables.day_total.c
        bounds = conn.execute(sa.select(sa.func.min(t.day), sa.func.max(t.day))).one()
        lo = first_day if first_day is not None else bounds[0]
        hi = last_day if last_day is not None else bounds[1]
        bucket = 7 if lo is not None and hi is not None and hi - lo + 1 > MAX_DAY_BARS else 1
        day = (by_day.day - by_day.day % bucket) if bucket > 1 else by_day.day
        found = {int(r.bucket): _totals(r) for r in conn.execute(
            sa.select(day.label("bucket"), *_sums(by_day)).where(*([] if rolled else where)).group_by(day).order_by(day))}
        totals = ComputeTotals()
        for value in found.values():
            totals = _add(totals, value)
        if rolled:
            dag_count = conn.execute(sa.select(sa.func.count()).select_from(tables.pipeline_total)).scalar_one()
            page_rows = conn.execute(
                sa.select(by_dag.pipeline, *_sums(by_dag)).group_by(by_dag.pipeline)
                .order_by(by_dag.wasted_seconds.desc(), by_dag.pipeline)
                .limit(per_page).offset(max(page, 0) * per_page)).all()
        else:
            dag_count = conn.execute(sa.select(sa.func.count(sa.distinct(c.pipeline))).where(*where)).scalar_one()
            page_rows = conn.execute(
                sa.select(c.pipeline, *_sums(c)).where(*where).group_by(c.pipeline)
                .order_by(sa.func.sum(c.wasted_seconds).desc(), c.pipeline)
                .limit(per_page).offset(max(page, 0) * per_page)).all()
    # Every bucket of the range, empty ones too, so bars stand where their time is.
    series = []
    if found:
        start = min(found) if lo is None else lo - lo % bucket
        end = max(found) if hi is None else hi
        series = [DayBucket(b, found.get(b, ComputeTotals())) for b in range(start, end + 1, bucket)]
    return Overview(totals, series, bucket, [DagRow(r.pipeline, _totals(r)) for r in page_rows], int(dag_count),
                    bounds[0], bounds[1])


def dag_ids(engine: Engine, dags: Collection[str] | None = None) -> list[str]:
    """Every DAG the summary knows (that ``dags`` allows), sorted: for the DAG filter."""
    c = tables.pipeline_total.c
    query = sa.select(c.pipeline).order_by(c.pipeline)
    if dags is not None:
        query = query.where(c.pipeline.in_(sorted(dags)) if dags else sa.false())
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


@dataclass(frozen=True)
class GraphletRow:
    trainer_id: int
    run: str | None
    status: str
    trainer_start: float
    end: float
    cost_seconds: float
    blessed: int
    pushed_at: float | None
    first_span: int | None
    last_span: int | None
    spans: int


@dataclass(frozen=True)
class Decision:
    execution_id: int
    run_id: str
    decided_at: float
    decision: str
    probability: float | None
    saved_seconds: float


@dataclass
class PipelineView:
    """One DAG's graphlets: a page of them (newest first), all of them for the timeline, its
    gate decisions, and push cadence and deployment delay."""

    dag_id: str
    graphlet_count: int
    page: list[GraphletRow]
    timeline: list[GraphletRow]
    decisions: list[Decision]
    pushes: int
    hours_between_pushes: float | None  # median
    deployment_delay_hours: float | None  # median, trainer start to push
    status_counts: dict[str, int] = field(default_factory=dict)


TIMELINE_LIMIT = 1000  # newest graphlets drawn on the timeline


def pipeline_view(engine: Engine, dag_id: str, page: int = 0, per_page: int = 50) -> PipelineView:
    """The pipeline page of ``dag_id`` (empty lists when the summary does not know it)."""
    g = tables.graphlet.c
    d = tables.decision.c
    columns = [g.trainer_id, g.run, g.status, g.trainer_start, g.end, g.cost_seconds, g.blessed, g.pushed_at,
               g.first_span, g.last_span, g.spans]
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).where(g.pipeline == dag_id)).scalar_one()
        newest = sa.select(*columns).where(g.pipeline == dag_id).order_by(g.trainer_start.desc(), g.trainer_id.desc())
        page_rows = [GraphletRow(*r) for r in conn.execute(newest.limit(per_page).offset(max(page, 0) * per_page))]
        timeline = [GraphletRow(*r) for r in conn.execute(newest.limit(TIMELINE_LIMIT))][::-1]
        pushes = [r[0] for r in conn.execute(
            sa.select(g.pushed_at).where(g.pipeline == dag_id, g.pushed_at.is_not(None)).order_by(g.pushed_at))]
        delays = [r[0] for r in conn.execute(
            sa.select(g.pushed_at - g.trainer_start).where(g.pipeline == dag_id, g.pushed_at.is_not(None)))]
        statuses = dict(conn.execute(sa.select(g.status, sa.func.count()).where(g.pipeline == dag_id).group_by(g.status)).all())
        since = timeline[0].trainer_start if timeline and count > TIMELINE_LIMIT else None
        decisions = [Decision(*r) for r in conn.execute(
            sa.select(d.execution_id, d.run_id, d.decided_at, d.decision, d.probability, d.saved_seconds)
            .where(d.pipeline == dag_id, *([d.decided_at >= since] if since is not None else []))
            .order_by(d.decided_at))]
    gaps = [(b - a) / 3600 for a, b in zip(pushes, pushes[1:])]
    return PipelineView(
        dag_id=dag_id, graphlet_count=int(count), page=page_rows, timeline=timeline, decisions=decisions,
        pushes=len(pushes), hours_between_pushes=statistics.median(gaps) if gaps else None,
        deployment_delay_hours=statistics.median(delays) / 3600 if delays else None,
        status_counts={str(k): int(v) for k, v in statuses.items()},
    )


@dataclass(frozen=True)
class SummaryState:
    store: str | None
    refreshed_at: float | None
    clock: str = "wall"  # where the summary's times come from: "logical" dates or "wall" (summaries before it said)


def summary_state(engine: Engine) -> SummaryState:
    """Which store the summary was made from, and when (None, None before the first refresh)."""
    with engine.connect() as conn:
        values = dict(conn.execute(sa.select(tables.state.c.key, tables.state.c.value)).all())
    at = values.get("refreshed_at")
    return SummaryState(values.get("store"), float(at) if at else None, values.get("clock", "wall"))


def graphlet_pipeline(engine: Engine, trainer_id: int) -> str | None:
    """The DAG a graphlet (trainer execution id) belongs to, or None when the summary lacks it."""
    g = tables.graphlet.c
    with engine.connect() as conn:
        return conn.execute(sa.select(g.pipeline).where(g.trainer_id == trainer_id)).scalar_one_or_none()


@dataclass(frozen=True)
class GatedDag:
    dag_id: str
    decisions: int
    skips: int
    last_decided_at: float
    saved_seconds: float


def gated_dags(engine: Engine, dags: Collection[str] | None = None) -> list[GatedDag]:
    """DAGs whose gate has decided at least once (that ``dags`` allows), most recent first."""
    d = tables.decision.c
    skip = sa.case((d.decision == "skip", 1), else_=0)
    query = (sa.select(d.pipeline, sa.func.count(), sa.func.sum(skip), sa.func.max(d.decided_at), sa.func.sum(d.saved_seconds))
             .group_by(d.pipeline).order_by(sa.func.max(d.decided_at).desc()))
    if dags is not None:
        query = query.where(d.pipeline.in_(sorted(dags)) if dags else sa.false())
    with engine.connect() as conn:
        return [GatedDag(r[0], int(r[1]), int(r[2] or 0), float(r[3]), float(r[4] or 0.0)) for r in conn.execute(query)]
