"""Signals the bulk graphlet reader does not carry: the drift each span's ExampleValidator
reported (the ``feature_drift`` property of ``ExampleAnomalies``, written by the example DAGs
and by ``graphlets simulate``), per pipeline and span. One read-only query over MLMD's tables."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.graphlets.bulk_queries import ints
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig

DRIFT_PROPERTY = "feature_drift"

_DRIFT_SQL = (
    "SELECT c.name, s.int_value, COALESCE(d.double_value, d.int_value) "
    "FROM Artifact a "
    "JOIN Type t ON t.id = a.type_id AND t.name = :anomalies "
    "JOIN ArtifactProperty s ON s.artifact_id = a.id AND s.name = 'span' "
    "JOIN ArtifactProperty d ON d.artifact_id = a.id AND d.name = :drift "
    "JOIN Attribution b ON b.artifact_id = a.id "
    "JOIN Context c ON c.id = b.context_id "
)
_OF_PIPELINES = "JOIN Type ct ON ct.id = c.type_id AND ct.name = :pipeline"
_ONE_PIPELINE = " WHERE c.name = :name"


def span_drift(config: StoreConfig, pipeline: str | None = None, runs: Sequence[int] | None = None,
               engine: Engine | None = None) -> dict[tuple[str, int], float]:
    """``(pipeline, span) -> drift`` for every span whose validator reported one (the latest
    wins), of one pipeline or of all; with ``runs`` (``pipeline_run`` context ids of
    ``pipeline``), only what those runs' validators reported. ``engine``: an open read-only engine
    to use (see :func:`~airflow_graphlets.store.inspect.reading`)."""
    if runs is None:
        query = _DRIFT_SQL + _OF_PIPELINES + ("" if pipeline is None else _ONE_PIPELINE)
    elif pipeline is None:
        raise ValueError("drift of some runs is read for one named pipeline: pass pipeline too")
    else:  # the runs' own attributions: a few rows, where the pipeline's are all of its history
        query = _DRIFT_SQL + f"WHERE c.id IN ({ints(runs)})"
    with reading(config, engine, point_reads=runs is not None) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text(query + " ORDER BY a.id"), {
            "anomalies": schema.EXAMPLE_ANOMALIES, "drift": DRIFT_PROPERTY, "pipeline": schema.PIPELINE_CONTEXT,
            "name": pipeline}).all()
    named = (lambda _: pipeline) if runs is not None else str
    return {(named(name), int(span)): float(drift) for name, span, drift in rows
            if span is not None and drift is not None}
