"""Graphlets of a store written exactly as TFX writes it: both readers, every backend, every odd case."""

from __future__ import annotations

import pytest
from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.model import OUTCOME_PUSHED, OUTCOME_WASTED
from airflow_graphlets.store.uri import parse_store_uri
from support.tfx_store import RunPlan, TfxPipeline

# One pipeline living through everything a real one meets, run by run (span = run index).
CHURN_PLANS = [
    RunPlan(0),  # pushes
    RunPlan(1, blessed=False),  # evaluated, rejected, not pushed
    RunPlan(2, trainer_fails=True),  # no model
    RunPlan(3, evaluator=False, pusher=False),  # a model nobody evaluated or pushed
    RunPlan(4, trainer_cached=True),  # cache hit: no training, so no graphlet
    RunPlan(5, statistics_cached=True),  # a cached StatisticsGen inside the graphlet
    RunPlan(6, transform=False),  # structure change: the Transform step removed
    RunPlan(7, thresholds=False, infra_validator=True),  # no thresholds: no verdict, no push
]


@pytest.fixture
def tfx_store(store):
    """A TFX-written store with two pipelines; returns (uri-less store handle, pipelines, run ids)."""
    churn = TfxPipeline(store, "churn")
    runs = {f"churn-{i}": churn.run(f"2026-01-0{i + 1}T00:00:00.000000", plan) for i, plan in enumerate(CHURN_PLANS)}
    fraud = TfxPipeline(store, "fraud")
    for i in range(4):
        runs[f"fraud-{i}"] = fraud.run(f"fraud-run-{i}", RunPlan(i, window=2, transform=i >= 2))
    return runs


def _by_trainer(extraction):
    return {g.trainer_id: g for g in extraction.graphlets.records()}


def test_both_readers_find_the_same_graphlets_in_a_tfx_store(store_uri, tfx_store):
    config = parse_store_uri(store_uri)
    bulk, api = read_graphlets(config), read_graphlets_with_mlmd_api(config)
    assert bulk.graphlets.records() == api.graphlets.records()
    assert bulk.executions.equals(api.executions)
    # Every trainer that trained anchors one graphlet; the cache hit does not.
    trained = [r["Trainer"] for name, r in tfx_store.items() if name != "churn-4"]
    assert sorted(bulk.graphlets.trainer_id.tolist()) == sorted(trained)
    assert bulk.pipelines == ("churn", "fraud")


