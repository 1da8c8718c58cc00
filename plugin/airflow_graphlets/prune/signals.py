"""What the gate learns from besides graphlets, read from the store (read-only):

- :func:`span_drift`: the drift each span's ExampleValidator reported (the ``feature_drift``
  property of ``ExampleAnomalies``, written by the example DAGs and by ``graphlets simulate``);
- :func:`run_signals`: what each run's DAG handed its gate before training (the gate's
  ``graphlets_signals`` property, :mod:`.features.signals`);
- :func:`evaluator_bars`: the bar each run's evaluator set (TFX's ``eval_config``, :mod:`.evaluator_bar`);
- :func:`span_statistics`: each span's statistics, from the files its ExampleStatistics
  artifact points at (TFDV's format, :mod:`.span_statistics`), and how many were readable.

Each is one query over MLMD's tables, for one pipeline (and some of its runs) or all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_graphlets.graphlets import rules
from airflow_graphlets.graphlets.bulk_queries import ints
from airflow_graphlets.prune.evaluator_bar import EVAL_CONFIG_PROPERTY, EvaluatorBar, parse_eval_config
from airflow_graphlets.prune.span_statistics import SpanStatistics, SpanStatisticsIndex, read_statistics
from airflow_graphlets.store import schema
from airflow_graphlets.store.inspect import reading
from airflow_graphlets.store.uri import StoreConfig

DRIFT_PROPERTY = "feature_drift"
SIGNALS_PROPERTY = schema.GATE_SIGNALS_PROPERTY  # on the gate's execution: JSON {name: value}

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
# Of some runs of a pipeline (the gate's window): the runs' own attributions, and no join that
# names the pipeline (the runs are its own): each joined table costs PostgreSQL planning time,
# and a decision runs this query every time (3.7 ms with the pipeline's joins, 1.9 ms without).
_RUNS_DRIFT_SQL = (
    "SELECT s.int_value, COALESCE(d.double_value, d.int_value) "
    "FROM Attribution b "
    "JOIN Artifact a ON a.id = b.artifact_id "
    "JOIN Type t ON t.id = a.type_id AND t.name = :anomalies "
    "JOIN ArtifactProperty s ON s.artifact_id = a.id AND s.name = 'span' "
    "JOIN ArtifactProperty d ON d.artifact_id = a.id AND d.name = :drift "
    "WHERE b.context_id IN ({runs}) ORDER BY a.id"
)


def span_drift(config: StoreConfig, pipeline: str | None = None, runs: Sequence[int] | None = None,
               engine: Engine | None = None) -> dict[tuple[str, int], float]:
    """``(pipeline, span) -> drift`` for every span whose validator reported one (the latest
    wins), of one pipeline or of all; with ``runs`` (``pipeline_run`` context ids of
    ``pipeline``), only what those runs' validators reported. ``engine``: an open read-only engine
    to use (see :func:`~airflow_graphlets.store.inspect.reading`)."""
    params = {"anomalies": schema.EXAMPLE_ANOMALIES, "drift": DRIFT_PROPERTY}
    if runs is None:
        query = _DRIFT_SQL + _OF_PIPELINES + ("" if pipeline is None else _ONE_PIPELINE) + " ORDER BY a.id"
        params |= {"pipeline": schema.PIPELINE_CONTEXT, "name": pipeline}
    elif pipeline is None:
        raise ValueError("drift of some runs is read for one named pipeline: pass pipeline too")
    else:  # the runs' own attributions: a few rows, where the pipeline's are all of its history
        query = _RUNS_DRIFT_SQL.format(runs=ints(runs))
    with reading(config, engine, point_reads=runs is not None) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text(query), params).all()
    if runs is not None:
        return {(pipeline, int(span)): float(drift) for span, drift in rows if span is not None and drift is not None}
    return {(str(name), int(span)): float(drift) for name, span, drift in rows if span is not None and drift is not None}


# A property of executions in run contexts, with the run's pipeline.
_RUN_PROPERTY_SQL = (
    "SELECT pc.name, rc.name, p.name, p.string_value FROM ExecutionProperty p "
    "JOIN Association a ON a.execution_id = p.execution_id "
    "JOIN Context rc ON rc.id = a.context_id "
    "JOIN Type rt ON rt.id = rc.type_id "
    "JOIN ParentContext par ON par.context_id = rc.id "
    "JOIN Context pc ON pc.id = par.parent_context_id "
    "JOIN Type pt ON pt.id = pc.type_id AND pt.name = :pipeline "
    "WHERE p.name IN ({names}) AND rt.name IN ({run_types})"
)
# Each span's statistics artifacts, with the pipeline (or run) they are attributed to.
_STATISTICS_SQL = (
    "SELECT c.name, s.int_value, a.uri FROM Artifact a "
    "JOIN Type t ON t.id = a.type_id AND t.name = :statistics "
    "JOIN ArtifactProperty s ON s.artifact_id = a.id AND s.name = 'span' "
    "JOIN Attribution b ON b.artifact_id = a.id "
    "JOIN Context c ON c.id = b.context_id "
)


def run_signals(config: StoreConfig, pipeline: str | None = None, runs: Sequence[int] | None = None,
                engine: Engine | None = None) -> dict[tuple[str, str], dict[str, float]]:
    """``(pipeline, run context name) -> {signal: value}``: what each run's DAG handed its gate
    before training (:data:`SIGNALS_PROPERTY`, a JSON object; only its finite numbers count).
    Runs without a gate, or whose gate was handed nothing, are absent.

    Args:
      pipeline: one pipeline's runs only.
      runs: with ``pipeline``, only these ``pipeline_run`` context ids.
      engine: an open read-only engine to use.
    """
    return _reports(config, (SIGNALS_PROPERTY,), pipeline, runs, engine)[0]


def evaluator_bars(config: StoreConfig, pipeline: str | None = None, runs: Sequence[int] | None = None,
                   engine: Engine | None = None) -> dict[tuple[str, str], EvaluatorBar]:
    """``(pipeline, run context name) -> EvaluatorBar`` of each run whose evaluator kept an
    ``eval_config`` that sets a threshold; arguments as :func:`run_signals`."""
    return _reports(config, (EVAL_CONFIG_PROPERTY,), pipeline, runs, engine)[1]


def signals_and_bars(config: StoreConfig, pipeline: str, runs: Sequence[int] | None = None,
                     engine: Engine | None = None
                     ) -> tuple[dict[tuple[str, str], dict[str, float]], dict[tuple[str, str], EvaluatorBar]]:
    """:func:`run_signals` and :func:`evaluator_bars` of one pipeline, read in one statement (the
    gate reads both on every decision)."""
    return _reports(config, (SIGNALS_PROPERTY, EVAL_CONFIG_PROPERTY), pipeline, runs, engine)


def window_signals_and_bars(config: StoreConfig, pipeline: str, run_of_execution: Mapping[int, str],
                            engine: Engine | None = None
                            ) -> tuple[dict[tuple[str, str], dict[str, float]], dict[tuple[str, str], EvaluatorBar]]:
    """:func:`signals_and_bars` of the executions of a window of one pipeline's runs, already read
    (execution id -> its run's context name): their properties are looked up by execution id,
    which PostgreSQL answers from the primary key (1.2 ms for 60 runs, where walking the runs'
    associations probed each execution and took 4.5 ms)."""
    signals: dict[tuple[str, str], dict[str, float]] = {}
    bars: dict[tuple[str, str], EvaluatorBar] = {}
    if not run_of_execution:
        return signals, bars
    with reading(config, engine, point_reads=True) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT execution_id, name, string_value FROM ExecutionProperty WHERE execution_id IN "
            f"({ints(run_of_execution)}) AND name IN (:signals, :eval_config) ORDER BY execution_id"),
            {"signals": SIGNALS_PROPERTY, "eval_config": EVAL_CONFIG_PROPERTY}).all()
    for execution, name, text in rows:
        key = (pipeline, run_of_execution[int(execution)])
        if name == SIGNALS_PROPERTY:
            signals.setdefault(key, {}).update(_parse_signals(text))
        elif (bar := parse_eval_config(text)) is not None:
            bars[key] = bar
    return signals, bars


def _reports(config: StoreConfig, names: tuple[str, ...], pipeline: str | None, runs: Sequence[int] | None,
             engine: Engine | None
             ) -> tuple[dict[tuple[str, str], dict[str, float]], dict[tuple[str, str], EvaluatorBar]]:
    """The signals and evaluator bars among the run executions' properties ``names``."""
    signals: dict[tuple[str, str], dict[str, float]] = {}
    bars: dict[tuple[str, str], EvaluatorBar] = {}
    for key, name, text in _run_properties(config, names, pipeline, runs, engine):
        if name == SIGNALS_PROPERTY:
            signals.setdefault(key, {}).update(_parse_signals(text))
        elif (bar := parse_eval_config(text)) is not None:
            bars[key] = bar
    return signals, bars


def _run_properties(config: StoreConfig, names: tuple[str, ...], pipeline: str | None, runs: Sequence[int] | None,
                    engine: Engine | None) -> list[tuple[tuple[str, str], str, str | None]]:
    """((pipeline, run name), property name, string value) of the run executions' properties
    ``names``, oldest first."""
    query = _RUN_PROPERTY_SQL.format(run_types=", ".join(f"'{t}'" for t in rules.RUN_CONTEXT_TYPES),
                                     names=", ".join(f":property_{i}" for i in range(len(names))))
    params = {"pipeline": schema.PIPELINE_CONTEXT, **{f"property_{i}": n for i, n in enumerate(names)}}
    if pipeline is not None:
        query += " AND pc.name = :name"
        params["name"] = pipeline
    if runs is not None:
        query += f" AND rc.id IN ({ints(runs)})"
    with reading(config, engine, point_reads=runs is not None) as engine, engine.connect() as conn:
        rows = conn.execute(sa.text(query + " ORDER BY p.execution_id"), params).all()
    return [((str(pipeline_name), str(run_name)), str(prop), text) for pipeline_name, run_name, prop, text in rows]


def _parse_signals(text: str | None) -> dict[str, float]:
    """Numeric values of a signals document; anything else in it is ignored."""
    try:
        document = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    parsed = {}
    for name, value in document.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            parsed[str(name)] = float(value)
    return parsed


@dataclass
class StatisticsFound:
    """Span statistics by pipeline, and what could not be read."""

    by_pipeline: dict[str, SpanStatisticsIndex] = field(default_factory=dict)
    artifacts: int = 0  # ExampleStatistics artifacts with a span
    readable: int = 0
    first_problem: str | None = None  # why the first unreadable one was not read

    def describe(self) -> str:
        """One line for reports: how many spans' statistics the drift features could read."""
        if self.artifacts == 0:
            return "no ExampleStatistics artifact with a span: statistics_drift is unknown"
        said = f"{self.readable} of {self.artifacts} ExampleStatistics artifacts readable"
        return said if self.first_problem is None else f"{said} (first unreadable: {self.first_problem})"


def _spans_statistics_rows(conn: sa.Connection, pipeline: str, spans: Sequence[int]) -> list[tuple]:
    """``(pipeline, span, uri)`` of the ExampleStatistics artifacts of some spans of one pipeline,
    in three index look-ups: one join would let PostgreSQL's planner walk every artifact of the
    pipeline (160 ms with 10,000 graphlets) instead of the few of these spans (under 1 ms)."""
    if not spans:
        return []
    context = conn.execute(sa.text(
        "SELECT c.id FROM Context c JOIN Type ct ON ct.id = c.type_id AND ct.name = :pipeline WHERE c.name = :name"),
        {"pipeline": schema.PIPELINE_CONTEXT, "name": pipeline}).scalar()
    if context is None:
        return []
    # Both values of is_custom_property, so MLMD's (name, is_custom_property, int_value) index serves it.
    found = conn.execute(sa.text(
        "SELECT a.id, s.int_value, a.uri FROM ArtifactProperty s JOIN Artifact a ON a.id = s.artifact_id "
        "JOIN Type t ON t.id = a.type_id AND t.name = :statistics "
        f"WHERE s.name = 'span' AND s.is_custom_property IN (:custom, :declared) AND s.int_value IN ({ints(spans)}) "
        "ORDER BY a.id"), {"statistics": schema.EXAMPLE_STATISTICS, "custom": True, "declared": False}).all()
    if not found:
        return []
    attributed = {int(row[0]) for row in conn.execute(sa.text(
        f"SELECT artifact_id FROM Attribution WHERE context_id = {int(context)} "
        f"AND artifact_id IN ({ints(int(row[0]) for row in found)})"))}
    return [(pipeline, span, uri) for artifact, span, uri in found if int(artifact) in attributed]


def span_statistics(config: StoreConfig, pipeline: str | None = None, spans: Sequence[int] | None = None,
                    engine: Engine | None = None, split: str = "train") -> StatisticsFound:
    """Each span's statistics (the newest artifact of a span wins), read from the files its
    ExampleStatistics artifact points at.

    Args:
      pipeline: one pipeline's spans only.
      spans: with ``pipeline``, only these span numbers (what one decision compares).
      engine: an open read-only engine to use.
      split: which split's statistics to read.
    """
    if spans is not None and pipeline is None:
        raise ValueError("statistics of some spans are read for one named pipeline: pass pipeline too")
    with reading(config, engine, point_reads=spans is not None) as engine, engine.connect() as conn:
        rows = (_spans_statistics_rows(conn, pipeline, spans) if spans is not None else
                conn.execute(sa.text(_STATISTICS_SQL + "JOIN Type ct ON ct.id = c.type_id AND ct.name = :pipeline"
                                     + (" WHERE c.name = :name" if pipeline is not None else "") + " ORDER BY a.id"),
                             {"statistics": schema.EXAMPLE_STATISTICS, "pipeline": schema.PIPELINE_CONTEXT,
                              "name": pipeline}).all())
    uris: dict[tuple[str, int], str] = {}
    for name, span, uri in rows:
        if span is not None and uri:
            uris[(str(name), int(span))] = str(uri)
    found, by_pipeline = StatisticsFound(artifacts=len(uris)), {}
    for (name, span), uri in uris.items():
        try:
            statistics: SpanStatistics = read_statistics(uri, split)
        except (OSError, ValueError) as err:
            found.first_problem = found.first_problem or f"{uri}: {err}"
            continue
        found.readable += 1
        by_pipeline.setdefault(name, {})[span] = statistics
    found.by_pipeline = {name: SpanStatisticsIndex(spans) for name, spans in by_pipeline.items()}
    return found
