"""The paper's analyses: numbers checked by hand on a TFX store, and by a second count on a simulated one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from airflow_graphlets.graphlets.analyses import analyze
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.reports import JSON_SCHEMA, JSON_VERSION, to_json, to_text
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri
from support.tfx_store import RunPlan, TfxPipeline


@pytest.fixture
def two_pipelines(sqlite_store_uri):
    """fraud: 4 runs, 2-span window, all pushed. churn: 5 runs, 3-span window, two rejected, one failed."""
    store = open_store(parse_store_uri(sqlite_store_uri))
    fraud = TfxPipeline(store, "fraud")
    for i in range(4):
        fraud.run(f"f{i}", RunPlan(i, window=2))
    churn = TfxPipeline(store, "churn")
    for i, plan in enumerate([RunPlan(0), RunPlan(1, blessed=False), RunPlan(2, trainer_fails=True),
                              RunPlan(3, blessed=False), RunPlan(4)]):
        churn.run(f"c{i}", plan)
    return sqlite_store_uri


def test_counts_push_rates_spans_and_overlap_match_a_hand_count(two_pipelines):
    analysis = analyze(read_graphlets(parse_store_uri(two_pipelines)))
    totals = analysis.totals
    assert (totals["pipelines"], totals["runs"], totals["graphlets"]) == (2, 9, 9)
    assert (totals["pushed"], totals["not_pushed"], totals["failed"], totals["running"]) == (6, 2, 1, 0)
    assert totals["push_rate"] == pytest.approx(6 / 9)
    rows = {p.pipeline: p for p in analysis.pipelines}
    assert rows["fraud"].push_rate == 1.0 and rows["churn"].push_rate == pytest.approx(2 / 5)
    # fraud's windows {0}, {0,1}, {1,2}, {2,3}: consecutive Jaccard 1/2, 1/3, 1/3.
    assert rows["fraud"].mean_overlap == pytest.approx((1 / 2 + 1 / 3 + 1 / 3) / 3, abs=1e-6)
    assert rows["fraud"].mean_spans_per_graphlet == pytest.approx((1 + 2 + 2 + 2) / 4)
    # churn's windows {0}, {0,1}, {0,1,2}, {1,2,3}, {2,3,4}: 1/2, 2/3, 2/4, 2/4.
    assert rows["churn"].mean_overlap == pytest.approx((1 / 2 + 2 / 3 + 2 / 4 + 2 / 4) / 4, abs=1e-6)
    spans = analysis.distributions["spans_per_graphlet"]
    assert (spans.count, spans.min, spans.max) == (9, 1, 3)
    assert analysis.distributions["span_overlap"].count == 3 + 4


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('sim') / 'sim.sqlite'}"
    simulate(parse_store_uri(uri), pipelines=8, days=20, seed=7)
    return uri


def test_waste_is_the_compute_no_pushed_graphlet_used_counted_once(simulated):
    extraction = read_graphlets(parse_store_uri(simulated))
    analysis = analyze(extraction)
    # A second count, straight from the graphlet records.
    used, used_by_push = set(), set()
    for g in extraction.graphlets.records():
        used |= set(g.execution_ids)
        if g.pushed:
            used_by_push |= set(g.execution_ids)
    duration = dict(zip(extraction.executions.ids.tolist(), extraction.executions.duration.tolist()))
    wasted = sum(duration[e] for e in used - used_by_push)
    assert analysis.totals["wasted_seconds"] == pytest.approx(wasted, rel=1e-9)
    assert analysis.totals["waste_share"] == pytest.approx(wasted / sum(duration[e] for e in used), abs=1e-6)
    assert 0 < analysis.totals["waste_share"] < 1
    # Every view of compute adds up to the same total.
    by_kind = sum(sum(outcomes.values()) for outcomes in analysis.compute_by_kind.values())
    by_day = sum(day["pushed"] + day["wasted"] + day["pending"] + day["unattributed"] for day in analysis.waste_by_day)
    assert by_kind == pytest.approx(analysis.totals["compute_seconds"], rel=1e-9)
    assert by_day == pytest.approx(analysis.totals["compute_seconds"], rel=1e-9)
    assert sum(p.wasted_seconds for p in analysis.pipelines) == pytest.approx(wasted, rel=1e-9)
    for row in analysis.pipelines:
        assert sum(row.compute_by_kind.values()) == pytest.approx(row.compute_seconds, rel=1e-9)
        assert {"ExampleGen", "Trainer"} <= set(row.compute_by_kind)


def test_cadence_and_time_between_pushes_follow_the_records(simulated):
    extraction = read_graphlets(parse_store_uri(simulated))
    analysis = analyze(extraction)
    records = extraction.graphlets.records()
    for row in analysis.pipelines:
        mine = [g for g in records if g.pipeline == row.pipeline]
        pushes = sorted(g.pushed_at for g in mine if g.pushed)
        assert row.graphlets == len(mine) and row.pushed == len(pushes)
        if len(pushes) > 1:
            assert row.median_hours_between_pushes == pytest.approx(np.median(np.diff(pushes)) / 3600, abs=1e-6)
        assert row.models_per_day == pytest.approx(len(mine) / max(row.lifespan_days, 1.0), rel=1e-5)
    assert 19 < max(p.lifespan_days for p in analysis.pipelines) <= 21  # the last run may end after day 20


def test_the_json_document_is_versioned_and_complete(two_pipelines):
    document = json.loads(to_json(analyze(read_graphlets(parse_store_uri(two_pipelines)))))
    assert (document["schema"], document["version"]) == (JSON_SCHEMA, JSON_VERSION)
    assert set(document) == {"schema", "version", "store", "reader", "clock", "mlmd_schema_version", "period", "totals",
                             "distributions", "compute_by_kind", "waste_by_day", "pipelines"}
    assert document["mlmd_schema_version"] == 10
    assert {p["pipeline"] for p in document["pipelines"]} == {"churn", "fraud"}
    assert set(document["distributions"]["span_overlap"]) == {"count", "mean", "min", "p25", "median", "p75", "p90", "max"}


def test_the_terminal_report_names_every_section_and_pipeline(two_pipelines):
    text = to_text(analyze(read_graphlets(parse_store_uri(two_pipelines))))
    for heading in ("Compute (each execution counted once)", "Distributions", "Compute by operator kind",
                    "Pipelines by wasted compute", "span overlap (Jaccard)", "fraud", "churn", "66.7%"):
        assert heading in text
