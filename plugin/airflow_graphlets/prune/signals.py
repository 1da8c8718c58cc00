"""Signals the bulk graphlet reader does not carry: the drift each span's ExampleValidator
reported (the ``feature_drift`` property of ``ExampleAnomalies``, written by the example DAGs
and by ``graphlets simulate``), per pipeline and span. One read-only query over MLMD's tables."""

from __future__ import annotations

import sqlalchemy as sa

from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import read_only_engine
from airflow_graphlets.store.uri import StoreConfig

DRIFT_PROPERTY = "feature_drift"

_DRIFT_SQL = sa.text(
    "SELECT c.name, s.int_value, COALESCE(d.double_value, d.int_value) "
    "FROM Artifact a "
    "JOIN Type t ON t.id = a.type_id AND t.name = :anomalies "
    "JOIN ArtifactProperty s ON s.artifact_id = a.id AND s.name = 'span' "
    "JOIN ArtifactProperty d ON d.artifact_id = a.id AND d.name = :drift "
    "JOIN Attribution b ON b.artifact_id = a.id "
    "JOIN Context c ON c.id = b.context_id "
    "JOIN Type ct ON ct.id = c.type_id AND ct.name = :pipeline"
)
_ONE_PIPELINE = " WHERE c.name = :name"


def span_drift(config: StoreConfig, pipeline: str | None = None) -> dict[tuple[str, int], float]:
    """``(pipeline, span) -> drift`` for every span whose validator reported one (the latest
    wins), of one pipeline or of all."""
    query = _DRIFT_SQL if pipeline is None else sa.text(_DRIFT_SQL.text + _ONE_PIPELINE)
    engine = read_only_engine(config)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"anomalies": schema.EXAMPLE_ANOMALIES, "drift": DRIFT_PROPERTY,
                                        "pipeline": schema.PIPELINE_CONTEXT, "name": pipeline}).all()
    finally:
        engine.dispose()
    return {(str(name), int(span)): float(drift) for name, span, drift in rows if span is not None and drift is not None}
