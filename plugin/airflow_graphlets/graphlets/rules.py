"""What a graphlet is made of: how executions and artifacts are classified, written once.

Both readers (MLMD's API and the bulk SQL reader) apply these rules, so they can only differ in
how they fetch the provenance graph, never in what they call a trainer, a span or a push.
Classification works from type names and MLMD base types alone, which a TFX-written store and
ours share: TFX names an execution type after the component's class path
(``tfx.components.trainer.component.Trainer``), we name it ``airflow_graphlets.components.Trainer``;
both end in the component kind.
"""

from __future__ import annotations

import hashlib

from airflow_graphlets.store import schema

# Operator kinds the analyses report on; anything else is "Other".
KINDS: tuple[str, ...] = (*schema.COMPONENT_KINDS, "Other")
KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}

# Names TFX has used for a kind besides its own (the legacy ModelValidator blessed models too).
_ALIASES = {"ModelValidator": "Evaluator"}
_KIND_BY_BASE_TYPE = {
    schema.BASE_TRAIN: "Trainer",
    schema.BASE_TRANSFORM: "Transform",
    schema.BASE_EVALUATE: "Evaluator",
    schema.BASE_DEPLOY: "Pusher",
}

# Executions that analyse data spans (the paper's data-analysis operators).
ANALYSIS_KINDS = frozenset({"StatisticsGen", "SchemaGen", "ExampleValidator"})
# Executions downstream of a model that still belong to its graphlet: validation and push.
DOWNSTREAM_KINDS = frozenset({"Evaluator", "InfraValidator", "Pusher", "Other"})

# Artifacts that belong to a model's side of the graph. The upstream walk never crosses them:
# a warm-start ``base_model``, a baseline or an analyzer cache ties a run to earlier graphlets,
# it does not make their compute part of this one.
MODEL_SIDE_TYPES = frozenset(
    {
        schema.MODEL,
        schema.MODEL_RUN,
        schema.MODEL_EVALUATION,
        schema.MODEL_BLESSING,
        schema.INFRA_BLESSING,
        schema.PUSHED_MODEL,
        schema.TRANSFORM_CACHE,
    }
)
# Event-path keys under which a model is read for comparison or warm start, not validated.
REFERENCE_INPUT_KEYS = frozenset({schema.BASELINE_MODEL, "base_model"})

# Execution states (MLMD Execution.State).
STATE_UNKNOWN, STATE_NEW, STATE_RUNNING, STATE_COMPLETE, STATE_FAILED, STATE_CACHED, STATE_CANCELED = range(7)
STATE_NAMES = ("UNKNOWN", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED")
# A trainer in one of these states trained (or is training) a model, so it anchors a graphlet.
# CACHED trainers reused an earlier model and CANCELED ones (skipped, upstream failed) never ran.
ANCHOR_STATES = frozenset({STATE_NEW, STATE_RUNNING, STATE_COMPLETE, STATE_FAILED})
ACTIVE_STATES = frozenset({STATE_NEW, STATE_RUNNING})

# Event types (MLMD Event.Type): which side of an execution an event is on.
INPUT_EVENT_TYPES = frozenset({2, 3, 5})  # DECLARED_INPUT, INPUT, INTERNAL_INPUT
OUTPUT_EVENT_TYPES = frozenset({1, 4, 6, 7})  # DECLARED_OUTPUT, OUTPUT, INTERNAL_OUTPUT, PENDING_OUTPUT

# Pipeline-run context types: TFX's portable orchestrator and its legacy one.
RUN_CONTEXT_TYPES = (schema.PIPELINE_RUN_CONTEXT, "run")

# Custom execution properties that time an execution (the recorder's), and those that
# fingerprint code and structure.
START_PROPERTY = schema.ExecutionProps.START_EPOCH_SECONDS
END_PROPERTY = schema.ExecutionProps.END_EPOCH_SECONDS
# Code fingerprint: ours first, then the checksum TFX's legacy orchestrator kept of a module file,
# then the user-code wheel TFX's portable orchestrator names in ``module_path``
# (``<module>@<root>/_wheels/tfx_user_code_<Component>-0.0+<fingerprint>-py3-none-any.whl``).
CODE_HASH_PROPERTIES = (schema.ExecutionProps.CODE_HASH, "checksum_md5", "module_path")
STRUCTURE_HASH_PROPERTY = schema.ExecutionProps.DAG_STRUCTURE_HASH


def execution_kind(type_name: str, base_type: str | None) -> str:
    """The operator kind of an execution type, from its name's last segment, else its base type.

    >>> execution_kind("tfx.components.example_gen.csv_example_gen.component.CsvExampleGen", None)
    'ExampleGen'
    >>> execution_kind("my.team.FancyTrainer", "mlmd.Train")
    'Trainer'
    """
    last = type_name.rsplit(".", 1)[-1]
    last = _ALIASES.get(last, last)
    if last in KIND_INDEX:
        return last
    if last.endswith("ExampleGen"):
        return "ExampleGen"
    return _KIND_BY_BASE_TYPE.get(base_type or "", "Other")


def is_span_type(type_name: str, base_type: str | None) -> bool:
    """Whether artifacts of this type are data (Examples): spans when an ingestion made them."""
    return type_name == schema.EXAMPLES or (base_type == schema.BASE_DATASET and type_name not in MODEL_SIDE_TYPES)


def is_model_type(type_name: str, base_type: str | None) -> bool:
    """Whether artifacts of this type are trained models (not pushed copies of them)."""
    return type_name == schema.MODEL or (base_type == schema.BASE_MODEL and type_name != schema.PUSHED_MODEL)


def is_model_side_type(type_name: str, base_type: str | None) -> bool:
    """Whether the upstream walk stops at artifacts of this type."""
    return type_name in MODEL_SIDE_TYPES or is_model_type(type_name, base_type)


def structure_fingerprint(type_names: set[str] | list[str]) -> str:
    """A pipeline-structure fingerprint for stores that record none: its run's execution types."""
    return hashlib.sha1("\n".join(sorted(set(type_names))).encode()).hexdigest()[:16]
