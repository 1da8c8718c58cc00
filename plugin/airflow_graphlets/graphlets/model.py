"""What extraction produces: a :class:`GraphletTable` (one row per trained model) and a cost table.

A model graphlet (Xin et al., SIGMOD 2021) is the provenance subgraph of one trained model. Ours,
for a trainer execution ``t`` (``docs/graphlets.md`` gives the reasons behind each choice):

* **upstream**: every execution ``t`` depends on, walking inputs to their producers, without
  crossing model-side artifacts (models, blessings, pushes, evaluations, analyzer caches), plus
  the analysis executions (StatisticsGen, SchemaGen, ExampleValidator) that read one of its spans
  or read what such an analysis wrote;
* **input spans**: the Examples artifacts met upstream that an ingestion (ExampleGen) wrote;
* **model**: ``t``'s Model outputs; **downstream**: executions reading the model other than as a
  baseline or warm start (Evaluator, InfraValidator, Pusher), and Pushers reading what they wrote.

At paper scale (450,000 graphlets) the table keeps columns and id lists as NumPy arrays; a
:class:`Graphlet` record is made on demand, one row at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# What became of a graphlet (GraphletTable.status holds the index).
PUSHED = "pushed"
NOT_PUSHED = "not_pushed"  # trained, then not blessed or not pushed
FAILED = "failed"  # the trainer failed
RUNNING = "running"  # the trainer or its validation is still running
STATUSES = (PUSHED, NOT_PUSHED, FAILED, RUNNING)
STATUS_INDEX = {s: i for i, s in enumerate(STATUSES)}

# What an execution's compute went to (ExecutionTable.outcome).
OUTCOME_PUSHED = 0  # part of at least one graphlet whose model was pushed
OUTCOME_WASTED = 1  # part of graphlets only, all finished, none pushed
OUTCOME_PENDING = 2  # part of a graphlet still running, none pushed yet
OUTCOME_UNATTRIBUTED = 3  # part of no graphlet (data-only runs, other operators)
OUTCOME_NAMES = ("pushed", "wasted", "pending", "unattributed")

# Id lists each graphlet holds, as (offsets, values) pairs in the table.
ID_LISTS = ("model_ids", "span_artifact_ids", "spans", "upstream_ids", "downstream_ids")


@dataclass(frozen=True)
class Graphlet:
    """One model graphlet. Times are seconds since the Unix epoch; costs are seconds."""

    pipeline: str
    run: str | None
    trainer_id: int
    trainer_state: str
    status: str
    model_ids: tuple[int, ...]
    span_artifact_ids: tuple[int, ...]
    spans: tuple[int, ...]  # distinct span numbers, ascending
    upstream_ids: tuple[int, ...]
    downstream_ids: tuple[int, ...]
    trainer_start: float
    trainer_end: float
    end: float  # latest end of the trainer and its downstream executions
    cost_seconds: float  # all member executions, shared ones included
    cost_by_kind: tuple[tuple[str, float], ...]
    blessed: bool | None  # None: no evaluation blessed or rejected the model
    infra_blessed: bool | None
    pushed: bool
    pushed_at: float | None
    code_hash: str | None
    structure_hash: str | None
    previous_pushed_trainer_id: int | None  # last graphlet of the pipeline pushed before this one began

    @property
    def execution_ids(self) -> tuple[int, ...]:
        """Every member execution: upstream, trainer and downstream, ascending."""
        return tuple(sorted((*self.upstream_ids, self.trainer_id, *self.downstream_ids)))


@dataclass
class IdLists:
    """One variable-length id list per graphlet: ``values[offsets[g]:offsets[g + 1]]``."""

    offsets: np.ndarray  # int64, len = graphlets + 1
    values: np.ndarray  # int64

    @classmethod
    def from_pairs(cls, graphlet: np.ndarray, values: np.ndarray, n: int) -> IdLists:
        """From (graphlet, value) pairs sorted by graphlet."""
        return cls(np.searchsorted(graphlet, np.arange(n + 1)).astype(np.int64), np.asarray(values, dtype=np.int64))

    @classmethod
    def from_tuples(cls, lists: list[tuple[int, ...]]) -> IdLists:
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in lists], out=offsets[1:])
        return cls(offsets, np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(offsets[-1])))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owner(self) -> np.ndarray:
        """For each value, the graphlet it belongs to."""
        return np.repeat(np.arange(len(self.offsets) - 1), self.lengths())

    def row(self, g: int) -> tuple[int, ...]:
        return tuple(self.values[self.offsets[g] : self.offsets[g + 1]].tolist())


@dataclass
class GraphletTable:
    """Every graphlet of a store as columns, ordered by trainer execution id."""

    pipelines: tuple[str, ...]
    kinds: tuple[str, ...]
    pipeline: np.ndarray  # int32 index into pipelines, -1: in no pipeline
    run: np.ndarray  # object: run context name or None
    trainer_id: np.ndarray  # int64
    trainer_state: np.ndarray  # object: MLMD state name
    status: np.ndarray  # int8 index into STATUSES
    trainer_start: np.ndarray  # float64
    trainer_end: np.ndarray  # float64
    end: np.ndarray  # float64
    cost_micros: np.ndarray  # int64, cost in whole microseconds
    cost_by_kind_micros: np.ndarray  # int64 [graphlet, kind]
    blessed: np.ndarray  # int8: 1, 0, -1 unknown
    infra_blessed: np.ndarray  # int8
    pushed_at: np.ndarray  # float64, NaN when not pushed
    code_hash: np.ndarray  # object
    structure_hash: np.ndarray  # object
    lists: dict[str, IdLists]
    previous_pushed: np.ndarray = field(default=None)  # int64 trainer id, -1 none; filled by link_pushes

    def __len__(self) -> int:
        return len(self.trainer_id)

    @classmethod
    def from_rows(cls, rows: list[dict], pipelines: tuple[str, ...], kinds: tuple[str, ...]) -> GraphletTable:
        """Build a table from one dict per graphlet (how the reference reader assembles it).

        Each dict holds the column names of this class, with ``pipeline`` an index, ``status`` a
        name, ``cost_by_kind_micros`` a {kind: micros} dict, and each id list a tuple.
        """
        column = lambda name, dtype: np.asarray([r[name] for r in rows], dtype=dtype)
        by_kind = np.zeros((len(rows), len(kinds)), dtype=np.int64)
        for g, row in enumerate(rows):
            for kind, micros in row["cost_by_kind_micros"].items():
                by_kind[g, kinds.index(kind)] = micros
        table = cls(
            pipelines=pipelines,
            kinds=kinds,
            pipeline=column("pipeline", np.int32),
            run=column("run", object),
            trainer_id=column("trainer_id", np.int64),
            trainer_state=column("trainer_state", object),
            status=np.asarray([STATUS_INDEX[r["status"]] for r in rows], dtype=np.int8),
            trainer_start=column("trainer_start", np.float64),
            trainer_end=column("trainer_end", np.float64),
            end=column("end", np.float64),
            cost_micros=column("cost_micros", np.int64),
            cost_by_kind_micros=by_kind,
            blessed=column("blessed", np.int8),
            infra_blessed=column("infra_blessed", np.int8),
            pushed_at=column("pushed_at", np.float64),
            code_hash=column("code_hash", object),
            structure_hash=column("structure_hash", object),
            lists={name: IdLists.from_tuples([r[name] for r in rows]) for name in ID_LISTS},
        )
        table.link_pushes()
        return table

    @property
    def pushed(self) -> np.ndarray:
        return self.status == STATUS_INDEX[PUSHED]

    def record(self, g: int) -> Graphlet:
        """Row ``g`` as a :class:`Graphlet`."""
        previous = int(self.previous_pushed[g])
        pushed = bool(self.status[g] == STATUS_INDEX[PUSHED])
        return Graphlet(
            pipeline=self.pipelines[self.pipeline[g]] if self.pipeline[g] >= 0 else "",
            run=self.run[g],
            trainer_id=int(self.trainer_id[g]),
            trainer_state=self.trainer_state[g],
            status=STATUSES[self.status[g]],
            **{name: self.lists[name].row(g) for name in ID_LISTS},
            trainer_start=float(self.trainer_start[g]),
            trainer_end=float(self.trainer_end[g]),
            end=float(self.end[g]),
            cost_seconds=int(self.cost_micros[g]) / 1e6,
            cost_by_kind=tuple((self.kinds[k], int(v) / 1e6) for k, v in enumerate(self.cost_by_kind_micros[g]) if v),
            blessed=None if self.blessed[g] < 0 else bool(self.blessed[g]),
            infra_blessed=None if self.infra_blessed[g] < 0 else bool(self.infra_blessed[g]),
            pushed=pushed,
            pushed_at=float(self.pushed_at[g]) if pushed else None,
            code_hash=self.code_hash[g],
            structure_hash=self.structure_hash[g],
            previous_pushed_trainer_id=previous if previous >= 0 else None,
        )

    def records(self) -> list[Graphlet]:
        """Every row as a :class:`Graphlet` (fine for thousands; use the columns for more)."""
        return [self.record(g) for g in range(len(self))]

    def link_pushes(self) -> None:
        """Fill ``previous_pushed``: for each graphlet, the pipeline's last push before it began."""
        n = len(self)
        self.previous_pushed = np.full(n, -1, dtype=np.int64)
        pushed = np.flatnonzero(self.pushed)
        if not n or not len(pushed):
            return
        # One sorted key per (pipeline, millisecond): a push precedes a graphlet of its pipeline
        # when its key is smaller. Times are whole milliseconds, so the keys are exact.
        first = min(float(np.nanmin(self.pushed_at[pushed])), float(self.trainer_start.min()))
        last = max(float(np.nanmax(self.pushed_at[pushed])), float(self.trainer_start.max()))
        width = int(np.rint((last - first) * 1000)) + 2
        key = lambda pipeline, t: (pipeline.astype(np.int64) + 1) * width + np.rint((t - first) * 1000).astype(np.int64)
        order = np.lexsort((self.trainer_id[pushed], self.pushed_at[pushed], self.pipeline[pushed]))
        pushes = pushed[order]
        push_keys = key(self.pipeline[pushes], self.pushed_at[pushes])
        before = np.searchsorted(push_keys, key(self.pipeline, self.trainer_start), side="left") - 1
        same = (before >= 0) & (self.pipeline[pushes[np.maximum(before, 0)]] == self.pipeline)
        self.previous_pushed = np.where(same, self.trainer_id[pushes[np.maximum(before, 0)]], -1)


