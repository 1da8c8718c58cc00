"""The typed lineage API a task uses when Assets do not fit."""

from __future__ import annotations

import pytest

from airflow_graphlets import lineage
from airflow_graphlets.errors import RecordError


def test_declarations_are_made_once_per_context():
    # With real Airflow the TaskFlow **context is a copy; the real-DAG tests prove the declarations
    # still reach the listener through the task instance's own context.
    context = {}
    run = lineage.of(context)
    assert lineage.of(context) is run
    assert lineage.declared(context) is run
    assert lineage.declared({}) is None


def test_outputs_take_tfx_keys_and_next_free_index():
    run = lineage.TaskLineage("churn", "r1")
    first = run.output("Examples", "/d/1", span=1)
    second = run.output("Examples", "/d/2", span=2)
    blessing = run.output("ModelBlessing", "/b", blessed=True)
    assert [(a.key, a.index) for a in (first, second, blessing)] == [("examples", 0), ("examples", 1), ("blessing", 0)]
    assert blessing.properties == {"blessed": True}


def test_custom_types_need_a_key_and_indexes_must_not_repeat():
    run = lineage.TaskLineage()
    with pytest.raises(RecordError, match="Give a key"):
        run.output("DriftReport", "/r")
    run.output("DriftReport", "/r", key="report")
    with pytest.raises(RecordError, match="declared twice"):
        run.output("DriftReport", "/r2", key="report", index=0)


def test_inputs_default_to_this_run_and_pipeline():
    run = lineage.TaskLineage("churn", "r1")
    run.input_from_task("model", "trainer")
    run.input_spans("examples", "Examples", 3, 7)
    by_task, by_span = run.inputs
    assert (by_task.dag_id, by_task.run_id, by_task.task_id, by_task.output_key) == ("churn", "r1", "trainer", "model")
    assert (by_span.dag_id, by_span.span_min, by_span.span_max) == ("churn", 3, 7)


def test_bad_properties_are_refused_where_they_are_set():
    run = lineage.TaskLineage()
    with pytest.raises(RecordError, match="finite"):
        run.set_properties(loss=float("inf"))
    with pytest.raises(RecordError, match="has type set"):
        run.output("Model", "/m", labels={"a"})


def test_component_names_a_known_kind():
    @lineage.component("Trainer")
    def train():
        pass

    assert train.graphlets_component == "Trainer"
    with pytest.raises(RecordError, match="Unknown component kind 'Trainr'"):
        lineage.component("Trainr")
