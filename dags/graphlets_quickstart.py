"""A small TFX-shaped pipeline recorded into ML Metadata by airflow-graphlets.

ExampleGen writes one new span per run, StatisticsGen analyses it, Trainer fits on a rolling
window of spans, Evaluator blesses the model when it beats a threshold, Pusher pushes blessed
models. It shows both ways of declaring lineage: Assets (with MLMD types in ``extra`` and run-time
properties through ``outlet_events``) and the typed ``lineage`` API.
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime

from airflow.sdk import dag, task
from airflow_graphlets import lineage
from airflow_graphlets.assets import mlmd_asset

DATA_ROOT = os.environ.get("GRAPHLETS_DEMO_DATA", "/tmp/graphlets-quickstart")
WINDOW = 3

examples = mlmd_asset("quickstart_examples", f"file://{DATA_ROOT}/examples", "Examples")
statistics = mlmd_asset("quickstart_statistics", f"file://{DATA_ROOT}/statistics", "ExampleStatistics")


@dag(schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False, tags=["graphlets", "example"])
def graphlets_quickstart():
    @task(outlets=[examples])
    def example_gen(*, outlet_events, logical_date, **_):
        span = logical_date.toordinal() - datetime(2026, 1, 1).toordinal()
        rows = [random.Random(span * 1000 + i).gauss(span * 0.1, 1.0) for i in range(200)]
        path = f"{DATA_ROOT}/examples/span-{span}.json"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            json.dump(rows, handle)
        outlet_events[examples].extra.update(span=span, version=0, split_names=["train", "eval"], mlmd_uri=path)
        return span

    @task(inlets=[examples], outlets=[statistics])
    def statistics_gen(span: int, *, outlet_events, **_):
        with open(f"{DATA_ROOT}/examples/span-{span}.json") as handle:
            rows = json.load(handle)
        mean = sum(rows) / len(rows)
        outlet_events[statistics].extra.update(span=span, mean=mean, mlmd_uri=f"{DATA_ROOT}/statistics/{span}")
        return mean

    @task
    @lineage.component("Trainer")
    def trainer(span: int, **context):
        run = lineage.of(context)
        run.input_spans("examples", "Examples", span_min=max(0, span - WINDOW + 1), span_max=span)
        window = []
        for s in range(max(0, span - WINDOW + 1), span + 1):
            path = f"{DATA_ROOT}/examples/span-{s}.json"
            if os.path.exists(path):
                with open(path) as handle:
                    window.extend(json.load(handle))
        model = {"mean": sum(window) / len(window), "n": len(window)}
        uri = f"{DATA_ROOT}/models/{context['run_id']}.json"
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        with open(uri, "w") as handle:
            json.dump(model, handle)
        run.output("Model", uri)
        return uri

    @task
    @lineage.component("Evaluator")
    def evaluator(model_uri: str, **context):
        run = lineage.of(context)
        run.input_from_task("model", "trainer")
        with open(model_uri) as handle:
            model = json.load(handle)
        blessed = abs(model["mean"]) < 5.0
        run.output("ModelEvaluation", model_uri + ".eval", mean=model["mean"])
        run.output("ModelBlessing", model_uri + ".blessing", blessed=blessed)
        return blessed

    @task
    @lineage.component("Pusher")
    def pusher(model_uri: str, blessed: bool, **context):
        run = lineage.of(context)
        run.input_from_task("model", "trainer")
        run.input_from_task("model_blessing", "evaluator", "blessing")
        run.output("PushedModel", f"{DATA_ROOT}/serving/{context['run_id']}", pushed=blessed)

    span = example_gen()
    statistics_gen(span)
    model = trainer(span)
    pusher(model, evaluator(model))


graphlets_quickstart()
