"""The bulk reader's query results turned into :class:`~.provenance.Provenance` columns: ids
mapped to rows, properties and times placed, events kept to the executions and artifacts read."""

from __future__ import annotations

import numpy as np

from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.provenance import NO_SPAN, NO_VALUE, Provenance, execution_times
from airflow_graphlets.graphlets.sorted_sets import distinct, member
from airflow_graphlets.store import schema


def provenance_of(store: str, version: int, type_names: dict[int, str], type_bases: dict[int, str | None],
                  pipeline_rows: list[tuple[int, str]], results: dict[str, list]) -> Provenance:
    """The provenance graph from the bulk reader's query results (by query name; emptied as
    they are used). ``pipeline_rows``: (context id, name) of the pipelines read, in order."""
    # Results are dropped as they are used: at paper scale each is hundreds of MB.
    exec_id, exec_type, exec_state, created, updated, *times = results.pop("executions")
    bookkeeping = [i for i, n in type_names.items() if n in schema.BOOKKEEPING_EXECUTION_TYPES]
    if bookkeeping:  # our own records (gate overrides) are no pipeline's executions
        keep = ~np.isin(exec_type, bookkeeping)
        exec_id, exec_type, exec_state, created, updated, *times = (
            column[keep] for column in (exec_id, exec_type, exec_state, created, updated, *times))
    exec_row = _RowIndex(exec_id)
    if "execution_times" in results:  # read apart from the executions (see bulk_queries)
        times = [np.full(len(exec_id), np.nan), np.full(len(exec_id), np.nan)]
        owner, is_end, value = results.pop("execution_times")
        rows = exec_row(owner)
        for which in (0, 1):
            pick = (rows >= 0) & (is_end == which)
            times[which][rows[pick]] = value[pick]
    start, end, duration = execution_times(created, updated, *times)

    pipeline_ids = np.asarray([i for i, _ in pipeline_rows], dtype=np.int64)
    pipeline_row = _RowIndex(pipeline_ids, sorted_ids=False)
    exec_pipeline = np.full(len(exec_id), -1, dtype=np.int32)
    e, c = results.pop("pipelines")
    rows, found = exec_row(e), pipeline_row(c)
    keep = (rows >= 0) & (found >= 0)
    exec_pipeline[rows[keep]] = found[keep]
    exec_run = np.full(len(exec_id), -1, dtype=np.int64)
    e, c = results.pop("runs")
    rows = exec_row(e)
    exec_run[rows[rows >= 0]] = c[rows >= 0]
    wanted_runs = set(distinct(exec_run[exec_run >= 0]).tolist())
    run_names = {int(i): n for i, n in results.pop("run_names") if int(i) in wanted_runs}
    run_logical_times = {int(i): float(t) for i, t in results.pop("run_logical_times")
                         if int(i) in wanted_runs and t is not None}
    trainer_props: dict[int, dict[str, str]] | None = None
    if (hashes := results.pop("trainer_properties")) is not None:
        trainer_props = {}
        for execution_id, name, value in hashes:
            if value is not None:
                trainer_props.setdefault(int(execution_id), {})[name] = value

    art_id, art_type, art_state = results.pop("artifacts")
    art_row = _RowIndex(art_id)
    art_span, art_blessed, art_pushed = _artifact_properties(art_row, len(art_id), *results.pop("artifact_properties"))

    ev_art_id, ev_exec_id, ev_type = results.pop("events")
    ev_art, ev_exec = art_row(ev_art_id), exec_row(ev_exec_id)
    del ev_art_id, ev_exec_id
    is_input = np.isin(ev_type, list(rules.INPUT_EVENT_TYPES))
    keep = (ev_art >= 0) & (ev_exec >= 0) & (is_input | np.isin(ev_type, list(rules.OUTPUT_EVENT_TYPES)))
    ev_art, ev_exec, ev_input = ev_art[keep], ev_exec[keep], is_input[keep]
    ref_art, ref_exec = results.pop("references")
    n_exec = max(len(exec_id), 1)
    references = art_row(ref_art).astype(np.int64) * n_exec + exec_row(ref_exec)
    ev_reference = ev_input & member(distinct(references), ev_art.astype(np.int64) * n_exec + ev_exec)

    return Provenance(
        store=store,
        schema_version=version,
        type_names=type_names,
        type_bases=type_bases,
        pipelines=tuple(n for _, n in pipeline_rows),
        run_names=run_names,
        run_logical_times=run_logical_times,
        exec_id=exec_id,
        exec_type=exec_type,
        exec_state=exec_state,
        exec_start=start,
        exec_end=end,
        exec_duration=duration,
        exec_pipeline=exec_pipeline,
        exec_run=exec_run,
        trainer_props=trainer_props,
        art_id=art_id,
        art_type=art_type,
        art_state=np.nan_to_num(art_state).astype(np.int8),
        art_span=art_span,
        art_blessed=art_blessed,
        art_pushed=art_pushed,
        ev_art=ev_art,
        ev_exec=ev_exec,
        ev_input=ev_input,
        ev_reference=ev_reference,
    )


class _RowIndex:
    """Maps MLMD ids to rows of an id column: a dense table when ids are dense, else a search."""

    def __init__(self, ids: np.ndarray, sorted_ids: bool = True) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        top = int(self.ids.max(initial=-1))
        self.dense = None
        if len(self.ids) and top < 4 * len(self.ids) + 1024:
            self.dense = np.full(top + 1, -1, dtype=np.int32)  # rows fit in 32 bits; halves the events' memory
            self.dense[self.ids] = np.arange(len(self.ids), dtype=np.int32)
        elif not sorted_ids:
            self.order = np.argsort(self.ids)
            self.sorted = self.ids[self.order]
        self.is_sorted = sorted_ids

    def __call__(self, wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(wanted), -1, dtype=np.int32)
        if self.dense is not None:
            inside = (wanted >= 0) & (wanted < len(self.dense))
            return np.where(inside, self.dense[np.where(inside, wanted, 0)], -1)
        ids = self.ids if self.is_sorted else self.sorted
        pos = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        found = np.where(ids[pos] == wanted, pos, -1)
        if not self.is_sorted:
            found = np.where(found >= 0, self.order[np.maximum(found, 0)], -1)
        return found.astype(np.int32)


def _artifact_properties(art_row: _RowIndex, n: int, owner, which, custom, value) -> tuple[np.ndarray, ...]:
    """Span, blessed and pushed per artifact row; a typed property beats a custom one."""
    rows = art_row(owner)
    columns = [np.full(n, np.nan) for _ in range(3)]
    for is_custom in (1, 0):  # custom first, so typed values overwrite them
        for k in range(3):
            pick = (rows >= 0) & (which == k) & (custom == is_custom) & ~np.isnan(value)
            columns[k][rows[pick]] = value[pick]
    span, blessed, pushed = columns
    return (
        np.where(np.isnan(span), NO_SPAN, np.nan_to_num(span)).astype(np.int64),
        np.where(np.isnan(blessed), NO_VALUE, blessed == 1).astype(np.int8),
        np.where(np.isnan(pushed), NO_VALUE, pushed == 1).astype(np.int8),
    )
