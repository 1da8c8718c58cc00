"""Write a benchmark's histories into an MLMD store exactly as TFX's portable orchestrator leaves one.

Names follow ``../shared/tfx_schema.md``: execution types named after TFX's component classes
with their MLMD base types; contexts ``pipeline``, ``pipeline_run`` (named as BeamDagRunner names
runs, child of the pipeline), ``node`` (``<pipeline>.<node id>``) and ``execution_cache``; one
execution per component run, COMPLETE, with INPUT and OUTPUT events whose paths are
``(key, index)``; outputs LIVE with TFX's typed and custom properties (``span`` as ExampleGen
writes it, ``blessed`` on ModelBlessing, ``pushed`` on PushedModel); a trainer's user code named
by its wheel's fingerprint in ``module_path``. Times are MLMD's own columns: executions are
created when they start and last updated when they end, artifacts when their producer ends,
events when written; nothing carries a time property of ours.

StatisticsGen's outputs are real files: each span's statistics in TFDV's format at
``<uri>/Split-<split>/FeatureStats.pb``.

With ``gate=True`` each run also has the graphlet gate as a custom component between the
validator and the training branch, as a deployment of airflow-graphlets in its learning phase
leaves it: it ran every training (no predictor yet) and logged the signals its DAG handed it,
the deployed and the latest trained model's accuracy on the new span (``graphlets_signals``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
from airflow_graphlets.prune.evaluator_bar import EVAL_CONFIG_PROPERTY, tfx_eval_config
from airflow_graphlets.prune.features.signals import DEPLOYED_SCORE, LATEST_SCORE
from airflow_graphlets.prune.span_statistics import write_statistics
from airflow_graphlets.store import schema
from airflow_graphlets.store.bulk_write import BulkWriter
from airflow_graphlets.store.uri import StoreConfig

from real_outcomes.lab import COMPONENTS, PipelineRecord, outcomes, signal_accuracy

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0
INPUT, OUTPUT = 3, 4
COMPLETE, LIVE = 3, 2
TFX_VERSION = "1.16.0"
GATE_TYPE = "airflow_graphlets.gate_operator.GraphletGateOperator"
GATE_NODE = "graphlet_gate"
SIGNALS_PROPERTY = schema.GATE_SIGNALS_PROPERTY
_CLASS = {
    "ExampleGen": ("tfx.components.example_gen.csv_example_gen.component.CsvExampleGen", None, "CsvExampleGen"),
    "StatisticsGen": ("tfx.components.statistics_gen.component.StatisticsGen", schema.BASE_PROCESS, "StatisticsGen"),
    "SchemaGen": ("tfx.components.schema_gen.component.SchemaGen", schema.BASE_PROCESS, "SchemaGen"),
    "ExampleValidator": ("tfx.components.example_validator.component.ExampleValidator", None, "ExampleValidator"),
    "Transform": ("tfx.components.transform.component.Transform", schema.BASE_TRANSFORM, "Transform"),
    "Trainer": ("tfx.components.trainer.component.Trainer", schema.BASE_TRAIN, "Trainer"),
    "Evaluator": ("tfx.components.evaluator.component.Evaluator", schema.BASE_EVALUATE, "Evaluator"),
    "Pusher": ("tfx.components.pusher.component.Pusher", schema.BASE_DEPLOY, "Pusher"),
    "Gate": (GATE_TYPE, None, GATE_NODE),
}
_ARTIFACT_TYPES = ("Examples", "ExampleStatistics", "Schema", "ExampleAnomalies", "TransformGraph", "Model",
                   "ModelRun", "ModelEvaluation", "ModelBlessing", "PushedModel")
_CONTEXT_TYPES = ("pipeline", "pipeline_run", "node", "execution_cache")


@dataclass
class _Rows:
    """Rows of every MLMD table, with the ids allocated so far and the gate's rows marked."""

    next_ids: dict[str, int]
    tables: dict[str, list[tuple]] = field(default_factory=dict)
    gate_executions: set[int] = field(default_factory=set)
    gate_contexts: set[int] = field(default_factory=set)
    attributed: set[tuple[int, int]] = field(default_factory=set)  # MLMD attributes an artifact to a context once

    def take(self, table: str) -> int:
        value = self.next_ids[table]
        self.next_ids[table] += 1
        return value

    def add(self, table: str, row: tuple) -> None:
        self.tables.setdefault(table, []).append(row)


