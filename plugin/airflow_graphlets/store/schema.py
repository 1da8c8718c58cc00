"""TFX's ML Metadata names, written once.

Every type, property, context and event-path name that TFX writes into MLMD lives here, so
that a store written by airflow-graphlets and one written by TFX read alike, and no string
such as ``"pushed"`` or ``"pipeline_run"`` is spelled twice in the code base.
Sources: ``tfx/types/standard_artifacts.py``, ``tfx/dsl/compiler/constants.py``,
``tfx/types/standard_component_specs.py``, ``tfx/components/*/executor.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class PropertyType(IntEnum):
    """MLMD ``PropertyType`` (``metadata_store.proto``)."""

    INT = 1
    DOUBLE = 2
    STRING = 3
    STRUCT = 4
    PROTO = 5
    BOOLEAN = 6


# Context types (tfx/dsl/compiler/constants.py). TFX registers them with no properties.
PIPELINE_CONTEXT = "pipeline"
PIPELINE_RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"

# airflow-graphlets' own bookkeeping, beside (never inside) a pipeline's contexts: operators'
# overrides of the gate, one execution each, grouped per DAG. Readers leave them out of graphlets.
GATE_OVERRIDE_TYPE = "GraphletsGateOverride"
GATE_OVERRIDES_CONTEXT = "graphlets_gate_overrides"
BOOKKEEPING_EXECUTION_TYPES = frozenset({GATE_OVERRIDE_TYPE})
# What a gate's execution carries besides the recorder's properties: what its DAG handed it
# before training (JSON {name: number}), logged with every decision, predictor or not.
GATE_SIGNALS_PROPERTY = "graphlets_signals"

# MLMD's simple (system) base types, seeded into every store (simple_types_constants.cc).
BASE_DATASET = "mlmd.Dataset"
BASE_MODEL = "mlmd.Model"
BASE_STATISTICS = "mlmd.Statistics"
BASE_TRAIN = "mlmd.Train"
BASE_TRANSFORM = "mlmd.Transform"
BASE_PROCESS = "mlmd.Process"
BASE_EVALUATE = "mlmd.Evaluate"
BASE_DEPLOY = "mlmd.Deploy"

# Typed artifact properties (tfx/types/artifact.py).
SPAN = "span"
VERSION = "version"
SPLIT_NAMES = "split_names"

# Custom properties set by TFX components.
BLESSED = "blessed"  # ModelBlessing / InfraBlessing, INT 1 or 0
PUSHED = "pushed"  # PushedModel, INT 1 or 0
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
CURRENT_MODEL = "current_model"
CURRENT_MODEL_ID = "current_model_id"
BASELINE_MODEL = "baseline_model"
BASELINE_MODEL_ID = "baseline_model_id"

# Artifact type names (tfx/types/standard_artifacts.py).
EXAMPLES = "Examples"
EXAMPLE_STATISTICS = "ExampleStatistics"
EXAMPLE_ANOMALIES = "ExampleAnomalies"
SCHEMA = "Schema"
TRANSFORM_GRAPH = "TransformGraph"
TRANSFORM_CACHE = "TransformCache"
MODEL = "Model"
MODEL_RUN = "ModelRun"
MODEL_EVALUATION = "ModelEvaluation"
MODEL_BLESSING = "ModelBlessing"
INFRA_BLESSING = "InfraBlessing"
PUSHED_MODEL = "PushedModel"
HYPER_PARAMETERS = "HyperParameters"


@dataclass(frozen=True)
class ArtifactTypeSpec:
    """One TFX artifact type: its declared properties, base type and usual event-path key."""

    name: str
    properties: dict[str, PropertyType]
    base_type: str | None
    default_key: str


_SPAN_SPLITS = {SPAN: PropertyType.INT, SPLIT_NAMES: PropertyType.STRING}

ARTIFACT_TYPES: dict[str, ArtifactTypeSpec] = {
    spec.name: spec
    for spec in (
        ArtifactTypeSpec(
            EXAMPLES,
            {SPAN: PropertyType.INT, VERSION: PropertyType.INT, SPLIT_NAMES: PropertyType.STRING},
            BASE_DATASET,
            "examples",
        ),
        ArtifactTypeSpec(EXAMPLE_STATISTICS, dict(_SPAN_SPLITS), BASE_STATISTICS, "statistics"),
        ArtifactTypeSpec(EXAMPLE_ANOMALIES, dict(_SPAN_SPLITS), None, "anomalies"),
        ArtifactTypeSpec(SCHEMA, {}, None, "schema"),
        ArtifactTypeSpec(TRANSFORM_GRAPH, {}, None, "transform_graph"),
        ArtifactTypeSpec(TRANSFORM_CACHE, {}, None, "updated_analyzer_cache"),
        ArtifactTypeSpec(MODEL, {}, BASE_MODEL, "model"),
        ArtifactTypeSpec(MODEL_RUN, {}, None, "model_run"),
        ArtifactTypeSpec(MODEL_EVALUATION, {}, None, "evaluation"),
        ArtifactTypeSpec(MODEL_BLESSING, {}, None, "blessing"),
        ArtifactTypeSpec(INFRA_BLESSING, {}, None, "blessing"),
        ArtifactTypeSpec(PUSHED_MODEL, {}, BASE_MODEL, "pushed_model"),
        ArtifactTypeSpec(HYPER_PARAMETERS, {}, None, "best_hyperparameters"),
    )
}


@dataclass(frozen=True)
class ComponentKind:
    """A TFX component kind: what the analyses call an operator kind."""

    name: str
    base_type: str | None


# The execution type name we register for a task of a known kind. TFX names the type after the
# component's class path (``tfx.components.trainer.component.Trainer``); analyses classify by the
# last dotted segment and the base type, which both kinds of store share.
COMPONENT_TYPE_PREFIX = "airflow_graphlets.components."

COMPONENT_KINDS: dict[str, ComponentKind] = {
    kind.name: kind
    for kind in (
        ComponentKind("ExampleGen", None),
        ComponentKind("StatisticsGen", BASE_PROCESS),
        ComponentKind("SchemaGen", BASE_PROCESS),
        ComponentKind("ExampleValidator", None),
        ComponentKind("Transform", BASE_TRANSFORM),
        ComponentKind("Tuner", BASE_TRAIN),
        ComponentKind("Trainer", BASE_TRAIN),
        ComponentKind("Evaluator", BASE_EVALUATE),
        ComponentKind("InfraValidator", None),
        ComponentKind("Pusher", BASE_DEPLOY),
    )
}

# What a task's declared outputs say about its kind, strongest evidence first.
KIND_BY_OUTPUT_TYPE: tuple[tuple[str, str], ...] = (
    (PUSHED_MODEL, "Pusher"),
    (INFRA_BLESSING, "InfraValidator"),
    (MODEL_BLESSING, "Evaluator"),
    (MODEL_EVALUATION, "Evaluator"),
    (MODEL, "Trainer"),
    (HYPER_PARAMETERS, "Tuner"),
    (TRANSFORM_GRAPH, "Transform"),
    (EXAMPLE_ANOMALIES, "ExampleValidator"),
    (SCHEMA, "SchemaGen"),
    (EXAMPLE_STATISTICS, "StatisticsGen"),
    (EXAMPLES, "ExampleGen"),
)


def component_type_name(kind: str) -> str:
    """The MLMD execution type name registered for a component kind."""
    return COMPONENT_TYPE_PREFIX + kind


def infer_component_kind(output_types: list[str]) -> str | None:
    """Guess a task's component kind from the MLMD types of its outputs, or ``None``."""
    present = set(output_types)
    for artifact_type, kind in KIND_BY_OUTPUT_TYPE:
        if artifact_type in present:
            return kind
    return None


