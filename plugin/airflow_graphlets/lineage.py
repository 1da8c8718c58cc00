"""The typed Python API a task uses to say what it read and wrote, when Assets do not fit.

Inside a task::

    from airflow_graphlets import lineage

    @task
    def train(**context):
        run = lineage.of(context)
        run.input_spans("examples", "Examples", span_min=3, span_max=7)
        ...fit the model...
        run.output("Model", uri="/models/churn/7", key="model", accuracy=0.91)

The declarations are kept on the task's Airflow context and written with the task's record
when it ends. Nothing here imports Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from airflow_graphlets.errors import RecordError
from airflow_graphlets.recorder.records import ArtifactRecord, InputRef, check_properties
from airflow_graphlets.store import schema

LINEAGE_KEY = "graphlets_lineage"
COMPONENT_ATTRIBUTE = "graphlets_component"

F = TypeVar("F", bound=Callable[..., Any])


class TaskLineage:
    """What one running task declares it read and wrote.

    Get it with :func:`of`; the listener writes it with the task's record when the task ends.
    Outputs are recorded only if the task succeeds, as TFX publishes outputs only on success.
    """

    def __init__(self, dag_id: str = "", run_id: str = "") -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.inputs: list[InputRef] = []
        self.outputs: list[ArtifactRecord] = []
        self.properties: dict[str, Any] = {}
        self.component: str | None = None

    def output(
        self, type_name: str, uri: str, *, key: str | None = None, index: int | None = None, **properties: Any
    ) -> ArtifactRecord:
        """Declare an artifact this task wrote.

        Args:
          type_name: MLMD type, TFX's name for standard ones (``Examples``, ``Model``,
            ``ModelBlessing``, ``PushedModel``, ...).
          uri: where the payload is.
          key: event-path key; defaults to TFX's key for the type (``examples``, ``model``, ...).
          index: position under ``key``; defaults to the next free one.
          **properties: ``span``, ``version``, ``split_names``, ``blessed``, ``pushed``, metrics...

        Returns:
          The declared artifact.

        Raises:
          RecordError: a name or value is invalid (the message says which and why).
        """
        key = key or _default_key(type_name)
        if index is None:
            index = sum(1 for a in self.outputs if a.key == key)
        artifact = ArtifactRecord(key=key, type_name=type_name, uri=uri, properties=properties, index=index)
        if any(a.key == artifact.key and a.index == artifact.index for a in self.outputs):
            raise RecordError(f"Output {key!r} index {index} is declared twice; give each output its own index.")
        self.outputs.append(artifact)
        return artifact

    def input_artifacts(self, key: str, artifact_ids: list[int]) -> None:
        """Declare that this task read the MLMD artifacts with these ids."""
        self.inputs.append(InputRef(key=key, by="artifact_id", artifact_ids=tuple(artifact_ids)))

    def input_from_task(
        self,
        key: str,
        task_id: str,
        output_key: str | None = None,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
    ) -> None:
        """Declare that this task read what task ``task_id`` wrote under ``output_key``.

        ``output_key`` defaults to ``key``; ``dag_id`` and ``run_id`` to this task's own run.
        """
        self.inputs.append(
            InputRef(
                key=key,
                by="task_output",
                dag_id=dag_id or self.dag_id,
                run_id=run_id or self.run_id,
                task_id=task_id,
                output_key=output_key or key,
                map_index=map_index,
            )
        )

    def input_uri(self, key: str, uri: str, type_name: str = "") -> None:
        """Declare that this task read the newest artifact recorded at ``uri``."""
        self.inputs.append(InputRef(key=key, by="uri", uri=uri, type_name=type_name))

    def input_spans(
        self, key: str, type_name: str, span_min: int, span_max: int, *, dag_id: str | None = None
    ) -> None:
        """Declare that this task read spans ``span_min..span_max`` of ``type_name`` (a rolling window)."""
        self.inputs.append(
            InputRef(
                key=key,
                by="spans",
                dag_id=dag_id or self.dag_id,
                type_name=type_name,
                span_min=span_min,
                span_max=span_max,
            )
        )

    def set_properties(self, **properties: Any) -> None:
        """Add custom properties to this task's execution (metrics, sizes, ...)."""
        self.properties.update(check_properties(properties, "the execution"))


def of(context: MutableMapping[str, Any]) -> TaskLineage:
    """The :class:`TaskLineage` of the task whose Airflow ``context`` this is, made on first use.

    Works with the ``**context`` a TaskFlow task receives (a copy of the real context): the
    declarations are kept on the task instance's own context, where the listener reads them.
    """
    shared = _shared_context(context)
    found = shared.get(LINEAGE_KEY)
    if found is None:
        ti = context.get("ti")
        found = TaskLineage(getattr(ti, "dag_id", ""), getattr(ti, "run_id", ""))
        shared[LINEAGE_KEY] = found
    return found


def declared(context: MutableMapping[str, Any]) -> TaskLineage | None:
    """The declarations made so far, or ``None``; for the listener, which must not create them."""
    return context.get(LINEAGE_KEY)


def component(kind: str) -> Callable[[F], F]:
    """Decorate a task's callable with its TFX component kind (``Trainer``, ``Pusher``, ...).

    The kind picks the MLMD execution type, which the graphlet analyses use to tell trainers,
    evaluators and pushers apart. Put it under ``@task``::

        @task
        @lineage.component("Trainer")
        def train(): ...
    """
    if kind not in schema.COMPONENT_KINDS:
        raise RecordError(
            f"Unknown component kind {kind!r}; use one of {', '.join(schema.COMPONENT_KINDS)}."
        )

    def mark(function: F) -> F:
        setattr(function, COMPONENT_ATTRIBUTE, kind)
        return function

    return mark


def _shared_context(context: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    ti = context.get("ti")
    get_context = getattr(ti, "get_template_context", None)
    if callable(get_context):
        return get_context()
    return context


def _default_key(type_name: str) -> str:
    spec = schema.ARTIFACT_TYPES.get(type_name)
    if spec is None:
        raise RecordError(f"Give a key for the artifact of custom type {type_name!r} (e.g. key='report').")
    return spec.default_key