def write_stores(records: list[PipelineRecord], stores: dict[str, StoreConfig], artifact_root: str) -> None:
    """Write every record into each store of ``stores`` (``{"tfx": ..., "tfx+gate": ...}``: the
    second also holds the gate's executions; the two share every other id), and the span
    statistics files under ``artifact_root``.

    Raises:
      ValueError: a store already holds executions (the benchmark writes new stores only).
    """
    writers = {name: BulkWriter(config) for name, config in stores.items()}
    try:
        ids = {name: writer.next_ids() for name, writer in writers.items()}
        if any(v["Execution"] != 1 for v in ids.values()):
            raise ValueError("the benchmark writes into new, empty stores; remove the old ones first")
        types = {name: _register_types(writer) for name, writer in writers.items()}
        if len({json.dumps(t, sort_keys=True) for t in types.values()}) != 1:
            raise ValueError("the stores registered different type ids; write them from empty stores")
        rows = _Rows(next(iter(ids.values())))
        for record in records:
            _pipeline_rows(record, rows, next(iter(types.values())), artifact_root)
        for name, writer in writers.items():
            keep_gate = name.endswith("+gate")
            for table, table_rows in rows.tables.items():
                writer.add(table, table_rows if keep_gate else _without_gate(table, table_rows, rows))
            writer.flush()
    finally:
        for writer in writers.values():
            writer.__exit__(None, None, None)


def _without_gate(table: str, table_rows: list[tuple], rows: _Rows) -> list[tuple]:
    """A table's rows as a store without the gate holds them."""
    if table == "Context":
        return [row for row in table_rows if row[0] not in rows.gate_contexts]
    column = {"Execution": 0, "ExecutionProperty": 0, "Event": 2, "Association": 2}.get(table)
    if column is None:
        return table_rows
    return [row for row in table_rows if row[column] not in rows.gate_executions]


def _register_types(writer: BulkWriter) -> dict:
    types = writer.types
    return {
        "contexts": {name: types.context_type(name) for name in _CONTEXT_TYPES},
        "executions": {kind: types.execution_type(name, base) for kind, (name, base, _) in _CLASS.items()},
        "artifacts": {name: types.artifact_type(name) for name in _ARTIFACT_TYPES},
    }


def _pipeline_rows(record: PipelineRecord, rows: _Rows, types: dict, artifact_root: str) -> None:
    _PipelineWriter(record, rows, types, artifact_root).write()


