"""Write MLMD stores exactly as TFX's portable orchestrator does, with MLMD's own API.

Followed from TFX's source (see ../shared/tfx_schema.md): artifact types with TFX's properties
and base types; execution types named after component class paths; contexts ``pipeline``,
``pipeline_run`` (named by the bare run id, child of the pipeline) and ``node``
(``<pipeline>.<node id>``); executions named by uuid, registered RUNNING with their INPUT events,
then published COMPLETE with OUTPUT events and LIVE artifacts, each execution also in an
``execution_cache`` context; events with a (key, index) path;
blessing and push outcomes as custom INT properties; cache hits as CACHED executions whose OUTPUT
events point at earlier artifacts. TFX itself cannot be installed beside ml-metadata 1.17.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

from ml_metadata.proto import metadata_store_pb2 as pb

COMPONENTS = {
    "CsvExampleGen": ("tfx.components.example_gen.csv_example_gen.component.CsvExampleGen", None),
    "StatisticsGen": ("tfx.components.statistics_gen.component.StatisticsGen", pb.ExecutionType.PROCESS),
    "SchemaGen": ("tfx.components.schema_gen.component.SchemaGen", pb.ExecutionType.PROCESS),
    "ExampleValidator": ("tfx.components.example_validator.component.ExampleValidator", None),
    "Transform": ("tfx.components.transform.component.Transform", pb.ExecutionType.TRANSFORM),
    "Trainer": ("tfx.components.trainer.component.Trainer", pb.ExecutionType.TRAIN),
    "Evaluator": ("tfx.components.evaluator.component.Evaluator", pb.ExecutionType.EVALUATE),
    "InfraValidator": ("tfx.components.infra_validator.component.InfraValidator", None),
    "Pusher": ("tfx.components.pusher.component.Pusher", pb.ExecutionType.DEPLOY),
}
_SPAN_SPLITS = {"span": pb.INT, "split_names": pb.STRING}
ARTIFACT_TYPES = {
    "Examples": ({"span": pb.INT, "version": pb.INT, "split_names": pb.STRING}, pb.ArtifactType.DATASET),
    "ExampleStatistics": (_SPAN_SPLITS, pb.ArtifactType.STATISTICS),
    "ExampleAnomalies": (_SPAN_SPLITS, None),
    "Schema": ({}, None),
    "TransformGraph": ({}, None),
    "TransformCache": ({}, None),
    "Model": ({}, pb.ArtifactType.MODEL),
    "ModelRun": ({}, None),
    "ModelEvaluation": ({}, None),
    "ModelBlessing": ({}, None),
    "InfraBlessing": ({}, None),
    "PushedModel": ({}, pb.ArtifactType.MODEL),
}


@dataclass
class RunPlan:
    """What one pipeline run does. Defaults: a full TFX pipeline that blesses and pushes."""

    span: int
    window: int = 3  # spans the trainer reads (rolling range)
    transform: bool = True
    evaluator: bool = True
    infra_validator: bool = False
    pusher: bool = True
    blessed: bool = True
    trainer_fails: bool = False
    trainer_cached: bool = False  # a cache hit: no training, the earlier model is reused
    statistics_cached: bool = False
    thresholds: bool = True  # without thresholds the Evaluator writes no `blessed` at all


@dataclass
class TfxPipeline:
    """One TFX pipeline writing its runs into a store."""

    store: object
    name: str
    root: str = "/pipelines"
    spans: dict[int, pb.Artifact] = field(default_factory=dict)
    statistics: dict[int, pb.Artifact] = field(default_factory=dict)
    models: list[pb.Artifact] = field(default_factory=list)
    blessed_models: list[pb.Artifact] = field(default_factory=list)
    analyzer_cache: pb.Artifact | None = None
    trainer_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pipeline_context = self._context("pipeline", self.name, reuse=True)  # a pipeline may be continued

    def run(self, run_id: str, plan: RunPlan) -> dict[str, int]:
        """Write one run; returns the execution id of each component that ran."""
        run_context = self._context("pipeline_run", run_id, parent=self.pipeline_context)
        ran: dict[str, int] = {}

        def execute(node, inputs, outputs, state=pb.Execution.COMPLETE, props=None):
            ran[node] = self._execute(node, run_context, inputs, outputs, state, props or {})
            return ran[node]

        examples = self._artifact("Examples", f"CsvExampleGen/examples/{run_id}", span=plan.span, version=0,
                                  split_names=json.dumps(["train", "eval"]),
                                  custom={"span": plan.span, "input_fingerprint": f"fp-{plan.span}"})
        execute("CsvExampleGen", {}, {"examples": [examples]}, props={"input_base": "/data"})
        self.spans[plan.span] = examples
        if plan.statistics_cached and plan.span in self.statistics:
            statistics = self.statistics[plan.span]
            execute("StatisticsGen", {"examples": [examples]}, {"statistics": [statistics]}, pb.Execution.CACHED)
        else:
            statistics = self._artifact("ExampleStatistics", f"StatisticsGen/statistics/{run_id}", span=plan.span,
                                        split_names=json.dumps(["train", "eval"]))
            execute("StatisticsGen", {"examples": [examples]}, {"statistics": [statistics]})
            self.statistics[plan.span] = statistics
        schema = self._artifact("Schema", f"SchemaGen/schema/{run_id}")
        execute("SchemaGen", {"statistics": [statistics]}, {"schema": [schema]})
        anomalies = self._artifact("ExampleAnomalies", f"ExampleValidator/anomalies/{run_id}", span=plan.span)
        execute("ExampleValidator", {"statistics": [statistics], "schema": [schema]}, {"anomalies": [anomalies]})

        window = [self.spans[s] for s in sorted(self.spans) if plan.span - plan.window < s <= plan.span]
        trainer_inputs: dict[str, list[pb.Artifact]] = {"examples": window, "schema": [schema]}
        if plan.transform:
            graph = self._artifact("TransformGraph", f"Transform/transform_graph/{run_id}")
            transformed = self._artifact("Examples", f"Transform/transformed_examples/{run_id}",
                                         split_names=json.dumps(["train", "eval"]))
            cache = self._artifact("TransformCache", f"Transform/updated_analyzer_cache/{run_id}")
            transform_inputs = {"examples": window, "schema": [schema]}
            if self.analyzer_cache is not None:
                transform_inputs["analyzer_cache"] = [self.analyzer_cache]
            execute("Transform", transform_inputs,
                    {"transform_graph": [graph], "transformed_examples": [transformed], "updated_analyzer_cache": [cache]})
            self.analyzer_cache = cache
            trainer_inputs = {"examples": [transformed], "transform_graph": [graph], "schema": [schema]}
        if self.models:
            trainer_inputs["base_model"] = [self.models[-1]]  # warm start

        if plan.trainer_cached and self.models:
            execute("Trainer", trainer_inputs, {"model": [self.models[-1]]}, pb.Execution.CACHED)
            return ran
        if plan.trainer_fails:
            execute("Trainer", trainer_inputs, {}, pb.Execution.FAILED, {"module_file": "trainer.py"})
            self.trainer_ids.append(ran["Trainer"])
            return ran
        model = self._artifact("Model", f"Trainer/model/{run_id}")
        model_run = self._artifact("ModelRun", f"Trainer/model_run/{run_id}")
        execute("Trainer", trainer_inputs, {"model": [model], "model_run": [model_run]},
                props={"module_file": "trainer.py", "train_args": json.dumps({"num_steps": 100})})
        self.trainer_ids.append(ran["Trainer"])
        self.models.append(model)

        blessing = None
        if plan.evaluator:
            evaluation = self._artifact("ModelEvaluation", f"Evaluator/evaluation/{run_id}")
            custom = {"current_model": model.uri, "current_model_id": model.id}
            if plan.thresholds:
                custom["blessed"] = int(plan.blessed)
            eval_inputs = {"examples": [examples], "model": [model]}
            if self.blessed_models:
                eval_inputs["baseline_model"] = [self.blessed_models[-1]]
                custom["baseline_model"] = self.blessed_models[-1].uri
                custom["baseline_model_id"] = self.blessed_models[-1].id
            blessing = self._artifact("ModelBlessing", f"Evaluator/blessing/{run_id}", custom=custom)
            execute("Evaluator", eval_inputs, {"evaluation": [evaluation], "blessing": [blessing]})
            if plan.blessed and plan.thresholds:
                self.blessed_models.append(model)
        infra = None
        if plan.infra_validator:
            infra = self._artifact("InfraBlessing", f"InfraValidator/blessing/{run_id}", custom={"blessed": 1})
            execute("InfraValidator", {"model": [model], "examples": [examples]}, {"blessing": [infra]})
        if plan.pusher:
            push = plan.blessed and plan.thresholds and plan.evaluator
            custom = {"pushed": 1, "pushed_destination": f"/serving/{self.name}/{run_id}", "pushed_version": "1700000000"} if push else {"pushed": 0}
            pushed = self._artifact("PushedModel", f"Pusher/pushed_model/{run_id}", custom=custom)
            pusher_inputs = {"model": [model]}
            if blessing is not None:
                pusher_inputs["model_blessing"] = [blessing]
            if infra is not None:
                pusher_inputs["infra_blessing"] = [infra]
            execute("Pusher", pusher_inputs, {"pushed_model": [pushed]})
        return ran

    # -- MLMD writes, as TFX makes them ------------------------------------------------------
    def _context(self, type_name: str, name: str, parent: pb.Context | None = None, reuse: bool = False) -> pb.Context:
        type_id = self.store.put_context_type(pb.ContextType(name=type_name), can_add_fields=True, can_omit_fields=True)
        if reuse and (existing := self.store.get_context_by_type_and_name(type_name, name)) is not None:
            return existing
        context = pb.Context(type_id=type_id, name=name)
        [context.id] = self.store.put_contexts([context])
        if parent is not None:
            self.store.put_parent_contexts([pb.ParentContext(child_id=context.id, parent_id=parent.id)])
        return context

    def _artifact(self, type_name: str, path: str, custom: dict | None = None, **properties) -> pb.Artifact:
        declared, base = ARTIFACT_TYPES[type_name]
        artifact_type = pb.ArtifactType(name=type_name, properties=declared)
        if base is not None:
            artifact_type.base_type = base
        type_id = self.store.put_artifact_type(artifact_type, can_add_fields=True, can_omit_fields=True)
        artifact = pb.Artifact(type_id=type_id, uri=f"{self.root}/{self.name}/{path}", state=pb.Artifact.PENDING)
        for key, value in properties.items():
            _set(artifact.properties[key], value)
        for key, value in {**(custom or {}), "tfx_version": "1.16.0"}.items():
            _set(artifact.custom_properties[key], value)
        return artifact

    def _execute(self, node, run_context, inputs, outputs, state, props) -> int:
        type_name, base = COMPONENTS[node]
        execution_type = pb.ExecutionType(name=type_name)
        if base is not None:
            execution_type.base_type = base
        type_id = self.store.put_execution_type(execution_type, can_add_fields=True, can_omit_fields=True)
        node_context = self._node_context(node)
        # TFX's launcher also puts every execution in an `execution_cache` context named by a
        # sha256 of the node and its inputs (tfx/orchestration/portable/cache_utils.py).
        fingerprint = hashlib.sha256(repr((self.name, node, sorted(
            (k, [a.id for a in group]) for k, group in inputs.items()))).encode()).hexdigest()
        cache_context = self._context("execution_cache", fingerprint, reuse=True)
        contexts = [self.pipeline_context, run_context, node_context, cache_context]
        execution = pb.Execution(type_id=type_id, name=str(uuid.uuid4()), last_known_state=pb.Execution.RUNNING)
        for key, value in props.items():
            _set(execution.custom_properties[key], value)
        # Registration: RUNNING with its INPUT events.
        pairs = [(artifact, _event(pb.Event.INPUT, key, i)) for key, group in inputs.items() for i, artifact in enumerate(group)]
        execution_id, _, _ = self.store.put_execution(execution, pairs, contexts, reuse_context_if_already_exist=True)
        execution.id = execution_id
        # Publication: final state, new artifacts LIVE, OUTPUT events.
        execution.last_known_state = state
        out_pairs = []
        for key, group in outputs.items():
            for i, artifact in enumerate(group):
                if not artifact.id:
                    artifact.state = pb.Artifact.LIVE
                out_pairs.append((artifact, _event(pb.Event.OUTPUT, key, i)))
        _, artifact_ids, _ = self.store.put_execution(execution, out_pairs, contexts, reuse_context_if_already_exist=True)
        for (artifact, _), artifact_id in zip(out_pairs, artifact_ids):
            artifact.id = artifact_id
        return execution_id

    def _node_context(self, node: str) -> pb.Context:
        name = f"{self.name}.{node}"
        type_id = self.store.put_context_type(pb.ContextType(name="node"), can_add_fields=True, can_omit_fields=True)
        existing = self.store.get_context_by_type_and_name("node", name)
        if existing is not None:
            return existing
        context = pb.Context(type_id=type_id, name=name)
        [context.id] = self.store.put_contexts([context])
        return context


def _event(event_type, key: str, index: int) -> pb.Event:
    event = pb.Event(type=event_type)
    event.path.steps.add().key = key
    event.path.steps.add().index = index
    return event


def _set(value: pb.Value, python_value) -> None:
    if isinstance(python_value, (bool, int)):
        value.int_value = int(python_value)
    elif isinstance(python_value, float):
        value.double_value = python_value
    else:
        value.string_value = str(python_value)
