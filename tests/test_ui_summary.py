"""The UI's summary and what its pages compute: the numbers match the graphlet analyses of the
same store, filters and pages select what they say, a graphlet's drawing holds its provenance,
and text from the store reaches the page only escaped."""

from __future__ import annotations

import re
import statistics

import numpy as np
import pytest
import sqlalchemy as sa
from airflow_graphlets.graphlets.analyses import analyze
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.model import STATUS_INDEX
from airflow_graphlets.graphlets.subgraph import GraphletNotFoundError, read_subgraph
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri
from airflow_graphlets.summary import queries
from airflow_graphlets.summary.database import summary_engine
from airflow_graphlets.summary.refresh import refresh_summary
from airflow_graphlets.ui import svg


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A simulated store of 6 pipelines over 30 days, its extraction and its summary."""
    tmp = tmp_path_factory.mktemp("ui_summary")
    config = parse_store_uri(f"sqlite:///{tmp}/sim.sqlite")
    simulate(config, pipelines=6, days=30, seed=3)
    engine = summary_engine(f"sqlite:///{tmp}/summary.sqlite")
    result = refresh_summary(config, engine)
    return config, read_graphlets(config), engine, result


def test_the_summary_holds_every_graphlet_and_the_analysis_totals(simulated):
    config, extraction, engine, result = simulated
    totals = analyze(extraction).totals
    view = queries.overview(engine)
    assert result.graphlets == len(extraction.graphlets) == view.totals.graphlets
    assert view.totals.pushes == totals["pushed"]
    wasted = extraction.executions.duration[extraction.executions.outcome == 1].sum()
    assert view.totals.wasted == pytest.approx(wasted)
    assert view.totals.spent == pytest.approx(extraction.executions.duration[extraction.executions.pipeline >= 0].sum())
    assert view.dag_count == len(extraction.pipelines) == 6
    assert queries.summary_state(engine).store == str(config)


def test_a_refresh_replaces_the_summary_rather_than_adding_to_it(simulated):
    config, extraction, engine, _ = simulated
    refresh_summary(config, engine)
    assert queries.overview(engine).totals.graphlets == len(extraction.graphlets)


def test_the_per_dag_rows_are_paged_most_waste_first_and_add_up(simulated):
    _, _, engine, _ = simulated
    first, second = queries.overview(engine, per_page=4), queries.overview(engine, per_page=4, page=1)
    rows = first.dags + second.dags
    assert len(first.dags) == 4 and len(second.dags) == 2
    assert [r.totals.wasted for r in rows] == sorted((r.totals.wasted for r in rows), reverse=True)
    assert sum(r.totals.wasted for r in rows) == pytest.approx(first.totals.wasted)


def test_filters_by_dag_time_range_and_readable_dags(simulated):
    _, extraction, engine, _ = simulated
    everything = queries.overview(engine)
    dag = everything.dags[0].dag_id
    one = queries.overview(engine, dag=dag)
    assert one.dag_count == 1 and one.totals.wasted == pytest.approx(everything.dags[0].totals.wasted)
    assert queries.overview(engine, dags={dag}).totals == one.totals
    assert queries.overview(engine, dags=set()).totals.graphlets == 0
    # The unfiltered page reads the roll-ups; the same figures come from the (pipeline, day) rows.
    every = queries.overview(engine, dags=set(extraction.pipelines))
    assert every.dags == everything.dags and every.dag_count == everything.dag_count
    assert [every.totals.spent, every.totals.wasted, every.totals.saved] == pytest.approx(
        [everything.totals.spent, everything.totals.wasted, everything.totals.saved])
    assert (every.totals.graphlets, every.totals.pushes) == (everything.totals.graphlets, everything.totals.pushes)
    assert [b.day for b in every.series] == [b.day for b in everything.series]
    middle = everything.first_day + 10
    early, late = queries.overview(engine, last_day=middle - 1), queries.overview(engine, first_day=middle)
    assert early.totals.graphlets + late.totals.graphlets == everything.totals.graphlets
    assert early.totals.spent + late.totals.spent == pytest.approx(everything.totals.spent)
    assert all(b.day < middle for b in early.series) and all(b.day >= middle for b in late.series)
    assert queries.dag_ids(engine) == sorted(extraction.pipelines)
    assert queries.dag_ids(engine, {dag, "not-a-dag"}) == [dag]


def test_the_pipeline_view_gives_cadence_and_deployment_delay(simulated):
    _, extraction, engine, _ = simulated
    g = extraction.graphlets
    busiest = int(np.bincount(g.pipeline[g.pushed]).argmax())
    name = extraction.pipelines[busiest]
    mine = g.pipeline == busiest
    pushed_at = np.sort(g.pushed_at[mine & g.pushed])
    view = queries.pipeline_view(engine, name, per_page=10)
    assert view.graphlet_count == int(mine.sum()) and len(view.page) == 10
    assert [r.trainer_start for r in view.page] == sorted((r.trainer_start for r in view.page), reverse=True)
    assert view.pushes == len(pushed_at)
    assert view.hours_between_pushes == pytest.approx(statistics.median(np.diff(pushed_at) / 3600))
    delays = (g.pushed_at - g.trainer_start)[mine & g.pushed] / 3600
    assert view.deployment_delay_hours == pytest.approx(statistics.median(delays))
    assert view.status_counts["pushed"] == len(pushed_at)
    assert queries.pipeline_view(engine, "no-such-dag").graphlet_count == 0


def test_a_graphlet_subgraph_runs_from_its_spans_to_its_push(simulated):
    config, extraction, _, _ = simulated
    g = extraction.graphlets
    row = int(np.flatnonzero(g.status == STATUS_INDEX["pushed"])[-1])
    record = g.record(row)
    graph = read_subgraph(config, record.pipeline, record.trainer_id)
    assert graph.status == "pushed"
    assert set(graph.executions) == set(record.execution_ids)
    assert graph.executions[record.trainer_id].role == "trainer"
    assert set(record.span_artifact_ids) <= set(graph.artifacts)
    types = {a.type_name for a in graph.artifacts.values()}
    assert {"Examples", "Model", "ModelBlessing", "PushedModel"} <= types
    trainer = graph.executions[record.trainer_id]
    assert trainer.dag_id == record.pipeline and trainer.task_id and trainer.run_id
    model = next(a for a in graph.artifacts.values() if a.type_name == "Model")
    assert (("e", record.trainer_id), ("a", model.id)) in graph.edges
    drawing = str(svg.provenance(graph, lambda e: f"/dags/{e.dag_id}/runs/{e.run_id}/tasks/{e.task_id}"))
    for kind, nodes in (("execution", graph.executions), ("artifact", graph.artifacts)):
        grouped = sum(int(n) for n in re.findall(rf'data-kind="{kind}" data-members="(\d+)"', drawing))
        assert drawing.count(f'class="node {kind}"') + grouped == len(nodes)
    with pytest.raises(GraphletNotFoundError, match="has no graphlet whose trainer is execution 1"):
        read_subgraph(config, record.pipeline, 1)


def test_text_from_the_store_is_escaped_in_every_drawing():
    hostile = '<img src=x onerror="alert(1)">&'
    row = queries.GraphletRow(7, hostile, "not_pushed", 1e9, 1e9 + 60, 60.0, 0, None, 1, 2, 2)
    decision = queries.Decision(8, hostile, 1e9 + 10, "skip", 0.1, 30.0)
    drawn = str(svg.timeline([row], [decision], lambda trainer: f"/graphlet?dag={hostile}"))
    drawn += str(svg.stacked_bars([(1, {hostile: 1.0})], [hostile]))
    drawn += str(svg.legend([hostile]))
    assert "<img" not in drawn
    assert drawn.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;") >= 3


def test_the_summary_url_must_be_a_database():
    from airflow_graphlets.errors import GraphletsError

    with pytest.raises(GraphletsError, match="summary_uri = 'not a url' is not a database URL"):
        summary_engine("not a url")


def test_an_empty_store_gives_an_empty_summary(tmp_path):
    from airflow_graphlets.store.connect import open_store

    config = parse_store_uri(f"sqlite:///{tmp_path}/empty.sqlite")
    open_store(config)
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    result = refresh_summary(config, engine)
    assert (result.graphlets, result.decisions) == (0, 0)
    view = queries.overview(engine)
    assert view.totals.graphlets == 0 and view.series == [] and view.first_day is None
    with sa.create_engine(f"sqlite:///{tmp_path}/summary.sqlite").connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM graphlets_summary_state WHERE key = 'store'")).scalar() == str(config)


def test_a_window_of_fifteen_spans_draws_its_chains_as_groups():
    """15 spans, each with its ExampleGen, Examples, StatisticsGen and statistics: drawn as a few
    grouped boxes, so the drawing stays about as tall as a 1-span graphlet's."""
    from airflow_graphlets.graphlets.subgraph import ArtifactNode, ExecutionNode, Subgraph

    graph = Subgraph("p", 1000, "pushed")
    trainer = ExecutionNode(1000, "Trainer", "COMPLETE", "trainer", task_id="train")
    graph.executions[1000] = trainer
    graph.artifacts[5000] = ArtifactNode(5000, "Model", "/m")
    graph.edges.append((("e", 1000), ("a", 5000)))
    for span in range(1, 16):
        gen, stats = ExecutionNode(span, "ExampleGen", "COMPLETE", "upstream"), \
            ExecutionNode(100 + span, "StatisticsGen", "COMPLETE", "upstream")
        graph.executions[gen.id], graph.executions[stats.id] = gen, stats
        graph.artifacts[200 + span] = ArtifactNode(200 + span, "Examples", f"/e/{span}", span=span)
        graph.artifacts[300 + span] = ArtifactNode(300 + span, "ExampleStatistics", f"/s/{span}", span=span)
        graph.edges += [(("e", span), ("a", 200 + span)), (("a", 200 + span), ("e", 100 + span)),
                        (("e", 100 + span), ("a", 300 + span)), (("a", 200 + span), ("e", 1000))]
    drawing = str(svg.provenance(graph, lambda e: None))
    assert "15 × ExampleGen" in drawing and "15 × Examples" in drawing and "spans 1–15" in drawing
    height = int(re.search(r'height="(\d+)"', drawing).group(1))
    assert height <= 4 * 54 + 16  # four rows (two groups and the trainer's), where 30 would be drawn ungrouped
    assert drawing.count('class="node group"') == 4