class _PipelineWriter:
    """Writes one pipeline's runs as rows: a context, an execution and its events at a time."""

    def __init__(self, record: PipelineRecord, rows: _Rows, types: dict, artifact_root: str) -> None:
        self.record, self.rows, self.types = record, rows, types
        self.spec = record.spec
        self.root = os.path.join(artifact_root, self.spec.name)
        self.rng = np.random.default_rng([self.spec.stream.seed, 2])
        self.contexts: dict[tuple[str, str], int] = {}
        self.pipeline = self.context("pipeline", self.spec.name, EPOCH + record.day[0] * DAY)
        self.run = self.pipeline
        self.clock = 0.0  # when the next execution of the run starts

    def context(self, kind: str, name: str, at: float, parent: int | None = None) -> int:
        """The id of context ``(kind, name)``, made at ``at`` when new."""
        key = (kind, name)
        if key not in self.contexts:
            self.contexts[key] = self.rows.take("Context")
            self.rows.add("Context", (self.contexts[key], self.types["contexts"][kind], name, None, _ms(at), _ms(at)))
            if parent is not None:
                self.rows.add("ParentContext", (self.contexts[key], parent))
        return self.contexts[key]

    def execute(self, kind: str, inputs: dict[str, list[int]], outputs: dict[str, list[tuple[str, dict, dict]]],
                properties: dict, seconds: float) -> dict[str, list[tuple[int, str]]]:
        """Write one component's execution in the current run, ``seconds`` long; returns each
        output key's (artifact id, uri)."""
        rows, rng = self.rows, self.rng
        _, _, node_id = _CLASS[kind]
        begin = self.clock
        end = begin + seconds
        self.clock = end + float(rng.uniform(5, 30))
        execution = rows.take("Execution")
        if kind == "Gate":
            rows.gate_executions.add(execution)
        rows.add("Execution", (execution, self.types["executions"][kind], COMPLETE, _uuid(rng), None, _ms(begin),
                               _ms(end)))
        for key, value in properties.items():
            rows.add("ExecutionProperty", (execution, key, 1, *_value(value)))
        fingerprint = hashlib.sha256(repr((self.spec.name, node_id, sorted(inputs.items()))).encode()).hexdigest()
        own = (self.context("node", f"{self.spec.name}.{node_id}", begin),
               self.context("execution_cache", fingerprint, begin))
        if kind == "Gate":
            rows.gate_contexts.update(own)
        in_contexts = (self.pipeline, self.run, *own)
        for context_id in in_contexts:
            rows.add("Association", (rows.take("Association"), context_id, execution))
        for key, artifact_ids in inputs.items():
            for index, artifact in enumerate(artifact_ids):
                _event(rows, artifact, execution, INPUT, key, index, begin)
                _attribute(rows, in_contexts, artifact)
        made: dict[str, list[tuple[int, str]]] = {}
        for key, made_here in outputs.items():
            for index, (type_name, typed, custom) in enumerate(made_here):
                artifact = rows.take("Artifact")
                uri = os.path.join(self.root, node_id, key, str(execution))
                rows.add("Artifact", (artifact, self.types["artifacts"][type_name], uri, LIVE, None, None, _ms(end),
                                      _ms(end)))
                for prop, value in typed.items():
                    rows.add("ArtifactProperty", (artifact, prop, 0, *_value(value)))
                for prop, value in {**custom, "tfx_version": TFX_VERSION}.items():
                    rows.add("ArtifactProperty", (artifact, prop, 1, *_value(value)))
                _event(rows, artifact, execution, OUTPUT, key, index, end)
                _attribute(rows, in_contexts, artifact)
                made.setdefault(key, []).append((artifact, uri))
        return made

    def write(self) -> None:
        """Every run of the record, in order."""
        happened = outcomes(self.record)
        self.examples_of_span: dict[int, int] = {}  # span -> newest Examples artifact id
        self.deployed: tuple[int, str] | None = None  # (Model id, uri) of the deployed model
        for r in range(len(self.record)):
            self._run(r, bool(happened.blessed[r]), happened.deployed_accuracy[r])

    def _run(self, r: int, blessed: bool, deployed_accuracy: float) -> None:
        """One run: ingest, analyse, gate, train, evaluate, push."""
        record, spec, execute = self.record, self.spec, self.execute
        start = EPOCH + record.day[r] * DAY + 7200.0 + float(self.rng.uniform(0, 1200))
        run_name = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y%m%d-%H%M%S.%f")
        self.run = self.context("pipeline_run", run_name, start, parent=self.pipeline)
        self.clock = start
        seconds = dict(zip(COMPONENTS, record.durations[r]))
        span, splits = int(record.span[r]), json.dumps(["train", "eval"])

        out = execute("ExampleGen", {}, {"examples": [("Examples", {"span": span, "version": 0, "split_names": splits}, {
            "span": span, "version": 0, "input_fingerprint": f"span:{span},ingested:{run_name}",
            "payload_format": "FORMAT_TF_EXAMPLE", "file_format": "tfrecords_gzip"})]},
            {"input_base": f"/data/{spec.name}", "output_data_format": 6}, seconds["ExampleGen"])
        examples = self.examples_of_span[span] = out["examples"][0][0]
        out = execute("StatisticsGen", {"examples": [examples]}, {"statistics": [(
            "ExampleStatistics", {"span": span, "split_names": splits}, {"stats_dashboard_link": ""})]}, {},
            seconds["StatisticsGen"])
        statistics, statistics_uri = out["statistics"][0]
        data = record.spans[span]
        # TFDV treats the label as a feature too.
        write_statistics(statistics_uri, {split: np.column_stack(columns) for split, columns in
                                          (("train", data.train()), ("eval", data.eval()))},
                         [*record.feature_names, "label"])
        out = execute("SchemaGen", {"statistics": [statistics]}, {"schema": [("Schema", {}, {})]},
                      {"infer_feature_shape": 1}, seconds["SchemaGen"])
        schema_id = out["schema"][0][0]
        execute("ExampleValidator", {"statistics": [statistics], "schema": [schema_id]},
                {"anomalies": [("ExampleAnomalies", {"span": span, "split_names": splits}, {})]}, {},
                seconds["ExampleValidator"])

        signals = {}
        for name, value in ((DEPLOYED_SCORE, deployed_accuracy),
                            (LATEST_SCORE, signal_accuracy(record, r - 1, r) if r > 0 else np.nan)):
            if not np.isnan(value):
                signals[name] = round(float(value), 6)
        execute("Gate", {}, {}, {
            "graphlets_decision": "run", "graphlets_probability": -1.0,
            "graphlets_reason": "fail open: no push predictor yet (train one with `graphlets train-predictor`)",
            "graphlets_features": "{}", "graphlets_policy_version": "no-predictor", "graphlets_override": "",
            SIGNALS_PROPERTY: json.dumps(signals, sort_keys=True)}, float(self.rng.uniform(5, 30)))

        window = [self.examples_of_span[k] for k in range(int(record.window_first[r]), span + 1)
                  if k in self.examples_of_span]
        trainer_inputs = {"examples": window, "schema": [schema_id]}
        if record.transform[r]:
            out = execute("Transform", {"examples": window, "schema": [schema_id]},
                          {"transform_graph": [("TransformGraph", {}, {})]},
                          {"module_path": _module_path(spec.name, "Transform", 1)}, seconds["Transform"])
            trainer_inputs["transform_graph"] = [out["transform_graph"][0][0]]
        out = execute("Trainer", trainer_inputs, {"model": [("Model", {}, {})], "model_run": [("ModelRun", {}, {})]}, {
            "module_path": _module_path(spec.name, "Trainer", int(record.code_version[r])),
            "train_args": json.dumps({"splits": ["train"]}), "eval_args": json.dumps({"splits": ["eval"]})},
            seconds["Trainer"])
        model, model_uri = out["model"][0]

        custom = {"current_model": model_uri, "current_model_id": model, "blessed": int(blessed)}
        evaluator_inputs = {"examples": [examples], "model": [model]}
        if self.deployed is not None:
            evaluator_inputs["baseline_model"] = [self.deployed[0]]
            custom.update(baseline_model=self.deployed[1], baseline_model_id=self.deployed[0])
        out = execute("Evaluator", evaluator_inputs,
                      {"evaluation": [("ModelEvaluation", {}, {})], "blessing": [("ModelBlessing", {}, custom)]},
                      {EVAL_CONFIG_PROPERTY: tfx_eval_config("BinaryAccuracy", round(spec.threshold, 4), spec.margin)},
                      seconds["Evaluator"])
        blessing = out["blessing"][0][0]
        pushed = ({"pushed": 1, "pushed_destination": f"/serving/{spec.name}/{int(start)}",
                   "pushed_version": str(int(self.clock))} if blessed else {"pushed": 0})
        execute("Pusher", {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [("PushedModel", {}, pushed)]},
                {"push_destination": json.dumps({"filesystem": {"base_directory": f"/serving/{spec.name}"}})},
                seconds["Pusher"])
        if blessed:
            self.deployed = (model, model_uri)