def test_a_full_tfx_run_makes_a_complete_graphlet(store_uri, tfx_store):
    graphlets = _by_trainer(read_graphlets(parse_store_uri(store_uri)))
    run = tfx_store["fraud-3"]  # window of 2 spans (2 and 3), with Transform
    g = graphlets[run["Trainer"]]
    assert (g.pipeline, g.run, g.status, g.blessed, g.pushed) == ("fraud", "fraud-run-3", "pushed", True, True)
    assert g.spans == (2, 3)
    assert g.downstream_ids == (run["Evaluator"], run["Pusher"])
    # Upstream: this run's chain, and the ingestion and analyses of the older span it also read.
    span2 = tfx_store["fraud-2"]
    assert {run[c] for c in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform")} <= set(g.upstream_ids)
    assert {span2[c] for c in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator")} <= set(g.upstream_ids)
    # ...but not the older run's Transform or Trainer: they made other graphlets.
    assert span2["Transform"] not in g.upstream_ids and span2["Trainer"] not in g.upstream_ids
    assert len(g.model_ids) == 1 and g.pushed_at is not None and g.pushed_at >= g.trainer_end
    # A TFX store times executions by MLMD's create and update times (milliseconds here).
    assert g.cost_seconds == pytest.approx(sum(seconds for _, seconds in g.cost_by_kind))
    assert g.trainer_end >= g.trainer_start > 1.7e9


def test_unpushed_failed_and_unevaluated_runs_end_as_the_paper_says(store_uri, tfx_store):
    graphlets = _by_trainer(read_graphlets(parse_store_uri(store_uri)))
    rejected = graphlets[tfx_store["churn-1"]["Trainer"]]
    assert (rejected.status, rejected.blessed, rejected.pushed) == ("not_pushed", False, False)
    failed = graphlets[tfx_store["churn-2"]["Trainer"]]
    assert (failed.status, failed.trainer_state, failed.model_ids, failed.downstream_ids) == ("failed", "FAILED", (), ())
    unevaluated = graphlets[tfx_store["churn-3"]["Trainer"]]
    assert (unevaluated.status, unevaluated.blessed, unevaluated.downstream_ids) == ("not_pushed", None, ())
    no_thresholds = graphlets[tfx_store["churn-7"]["Trainer"]]
    assert (no_thresholds.blessed, no_thresholds.infra_blessed, no_thresholds.pushed) == (None, True, False)


def test_a_baseline_reader_belongs_to_its_own_graphlet(store_uri, tfx_store):
    """Run 5's Evaluator reads run 0's blessed model as ``baseline_model``: that makes it part of
    run 5's graphlet, not run 0's (which would otherwise inherit run 5's push)."""
    graphlets = _by_trainer(read_graphlets(parse_store_uri(store_uri)))
    first = graphlets[tfx_store["churn-0"]["Trainer"]]
    assert first.downstream_ids == (tfx_store["churn-0"]["Evaluator"], tfx_store["churn-0"]["Pusher"])


def test_transformed_examples_are_not_spans_and_cached_analyses_count(store_uri, tfx_store):
    graphlets = _by_trainer(read_graphlets(parse_store_uri(store_uri)))
    g = graphlets[tfx_store["churn-5"]["Trainer"]]
    # The trainer read only Transform's output; its spans are the raw ones Transform read.
    assert g.spans == (3, 4, 5)
    assert len(g.span_artifact_ids) == 3
    assert tfx_store["churn-5"]["StatisticsGen"] in g.upstream_ids  # the CACHED execution


def test_structure_changes_show_in_the_structure_fingerprint(store_uri, tfx_store):
    graphlets = _by_trainer(read_graphlets(parse_store_uri(store_uri)))
    with_transform = graphlets[tfx_store["churn-5"]["Trainer"]].structure_hash
    without = graphlets[tfx_store["churn-6"]["Trainer"]].structure_hash
    assert with_transform and without and with_transform != without
    assert graphlets[tfx_store["fraud-2"]["Trainer"]].structure_hash == graphlets[tfx_store["fraud-3"]["Trainer"]].structure_hash


def test_each_graphlet_knows_the_pipelines_last_push_before_it(store_uri, tfx_store):
    graphlets = _by_trainer(read_graphlets(parse_store_uri(store_uri)))
    first_push = tfx_store["churn-0"]["Trainer"]
    assert graphlets[first_push].previous_pushed_trainer_id is None
    assert graphlets[tfx_store["churn-1"]["Trainer"]].previous_pushed_trainer_id == first_push
    assert graphlets[tfx_store["churn-6"]["Trainer"]].previous_pushed_trainer_id == tfx_store["churn-5"]["Trainer"]


def test_compute_is_wasted_only_when_no_graphlet_it_served_pushed(store_uri, tfx_store):
    extraction = read_graphlets(parse_store_uri(store_uri))
    outcome = dict(zip(extraction.executions.ids.tolist(), extraction.executions.outcome.tolist()))
    assert outcome[tfx_store["churn-1"]["Trainer"]] == OUTCOME_WASTED
    # Span 3 was ingested in a run whose model nobody pushed, but run 5's pushed model read it too.
    assert outcome[tfx_store["churn-3"]["CsvExampleGen"]] == OUTCOME_PUSHED
    # Span 1 fed only graphlets that never pushed (runs 1, 2 and 3).
    assert outcome[tfx_store["churn-1"]["CsvExampleGen"]] == OUTCOME_WASTED
    assert outcome[tfx_store["churn-2"]["Trainer"]] == OUTCOME_WASTED


def test_a_pipeline_filter_reads_only_that_pipeline(store_uri, tfx_store):
    config = parse_store_uri(store_uri)
    only = read_graphlets(config, ["fraud"])
    assert only.pipelines == ("fraud",)
    assert {g.pipeline for g in only.graphlets.records()} == {"fraud"}
    assert only.graphlets.records() == read_graphlets_with_mlmd_api(config, ["fraud"]).graphlets.records()
    everything = _by_trainer(read_graphlets(config))
    assert all(everything[g.trainer_id] == g for g in only.graphlets.records())
