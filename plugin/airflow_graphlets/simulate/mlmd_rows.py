"""Turn simulated runs into MLMD rows shaped exactly as the recorder writes an Airflow run.

Contexts ``pipeline`` (the DAG id), ``pipeline_run`` (``<dag>.<run id>``, child of the pipeline)
and ``node`` (``<dag>.<task>``); one execution per task try, typed
``airflow_graphlets.components.<Kind>``, with the recorder's custom properties; outputs with
TFX's types, properties and event paths (``examples``, ``model``, ``baseline_model``, ...);
associations of each execution with its three contexts and attributions of the artifacts it
read or wrote, as MLMD's ``put_execution`` makes them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from airflow_graphlets.simulate.history import KIND_OF_TASK, TASKS, PipelineHistory
from airflow_graphlets.store import schema
from airflow_graphlets.store.bulk_write import WideProperties, encode_copy_text
from airflow_graphlets.store.identity import artifact_external_id, execution_external_id

_P = schema.ExecutionProps
INPUT, OUTPUT = 3, 4
COMPLETE, FAILED, CANCELED = 3, 4, 6
LIVE = 2
_OPERATOR = "airflow.providers.standard.decorators.python._PythonDecoratedOperator"
# Tables built as COPY text with ``copy_text`` (the rest stay tuples, encoded in one go).
TEXT_TABLES = ("Execution", "ExecutionProperty", "Artifact", "Event", "EventPath", "Association", "Attribution")
_NOT_RAN = (None, None, None, None)  # a cancelled task's start, end, duration and resources
_PROPERTY_TABLES = ("ContextProperty", "ExecutionProperty", "ArtifactProperty")
_GAP = 5.0  # seconds between one task's end and the next one's start
# The custom properties of a task's execution, in the order the recorder writes them (the last four
# only for a task that ran).
EXECUTION_PROPERTIES = (_P.DAG_ID, _P.TASK_ID, _P.RUN_ID, _P.TRY_NUMBER, _P.MAP_INDEX, _P.AIRFLOW_STATE,
                        _P.OPERATOR_CLASS, _P.COMPONENT_KIND, _P.DAG_STRUCTURE_HASH, _P.CODE_HASH,
                        _P.START_EPOCH_SECONDS, _P.END_EPOCH_SECONDS, _P.DURATION_SECONDS, _P.RESOURCES)
_RESOURCES = json.dumps({"pool": "default_pool", "pool_slots": 1, "queue": "default", "executor": "LocalExecutor",
                         "hostname": "worker-1"})


@dataclass
class TypeIds:
    """MLMD type ids of the store being written."""

    contexts: dict[str, int]
    executions: dict[str, int]  # by task
    artifacts: dict[str, int]  # by type name


class RowBuilder:
    """Turns whole pipelines into rows for :class:`~airflow_graphlets.store.bulk_write.BulkWriter`,
    allocating ids from ``next_ids`` on (it must be the only writer of the store meanwhile)."""

    def __init__(self, types: TypeIds, next_ids: dict[str, int], copy_text: bool = False,
                 group_by_name: bool = False, wide_properties: bool = False) -> None:
        """Args:
          types: the store's type ids.
          next_ids: the first id to allocate in each table.
          copy_text: build :data:`TEXT_TABLES` (executions, artifacts and the largest tables:
            over nine rows in ten) as PostgreSQL COPY text rather than tuples, see :meth:`take`.
          group_by_name: hand over each batch's property rows grouped by name, see :meth:`take`
            (PostgreSQL; on SQLite it made the load slower by more than the index builds gained).
          wide_properties: hand over execution properties one execution per row, see :meth:`take`
            (for ``stage_rows``: a fourteenth of the rows to build and stage).
        """
        self.group_by_name = group_by_name
        self.types = types
        self.ids = dict(next_ids)
        self.copy_text = copy_text
        self.wide_properties = wide_properties
        self.wide: list[tuple] = []  # with wide_properties: (execution id, *values) per execution
        # COPY text of an execution property after its owner's id, by (name, value); per pipeline.
        self._tails: dict[tuple[str, object], str] = {}
        self.rows: dict[str, list[tuple]] = {}
        self.text: dict[str, list[str]] = {table: [] for table in TEXT_TABLES}  # with copy_text
        # Property rows of the current batch, by table and then by property name (see take()).
        self.properties: dict[str, dict[str, list[tuple]]] = {table: {} for table in _PROPERTY_TABLES}
        self.attributed: set[tuple[int, int]] = set()  # (context, artifact) pairs of this pipeline

    def _id(self, table: str) -> int:
        value = self.ids[table]
        self.ids[table] = value + 1
        return value

    def _add(self, table: str, row: tuple) -> None:
        self.rows.setdefault(table, []).append(row)

    def _property_rows(self, table: str, name: str) -> list:
        """Where a property row of ``name`` goes: with the batch's other rows of its name, or
        (not grouping) with all the table's rows of the batch, in the order they come."""
        return self.properties[table].setdefault(name if self.group_by_name else "", [])

    def _add_property(self, table: str, row: tuple) -> None:
        """A property row (owner id, name, ...)."""
        self._property_rows(table, row[1]).append(row)

    def _add_execution(self, execution: int, type_id: int, state: int, external: str, start_ms: int,
                       end_ms: int) -> None:
        """An ``Execution`` row; its name is its external id, as the recorder writes it."""
        if self.copy_text:
            field = _text_field(external)
            self.text["Execution"].append(f"{execution},{type_id},{state},{field},{field},{start_ms},{end_ms}\n")
        else:
            self._add("Execution", (execution, type_id, state, external, external, start_ms, end_ms))

    def _add_artifact(self, artifact: int, type_id: int, uri: str, external: str, ms: int) -> None:
        """A live, unnamed ``Artifact`` row, created and last updated at ``ms``."""
        if self.copy_text:
            self.text["Artifact"].append(f'{artifact},{type_id},{_text_field(uri)},{LIVE},"",{_text_field(external)},'
                                         f'{ms},{ms}\n')
        else:
            self._add("Artifact", (artifact, type_id, uri, LIVE, None, external, ms, ms))

    def _add_event(self, event: int, artifact: int, execution: int, event_type: int, ms: int, key: str,
                   index: int) -> None:
        """An event and its path (``key``, then ``index``: TFX's two steps)."""
        if self.copy_text:  # the lines the csv module writes for the tuples below
            self.text["Event"].append(f"{event},{artifact},{execution},{event_type},{ms}\n")
            self.text["EventPath"].append(f'{event},0,"",{_text_field(key)}\n{event},1,{index},""\n')
            return
        self._add("Event", (event, artifact, execution, event_type, ms))
        self._add("EventPath", (event, 0, None, key))
        self._add("EventPath", (event, 1, index, None))

    def _add_link(self, table: str, context: int, member: int) -> None:
        """An ``Association`` (context, execution) or ``Attribution`` (context, artifact), with its id."""
        link = self._id(table)
        if self.copy_text:
            self.text[table].append(f"{link},{context},{member}\n")
        else:
            self._add(table, (link, context, member))

    def _add_execution_properties(self, execution: int, values: tuple) -> None:
        """One execution's custom properties: values in :data:`EXECUTION_PROPERTIES` order, None
        for a property not set.

        With ``copy_text``, each row is the execution id and cached CSV text: a run's tasks share
        most values, so the csv module encodes each value once per pipeline instead of every row
        (tuples and their encoding were over half the producer's time at paper scale)."""
        if self.wide_properties:
            self.wide.append((execution, *values))
            return
        if not self.copy_text:
            for name, value in zip(EXECUTION_PROPERTIES, values):
                if value is not None:
                    self._property_rows("ExecutionProperty", name).append((execution, name, 1, *_typed(value)))
            return
        tails = self._tails
        for name, value in zip(EXECUTION_PROPERTIES, values):
            if value is None:
                continue
            if type(value) is float:  # a time or duration, new each row: not worth a cache entry
                tail = f'"{name}",1,"",{value!r},""\n'  # what csv's QUOTE_NONNUMERIC writes
            else:
                tail = tails.get((name, value))
                if tail is None:
                    tail = tails[(name, value)] = encode_copy_text([(name, 1, *_typed(value))])
            self._property_rows("ExecutionProperty", name).append(f"{execution},{tail}")

    def take(self) -> dict[str, list[tuple] | str | WideProperties]:
        """The rows added since the last call, by table: tuples, or COPY text for
        :data:`TEXT_TABLES` when building with ``copy_text``, and with ``wide_properties``
        execution properties as :class:`WideProperties`.

        With ``group_by_name``, property rows come grouped by property name (in name order),
        each group in id order (else all in id order): MLMD's value indexes on them begin with
        the name, so PostgreSQL's index builds after the load sort long presorted runs."""
        rows: dict[str, list[tuple] | str] = dict(self.rows)
        rows.update({table: "".join(lines) for table, lines in self.text.items() if lines})
        self.rows, self.text = {}, {table: [] for table in TEXT_TABLES}
        for table, by_name in self.properties.items():
            if by_name:
                grouped = [row for name in sorted(by_name) for row in by_name[name]]
                rows[table] = "".join(grouped) if self.copy_text and table == "ExecutionProperty" else grouped
        self.properties = {table: {} for table in _PROPERTY_TABLES}
        if self.wide:
            rows["ExecutionProperty"] = WideProperties(EXECUTION_PROPERTIES, self.wide)
            self.wide = []
        return rows

    def pipeline(self, history: PipelineHistory) -> None:
        """Add every row of one pipeline's history."""
        dag = history.name
        self.attributed = set()
        self._tails = {}
        created = int(history.run_times[0] * 1000)
        pipeline_ctx = self._context(schema.PIPELINE_CONTEXT, dag, created)
        node_ctx = {task: self._context(schema.NODE_CONTEXT, f"{dag}.{task}", created) for task in TASKS}
        code_hashes = [f"code-{dag}-{v}" for v in range(int(history.code_version.max()) + 1)]
        spans: list[int] = []  # Examples artifact id per span
        blessed_models: list[int] = []
        for r, t0 in enumerate(history.run_times.tolist()):
            run_id = "scheduled__" + dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat()
            run_ctx = self._context(schema.PIPELINE_RUN_CONTEXT, f"{dag}.{run_id}", int(t0 * 1000))
            self._add("ParentContext", (run_ctx, pipeline_ctx))
            for name, value in ((schema.ContextProps.DAG_ID, dag), (schema.ContextProps.RUN_ID, run_id),
                                (schema.ContextProps.LOGICAL_DATE_EPOCH_SECONDS, float(t0)),
                                (schema.ContextProps.RUN_TYPE, "scheduled")):
                self._add_property("ContextProperty", (run_ctx, name, 1, *_typed(value)))
            tasks = [t for t in TASKS if (t != "transform" or history.transform[r])
                     and (t not in ("evaluator", "pusher") or history.evaluator)]
            structure = f"structure-{dag}-{int(history.transform[r])}"
            run = _Run(self, dag, r, run_id, (pipeline_ctx, run_ctx), node_ctx, t0, history.durations[r], structure,
                       code_hashes[int(history.code_version[r])])
            examples = run.task("example_gen", [], [("examples", "Examples", {"span": r, "version": 0,
                                                                              "split_names": '["train", "eval"]'})])[0]
            spans.append(examples)
            window = spans[max(0, r - history.window + 1):]
            stats = run.task("statistics_gen", [("examples", [examples])],
                             [("statistics", "ExampleStatistics", {"span": r, "split_names": '["train", "eval"]'})])[0]
            schema_art = run.task("schema_gen", [("statistics", [stats])], [("schema", "Schema", {})])[0]
            run.task("example_validator", [("statistics", [stats]), ("schema", [schema_art])],
                     [("anomalies", "ExampleAnomalies", {"span": r,
                                                         "feature_drift": float(history.observed_drift[r])})])
            trainer_inputs = [("examples", window), ("schema", [schema_art])]
            if history.transform[r]:
                graph = run.task("transform", [("examples", window), ("schema", [schema_art])],
                                 [("transform_graph", "TransformGraph", {})])[0]
                trainer_inputs.append(("transform_graph", [graph]))
            if history.trainer_failed[r]:
                run.task("trainer", trainer_inputs, [], state=FAILED)
                for task in ("evaluator", "pusher"):
                    if task in tasks:
                        run.task(task, [], [], state=CANCELED)
                continue
            model = run.task("trainer", trainer_inputs, [("model", "Model", {})])[0]
            if not history.evaluator:
                continue
            blessed = bool(history.blessed[r])
            eval_inputs = [("examples", [examples]), ("model", [model])]
            if blessed_models:
                eval_inputs.append((schema.BASELINE_MODEL, [blessed_models[-1]]))
            blessing = run.task("evaluator", eval_inputs, [("evaluation", "ModelEvaluation", {}),
                                                           ("blessing", "ModelBlessing", {schema.BLESSED: int(blessed)})])[1]
            run.task("pusher", [("model", [model]), ("model_blessing", [blessing])],
                     [("pushed_model", "PushedModel", {schema.PUSHED: int(blessed)})])
            if blessed:
                blessed_models.append(model)

    def _context(self, type_name: str, name: str, created_ms: int) -> int:
        context_id = self._id("Context")
        self._add("Context", (context_id, self.types.contexts[type_name], name, None, created_ms, created_ms))
        return context_id