def _attribute(rows: _Rows, contexts: tuple[int, ...], artifact: int) -> None:
    for context_id in contexts:
        if (context_id, artifact) not in rows.attributed:
            rows.attributed.add((context_id, artifact))
            rows.add("Attribution", (rows.take("Attribution"), context_id, artifact))


def _event(rows: _Rows, artifact: int, execution: int, kind: int, key: str, index: int, at: float) -> None:
    event = rows.take("Event")
    rows.add("Event", (event, artifact, execution, kind, _ms(at)))
    rows.add("EventPath", (event, 0, None, key))
    rows.add("EventPath", (event, 1, index, None))


def _value(value) -> tuple:
    """(int, double, string) columns of a property value."""
    if isinstance(value, bool | int | np.integer):
        return int(value), None, None
    if isinstance(value, float | np.floating):
        return None, float(value), None
    return None, None, str(value)


def _module_path(pipeline: str, component: str, version: int) -> str:
    """TFX packages user code as a wheel whose version carries the code's fingerprint."""
    digest = hashlib.sha256(f"{pipeline}/{component}/v{version}".encode()).hexdigest()
    return f"{component.lower()}_module@/pipelines/{pipeline}/_wheels/tfx_user_code_{component}-0.0+{digest}-py3-none-any.whl"


def _uuid(rng: np.random.Generator) -> str:
    raw = rng.bytes(16)
    return f"{raw[:4].hex()}-{raw[4:6].hex()}-{raw[6:8].hex()}-{raw[8:10].hex()}-{raw[10:].hex()}"


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))
