"""Build every graphlet of a :class:`~.provenance.Provenance` at once, with set operations.

Each walk step works on (graphlet, node) pairs for all graphlets together: expand the pairs
along an adjacency list, keep the new ones. A pipeline's DAG is a few levels deep, so a handful
of NumPy passes replace a Python traversal per model. The rules are those of
:mod:`.rules`; :mod:`.api_reader` applies the same rules one model at a time through MLMD's
API, and the tests hold the two to identical results.
"""

from __future__ import annotations

import numpy as np

from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.model import (
    FAILED,
    NOT_PUSHED,
    PUSHED,
    RUNNING,
    STATUS_INDEX,
    ExecutionTable,
    Extraction,
    GraphletTable,
    IdLists,
    execution_outcomes,
)
from airflow_graphlets.graphlets.provenance import NO_SPAN, NO_VALUE, Provenance
from airflow_graphlets.graphlets.sorted_sets import distinct, member
from airflow_graphlets.store import schema

_LIVE = 2  # MLMD Artifact.State.LIVE


class _Adjacency:
    """Compressed adjacency lists: for node ``i``, ``targets[offsets[i]:offsets[i + 1]]``."""

    def __init__(self, sources: np.ndarray, targets: np.ndarray, n_nodes: int) -> None:
        order = np.argsort(sources, kind="stable")
        self.targets = targets[order]
        self.offsets = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(sources, minlength=n_nodes), out=self.offsets[1:])

    def expand(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each neighbour of each node: (position of the node in ``nodes``, neighbour)."""
        starts = self.offsets[nodes]
        counts = self.offsets[nodes + 1] - starts
        position = np.repeat(np.arange(len(nodes), dtype=np.int64), counts)
        shift = (starts - (np.cumsum(counts) - counts))[position]  # where each node's list starts, minus its output offset
        return position, self.targets[np.arange(len(position), dtype=np.int64) + shift]


class _Pairs:
    """A set of (graphlet, node) pairs kept as sorted int64 keys ``graphlet * n + node``."""

    def __init__(self, n_nodes: int, keys: np.ndarray | None = None, *, already_distinct: bool = False) -> None:
        self.n = n_nodes
        if keys is None:
            keys = np.empty(0, dtype=np.int64)
        self.keys = keys if already_distinct else distinct(keys)

    @classmethod
    def of(cls, n_nodes: int, graphlet: np.ndarray, node: np.ndarray) -> _Pairs:
        return cls(n_nodes, graphlet.astype(np.int64) * n_nodes + node)

    @property
    def graphlet(self) -> np.ndarray:
        return self.keys // self.n

    @property
    def node(self) -> np.ndarray:
        return self.keys % self.n

    def where(self, mask_by_node: np.ndarray) -> _Pairs:
        return _Pairs(self.n, self.keys[mask_by_node[self.node]], already_distinct=True)

    def union(self, other: _Pairs) -> _Pairs:
        return _Pairs(self.n, np.concatenate([self.keys, other.keys]))

    def minus(self, other: _Pairs) -> _Pairs:
        return _Pairs(self.n, self.keys[~member(other.keys, self.keys)], already_distinct=True)

    def step(self, adjacency: _Adjacency, n_targets: int) -> _Pairs:
        """Pairs (graphlet, neighbour) for every neighbour of every node."""
        position, neighbours = adjacency.expand(self.node)
        return _Pairs.of(n_targets, self.graphlet[position], neighbours)

    def __len__(self) -> int:
        return len(self.keys)


def assemble(p: Provenance) -> Extraction:
    """Every graphlet of ``p``, and the execution table with each execution's outcome."""
    n_exec, n_art = len(p.exec_id), len(p.art_id)
    exec_kind = _by_type(p.exec_type, {t: rules.KIND_INDEX[rules.execution_kind(p.type_names[t], p.type_bases.get(t))] for t in p.type_names}, rules.KIND_INDEX["Other"]).astype(np.int8)
    art_flags = {
        name: _by_type(p.art_type, {t: test(p.type_names[t], p.type_bases.get(t)) for t in p.type_names}, False)
        for name, test in (
            ("span_type", rules.is_span_type),
            ("model", rules.is_model_type),
            ("model_side", rules.is_model_side_type),
            ("blessing", lambda n, b: n == schema.MODEL_BLESSING),
            ("infra", lambda n, b: n == schema.INFRA_BLESSING),
            ("pushed_model", lambda n, b: n == schema.PUSHED_MODEL),
        )
    }

    outputs = ~p.ev_input
    consumes = p.ev_input & ~p.ev_reference
    exec_inputs = _Adjacency(p.ev_exec[p.ev_input], p.ev_art[p.ev_input], n_exec)
    exec_outputs = _Adjacency(p.ev_exec[outputs], p.ev_art[outputs], n_exec)
    producers = _Adjacency(p.ev_art[outputs], p.ev_exec[outputs], n_art)
    consumers = _Adjacency(p.ev_art[consumes], p.ev_exec[consumes], n_art)

    # Spans: Examples an ingestion wrote (or that nothing in the store wrote: imported data).
    produced = np.zeros(n_art, dtype=bool)
    produced[p.ev_art[outputs]] = True
    ingested = np.zeros(n_art, dtype=bool)
    ingested[p.ev_art[outputs & (exec_kind[p.ev_exec] == rules.KIND_INDEX["ExampleGen"])]] = True
    is_span = art_flags["span_type"] & (ingested | ~produced)

    anchors = np.flatnonzero(np.isin(exec_kind, [rules.KIND_INDEX["Trainer"]]) & np.isin(p.exec_state, list(rules.ANCHOR_STATES)))
    n_graphlets = len(anchors)
    graphlet_ids = np.arange(n_graphlets, dtype=np.int64)
    trainers = _Pairs.of(n_exec, graphlet_ids, anchors)

    # Upstream: inputs to producers, level by level, never across model-side artifacts.
    up_execs, up_arts, frontier = trainers, _Pairs(n_art), trainers
    while len(frontier):
        arts = frontier.step(exec_inputs, n_art).where(~art_flags["model_side"]).minus(up_arts)
        up_arts = up_arts.union(arts)
        frontier = arts.step(producers, n_exec).minus(up_execs)
        up_execs = up_execs.union(frontier)
    spans = up_arts.where(is_span)

    # Analyses of the spans, and of what those analyses wrote (one hop more).
    is_analysis = np.isin(exec_kind, [rules.KIND_INDEX[k] for k in rules.ANALYSIS_KINDS])
    analysed = spans.step(consumers, n_exec).where(is_analysis)
    analysed = analysed.union(analysed.step(exec_outputs, n_art).step(consumers, n_exec).where(is_analysis))
    upstream = up_execs.union(analysed).minus(trainers)

    # Downstream: readers of the model (not as a baseline), then Pushers reading what they wrote.
    models = trainers.step(exec_outputs, n_art).where(art_flags["model"])
    is_downstream = np.isin(exec_kind, [rules.KIND_INDEX[k] for k in rules.DOWNSTREAM_KINDS])
    downstream = models.step(consumers, n_exec).where(is_downstream)
    is_pusher = exec_kind == rules.KIND_INDEX["Pusher"]
    downstream = downstream.union(downstream.step(exec_outputs, n_art).step(consumers, n_exec).where(is_pusher))
    downstream = downstream.minus(trainers).minus(upstream)

    blessed = _verdicts(downstream, exec_outputs, p.art_blessed, art_flags["blessing"], n_graphlets, n_art)
    infra = _verdicts(downstream, exec_outputs, p.art_blessed, art_flags["infra"], n_graphlets, n_art)
    pushed_at = _push_times(p, downstream.where(is_pusher), exec_outputs, art_flags["pushed_model"], n_graphlets)

    # Cost: durations in whole microseconds, so every reader sums them exactly alike.
    micros = np.rint(p.exec_duration * 1e6)
    members = upstream.union(trainers).union(downstream)
    member_g, member_e = members.graphlet, members.node
    cost = np.bincount(member_g, weights=micros[member_e], minlength=n_graphlets)
    n_kinds = len(rules.KINDS)
    cost_kind = np.bincount(member_g * n_kinds + exec_kind[member_e], weights=micros[member_e], minlength=n_graphlets * n_kinds).reshape(n_graphlets, n_kinds)
    down_end = np.full(n_graphlets, -np.inf)
    np.maximum.at(down_end, downstream.graphlet, p.exec_end[downstream.node])
    down_active = np.zeros(n_graphlets, dtype=bool)
    down_active[downstream.graphlet[np.isin(p.exec_state[downstream.node], list(rules.ACTIVE_STATES))]] = True

    trainer_state = p.exec_state[anchors]
    status = np.full(n_graphlets, STATUS_INDEX[NOT_PUSHED], dtype=np.int8)
    status[down_active | np.isin(trainer_state, list(rules.ACTIVE_STATES))] = STATUS_INDEX[RUNNING]
    status[trainer_state == rules.STATE_FAILED] = STATUS_INDEX[FAILED]
    status[np.isfinite(pushed_at)] = STATUS_INDEX[PUSHED]
    anchor_ids = p.exec_id[anchors]
    # Hashes not read (a summary's read): none computed either.
    props = [{} for _ in anchor_ids] if p.trainer_props is None else [p.trainer_props.get(int(t), {}) for t in anchor_ids]
    structure = {} if p.trainer_props is None else _structure_hashes(p, anchors, props)
    table = GraphletTable(
        pipelines=p.pipelines,
        kinds=rules.KINDS,
        pipeline=p.exec_pipeline[anchors].astype(np.int32),
        run=np.asarray([p.run_names.get(int(r)) for r in p.exec_run[anchors]], dtype=object),
        trainer_id=anchor_ids,
        trainer_state=np.asarray([rules.STATE_NAMES[s] for s in trainer_state], dtype=object),
        status=status,
        trainer_start=p.exec_start[anchors],
        trainer_end=p.exec_end[anchors],
        end=np.maximum(p.exec_end[anchors], down_end),
        cost_micros=cost.astype(np.int64),
        cost_by_kind_micros=cost_kind.astype(np.int64),
        blessed=blessed,
        infra_blessed=infra,
        pushed_at=np.where(np.isfinite(pushed_at), pushed_at, np.nan),
        code_hash=np.asarray([next((x[k] for k in rules.CODE_HASH_PROPERTIES if k in x), None) for x in props], dtype=object),
        structure_hash=np.asarray([x.get(rules.STRUCTURE_HASH_PROPERTY) or structure.get(g) for g, x in enumerate(props)], dtype=object),
        lists={
            "model_ids": IdLists.from_pairs(models.graphlet, p.art_id[models.node], n_graphlets),
            "span_artifact_ids": IdLists.from_pairs(spans.graphlet, p.art_id[spans.node], n_graphlets),
            "spans": _distinct_spans(spans.graphlet, p.art_span[spans.node], n_graphlets),
            "upstream_ids": IdLists.from_pairs(upstream.graphlet, p.exec_id[upstream.node], n_graphlets),
            "downstream_ids": IdLists.from_pairs(downstream.graphlet, p.exec_id[downstream.node], n_graphlets),
        },
    )
    table.link_pushes()
    executions = ExecutionTable(
        ids=p.exec_id,
        kind=exec_kind,
        pipeline=p.exec_pipeline.astype(np.int32),
        run=p.exec_run,
        start=p.exec_start,
        duration=micros / 1e6,
        outcome=execution_outcomes(n_exec, member_g, member_e, status),
    )
    return Extraction(p.store, p.schema_version, p.pipelines, table, executions,
                      run_logical_times=p.run_logical_times)


def _by_type(type_ids: np.ndarray, value_by_type: dict[int, object], default: object) -> np.ndarray:
    """Map each row's type id to a per-type value."""
    size = max([*value_by_type, int(type_ids.max()) if len(type_ids) else 0]) + 1
    lookup = np.full(size, default)
    for type_id, value in value_by_type.items():
        lookup[type_id] = value
    return lookup[type_ids] if len(type_ids) else np.empty(0, dtype=lookup.dtype)


def _verdicts(
    downstream: _Pairs, exec_outputs: _Adjacency, values: np.ndarray, of_type: np.ndarray, n_graphlets: int, n_art: int
) -> np.ndarray:
    """Per graphlet: 1 if any output of that type says 1, else 0 if any says 0, else NO_VALUE."""
    verdicts = downstream.step(exec_outputs, n_art).where(of_type)
    value = values[verdicts.node]
    known = value != NO_VALUE
    result = np.full(n_graphlets, NO_VALUE, dtype=np.int8)
    np.maximum.at(result, verdicts.graphlet[known], value[known])
    return result


def _push_times(
    p: Provenance, pushers: _Pairs, exec_outputs: _Adjacency, pushed_model: np.ndarray, n_graphlets: int
) -> np.ndarray:
    """Per graphlet: when its first push ended, +inf if it was never pushed.

    A PushedModel counts as a push when its ``pushed`` property is 1, or, having none, when it is
    LIVE (TFX marks a refused push ``pushed = 0`` explicitly).
    """
    position, arts = exec_outputs.expand(pushers.node)
    value = p.art_pushed[arts]
    is_push = pushed_model[arts] & ((value == 1) | ((value == NO_VALUE) & (p.art_state[arts] == _LIVE)))
    result = np.full(n_graphlets, np.inf)
    np.minimum.at(result, pushers.graphlet[position[is_push]], p.exec_end[pushers.node[position[is_push]]])
    return result


def _structure_hashes(p: Provenance, anchors: np.ndarray, props: list[dict[str, str]]) -> dict[int, str]:
    """Fingerprint of each trainer's run (its execution types), for trainers without one recorded."""
    wanted = {int(p.exec_run[row]) for row, x in zip(anchors, props) if not x.get(rules.STRUCTURE_HASH_PROPERTY)}
    wanted.discard(-1)
    if not wanted:
        return {}
    in_wanted = np.isin(p.exec_run, np.fromiter(wanted, dtype=np.int64))
    pairs = np.unique(np.stack([p.exec_run[in_wanted], p.exec_type[in_wanted]], axis=1), axis=0)
    names_by_run: dict[int, list[str]] = {}
    for run, type_id in pairs.tolist():
        names_by_run.setdefault(run, []).append(p.type_names[type_id])
    fingerprints = {run: rules.structure_fingerprint(names) for run, names in names_by_run.items()}
    return {g: fingerprints[int(p.exec_run[row])] for g, row in enumerate(anchors) if int(p.exec_run[row]) in fingerprints}


def _distinct_spans(graphlet: np.ndarray, spans: np.ndarray, n_graphlets: int) -> IdLists:
    known = spans != NO_SPAN
    low = int(spans[known].min(initial=0))
    width = int(spans[known].max(initial=0)) - low + 1
    keys = distinct(graphlet[known] * width + (spans[known] - low))
    return IdLists.from_pairs(keys // width, keys % width + low, n_graphlets)