# Custom properties we put on every execution (TFX stores all execution properties as custom).
class ExecutionProps:
    """Names of the custom properties the recorder writes on an execution."""

    DAG_ID = "dag_id"
    TASK_ID = "task_id"
    RUN_ID = "run_id"
    TRY_NUMBER = "try_number"
    MAP_INDEX = "map_index"
    OPERATOR_CLASS = "operator_class"
    COMPONENT_KIND = "component_kind"
    AIRFLOW_STATE = "airflow_state"
    # Seconds since the Unix epoch, as DOUBLE: MLMD's int_value is 32-bit on PostgreSQL and MySQL.
    START_EPOCH_SECONDS = "start_epoch_seconds"
    END_EPOCH_SECONDS = "end_epoch_seconds"
    DURATION_SECONDS = "duration_seconds"
    # Where the try ran, as one JSON object {pool, pool_slots, queue, executor, hostname}: one
    # property instead of five keeps each write cheaper on PostgreSQL and MySQL.
    RESOURCES = "resources"
    CODE_HASH = "code_hash"
    PARAMETERS_HASH = "parameters_hash"
    DAG_STRUCTURE_HASH = "dag_structure_hash"
    DAG_VERSION = "dag_version"
    ERROR = "error"
    # Set when the scheduler closed a try whose end record never came (see the writer).
    ENDED_BY_SCHEDULER = "ended_by_scheduler"


class ContextProps:
    """Custom properties we put on ``pipeline_run`` contexts."""

    DAG_ID = "dag_id"
    RUN_ID = "run_id"
    LOGICAL_DATE_EPOCH_SECONDS = "logical_date_epoch_seconds"
    RUN_TYPE = "run_type"


# Custom property that ties an artifact to the Airflow Asset it was recorded for.
ASSET_URI = "airflow_asset_uri"