class _Run:
    """Rows of one DAG run, task by task in sequence."""

    def __init__(self, builder: RowBuilder, dag, run_number, run_id, contexts, node_ctx, t0, durations, structure,
                 code) -> None:
        self.b, self.dag, self.run_id, self.contexts, self.node_ctx = builder, dag, run_id, contexts, node_ctx
        self.run_number = run_number
        self.clock, self.durations, self.structure, self.code = t0, durations, structure, code

    def task(self, task: str, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, str, dict]],
             state: int = COMPLETE) -> list[int]:
        b = self.b
        kind = KIND_OF_TASK[task]
        ran = state != CANCELED
        duration = float(self.durations[TASKS.index(task)]) if ran else 0.0
        start, end = round(self.clock, 3), round(self.clock + duration, 3)
        self.clock = end + _GAP
        external = execution_external_id(self.dag, self.run_id, task, -1, 1)
        execution = b._id("Execution")
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        b._add_execution(execution, b.types.executions[task], state, external, start_ms, end_ms)
        airflow_state = {COMPLETE: "success", FAILED: "failed", CANCELED: "upstream_failed"}[state]
        b._add_execution_properties(execution, (  # EXECUTION_PROPERTIES
            self.dag, task, self.run_id, 1, -1, airflow_state, _OPERATOR, kind, self.structure, self.code,
            *((start, end, duration, _RESOURCES) if ran else _NOT_RAN)))
        contexts = (*self.contexts, self.node_ctx[task])
        for context in contexts:
            b._add_link("Association", context, execution)
        attributed = set()
        for key, artifact_ids in inputs:
            for index, artifact in enumerate(artifact_ids):
                self._event(artifact, execution, INPUT, start_ms, key, index)
                attributed.add(artifact)
        produced = []
        for index_in_task, (key, type_name, properties) in enumerate(outputs):
            artifact = b._id("Artifact")
            # No ids in it: a staged batch's ids are shifted when copied in (BulkWriter.copy_staged).
            uri = f"file:///simulated/{self.dag}/{task}/{key}/{self.run_number}"
            b._add_artifact(artifact, b.types.artifacts[type_name], uri, artifact_external_id(external, key, 0), end_ms)
            declared = schema.ARTIFACT_TYPES[type_name].properties
            for name, value in properties.items():
                b._add_property("ArtifactProperty", (artifact, name, 0 if name in declared else 1, *_typed(value)))
            self._event(artifact, execution, OUTPUT, end_ms, key, 0)
            attributed.add(artifact)
            produced.append(artifact)
        for artifact in sorted(attributed):
            for context in contexts:
                if (context, artifact) not in b.attributed:
                    b.attributed.add((context, artifact))
                    b._add_link("Attribution", context, artifact)
        return produced

    def _event(self, artifact: int, execution: int, event_type: int, ms: int, key: str, index: int) -> None:
        self.b._add_event(self.b._id("Event"), artifact, execution, event_type, ms, key, index)


def _text_field(text: str) -> str:
    """``text`` as one CSV field of COPY text: in quotes, as the csv module writes it (ids, URIs
    and event keys built here hold no quote to double; one that did would go through the csv
    module)."""
    return f'"{text}"' if '"' not in text else encode_copy_text([(text,)])[:-1]


def _typed(value) -> tuple:
    """(int_value, double_value, string_value) for a property value, as the recorder stores it."""
    if isinstance(value, (bool, int)):
        return int(value), None, None
    if isinstance(value, float):
        return None, value, None
    return None, None, str(value)
