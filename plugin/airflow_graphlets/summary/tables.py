"""The summary's tables (SQLAlchemy Core), in a database of our own: never MLMD's.

One row per graphlet, one per execution's compute, one per (pipeline, day) of compute, one per
gate decision, and a small key/value table saying which store was summarised and when. A refresh
writes in one transaction, so a page never sees half a summary.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
# Times and seconds are doubles: MySQL's FLOAT (SQLAlchemy's Float there) holds 24 bits, which
# rounds an epoch time to two minutes.

# One per model graphlet. Times are epoch seconds; costs seconds.
graphlet = sa.Table(
    "graphlets_summary_graphlet", metadata,
    sa.Column("trainer_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("pipeline", sa.String(512), nullable=False),
    sa.Column("run", sa.String(512)),
    sa.Column("status", sa.String(16), nullable=False),  # graphlets.model.STATUSES
    sa.Column("trainer_start", sa.Double, nullable=False),
    sa.Column("end", sa.Double, nullable=False),
    sa.Column("cost_seconds", sa.Double, nullable=False),
    sa.Column("blessed", sa.SmallInteger, nullable=False),  # 1, 0, -1 unknown
    sa.Column("pushed_at", sa.Double),
    sa.Column("first_span", sa.BigInteger),
    sa.Column("last_span", sa.BigInteger),
    sa.Column("spans", sa.Integer, nullable=False),
    sa.Index("graphlets_summary_graphlet_by_pipeline", "pipeline", "trainer_start"),
)


def _metrics() -> list[sa.Column]:
    """Compute by what it went to (seconds), models trained, pushes, skips and what they saved."""
    return [sa.Column(f"{name}_seconds", sa.Double, nullable=False)
            for name in ("pushed", "wasted", "pending", "unattributed")] + [
        sa.Column("graphlets", sa.Integer, nullable=False),
        sa.Column("pushes", sa.Integer, nullable=False),
        sa.Column("skips", sa.Integer, nullable=False),
        sa.Column("saved_seconds", sa.Double, nullable=False),
    ]


# Compute of one pipeline on one UTC day (day = whole days since the epoch), by what it went to.
compute_day = sa.Table(
    "graphlets_summary_compute_day", metadata,
    sa.Column("pipeline", sa.String(512), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    *_metrics(),
    sa.Index("graphlets_summary_compute_by_day", "day"),
)

# The same figures rolled up over all days per pipeline, and over all pipelines per day: the
# unfiltered overview (every visitor's first page) reads these few thousand rows, not every
# (pipeline, day).
pipeline_total = sa.Table(
    "graphlets_summary_pipeline_total", metadata,
    sa.Column("pipeline", sa.String(512), primary_key=True),
    *_metrics(),
)
day_total = sa.Table(
    "graphlets_summary_day_total", metadata,
    sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
    *_metrics(),
)

# One per gate decision (the live skip log reads MLMD itself; this feeds charts and timelines).
decision = sa.Table(
    "graphlets_summary_decision", metadata,
    sa.Column("execution_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("pipeline", sa.String(512), nullable=False),
    sa.Column("run_id", sa.String(512), nullable=False),
    sa.Column("decided_at", sa.Double, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("probability", sa.Double),
    sa.Column("saved_seconds", sa.Double, nullable=False),
    sa.Index("graphlets_summary_decision_by_pipeline", "pipeline", "decided_at"),
)

# The compute of one execution (that belongs to a pipeline and has a start time): what a day's
# figures are summed from. A refresh re-reading a window of runs replaces the rows of the
# executions it re-read and sums their days again from these rows.
execution = sa.Table(
    "graphlets_summary_execution", metadata,
    sa.Column("execution_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("pipeline", sa.String(512), nullable=False),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Double, nullable=False),
    sa.Column("outcome", sa.SmallInteger, nullable=False),  # graphlets.model.OUTCOME_*
    sa.Index("graphlets_summary_execution_by_day", "pipeline", "day"),
)

# The store's changes the last refresh read in its look-back margin (summary/changes.py,
# ChangeMarks): kind ("e" execution, "a" artifact, "c" pipeline created), id, time in ms.
seen_change = sa.Table(
    "graphlets_summary_seen_change", metadata,
    sa.Column("kind", sa.String(1), primary_key=True),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at_ms", sa.BigInteger, primary_key=True, autoincrement=False),
)

state = sa.Table(
    "graphlets_summary_state", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
)

DAY = 86400
