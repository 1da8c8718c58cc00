"""Test DAG: a TFX-shaped pipeline declaring lineage through Assets, outlet events, the typed
lineage API and a mapped task. The tests assert exactly what it records."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task

from airflow_graphlets import lineage
from airflow_graphlets.assets import mlmd_asset

ROOT = os.environ.get("GRAPHLETS_TEST_DATA", "/tmp/graphlets-test-data")
examples = mlmd_asset("test_examples", "file:///graphlets-test/examples", "Examples")
statistics = mlmd_asset("test_statistics", "file:///graphlets-test/statistics", "ExampleStatistics")
schema_asset = mlmd_asset("test_schema", "file:///graphlets-test/schema", "Schema")


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def graphlets_test_pipeline():
    @task(outlets=[examples])
    def example_gen(*, outlet_events, logical_date, **_):
        span = (logical_date - datetime(2026, 1, 1, tzinfo=logical_date.tzinfo)).days
        outlet_events[examples].extra.update(
            span=span, version=0, split_names=["train", "eval"], mlmd_uri=f"file:///graphlets-test/examples/{span}"
        )
        return span

    @task(inlets=[examples], outlets=[statistics])
    def statistics_gen(span: int, *, outlet_events, **_):
        outlet_events[statistics].extra.update(span=span, mlmd_uri=f"file:///graphlets-test/statistics/{span}")

    @task(inlets=[statistics], outlets=[schema_asset])
    def schema_gen():
        pass

    @task
    @lineage.component("Trainer")
    def trainer(span: int, **context):
        run = lineage.of(context)
        run.input_spans("examples", "Examples", span_min=span - 2, span_max=span)
        run.input_from_task("schema", "schema_gen")
        run.output("Model", f"file:///graphlets-test/models/{span}")
        run.set_properties(train_rows=1000 + span)
        return span

    @task
    def evaluate_slice(slice_name: str, **context):
        lineage.of(context).input_from_task("model", "trainer")
        return slice_name

    @task
    @lineage.component("Evaluator")
    def evaluator(span: int, slices: list, **context):
        run = lineage.of(context)
        run.input_from_task("model", "trainer")
        run.output("ModelEvaluation", f"file:///graphlets-test/eval/{span}", slices=len(list(slices)))
        run.output("ModelBlessing", f"file:///graphlets-test/blessing/{span}", blessed=span % 2 == 0)
        return span % 2 == 0

    @task
    @lineage.component("Pusher")
    def pusher(span: int, blessed: bool, **context):
        run = lineage.of(context)
        run.input_from_task("model", "trainer")
        run.input_from_task("model_blessing", "evaluator", "blessing")
        run.output("PushedModel", f"file:///graphlets-test/serving/{span}", pushed=blessed)

    span = example_gen()
    stats = statistics_gen(span)
    schema = schema_gen()
    stats >> schema
    model = trainer(span)
    schema >> model
    slices = evaluate_slice.expand(slice_name=["all", "new_users", "old_users"])
    model >> slices
    blessed = evaluator(model, slices)
    pusher(model, blessed)


graphlets_test_pipeline()
