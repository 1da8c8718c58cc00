"""Continuous-training pipelines, TFX-shaped, recorded into ML Metadata by airflow-graphlets.

One DAG per pipeline of ``ct_pipelines.pipelines.PIPELINES``. Every day a run ingests one new
span of a drifting stream and retrains::

    example_gen -> statistics_gen -> schema_gen -> example_validator -> graphlet_gate
        -> [transform] -> trainer -> evaluator -> pusher

- ExampleGen writes span k (one day of a river stream with real concept drift).
- StatisticsGen, SchemaGen and ExampleValidator summarise it (also in TFDV's format), infer a
  schema and measure drift against the previous span.
- The graphlet gate predicts, from the pipeline's graphlet history in MLMD, the span statistics
  and the deployed model's accuracy on the new span (which it is handed), whether this run's
  model would be pushed, and skips the training branch when it would not (within guardrails;
  every decision is in the skip log, ``graphlets decisions``). Until a predictor exists
  (``graphlets train-predictor`` writes ``[graphlets] predictor_path``) it runs every training.
- Transform (in releases that have it) fits a standardisation on the training window.
- Trainer fits a scikit-learn model on the last ``window`` spans.
- Evaluator blesses the candidate only if, on the newest span's eval split, it reaches the
  accuracy threshold and beats the deployed model by the margin.
- Pusher copies a blessed model into the serving directory and records ``pushed``.

Each task declares what it read and wrote (Assets for examples, statistics and schema, the
``lineage`` API for windows, models, blessings and pushes), so every run leaves a complete model
graphlet in the MLMD store. Heavy imports (river, scikit-learn) happen inside the tasks: the DAG
file itself parses in milliseconds. Copy this file and ``ct_pipelines/`` to start your own.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow_graphlets import lineage
from airflow_graphlets.assets import mlmd_asset
from airflow_graphlets.gate_operator import graphlet_gate
from airflow_graphlets.prune.evaluator_bar import tfx_eval_config
from airflow_graphlets.prune.policy import Guardrails
from ct_pipelines import components
from ct_pipelines.pipelines import PIPELINES, Pipeline, Release, data_dir, span_of, today
from ct_pipelines.trainers import TRAINERS


def continuous_training(pipeline: Pipeline, release: Release):
    """The DAG of one pipeline, as its ``release`` defines it."""
    root = data_dir(pipeline.dag_id)
    examples = mlmd_asset(f"{pipeline.dag_id}_examples", f"file://{root}/examples", "Examples",
                          split_names=["train", "eval"])
    statistics = mlmd_asset(f"{pipeline.dag_id}_statistics", f"file://{root}/statistics", "ExampleStatistics")
    schema = mlmd_asset(f"{pipeline.dag_id}_schema", f"file://{root}/schema", "Schema")

    @dag(
        dag_id=pipeline.dag_id,
        description=pipeline.description,
        doc_md=f"{pipeline.description}\n\nRelease since {release.since}: transform={release.transform}, "
               f"trainer={release.trainer}.",
        schedule="@daily",
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,  # each run reads the spans and the deployed model the run before left
        default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
        tags=["graphlets", "continuous-training", pipeline.stream, pipeline.model],
    )
    def pipeline_dag():
        @task(outlets=[examples])
        @lineage.component("ExampleGen")
        def example_gen(*, outlet_events, logical_date, **_) -> int:
            from ct_pipelines import streams

            span = span_of(logical_date.date())
            rows = streams.read_span(pipeline.stream, pipeline.seed, span, pipeline.rows_per_span)
            path = os.path.join(root, "examples", f"span-{span}.npz")
            count = components.write_span(path, rows.features, rows.labels, rows.feature_names)
            outlet_events[examples].extra.update(span=span, version=0, mlmd_uri=path, rows=count)
            return span

        @task(inlets=[examples], outlets=[statistics])
        @lineage.component("StatisticsGen")
        def statistics_gen(span: int, *, outlet_events, **_) -> str:
            span_path = os.path.join(root, "examples", f"span-{span}.npz")
            path = os.path.join(root, "statistics", f"span-{span}.json")
            components.write_json(path, components.compute_statistics(span_path))
            uri = os.path.join(root, "statistics", f"span-{span}")  # TFDV's files, as TFX's StatisticsGen
            components.write_feature_statistics(span_path, uri)
            outlet_events[statistics].extra.update(span=span, split_names=["train", "eval"], mlmd_uri=uri)
            return path

        @task(inlets=[statistics], outlets=[schema])
        @lineage.component("SchemaGen")
        def schema_gen(statistics_path: str, *, outlet_events, run_id, **_) -> str:
            path = os.path.join(root, "schema", f"{_file_name(run_id)}.json")
            components.write_json(path, components.infer_schema(components.read_json(statistics_path)))
            outlet_events[schema].extra.update(mlmd_uri=path)
            return path

        @task
        @lineage.component("ExampleValidator")
        def example_validator(span: int, statistics_path: str, schema_path: str, **context) -> dict:
            run = lineage.of(context)
            run.input_from_task("statistics", "statistics_gen")
            run.input_from_task("schema", "schema_gen")
            previous_path = os.path.join(root, "statistics", f"span-{span - 1}.json")
            previous = components.read_json(previous_path) if os.path.exists(previous_path) else None
            report = components.validate(components.read_json(statistics_path), components.read_json(schema_path), previous)
            path = os.path.join(root, "anomalies", f"{_file_name(context['run_id'])}.json")
            components.write_json(path, report)
            run.output("ExampleAnomalies", path, span=span, anomalies=len(report["anomalies"]),
                       feature_drift=report["feature_drift"], label_drift=report["label_drift"])
            return report

        @task
        @lineage.component("Transform")
        def transform(span: int, **context) -> str:
            run = lineage.of(context)
            first, window = components.window(os.path.join(root, "examples"), span, pipeline.window)
            run.input_spans("examples", "Examples", span_min=first, span_max=span)
            run.input_from_task("schema", "schema_gen")
            path = os.path.join(root, "transform", f"{_file_name(context['run_id'])}.pkl")
            components.fit_transform(window, path)
            run.output("TransformGraph", path, spans=f"{first}-{span}")
            return path

        # A pipeline's gate may skip from its sixth graphlet on (the default waits for ten): until
        # this store has the history to train a predictor of its own, the gate decides with the
        # prior shipped with the package, corrected by the pipeline's own outcomes.
        @graphlet_gate(task_id="graphlet_gate", trainer_task_id="trainer", guardrails=Guardrails(min_history=5))
        def gate(span: int, report: dict) -> dict:
            """What the trainer will read (the rolling window), the drift the validator saw, and
            how the deployed and the latest model do on the new span (scoring costs far less
            than training)."""
            return {"spans": list(range(max(0, span - pipeline.window + 1), span + 1)),
                    "drift": report["feature_drift"],
                    "signals": components.model_scores(os.path.join(root, "serving"), os.path.join(root, "models"),
                                                       os.path.join(root, "examples", f"span-{span}.npz"))}

        trainer = task(task_id="trainer")(TRAINERS[release.trainer])

        @task
        @lineage.component("Evaluator")
        def evaluator(span: int, model_path: str, **context) -> dict:
            run = lineage.of(context)
            run.input_from_task("model", "trainer")
            run.input_uri("examples", os.path.join(root, "examples", f"span-{span}.npz"), "Examples")
            current = components.deployed(os.path.join(root, "serving"))
            if current is not None:
                run.input_uri("baseline_model", current["model_uri"], "Model")
            baseline = components.load_model(current["served_path"]) if current is not None else None
            verdict = components.evaluate(components.load_model(model_path), baseline,
                                          os.path.join(root, "examples", f"span-{span}.npz"),
                                          threshold=pipeline.threshold, margin=pipeline.margin)
            # The bar, as TFX's Evaluator keeps its EvalConfig: the gate learns how high it is.
            run.set_properties(eval_config=tfx_eval_config("BinaryAccuracy", pipeline.threshold, pipeline.margin))
            print(f"Evaluator: {verdict.reason}")
            path = os.path.join(root, "evaluations", f"{_file_name(context['run_id'])}.json")
            components.write_json(path, verdict.to_json())
            run.output("ModelEvaluation", path, accuracy=verdict.accuracy,
                       baseline_accuracy=verdict.baseline_accuracy if verdict.baseline_accuracy is not None else -1.0)
            run.output("ModelBlessing", path + ".blessing", blessed=verdict.blessed)
            return verdict.to_json()

        @task
        @lineage.component("Pusher")
        def pusher(model_path: str, verdict: dict, **context) -> bool:
            run = lineage.of(context)
            run.input_from_task("model", "trainer")
            run.input_from_task("model_blessing", "evaluator", "blessing")
            serving = os.path.join(root, "serving")
            if verdict["blessed"]:
                served = components.push(model_path, serving, context["run_id"])
                print(f"Pusher: pushed {model_path} to {served}")
                run.output("PushedModel", served, pushed=True)
            else:
                print(f"Pusher: not pushed ({verdict['reason']})")
                run.output("PushedModel", os.path.join(serving, _file_name(context["run_id"])), pushed=False)
            return bool(verdict["blessed"])

        span = example_gen()
        statistics_path = statistics_gen(span)
        schema_path = schema_gen(statistics_path)
        decided = gate(span, example_validator(span, statistics_path, schema_path))
        transform_path = transform(span) if release.transform else None
        if transform_path is not None:
            decided >> transform_path
            model_path = trainer(pipeline.dag_id, span, transform_path)
        else:
            model_path = trainer(pipeline.dag_id, span)
            decided >> model_path
        pusher(model_path, evaluator(span, model_path))

    return pipeline_dag()


def _file_name(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


for _pipeline in PIPELINES:
    globals()[_pipeline.dag_id] = continuous_training(_pipeline, _pipeline.release_on(today()))