@dataclass
class ExecutionTable:
    """Every execution of the store as columns: what it cost and what its compute went to."""

    ids: np.ndarray  # int64, ascending
    kind: np.ndarray  # int8 index into rules.KINDS
    pipeline: np.ndarray  # int32 index into Extraction.pipelines, -1 when in no pipeline
    run: np.ndarray  # int64 MLMD id of its pipeline-run context, -1 when in none
    start: np.ndarray  # float64 epoch seconds
    duration: np.ndarray  # float64 seconds
    outcome: np.ndarray  # int8, OUTCOME_*

    def __len__(self) -> int:
        return len(self.ids)

    def equals(self, other: ExecutionTable) -> bool:
        """Whether two tables hold the same rows (durations compared to the microsecond)."""
        return (
            np.array_equal(self.ids, other.ids)
            and np.array_equal(self.kind, other.kind)
            and np.array_equal(self.pipeline, other.pipeline)
            and np.array_equal(self.run, other.run)
            and np.allclose(self.start, other.start, rtol=0, atol=1e-6)
            and np.allclose(self.duration, other.duration, rtol=0, atol=1e-6)
            and np.array_equal(self.outcome, other.outcome)
        )


@dataclass
class Extraction:
    """Everything a reader found in one store."""

    store: str
    schema_version: int
    pipelines: tuple[str, ...]
    graphlets: GraphletTable
    executions: ExecutionTable
    reader: str = "bulk"
    # Run context id -> the run's logical date (epoch seconds), where the recorder wrote one.
    run_logical_times: dict[int, float] = field(default_factory=dict)


def execution_outcomes(
    n_executions: int, member_graphlet: np.ndarray, member_execution: np.ndarray, status: np.ndarray
) -> np.ndarray:
    """Label each execution with what its compute went to (``OUTCOME_*``).

    Args:
      n_executions: rows of the execution table.
      member_graphlet: for each (graphlet, execution) membership, the graphlet's row.
      member_execution: the execution's row, same length.
      status: each graphlet's status index (``STATUS_INDEX``).
    """
    pushed = status[member_graphlet] == STATUS_INDEX[PUSHED]
    running = status[member_graphlet] == STATUS_INDEX[RUNNING]
    outcome = np.full(n_executions, OUTCOME_UNATTRIBUTED, dtype=np.int8)
    outcome[member_execution] = OUTCOME_WASTED
    outcome[member_execution[running]] = OUTCOME_PENDING
    outcome[member_execution[pushed]] = OUTCOME_PUSHED
    return outcome
