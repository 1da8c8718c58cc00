"""Trainer code, one function per released version: the Trainer task of a DAG runs one of these.

A code change is a new version here and a release that uses it (``pipelines.Release.trainer``).
The recorder hashes the task's callable, so the graphlets of runs after the release carry a new
``code_hash``, as a TFX trainer whose module file changed would.
"""

from __future__ import annotations

import os
from typing import Any

from airflow_graphlets import lineage

from ct_pipelines import components
from ct_pipelines.pipelines import Pipeline, data_dir, pipeline_named


def _window(pipeline: Pipeline, span: int, root: str) -> tuple[int, list[str]]:
    """The first span and the files of the rolling window ending at ``span``: the last
    ``pipeline.window`` spans that were ingested (a backfill that starts mid-history has fewer)."""
    return components.window(os.path.join(root, "examples"), span, pipeline.window)


def _spans(paths: list[str]) -> list[int]:
    return [int(os.path.basename(path)[len("span-"):-len(".npz")]) for path in paths]


def fit_candidate(dag_id: str, span: int, version: str, transform=None) -> components.TrainedModel:
    """What the trainer of ``version`` fits for the run ingesting ``span``: the pipeline's model on
    the training rows of its rolling window (after ``transform``, the Transform step's fitted
    preprocessing, when the release has one). A pure function of the spans on disk, so the model
    a skipped run would have trained can be fitted again later (``scripts/demo_gate_report.py``)."""
    pipeline, root = pipeline_named(dag_id), data_dir(dag_id)
    _, paths = _window(pipeline, span, root)
    features, labels = components.read_window(paths)
    model = components.make_model(pipeline.model, pipeline.seed)
    model = _VERSIONS[version](model)
    model.fit(transform.transform(features) if transform is not None else features, labels)
    return components.TrainedModel(model, transform, _spans(paths), len(labels))


def _v1(model):
    return model


def _v2(model):
    """Version 2: the model sees the pairwise products of the features as well (degree-2 terms)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    return make_pipeline(PolynomialFeatures(degree=2, include_bias=False), model)


_VERSIONS = {"v1": _v1, "v2": _v2}


def _train(version: str, dag_id: str, span: int, transform_path: str | None, context: dict, **properties: Any) -> str:
    """What every trainer version does: fit the candidate, store it and declare the lineage."""
    pipeline, root = pipeline_named(dag_id), data_dir(dag_id)
    run = lineage.of(context)
    first, _ = _window(pipeline, span, root)
    run.input_spans("examples", "Examples", span_min=first, span_max=span)
    run.input_from_task("schema", "schema_gen")
    if transform_path:
        run.input_from_task("transform_graph", "transform")
    trained = fit_candidate(dag_id, span, version, components.load_transform(transform_path))
    path = os.path.join(root, "models", f"span-{span}-{context['run_id'].replace(':', '_')}.pkl")
    components.save_model(trained, path)
    run.output("Model", path, train_rows=trained.train_rows, spans=f"{first}-{span}", **properties)
    return path


@lineage.component("Trainer")
def train_v1(dag_id: str, span: int, transform_path: str | None = None, **context: Any) -> str:
    """Fit the pipeline's model on the training rows of its rolling window of spans."""
    return _train("v1", dag_id, span, transform_path, context)


@lineage.component("Trainer")
def train_v2(dag_id: str, span: int, transform_path: str | None = None, **context: Any) -> str:
    """Version 2: the model sees the pairwise products of the features as well (degree-2 terms)."""
    return _train("v2", dag_id, span, transform_path, context, features="degree-2")


TRAINERS = {"v1": train_v1, "v2": train_v2}
